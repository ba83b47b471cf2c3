/* RECORD_REPORT; see record_report.h. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "record_report.h"
#include "../byteorder.h"

#define RREP_BUF 65536
#define TPL_V4 256
#define TPL_V6 257

struct mapi_rrep {
    int32_t format;
    int32_t fd;
    uint32_t domain;
    uint32_t mtu;
    uint8_t *buf;
    uint32_t len;
    uint32_t set_start;               /* IPFIX: offset of the open data set (0: none) */
    int set_family;
    uint32_t seq;                     /* IPFIX: data records sent before this message */
    uint32_t msg_records;
    uint64_t records, messages, bytes, errors;
    uint32_t since_templates;
    int header_done;
};

/* IPFIX template fields (element id, length), the same for both families but the addresses */
static const uint16_t TPL_COMMON[][2] = {
    {7, 2}, {11, 2}, {4, 1}, {6, 1}, {5, 1}, {1, 8}, {2, 8}, {23, 8}, {24, 8},
    {152, 8}, {153, 8}, {10, 4}, {14, 4}, {16, 4}, {17, 4},
};
#define NCOMMON (sizeof TPL_COMMON / sizeof TPL_COMMON[0])
#define REC_LEN_COMMON (2 + 2 + 1 + 1 + 1 + 8 * 6 + 4 * 4)

mapi_rrep *mapi_rrep_new(int32_t format, int32_t fd, uint32_t domain, uint32_t mtu)
{
    mapi_rrep *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->format = format;
    r->fd = fd;
    r->domain = domain;
    r->mtu = mtu < 256 ? 256 : (mtu > RREP_BUF ? RREP_BUF : mtu);
    r->buf = malloc(RREP_BUF);
    if (!r->buf) { free(r); return NULL; }
    return r;
}

void mapi_rrep_free(mapi_rrep *r)
{
    if (!r) return;
    free(r->buf);
    free(r);
}

static int write_all(mapi_rrep *r, int32_t *err)
{
    if (!r->len) return 0;
    ssize_t w = write(r->fd, r->buf, r->len);
    if (w < 0 || (uint32_t)w != r->len) {
        r->errors++;
        *err = w < 0 ? errno : EIO;
        r->len = 0;
        return -1;
    }
    r->bytes += r->len;
    r->len = 0;
    return 0;
}

static void close_set(mapi_rrep *r)
{
    if (r->set_start) {
        mapi_put_be16(r->buf + r->set_start + 2, r->len - r->set_start);
        r->set_start = 0;
    }
}

static int ipfix_flush(mapi_rrep *r, int32_t *err)
{
    close_set(r);
    if (r->len <= 16) { r->len = 0; return 0; }
    mapi_put_be16(r->buf + 2, r->len);
    r->messages++;
    r->seq += r->msg_records;
    r->msg_records = 0;
    return write_all(r, err);
}

static void ipfix_begin(mapi_rrep *r)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    mapi_put_be16(r->buf, 10);
    mapi_put_be16(r->buf + 2, 0);
    mapi_put_be32(r->buf + 4, (uint32_t)ts.tv_sec);
    mapi_put_be32(r->buf + 8, r->seq);
    mapi_put_be32(r->buf + 12, r->domain);
    r->len = 16;
    if (r->since_templates == 0) {        /* templates in the first message and every 16th */
        uint32_t start = r->len;
        mapi_put_be16(r->buf + start, 2);
        r->len += 4;
        for (int fam = 4; fam <= 6; fam += 2) {
            uint8_t *p = r->buf + r->len;
            mapi_put_be16(p, fam == 4 ? TPL_V4 : TPL_V6);
            mapi_put_be16(p + 2, NCOMMON + 2);
            p += 4;
            mapi_put_be16(p, fam == 4 ? 8 : 27); mapi_put_be16(p + 2, fam == 4 ? 4 : 16);
            mapi_put_be16(p + 4, fam == 4 ? 12 : 28); mapi_put_be16(p + 6, fam == 4 ? 4 : 16);
            p += 8;
            for (unsigned i = 0; i < NCOMMON; i++) {
                mapi_put_be16(p, TPL_COMMON[i][0]);
                mapi_put_be16(p + 2, TPL_COMMON[i][1]);
                p += 4;
            }
            r->len = (uint32_t)(p - r->buf);
        }
        mapi_put_be16(r->buf + start + 2, r->len - start);
    }
    r->since_templates = (r->since_templates + 1) % 16;
}

