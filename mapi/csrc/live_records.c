/* Kernels over flow records; see live_records.h. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "live_records.h"
#include "live_netflow.h"

#define REC(b, i) ((const mapi_flowrec *)((b)->base + (b)->off[i]))

static int is_records(const mapi_batch *b)
{
    return b->linktype == MAPI_LINKTYPE_FLOWREC;
}

static uint64_t field_value(const mapi_flowrec *r, int f)
{
    switch (f) {
    case MAPI_RF_PROTO: return r->proto;
    case MAPI_RF_SPORT: return r->sport;
    case MAPI_RF_DPORT: return r->dport;
    case MAPI_RF_PACKETS: return r->packets;
    case MAPI_RF_BYTES: return r->bytes;
    case MAPI_RF_OUT_PACKETS: return r->out_packets;
    case MAPI_RF_OUT_BYTES: return r->out_bytes;
    case MAPI_RF_TOS: return r->tos;
    case MAPI_RF_TCP_FLAGS: return r->tcp_flags;
    case MAPI_RF_INPUT: return r->input;
    case MAPI_RF_OUTPUT: return r->output;
    case MAPI_RF_SRC_AS: return r->src_as;
    case MAPI_RF_DST_AS: return r->dst_as;
    case MAPI_RF_SRC_MASK: return r->src_mask;
    case MAPI_RF_DST_MASK: return r->dst_mask;
    case MAPI_RF_VLAN: return r->vlan;
    case MAPI_RF_DIRECTION: return r->direction;
    case MAPI_RF_VERSION: return r->version;
    case MAPI_RF_DOMAIN: return r->domain;
    case MAPI_RF_TEMPLATE: return r->template_id;
    case MAPI_RF_SAMPLING: return r->sampling;
    case MAPI_RF_FAMILY: return r->family;
    case MAPI_RF_DURATION:
        return r->last_ns > r->first_ns ? (uint64_t)(r->last_ns - r->first_ns) / 1000000u : 0;
    case MAPI_RF_ICMP_TYPE: return r->icmp_type;
    case MAPI_RF_ICMP_CODE: return r->icmp_code;
    }
    return 0;
}

static const uint8_t *field_addr(const mapi_flowrec *r, int f, int *family)
{
    switch (f) {
    case MAPI_RF_SRC: *family = r->family; return r->src;
    case MAPI_RF_DST: *family = r->family; return r->dst;
    case MAPI_RF_NEXTHOP: *family = r->family; return r->nexthop;
    case MAPI_RF_EXPORTER: *family = r->exporter_family; return r->exporter;
    }
    *family = 0;
    return NULL;
}

static int prefix_match(const uint8_t *a, const uint8_t *net, uint32_t plen)
{
    uint32_t full = plen / 8, rest = plen % 8;
    if (memcmp(a, net, full)) return 0;
    if (!rest) return 1;
    uint8_t mask = (uint8_t)(0xFF << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

static int cmp_one(const mapi_rf_insn *in, const mapi_flowrec *r)
{
    if (in->cmp == MAPI_RF_IN) {
        int fam;
        const uint8_t *a = field_addr(r, in->field, &fam);
        return a && fam == in->family && prefix_match(a, in->addr, in->plen);
    }
    uint64_t v = field_value(r, in->field), k = in->value;
    switch (in->cmp) {
    case MAPI_RF_EQ: return v == k;
    case MAPI_RF_NE: return v != k;
    case MAPI_RF_LT: return v < k;
    case MAPI_RF_LE: return v <= k;
    case MAPI_RF_GT: return v > k;
    case MAPI_RF_GE: return v >= k;
    case MAPI_RF_ANY: return (v & k) != 0;
    }
    return 0;
}

int mapi_rf_eval(const mapi_rf_state *st, const void *record)
{
    const mapi_flowrec *r = record;
    uint8_t stack[MAPI_RF_MAX_STACK];
    int sp = 0;
    for (uint32_t i = 0; i < st->n; i++) {
        const mapi_rf_insn *in = &st->prog[i];
        switch (in->op) {
        case MAPI_RF_CMP:
            if (sp >= MAPI_RF_MAX_STACK) return 0;
            stack[sp++] = (uint8_t)cmp_one(in, r);
            break;
        case MAPI_RF_TRUE:
            if (sp >= MAPI_RF_MAX_STACK) return 0;
            stack[sp++] = 1;
            break;
        case MAPI_RF_NOT:
            if (sp < 1) return 0;
            stack[sp - 1] = !stack[sp - 1];
            break;
        case MAPI_RF_AND:
            if (sp < 2) return 0;
            sp--;
            stack[sp - 1] = stack[sp - 1] && stack[sp];
            break;
        case MAPI_RF_OR:
            if (sp < 2) return 0;
            sp--;
            stack[sp - 1] = stack[sp - 1] || stack[sp];
            break;
        default:
            return 0;
        }
    }
    return sp == 1 && stack[0];
}

uint32_t mapi_rf_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                        uint32_t *out)
{
    mapi_rf_state *st = state;
    if (!is_records(b)) {
        st->other_linktype += nsel;
        return 0;
    }
    uint32_t n = 0;
    for (uint32_t j = 0; j < nsel; j++)
        if (b->caplen[sel[j]] >= sizeof(mapi_flowrec) && mapi_rf_eval(st, REC(b, sel[j])))
            out[n++] = sel[j];
    return n;
}

uint32_t mapi_rsum_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                          uint32_t *out)
{
    mapi_rsum_state *s = state;
    (void)out;
    if (!is_records(b)) return nsel;
    for (uint32_t j = 0; j < nsel; j++) {
        if (b->caplen[sel[j]] < sizeof(mapi_flowrec)) continue;
        const mapi_flowrec *r = REC(b, sel[j]);
        uint64_t k = r->sampling > 1 ? r->sampling : 1;
        s->records++;
        s->packets += r->packets;
        s->bytes += r->bytes;
        s->out_packets += r->out_packets;
        s->out_bytes += r->out_bytes;
        s->scaled_packets += (r->packets + r->out_packets) * k;
        s->scaled_bytes += (r->bytes + r->out_bytes) * k;
        s->last_ts = b->ts[sel[j]];
    }
    return nsel;
}

/* --- top-X --------------------------------------------------------------------------------- */
struct mapi_rtop {
    int32_t field;
    uint32_t max_entries, cap, size;
    mapi_rtop_item *slots;           /* open addressing; family 255 marks an empty slot */
    uint64_t overflow;
};

