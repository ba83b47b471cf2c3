/* FLOW_REPORT's IPFIX / NetFlow v9 / v5 exporter; see flow_export.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "flow_export.h"
#include "../flowrec.h"

#define MAXMSG 65535
#define T_V4 256
#define T_V6 257
#define T_OPT 258
#define PEN_REVERSE 29305u         /* RFC 5103's reverse information elements */
#define BOOT_MARGIN_MS 86400000LL  /* sysUptime starts a day before the first flow seen */

struct mapi_flowexp {
    int32_t format, fd;
    uint32_t domain, mtu, refresh, sampling;
    int32_t biflow;
    uint8_t *buf;
    uint32_t len;                  /* bytes of the message being built (0: none) */
    uint32_t set_start;            /* offset of the open set's header */
    int32_t set_id;                /* id of the open set, -1 none */
    uint32_t count;                /* v9: records of all kinds in the message; v5: flows */
    uint32_t data_records;         /* data records in the message (options data too) */
    uint32_t flow_records;         /* flow records in the message */
    uint64_t seq;                  /* IPFIX: data records sent; v9: messages; v5: flows */
    int64_t boot_ms;
    int have_boot;
    int64_t now;
    uint32_t since_templates;
    uint64_t ignored;
    mapi_flowexp_stats st;
};

static uint8_t *put8(uint8_t *p, uint8_t v) { *p = v; return p + 1; }
static uint8_t *put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xFF; return p + 2; }
static uint8_t *put32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24; p[1] = (v >> 16) & 0xFF; p[2] = (v >> 8) & 0xFF; p[3] = v & 0xFF;
    return p + 4;
}
static uint8_t *put64(uint8_t *p, uint64_t v) { return put32(put32(p, (uint32_t)(v >> 32)), (uint32_t)v); }

static uint32_t header_len(int format) { return format == MAPI_FLOWEXP_IPFIX ? 16 : format == 9 ? 20 : 24; }

/* ---- sets ---------------------------------------------------------------------------------- */

static void close_set(mapi_flowexp *e)
{
    if (e->set_id < 0) return;
    if (e->format == MAPI_FLOWEXP_V9)
        while ((e->len - e->set_start) % 4) e->buf[e->len++] = 0;     /* v9 pads flowsets */
    put16(e->buf + e->set_start + 2, (uint16_t)(e->len - e->set_start));
    e->set_id = -1;
}

static void open_set(mapi_flowexp *e, int id)
{
    if (e->set_id == id) return;
    close_set(e);
    e->set_start = e->len;
    put16(e->buf + e->len, (uint16_t)id);
    e->len += 4;
    e->set_id = id;
}

typedef struct field { uint16_t id, len; uint32_t pen; } field;

static const field IPFIX_V4[] = {{8, 4, 0}, {12, 4, 0}};
static const field IPFIX_V6[] = {{27, 16, 0}, {28, 16, 0}};
static const field IPFIX_COMMON[] = {{7, 2, 0}, {11, 2, 0}, {4, 1, 0}, {5, 1, 0}, {6, 2, 0},
                                     {10, 4, 0}, {152, 8, 0}, {153, 8, 0}, {2, 8, 0}, {1, 8, 0},
                                     {136, 1, 0}};
static const field IPFIX_REVERSE[] = {{2, 8, PEN_REVERSE}, {1, 8, PEN_REVERSE}, {6, 2, PEN_REVERSE}};
/* v9 also carries ICMP_TYPE (32; type * 256 + code, as the destination port holds it), where
 * nfdump reads an ICMP flow's type and code from in v9 */
static const field V9_COMMON[] = {{7, 2, 0}, {11, 2, 0}, {4, 1, 0}, {5, 1, 0}, {6, 1, 0},
                                  {10, 4, 0}, {22, 4, 0}, {21, 4, 0}, {2, 8, 0}, {1, 8, 0},
                                  {32, 2, 0}};