static int ipfix_add(mapi_rrep *r, const mapi_flowrec *f, int32_t *err)
{
    int fam = f->family == 6 ? 6 : 4;
    uint32_t rlen = REC_LEN_COMMON + (fam == 6 ? 32 : 8);
    if (r->len && (r->len + rlen + 4 > r->mtu || (r->set_start && r->set_family != fam))) {
        if (r->len + rlen + 4 > r->mtu) {
            if (ipfix_flush(r, err) < 0) return -1;
        } else {
            close_set(r);
        }
    }
    if (!r->len) ipfix_begin(r);
    if (!r->set_start) {
        r->set_start = r->len;
        r->set_family = fam;
        mapi_put_be16(r->buf + r->len, fam == 6 ? TPL_V6 : TPL_V4);
        r->len += 4;
    }
    uint8_t *p = r->buf + r->len;
    if (fam == 6) { memcpy(p, f->src, 16); memcpy(p + 16, f->dst, 16); p += 32; }
    else { memcpy(p, f->src, 4); memcpy(p + 4, f->dst, 4); p += 8; }
    mapi_put_be16(p, f->sport); mapi_put_be16(p + 2, f->dport); p += 4;
    *p++ = f->proto; *p++ = f->tcp_flags; *p++ = f->tos;
    mapi_put_be64(p, f->bytes); mapi_put_be64(p + 8, f->packets); mapi_put_be64(p + 16, f->out_bytes);
    mapi_put_be64(p + 24, f->out_packets); p += 32;
    mapi_put_be64(p, (uint64_t)(f->first_ns / 1000000)); mapi_put_be64(p + 8, (uint64_t)(f->last_ns / 1000000)); p += 16;
    mapi_put_be32(p, f->input); mapi_put_be32(p + 4, f->output); mapi_put_be32(p + 8, f->src_as); mapi_put_be32(p + 12, f->dst_as);
    p += 16;
    r->len = (uint32_t)(p - r->buf);
    r->msg_records++;
    r->records++;
    return 0;
}

static void fmt_addr(char *out, size_t n, const uint8_t *a, int fam)
{
    if (fam == 6) inet_ntop(AF_INET6, a, out, (socklen_t)n);
    else if (fam == 4) inet_ntop(AF_INET, a, out, (socklen_t)n);
    else snprintf(out, n, "-");
}

/* Text formats: the header line before the first record, room for one more line. */
static int text_begin(mapi_rrep *r, const char *header, int32_t *err)
{
    if (!r->header_done) {
        r->len += (uint32_t)snprintf((char *)r->buf + r->len, RREP_BUF - r->len, "%s", header);
        r->header_done = 1;
    }
    return r->len > RREP_BUF - 512 ? write_all(r, err) : 0;
}