#define EMPTY 255

mapi_rtop *mapi_rtop_new(int32_t field, uint32_t max_entries)
{
    mapi_rtop *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->field = field;
    t->max_entries = max_entries ? max_entries : 1;
    t->cap = 1024;
    t->slots = malloc(t->cap * sizeof *t->slots);
    if (!t->slots) { free(t); return NULL; }
    for (uint32_t i = 0; i < t->cap; i++) t->slots[i].family = EMPTY;
    return t;
}

void mapi_rtop_free(mapi_rtop *t)
{
    if (!t) return;
    free(t->slots);
    free(t);
}

void mapi_rtop_reset(mapi_rtop *t)
{
    for (uint32_t i = 0; i < t->cap; i++) t->slots[i].family = EMPTY;
    t->size = 0;
    t->overflow = 0;
}

static uint64_t hash_key(const uint8_t *k, uint8_t fam)
{
    uint64_t h = 1469598103934665603ULL ^ fam;
    for (int i = 0; i < 16; i++) { h ^= k[i]; h *= 1099511628211ULL; }
    return h ^ (h >> 29);
}

static mapi_rtop_item *slot_for(mapi_rtop *t, const uint8_t *key, uint8_t fam, int insert)
{
    uint32_t mask = t->cap - 1;
    uint32_t i = (uint32_t)hash_key(key, fam) & mask;
    for (;;) {
        mapi_rtop_item *s = &t->slots[i];
        if (s->family == EMPTY) {
            if (!insert) return NULL;
            memcpy(s->key, key, 16);
            s->family = fam;
            s->records = s->packets = s->bytes = 0;
            t->size++;
            return s;
        }
        if (s->family == fam && !memcmp(s->key, key, 16)) return s;
        i = (i + 1) & mask;
    }
}