static const field V9_REVERSE[] = {{24, 8, 0}, {23, 8, 0}};
static const field IPFIX_OPTIONS[] = {{149, 4, 0}, {41, 8, 0}, {42, 8, 0}, {40, 8, 0},
                                      {164, 8, 0}, {34, 4, 0}, {35, 1, 0}};
static const field V9_OPTIONS[] = {{34, 4, 0}, {35, 1, 0}, {40, 8, 0}, {41, 8, 0}, {42, 8, 0}};
#define N(a) (sizeof a / sizeof a[0])

static uint8_t *put_fields(uint8_t *p, const field *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p = put16(p, f[i].pen ? (uint16_t)(f[i].id | 0x8000) : f[i].id);
        p = put16(p, f[i].len);
        if (f[i].pen) p = put32(p, f[i].pen);
    }
    return p;
}

static void put_template(mapi_flowexp *e, int id, int v6)
{
    int ipfix = e->format == MAPI_FLOWEXP_IPFIX;
    const field *common = ipfix ? IPFIX_COMMON : V9_COMMON;
    size_t ncommon = ipfix ? N(IPFIX_COMMON) : N(V9_COMMON);
    const field *rev = ipfix ? IPFIX_REVERSE : V9_REVERSE;
    size_t nrev = e->biflow ? (ipfix ? N(IPFIX_REVERSE) : N(V9_REVERSE)) : 0;
    uint8_t *p = e->buf + e->len;
    p = put16(p, (uint16_t)id);
    p = put16(p, (uint16_t)(2 + ncommon + nrev));
    p = put_fields(p, v6 ? IPFIX_V6 : IPFIX_V4, 2);      /* same ids in v9 */
    p = put_fields(p, common, ncommon);
    p = put_fields(p, rev, nrev);
    e->len = (uint32_t)(p - e->buf);
    e->count++;
    e->st.templates++;
}

static void put_templates(mapi_flowexp *e)
{
    int ipfix = e->format == MAPI_FLOWEXP_IPFIX;
    open_set(e, ipfix ? 2 : 0);
    put_template(e, T_V4, 0);
    put_template(e, T_V6, 1);
    open_set(e, ipfix ? 3 : 1);
    uint8_t *p = e->buf + e->len;
    p = put16(p, T_OPT);
    if (ipfix) {
        p = put16(p, (uint16_t)N(IPFIX_OPTIONS));
        p = put16(p, 1);                                  /* scope: observationDomainId */
        p = put_fields(p, IPFIX_OPTIONS, N(IPFIX_OPTIONS));
    } else {
        p = put16(p, 4);                                  /* scope: System, 4 bytes */
        p = put16(p, (uint16_t)(4 * N(V9_OPTIONS)));
        p = put16(p, 1);
        p = put16(p, 4);
        p = put_fields(p, V9_OPTIONS, N(V9_OPTIONS));
    }
    e->len = (uint32_t)(p - e->buf);
    e->count++;
    e->st.templates++;
    /* the options data: totals so far and the sampling */
    open_set(e, T_OPT);
    p = e->buf + e->len;
    uint8_t algo = e->sampling > 1 ? 1 : 0;
    if (ipfix) {
        p = put32(p, e->domain);
        p = put64(p, e->st.messages);
        p = put64(p, e->st.records);
        p = put64(p, e->st.bytes);
        p = put64(p, e->ignored);
        p = put32(p, e->sampling);
        p = put8(p, algo);
    } else {
        p = put32(p, e->domain);
        p = put32(p, e->sampling);
        p = put8(p, algo);
        p = put64(p, e->st.bytes);
        p = put64(p, e->st.messages);
        p = put64(p, e->st.records);
    }
    e->len = (uint32_t)(p - e->buf);
    e->count++;
    e->data_records++;
    close_set(e);
    e->since_templates = 0;
}

/* ---- messages ------------------------------------------------------------------------------ */

