/* TO_FILE kernel; see to_file.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "to_file.h"

struct mapi_to_file {
    int fd;
    int32_t format;
    int32_t linktype;
    uint32_t snaplen;            /* captured bytes beyond it are cut (pcap) */
    uint8_t *buf;
    size_t used;
    mapi_to_file_stats st;
};

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int mapi_to_file_flush(mapi_to_file *t)
{
    if (t->fd < 0 || t->used == 0) return t->st.error;
    int e = write_all(t->fd, t->buf, t->used);
    t->used = 0;
    if (e && !t->st.error) t->st.error = e;
    return t->st.error;
}

int mapi_to_file_close(mapi_to_file *t)
{
    if (t->fd < 0) return t->st.error;
    mapi_to_file_flush(t);
    if (close(t->fd) < 0 && !t->st.error) t->st.error = errno;
    t->fd = -1;
    t->st.closed = 1;
    return t->st.error;
}

void mapi_to_file_free(mapi_to_file *t)
{
    if (!t) return;
    mapi_to_file_close(t);
    free(t->buf);
    free(t);
}

static void put16le(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32le(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64le(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put16be(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }

/* Room for n more bytes in the buffer (n <= MAPI_TOFILE_BUFSIZE), flushing first if needed. */
static uint8_t *reserve(mapi_to_file *t, size_t n)
{
    if (t->used + n > MAPI_TOFILE_BUFSIZE) mapi_to_file_flush(t);
    uint8_t *p = t->buf + t->used;
    t->used += n;
    return p;
}

static void emit_part(mapi_to_file *t, const uint8_t *p, size_t n)
{
    int e = write_all(t->fd, p, n);
    if (e && !t->st.error) t->st.error = e;
}

/* One record: header, pad bytes, captured data (written straight through if it is huge). */
static void emit(mapi_to_file *t, const uint8_t *hdr, size_t hlen, const uint8_t *pad,
                 size_t padlen, const uint8_t *data, size_t dlen)
{
    size_t total = hlen + padlen + dlen;
    if (total <= MAPI_TOFILE_BUFSIZE) {
        uint8_t *p = reserve(t, total);
        memcpy(p, hdr, hlen);
        if (padlen) memcpy(p + hlen, pad, padlen);
        memcpy(p + hlen + padlen, data, dlen);
    } else {
        mapi_to_file_flush(t);
        emit_part(t, hdr, hlen);
        if (padlen) emit_part(t, pad, padlen);
        emit_part(t, data, dlen);
    }
    t->st.bytes += total;
}

mapi_to_file *mapi_to_file_open(const char *path, int32_t format, int32_t linktype,
                                uint32_t header_linktype, uint32_t snaplen, uint64_t limit,
                                char *err, uint32_t errlen)
{
    if (format != MAPI_TOFILE_PCAP && format != MAPI_TOFILE_ERF) {
        snprintf(err, errlen, "unknown file format %d", format);
        return NULL;
    }
    mapi_to_file *t = calloc(1, sizeof *t);
    if (!t || !(t->buf = malloc(MAPI_TOFILE_BUFSIZE))) {
        free(t);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (t->fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        free(t->buf);
        free(t);
        return NULL;
    }
    t->format = format;
    t->linktype = linktype;
    t->snaplen = snaplen ? snaplen : UINT32_MAX;
    t->st.limit = limit;
    if (format == MAPI_TOFILE_PCAP) {
        uint8_t h[24];
        put32le(h, 0xA1B2C3D4u);
        put16le(h + 4, 2);
        put16le(h + 6, 4);
        put32le(h + 8, 0);
        put32le(h + 12, 0);
        put32le(h + 16, snaplen);
        put32le(h + 20, header_linktype);
        memcpy(reserve(t, sizeof h), h, sizeof h);       /* write errors show at the first flush */
        t->st.bytes = sizeof h;
    }
    return t;
}

static void split_ts(int64_t ts, uint32_t *sec, uint32_t *nsec)
{
    int64_t s = ts / 1000000000;
    int64_t r = ts % 1000000000;
    if (r < 0) { r += 1000000000; s -= 1; }
    *sec = (uint32_t)s;
    *nsec = (uint32_t)r;
}

static void write_pcap(mapi_to_file *t, const mapi_batch *b, uint32_t i)
{
    uint32_t sec, nsec, caplen = b->caplen[i];
    split_ts(b->ts[i], &sec, &nsec);
    if (caplen > t->snaplen) caplen = t->snaplen;
    uint8_t h[16];
    put32le(h, sec);
    put32le(h + 4, nsec / 1000);
    put32le(h + 8, caplen);
    put32le(h + 12, b->wirelen[i]);
    emit(t, h, sizeof h, NULL, 0, b->base + b->off[i], caplen);
}

static int write_erf(mapi_to_file *t, const mapi_batch *b, uint32_t i)
{
    static const uint8_t zero_pad[2] = {0, 0};
    const uint8_t *p = b->base + b->off[i];
    uint32_t caplen = b->caplen[i], wlen = b->wirelen[i];
    uint8_t type;
    size_t pad = 0;
    if (t->linktype == 1) {
        type = 2;
        pad = 2;
        wlen += 4;
    } else {
        int v = caplen ? p[0] >> 4 : 0;
        if (v == 4) type = 22;
        else if (v == 6) type = 23;
        else return 0;
    }
    if (caplen > 65535 - 16 - pad) caplen = (uint32_t)(65535 - 16 - pad);
    if (wlen > 65535) wlen = 65535;
    uint32_t sec, nsec;
    split_ts(b->ts[i], &sec, &nsec);
    uint8_t h[16];
    put64le(h, ((uint64_t)sec << 32) + (((uint64_t)nsec << 32) / 1000000000u));
    h[8] = type;
    h[9] = (uint8_t)(0x04 | (b->ifindex[i] & 3));
    put16be(h + 10, (uint16_t)(16 + pad + caplen));
    put16be(h + 12, 0);
    put16be(h + 14, (uint16_t)wlen);
    emit(t, h, sizeof h, zero_pad, pad, p, caplen);
    return 1;
}

uint32_t mapi_to_file_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                             uint32_t nsel, uint32_t *out)
{
    (void)out;
    mapi_to_file *t = state;
    if (t->fd < 0) return nsel;
    if (b->linktype != t->linktype) {
        t->st.skipped += nsel;
        return nsel;
    }
    for (uint32_t j = 0; j < nsel; j++) {
        if (t->st.limit && t->st.packets >= t->st.limit) break;
        uint32_t i = sel[j];
        if (t->format == MAPI_TOFILE_PCAP) {
            write_pcap(t, b, i);
        } else if (!write_erf(t, b, i)) {
            t->st.skipped++;
            continue;
        }
        t->st.packets++;
        t->st.last_ts = b->ts[i];
    }
    if (t->st.limit && t->st.packets >= t->st.limit) mapi_to_file_close(t);
    return nsel;
}

void mapi_to_file_get_stats(mapi_to_file *t, mapi_to_file_stats *st) { *st = t->st; }