static int csv_add(mapi_rrep *r, const mapi_flowrec *f, int32_t *err)
{
    if (text_begin(r, "first_ns,last_ns,proto,src,sport,dst,dport,packets,bytes,out_packets,out_bytes,"
                   "input,output,src_as,dst_as,tcp_flags,tos,sampling,exporter,version,domain\n", err) < 0)
        return -1;
    char s[64], d[64], e[64];
    fmt_addr(s, sizeof s, f->src, f->family);
    fmt_addr(d, sizeof d, f->dst, f->family);
    fmt_addr(e, sizeof e, f->exporter, f->exporter_family);
    r->len += (uint32_t)snprintf((char *)r->buf + r->len, RREP_BUF - r->len,
        "%lld,%lld,%u,%s,%u,%s,%u,%llu,%llu,%llu,%llu,%u,%u,%u,%u,%u,%u,%u,%s,%u,%u\n",
        (long long)f->first_ns, (long long)f->last_ns, f->proto, s, f->sport, d, f->dport,
        (unsigned long long)f->packets, (unsigned long long)f->bytes,
        (unsigned long long)f->out_packets, (unsigned long long)f->out_bytes, f->input, f->output,
        f->src_as, f->dst_as, f->tcp_flags, f->tos, f->sampling, e, f->version, f->domain);
    r->records++;
    return 0;
}

static const char *proto_name(uint8_t p, char *buf, size_t n)
{
    switch (p) {
    case 1: return "ICMP";
    case 6: return "TCP";
    case 17: return "UDP";
    case 47: return "GRE";
    case 50: return "ESP";
    case 58: return "ICMP6";
    case 132: return "SCTP";
    }
    snprintf(buf, n, "%u", p);
    return buf;
}

/* "2013-05-02 20:20:39.849" (UTC) of ns since the epoch */
static void fmt_time(char *out, size_t n, int64_t ns)
{
    time_t t = (time_t)(ns / 1000000000LL);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t k = strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out + k, n - k, ".%03d", (int)((ns / 1000000) % 1000));
}

/* one line per record, nfdump's default listing (times in UTC) */
static int line_add(mapi_rrep *r, const mapi_flowrec *f, int32_t *err)
{
    if (text_begin(r, "Date first seen (UTC)        Duration Proto       Src IP Addr:Port"
                   "            Dst IP Addr:Port    Packets      Bytes\n", err) < 0)
        return -1;
    char s[64], d[64], t[40], pb[8];
    fmt_addr(s, sizeof s, f->src, f->family);
    fmt_addr(d, sizeof d, f->dst, f->family);
    fmt_time(t, sizeof t, f->first_ns);
    double dur = f->last_ns > f->first_ns ? (double)(f->last_ns - f->first_ns) / 1e9 : 0.0;
    r->len += (uint32_t)snprintf((char *)r->buf + r->len, RREP_BUF - r->len,
        "%s %12.3f %-5s %21s:%-5u -> %21s:%-5u %10llu %10llu\n", t, dur,
        proto_name(f->proto, pb, sizeof pb), s, f->sport, d, f->dport,
        (unsigned long long)f->packets, (unsigned long long)f->bytes);
    r->records++;
    return 0;
}

uint32_t mapi_rrep_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                          uint32_t *out)
{
    mapi_rrep *r = state;
    (void)out;
    if (b->linktype != MAPI_LINKTYPE_FLOWREC) return nsel;
    int32_t err = 0;
    for (uint32_t j = 0; j < nsel; j++) {
        if (b->caplen[sel[j]] < sizeof(mapi_flowrec)) continue;
        const mapi_flowrec *f = (const mapi_flowrec *)(b->base + b->off[sel[j]]);
        if (r->format == MAPI_RREP_IPFIX) ipfix_add(r, f, &err);
        else if (r->format == MAPI_RREP_LINE) line_add(r, f, &err);
        else csv_add(r, f, &err);
    }
    return nsel;
}

int mapi_rrep_flush(mapi_rrep *r, int32_t *err)
{
    *err = 0;
    if (r->format == MAPI_RREP_IPFIX) return ipfix_flush(r, err);
    return write_all(r, err);
}

void mapi_rrep_counts(mapi_rrep *r, uint64_t *records, uint64_t *messages, uint64_t *bytes,
                      uint64_t *errors)
{
    *records = r->records;
    *messages = r->messages;
    *bytes = r->bytes;
    *errors = r->errors;
}