static void begin(mapi_flowexp *e)
{
    e->len = header_len(e->format);
    e->count = e->data_records = e->flow_records = 0;
    e->set_id = -1;
    if (e->format != MAPI_FLOWEXP_V5 && (e->st.messages == 0 || e->since_templates >= e->refresh))
        put_templates(e);
}

static void send_message(mapi_flowexp *e)
{
    if (!e->len) return;
    close_set(e);
    uint8_t *h = e->buf;
    /* the export time in whole seconds; sysUptime counted to that very second, so a collector
     * gets the flows' ms back exactly from unix_secs * 1000 - (sysUptime - First) */
    uint32_t secs = (uint32_t)(e->now / 1000000000);
    uint32_t uptime = (uint32_t)((int64_t)secs * 1000 - e->boot_ms);
    if (e->format == MAPI_FLOWEXP_IPFIX) {
        put16(h, 10); put16(h + 2, (uint16_t)e->len); put32(h + 4, secs);
        put32(h + 8, (uint32_t)e->seq); put32(h + 12, e->domain);
        e->seq += e->data_records;
    } else if (e->format == MAPI_FLOWEXP_V9) {
        put16(h, 9); put16(h + 2, (uint16_t)e->count); put32(h + 4, uptime); put32(h + 8, secs);
        put32(h + 12, (uint32_t)e->seq); put32(h + 16, e->domain);
        e->seq++;
    } else {
        put16(h, 5); put16(h + 2, (uint16_t)e->count); put32(h + 4, uptime); put32(h + 8, secs);
        put32(h + 12, 0); put32(h + 16, (uint32_t)e->seq);
        h[20] = 0; h[21] = (uint8_t)(e->domain & 0xFF);
        put16(h + 22, e->sampling > 1 ? (uint16_t)(0x4000 | (e->sampling & 0x3FFF)) : 0);
        e->seq += e->count;
    }
    ssize_t w = write(e->fd, e->buf, e->len);
    if (w != (ssize_t)e->len) {
        e->st.write_errors++;
        e->st.last_errno = w < 0 ? errno : EIO;
    } else {
        e->st.messages++;
        e->st.bytes += e->len;
        e->st.records += e->flow_records;
    }
    e->since_templates++;
    e->len = 0;
}

static uint32_t record_len(const mapi_flowexp *e, int v6)
{
    if (e->format == MAPI_FLOWEXP_V5) return 48;
    if (e->format == MAPI_FLOWEXP_IPFIX) return (v6 ? 77 : 53) + (e->biflow ? 18 : 0);
    return (v6 ? 69 : 45) + (e->biflow ? 16 : 0);
}

static uint32_t rel_ms(const mapi_flowexp *e, int64_t ns) { return (uint32_t)(ns / 1000000 - e->boot_ms); }