static int grow(mapi_rtop *t)
{
    uint32_t cap = t->cap * 2;
    mapi_rtop_item *old = t->slots;
    uint32_t oldcap = t->cap;
    mapi_rtop_item *n = malloc((size_t)cap * sizeof *n);
    if (!n) return -1;
    for (uint32_t i = 0; i < cap; i++) n[i].family = EMPTY;
    t->slots = n;
    t->cap = cap;
    t->size = 0;
    for (uint32_t i = 0; i < oldcap; i++) {
        if (old[i].family == EMPTY) continue;
        mapi_rtop_item *s = slot_for(t, old[i].key, old[i].family, 1);
        *s = old[i];
    }
    free(old);
    return 0;
}

uint32_t mapi_rtop_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                          uint32_t *out)
{
    mapi_rtop *t = state;
    (void)out;
    if (!is_records(b)) return nsel;
    for (uint32_t j = 0; j < nsel; j++) {
        if (b->caplen[sel[j]] < sizeof(mapi_flowrec)) continue;
        const mapi_flowrec *r = REC(b, sel[j]);
        uint8_t key[16];
        uint8_t fam = 0;
        memset(key, 0, sizeof key);
        int afam;
        const uint8_t *a = field_addr(r, t->field, &afam);
        if (a) {
            if (afam != 4 && afam != 6) continue;       /* no address exported */
            memcpy(key, a, afam == 6 ? 16 : 4);
            fam = (uint8_t)afam;
        } else {
            uint64_t v = field_value(r, t->field);
            for (int i = 0; i < 8; i++) key[i] = (uint8_t)(v >> (56 - 8 * i));
        }
        mapi_rtop_item *s = slot_for(t, key, fam, 0);
        if (!s) {
            if (t->size >= t->max_entries) { t->overflow++; continue; }
            if ((t->size + 1) * 2 > t->cap && grow(t) < 0) { t->overflow++; continue; }
            s = slot_for(t, key, fam, 1);
        }
        s->records++;
        s->packets += r->packets;
        s->bytes += r->bytes;
    }
    return nsel;
}

static int cmp_items(const void *pa, const void *pb, void *arg)
{
    const mapi_rtop_item *a = pa, *b = pb;
    int metric = *(const int *)arg;
    uint64_t ma = metric == 0 ? a->records : metric == 1 ? a->packets : a->bytes;
    uint64_t mb = metric == 0 ? b->records : metric == 1 ? b->packets : b->bytes;
    if (ma != mb) return ma > mb ? -1 : 1;
    if (a->bytes != b->bytes) return a->bytes > b->bytes ? -1 : 1;
    if (a->family != b->family) return a->family < b->family ? -1 : 1;
    return memcmp(a->key, b->key, 16);
}

uint32_t mapi_rtop_collect(mapi_rtop *t, uint32_t x, int32_t metric, mapi_rtop_item *items)
{
    mapi_rtop_item *all = malloc((size_t)(t->size ? t->size : 1) * sizeof *all);
    if (!all) return 0;
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->cap; i++)
        if (t->slots[i].family != EMPTY) all[n++] = t->slots[i];
    int m = metric;
    qsort_r(all, n, sizeof *all, cmp_items, &m);
    if (n > x) n = x;
    memcpy(items, all, (size_t)n * sizeof *all);
    free(all);
    return n;
}

uint64_t mapi_rtop_overflow(mapi_rtop *t) { return t->overflow; }
uint32_t mapi_rtop_size(mapi_rtop *t) { return t->size; }

