/* TO_FILE kernel; see to_file.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include "to_file.h"

struct mapi_to_file {
    int fd;
    int regular;                 /* a regular file: a cut record can be truncated away */
    int32_t format;
    int32_t linktype;
    uint32_t snaplen;            /* captured bytes beyond it are cut (pcap) */
    uint8_t *buf;
    size_t cap;                  /* buffer size; 0: records are written one by one */
    size_t used;                 /* bytes in buf */
    size_t lead;                 /* bytes at the start of buf that are no record (file header) */
    uint64_t file_off;           /* bytes known to be in the file */
    mapi_to_file_stats st;
};

/* Write iov[0..n) in full; *done = bytes written before an error.  Returns 0 or errno. */
static int writev_all(int fd, struct iovec *iov, int n, size_t *done)
{
    *done = 0;
    while (n > 0) {
        ssize_t w = writev(fd, iov, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (w == 0) return EIO;
        *done += (size_t)w;
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static uint32_t rd32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Length of the record at p (header included), from its own header. */
static size_t record_len(const mapi_to_file *t, const uint8_t *p)
{
    if (t->format == MAPI_TOFILE_PCAP) return 16 + (size_t)rd32le(p + 8);
    return ((size_t)p[10] << 8) | p[11];
}

/* Stop writing after a failed write: `keep` of the bytes it tried reached the file as whole
 * records (`whole` of the `rec` records it held), `done` reached it at all.  A record the
 * failure cut in two is truncated away, so the file ends at its last whole record. */
static void stop(mapi_to_file *t, int e, size_t keep, size_t done, uint64_t whole, uint64_t rec)
{
    t->st.error = e;
    t->st.error_offset = t->file_off + keep;
    if (done > keep && !(t->regular && ftruncate(t->fd, (off_t)(t->file_off + keep)) == 0))
        keep = done;             /* cannot cut it (not a regular file): those bytes stay */
    t->file_off += keep;
    t->st.bytes = t->file_off - t->st.start;
    t->st.packets += whole;
    t->st.lost += rec - whole;
    t->st.buffered = 0;
    t->used = t->lead = 0;
    close(t->fd);
    t->fd = -1;
    t->st.closed = 1;
}

/* A failed write of the buffer, of which `done` bytes reached the file. */
static void buffer_failed(mapi_to_file *t, int e, size_t done)
{
    size_t keep = 0;
    uint64_t whole = 0;
    if (done >= t->lead) {       /* a cut file header is not kept either */
        keep = t->lead;
        while (whole < t->st.buffered && keep + 16 <= t->used) {
            size_t r = record_len(t, t->buf + keep);
            if (keep + r > done) break;
            keep += r;
            whole++;
        }
    }
    stop(t, e, keep, done, whole, t->st.buffered);
}

int mapi_to_file_flush(mapi_to_file *t)
{
    if (t->fd < 0 || t->used == 0) return t->st.error;
    struct iovec iov = {t->buf, t->used};
    size_t done;
    int e = writev_all(t->fd, &iov, 1, &done);
    if (e) {
        buffer_failed(t, e, done);
        return e;
    }
    t->file_off += t->used;
    t->st.bytes = t->file_off - t->st.start;
    t->st.packets += t->st.buffered;
    t->st.buffered = 0;
    t->used = t->lead = 0;
    return 0;
}

int mapi_to_file_close(mapi_to_file *t)
{
    if (t->fd < 0) return t->st.error;
    mapi_to_file_flush(t);
    if (t->fd >= 0) {
        if (close(t->fd) < 0 && !t->st.error) {
            t->st.error = errno;       /* e.g. NFS reports a failed write at close */
            t->st.error_offset = t->file_off;
        }
        t->fd = -1;
    }
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

/* One record: header, pad bytes, captured data; buffered, or written at once when it does
 * not fit the buffer.  Returns 1 when it was taken (buffered or written), 0 when it is lost. */
static int emit(mapi_to_file *t, const uint8_t *hdr, size_t hlen, const uint8_t *pad,
                size_t padlen, const uint8_t *data, size_t dlen)
{
    size_t total = hlen + padlen + dlen;
    if (t->used + total > t->cap && mapi_to_file_flush(t)) return 0;
    if (total <= t->cap) {
        uint8_t *p = t->buf + t->used;
        memcpy(p, hdr, hlen);
        if (padlen) memcpy(p + hlen, pad, padlen);
        memcpy(p + hlen + padlen, data, dlen);
        t->used += total;
        t->st.buffered++;
        return 1;
    }
    struct iovec iov[3] = {{(void *)hdr, hlen}, {(void *)pad, padlen}, {(void *)data, dlen}};
    size_t done;
    int e = writev_all(t->fd, iov, 3, &done);
    if (e) {
        stop(t, e, 0, done, 0, 1);   /* the record is cut or absent: nothing of it stays */
        return 1;                    /* counted (as lost) by stop() */
    }
    t->file_off += total;
    t->st.bytes = t->file_off - t->st.start;
    t->st.packets++;
    return 1;
}

static int bad_args(int32_t format, uint32_t bufsize, char *err, uint32_t errlen)
{
    if (format != MAPI_TOFILE_PCAP && format != MAPI_TOFILE_ERF) {
        snprintf(err, errlen, "unknown file format %d", format);
        return 1;
    }
    if (bufsize > MAPI_TOFILE_MAX_BUFSIZE) {
        snprintf(err, errlen, "buffer of %u bytes is larger than %u", bufsize,
                 MAPI_TOFILE_MAX_BUFSIZE);
        return 1;
    }
    return 0;
}

/* The writer on an open descriptor (taken over: closed here on failure); the header of a new
 * file goes into the buffer. */
static mapi_to_file *start(int fd, const char *name, int32_t format, int32_t linktype,
                           uint32_t header_linktype, uint32_t snaplen, uint64_t limit,
                           uint32_t bufsize, int32_t append, char *err, uint32_t errlen)
{
    mapi_to_file *t = calloc(1, sizeof *t);
    if (t)                       /* the buffer holds the pcap file header at least */
        t->buf = malloc(bufsize > 24 ? bufsize : 24);
    struct stat sb;
    if (!t || !t->buf || fstat(fd, &sb) < 0) {
        if (t && t->buf)
            snprintf(err, errlen, "cannot use %s: %s", name, strerror(errno));
        else
            snprintf(err, errlen, "out of memory");
        if (t) free(t->buf);
        free(t);
        close(fd);
        return NULL;
    }
    t->fd = fd;
    t->regular = S_ISREG(sb.st_mode);
    t->file_off = t->regular ? (uint64_t)sb.st_size : 0;
    t->st.start = t->file_off;
    t->format = format;
    t->linktype = linktype;
    t->snaplen = snaplen ? snaplen : UINT32_MAX;
    t->cap = bufsize;
    t->st.limit = limit;
    if (format == MAPI_TOFILE_PCAP && !(append && t->file_off > 0)) {
        uint8_t *h = t->buf;
        put32le(h, 0xA1B2C3D4u);
        put16le(h + 4, 2);
        put16le(h + 6, 4);
        put32le(h + 8, 0);
        put32le(h + 12, 0);
        put32le(h + 16, snaplen);
        put32le(h + 20, header_linktype);
        t->used = t->lead = 24;               /* write errors show at the first flush */
        if (t->cap < 24) mapi_to_file_flush(t);
    }
    return t;
}

mapi_to_file *mapi_to_file_open(const char *path, int32_t format, int32_t linktype,
                                uint32_t header_linktype, uint32_t snaplen, uint64_t limit,
                                uint32_t bufsize, int32_t append, char *err, uint32_t errlen)
{
    if (bad_args(format, bufsize, err, errlen)) return NULL;
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot %s %s: %s", append ? "open" : "create", path, strerror(errno));
        return NULL;
    }
    return start(fd, path, format, linktype, header_linktype, snaplen, limit, bufsize, append,
                 err, errlen);
}

mapi_to_file *mapi_to_file_open_fd(int fd, const char *name, int32_t format, int32_t linktype,
                                   uint32_t header_linktype, uint32_t snaplen, uint64_t limit,
                                   uint32_t bufsize, int32_t append, char *err, uint32_t errlen)
{
    if (bad_args(format, bufsize, err, errlen)) {
        close(fd);
        return NULL;
    }
    /* what open() would do with O_APPEND or O_TRUNC */
    struct stat sb;
    int fl = fcntl(fd, F_GETFL);
    int bad = fl < 0 || fstat(fd, &sb) < 0;
    if (!bad && append)
        bad = fcntl(fd, F_SETFL, fl | O_APPEND) < 0;
    else if (!bad && S_ISREG(sb.st_mode))
        bad = ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0;
    if (bad) {
        snprintf(err, errlen, "cannot %s %s: %s", append ? "append to" : "truncate", name,
                 strerror(errno));
        close(fd);
        return NULL;
    }
    return start(fd, name, format, linktype, header_linktype, snaplen, limit, bufsize, append,
                 err, errlen);
}

static void split_ts(int64_t ts, uint32_t *sec, uint32_t *nsec)
{
    int64_t s = ts / 1000000000;
    int64_t r = ts % 1000000000;
    if (r < 0) { r += 1000000000; s -= 1; }
    *sec = (uint32_t)s;
    *nsec = (uint32_t)r;
}

static int write_pcap(mapi_to_file *t, const mapi_batch *b, uint32_t i)
{
    uint32_t sec, nsec, caplen = b->caplen[i];
    split_ts(b->ts[i], &sec, &nsec);
    if (caplen > t->snaplen) caplen = t->snaplen;
    uint8_t h[16];
    put32le(h, sec);
    put32le(h + 4, nsec / 1000);
    put32le(h + 8, caplen);
    put32le(h + 12, b->wirelen[i]);
    return emit(t, h, sizeof h, NULL, 0, b->base + b->off[i], caplen);
}

/* 1 taken, 0 lost, -1 not representable in ERF (skipped) */
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
        else return -1;
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
    return emit(t, h, sizeof h, zero_pad, pad, p, caplen);
}

static uint64_t accepted(const mapi_to_file *t)
{
    return t->st.packets + t->st.buffered + t->st.lost;
}

uint32_t mapi_to_file_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                             uint32_t nsel, uint32_t *out)
{
    (void)out;
    mapi_to_file *t = state;
    if (t->fd < 0) {
        if (t->st.error) t->st.lost += nsel;       /* stopped by an error: they are lost */
        return nsel;
    }
    if (b->linktype != t->linktype) {
        t->st.skipped += nsel;
        return nsel;
    }
    uint32_t j = 0;
    for (; j < nsel && t->fd >= 0; j++) {
        if (t->st.limit && accepted(t) >= t->st.limit) break;
        uint32_t i = sel[j];
        int r = t->format == MAPI_TOFILE_PCAP ? write_pcap(t, b, i) : write_erf(t, b, i);
        if (r < 0) {
            t->st.skipped++;
            continue;
        }
        if (r == 0) t->st.lost++;
        t->st.last_ts = b->ts[i];
    }
    if (t->fd < 0 && t->st.error) t->st.lost += nsel - j;
    if (t->st.limit && accepted(t) >= t->st.limit) mapi_to_file_close(t);
    return nsel;
}

void mapi_to_file_get_stats(mapi_to_file *t, mapi_to_file_stats *st) { *st = t->st; }