void mapi_flowexp_add(mapi_flowexp *e, const void *record, int32_t reason, uint8_t flags,
                      uint8_t reverse_flags)
{
    const mapi_flowrec *r = record;
    int v6 = r->family == 6;
    if (e->format == MAPI_FLOWEXP_V5 && v6) { e->st.not_exportable++; return; }
    if (!e->have_boot) {
        e->boot_ms = r->first_ns / 1000000 - BOOT_MARGIN_MS;
        e->have_boot = 1;
    }
    if (r->export_ns > e->now) e->now = r->export_ns;
    uint32_t need = record_len(e, v6) + 8;               /* a set header and v9 padding */
    if (e->len && (e->len + need > e->mtu || (e->format == MAPI_FLOWEXP_V5 && e->count == 30)))
        send_message(e);
    if (!e->len) begin(e);
    int alen = v6 ? 16 : 4;
    uint8_t *p;
    if (e->format == MAPI_FLOWEXP_V5) {
        p = e->buf + e->len;
        memcpy(p, r->src, 4); memcpy(p + 4, r->dst, 4); memset(p + 8, 0, 4);
        p = put16(p + 12, (uint16_t)r->input); p = put16(p, 0);
        p = put32(p, (uint32_t)r->packets); p = put32(p, (uint32_t)r->bytes);
        p = put32(p, rel_ms(e, r->first_ns)); p = put32(p, rel_ms(e, r->last_ns));
        p = put16(p, r->sport); p = put16(p, r->dport);
        p = put8(p, 0); p = put8(p, flags); p = put8(p, r->proto); p = put8(p, r->tos);
        memset(p, 0, 8);                                  /* AS numbers, masks, pad */
        e->len += 48;
        e->count++;
        e->data_records++;
        e->flow_records++;
        return;
    }
    open_set(e, v6 ? T_V6 : T_V4);
    p = e->buf + e->len;
    memcpy(p, r->src, alen); memcpy(p + alen, r->dst, alen);
    p = put16(p + 2 * alen, r->sport); p = put16(p, r->dport);
    p = put8(p, r->proto); p = put8(p, r->tos);
    if (e->format == MAPI_FLOWEXP_IPFIX) {
        p = put16(p, flags); p = put32(p, r->input);
        p = put64(p, (uint64_t)(r->first_ns / 1000000)); p = put64(p, (uint64_t)(r->last_ns / 1000000));
        p = put64(p, r->packets); p = put64(p, r->bytes); p = put8(p, (uint8_t)reason);
        if (e->biflow) { p = put64(p, r->out_packets); p = put64(p, r->out_bytes); p = put16(p, reverse_flags); }
    } else {
        p = put8(p, flags); p = put32(p, r->input);
        p = put32(p, rel_ms(e, r->first_ns)); p = put32(p, rel_ms(e, r->last_ns));
        p = put64(p, r->packets); p = put64(p, r->bytes);
        p = put16(p, r->proto == 1 || r->proto == 58 ? r->dport : 0);
        if (e->biflow) { p = put64(p, r->out_packets); p = put64(p, r->out_bytes); }
    }
    e->len = (uint32_t)(p - e->buf);
    e->count++;
    e->data_records++;
    e->flow_records++;
}

void mapi_flowexp_flush(mapi_flowexp *e, int64_t now)
{
    if (now > e->now) e->now = now;
    if (e->len && e->flow_records) send_message(e);
}

void mapi_flowexp_finish(mapi_flowexp *e, int64_t now)
{
    mapi_flowexp_flush(e, now);
    if (e->format == MAPI_FLOWEXP_V5 || !e->have_boot) return;
    e->since_templates = e->refresh;                      /* final totals in options data */
    begin(e);
    send_message(e);
}

mapi_flowexp *mapi_flowexp_new(int32_t format, int32_t fd, uint32_t domain, uint32_t mtu,
                               uint32_t refresh, uint32_t sampling, int32_t biflow)
{
    if (format != MAPI_FLOWEXP_V5 && format != MAPI_FLOWEXP_V9 && format != MAPI_FLOWEXP_IPFIX)
        return NULL;
    mapi_flowexp *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->buf = malloc(MAXMSG);
    if (!e->buf) { free(e); return NULL; }
    e->format = format;
    e->fd = fd;
    e->domain = domain;
    e->mtu = mtu < 512 ? 512 : (mtu > MAXMSG ? MAXMSG : mtu);
    e->refresh = refresh ? refresh : 1;
    e->sampling = sampling;
    e->biflow = biflow && format != MAPI_FLOWEXP_V5;
    e->set_id = -1;
    return e;
}

void mapi_flowexp_free(mapi_flowexp *e)
{
    if (!e) return;
    free(e->buf);
    free(e);
}

void mapi_flowexp_set_ignored(mapi_flowexp *e, uint64_t packets) { e->ignored = packets; }

void mapi_flowexp_get_stats(mapi_flowexp *e, mapi_flowexp_stats *st) { *st = e->st; }