/* --- report writer ------------------------------------------------------------------------- */
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

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)(v >> 32)); put32(p + 4, (uint32_t)v); }

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
        put16(r->buf + r->set_start + 2, r->len - r->set_start);
        r->set_start = 0;
    }
}

static int ipfix_flush(mapi_rrep *r, int32_t *err)
{
    close_set(r);
    if (r->len <= 16) { r->len = 0; return 0; }
    put16(r->buf + 2, r->len);
    r->messages++;
    r->seq += r->msg_records;
    r->msg_records = 0;
    return write_all(r, err);
}

static void ipfix_begin(mapi_rrep *r)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    put16(r->buf, 10);
    put16(r->buf + 2, 0);
    put32(r->buf + 4, (uint32_t)ts.tv_sec);
    put32(r->buf + 8, r->seq);
    put32(r->buf + 12, r->domain);
    r->len = 16;
    if (r->since_templates == 0) {        /* templates in the first message and every 16th */
        uint32_t start = r->len;
        put16(r->buf + start, 2);
        r->len += 4;
        for (int fam = 4; fam <= 6; fam += 2) {
            uint8_t *p = r->buf + r->len;
            put16(p, fam == 4 ? TPL_V4 : TPL_V6);
            put16(p + 2, NCOMMON + 2);
            p += 4;
            put16(p, fam == 4 ? 8 : 27); put16(p + 2, fam == 4 ? 4 : 16);
            put16(p + 4, fam == 4 ? 12 : 28); put16(p + 6, fam == 4 ? 4 : 16);
            p += 8;
            for (unsigned i = 0; i < NCOMMON; i++) {
                put16(p, TPL_COMMON[i][0]);
                put16(p + 2, TPL_COMMON[i][1]);
                p += 4;
            }
            r->len = (uint32_t)(p - r->buf);
        }
        put16(r->buf + start + 2, r->len - start);
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
        put16(r->buf + r->len, fam == 6 ? TPL_V6 : TPL_V4);
        r->len += 4;
    }
    uint8_t *p = r->buf + r->len;
    if (fam == 6) { memcpy(p, f->src, 16); memcpy(p + 16, f->dst, 16); p += 32; }
    else { memcpy(p, f->src, 4); memcpy(p + 4, f->dst, 4); p += 8; }
    put16(p, f->sport); put16(p + 2, f->dport); p += 4;
    *p++ = f->proto; *p++ = f->tcp_flags; *p++ = f->tos;
    put64(p, f->bytes); put64(p + 8, f->packets); put64(p + 16, f->out_bytes);
    put64(p + 24, f->out_packets); p += 32;
    put64(p, (uint64_t)(f->first_ns / 1000000)); put64(p + 8, (uint64_t)(f->last_ns / 1000000)); p += 16;
    put32(p, f->input); put32(p + 4, f->output); put32(p + 8, f->src_as); put32(p + 12, f->dst_as);
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

static int csv_add(mapi_rrep *r, const mapi_flowrec *f, int32_t *err)
{
    if (!r->header_done) {
        r->len += (uint32_t)snprintf((char *)r->buf + r->len, RREP_BUF - r->len,
            "first_ns,last_ns,proto,src,sport,dst,dport,packets,bytes,out_packets,out_bytes,"
            "input,output,src_as,dst_as,tcp_flags,tos,sampling,exporter,version,domain\n");
        r->header_done = 1;
    }
    if (r->len > RREP_BUF - 512 && write_all(r, err) < 0) return -1;
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

uint32_t mapi_rrep_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                          uint32_t *out)
{
    mapi_rrep *r = state;
    (void)out;
    if (!is_records(b)) return nsel;
    int32_t err = 0;
    for (uint32_t j = 0; j < nsel; j++) {
        if (b->caplen[sel[j]] < sizeof(mapi_flowrec)) continue;
        const mapi_flowrec *f = REC(b, sel[j]);
        if (r->format == MAPI_RREP_IPFIX) ipfix_add(r, f, &err);
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
