/* NetFlow v5/v9 and IPFIX decoding; see live_netflow.h.
 *
 * Everything read from a packet is bounds-checked against the end of its set (and the set
 * against the end of the message) before use; any inconsistency drops the rest of that packet
 * and is counted.  Templates live per exporter in a small array (a linear search: exporters
 * send tens of templates, and the per-exporter limit bounds the hostile case). */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "live_netflow.h"
#include "hdr_parse.h"

#define NTP_UNIX_OFFSET 2208988800LL
#define RECV_SLOTS 32
#define RECV_SLOT_BYTES 65536
#define NF_SAMPLERS 16
#define PEN_REVERSE 29305         /* RFC 5103 reverse information elements */

typedef struct nf_field {
    uint16_t ie;
    uint16_t len;             /* 65535: variable length (IPFIX) */
    uint32_t pen;             /* enterprise number, 0 for IANA elements */
} nf_field;

typedef struct nf_template {
    uint16_t id;
    uint16_t nfields;
    uint16_t nscope;          /* options templates: scope fields first */
    uint8_t options;
    uint8_t flowish;          /* has a flow key, counter or time: its records are flows */
    uint32_t min_len;         /* bytes of one record at least (a variable field counts 1) */
    nf_field *f;
} nf_template;

typedef struct nf_exporter {
    uint8_t addr[16];
    int32_t family;
    int32_t version;
    uint32_t domain;
    nf_template *tpl;
    uint32_t ntpl, tpl_cap;
    uint32_t sampling;        /* default sampler (options data without a sampler id) */
    uint32_t nsamplers;
    int64_t sampler_id[NF_SAMPLERS];
    uint32_t sampler_rate[NF_SAMPLERS];
    int64_t sys_init_ms;      /* systemInitTimeMilliseconds from options data (0: unknown) */
    uint32_t next_seq;
    int have_seq;
    uint64_t packets, records;
} nf_exporter;

typedef struct nf_ctx {
    uint32_t exp;             /* exporter index */
    int32_t version;
    uint32_t unix_secs;
    uint32_t uptime_ms;       /* v9 */
    int64_t export_ns;
    int64_t recv_ns;
    uint32_t seq;
} nf_ctx;

typedef struct nf_pending {
    struct nf_pending *next;
    nf_ctx ctx;
    uint16_t tid;
    uint32_t len;
    uint8_t data[];
} nf_pending;

struct mapi_nf {
    uint32_t max_exporters, max_templates, max_pending_bytes, pending_ttl_ms, max_queue;
    nf_exporter *exp;
    uint32_t nexp, exp_cap;
    uint32_t last_exp;
    nf_pending *pend_head, *pend_tail;
    uint64_t pend_bytes;
    mapi_flowrec *q;          /* output queue (ring) */
    uint32_t qcap, qhead, qlen;
    uint64_t records_this_msg;
    mapi_nf_stats st;
    char err[256];
    /* recvmmsg */
    uint8_t *rbuf;
    struct mmsghdr *msgs;
    struct iovec *iov;
    struct sockaddr_storage *from;
    uint8_t *ctl;
};

static inline uint32_t rd16(const uint8_t *p) { return ((uint32_t)p[0] << 8) | p[1]; }
static inline uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t rdn(const uint8_t *p, uint32_t len)
{
    uint64_t v = 0;
    if (len > 8) { p += len - 8; len = 8; }
    for (uint32_t i = 0; i < len; i++) v = (v << 8) | p[i];
    return v;
}

static void set_err(mapi_nf *c, const char *fmt, const char *what, long a, long b)
{
    snprintf(c->err, sizeof c->err, fmt, what, a, b);
}

mapi_nf *mapi_nf_new(uint32_t max_exporters, uint32_t max_templates, uint32_t max_pending_bytes,
                     uint32_t pending_ttl_ms, uint32_t max_queue)
{
    mapi_nf *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->max_exporters = max_exporters ? max_exporters : 1;
    c->max_templates = max_templates ? max_templates : 1;
    c->max_pending_bytes = max_pending_bytes;
    c->pending_ttl_ms = pending_ttl_ms;
    c->max_queue = max_queue < 1024 ? 1024 : max_queue;
    c->qcap = 1024;
    c->q = malloc(c->qcap * sizeof *c->q);
    if (!c->q) { free(c); return NULL; }
    c->last_exp = UINT32_MAX;
    return c;
}

void mapi_nf_free(mapi_nf *c)
{
    if (!c) return;
    for (uint32_t i = 0; i < c->nexp; i++) {
        for (uint32_t t = 0; t < c->exp[i].ntpl; t++) free(c->exp[i].tpl[t].f);
        free(c->exp[i].tpl);
    }
    free(c->exp);
    nf_pending *p = c->pend_head;
    while (p) { nf_pending *n = p->next; free(p); p = n; }
    free(c->q);
    free(c->rbuf); free(c->msgs); free(c->iov); free(c->from); free(c->ctl);
    free(c);
}

/* --- exporters and templates --------------------------------------------------------------- */
static int64_t find_exporter(mapi_nf *c, const uint8_t *addr, int32_t family, int32_t version,
                             uint32_t domain)
{
    uint32_t alen = family == 6 ? 16 : 4;
    if (c->last_exp < c->nexp) {
        nf_exporter *e = &c->exp[c->last_exp];
        if (e->family == family && e->version == version && e->domain == domain &&
            !memcmp(e->addr, addr, alen))
            return c->last_exp;
    }
    for (uint32_t i = 0; i < c->nexp; i++) {
        nf_exporter *e = &c->exp[i];
        if (e->family == family && e->version == version && e->domain == domain &&
            !memcmp(e->addr, addr, alen))
            return c->last_exp = i;
    }
    if (c->nexp >= c->max_exporters) {
        c->st.exporters_rejected++;
        set_err(c, "%s: more than %ld exporters; packets of new ones are dropped%.0ld",
                "exporter limit", (long)c->max_exporters, 0);
        return -1;
    }
    if (c->nexp == c->exp_cap) {
        uint32_t cap = c->exp_cap ? c->exp_cap * 2 : 8;
        nf_exporter *n = realloc(c->exp, cap * sizeof *n);
        if (!n) return -1;
        c->exp = n;
        c->exp_cap = cap;
    }
    nf_exporter *e = &c->exp[c->nexp];
    memset(e, 0, sizeof *e);
    memcpy(e->addr, addr, alen);
    e->family = family;
    e->version = version;
    e->domain = domain;
    c->st.exporters++;
    return c->last_exp = c->nexp++;
}

static nf_template *find_template(nf_exporter *e, uint16_t id)
{
    for (uint32_t i = 0; i < e->ntpl; i++)
        if (e->tpl[i].id == id) return &e->tpl[i];
    return NULL;
}

static void withdraw(nf_exporter *e, uint16_t id, int all)
{
    for (uint32_t i = 0; i < e->ntpl;) {
        if (all || e->tpl[i].id == id) {
            free(e->tpl[i].f);
            e->tpl[i] = e->tpl[--e->ntpl];
        } else {
            i++;
        }
    }
}

static void decode_pending(mapi_nf *c, uint32_t exp, uint16_t tid);

/* Elements that make a record a flow: keys, counters, times.  Records with none of them (for
 * instance sampled frame sections with interface numbers) are counted, not emitted. */
static int is_flow_element(uint16_t ie)
{
    switch (ie) {
    case 1: case 2: case 4: case 5: case 6: case 7: case 8: case 11: case 12: case 21: case 22:
    case 23: case 24: case 27: case 28: case 32: case 85: case 86: case 139:
    case 150: case 151: case 152: case 153: case 154: case 155: case 156: case 157:
        return 1;
    }
    return 0;
}

/* Install a template (takes ownership of f).  Returns 0, or -1 when refused. */
static int add_template(mapi_nf *c, uint32_t exp, uint16_t id, nf_field *f, uint16_t n,
                        uint16_t nscope, int options)
{
    nf_exporter *e = &c->exp[exp];
    uint32_t min_len = 0;
    for (uint16_t i = 0; i < n; i++) min_len += f[i].len == 65535 ? 1 : f[i].len;
    if (min_len == 0) {
        c->st.templates_rejected++;
        set_err(c, "%s %ld: records of length 0%.0ld", "template", id, 0);
        free(f);
        return -1;
    }
    int flowish = 0;
    for (uint16_t i = 0; i < n && !flowish; i++)
        flowish = !f[i].pen && is_flow_element(f[i].ie);
    nf_template *t = find_template(e, id);
    if (!t) {
        if (e->ntpl >= c->max_templates) {
            c->st.templates_rejected++;
            set_err(c, "%s: exporter over its limit of %ld templates; template %ld refused",
                    "template limit", (long)c->max_templates, id);
            free(f);
            return -1;
        }
        if (e->ntpl == e->tpl_cap) {
            uint32_t cap = e->tpl_cap ? e->tpl_cap * 2 : 8;
            nf_template *nt = realloc(e->tpl, cap * sizeof *nt);
            if (!nt) { free(f); return -1; }
            e->tpl = nt;
            e->tpl_cap = cap;
        }
        t = &e->tpl[e->ntpl++];
    } else {
        free(t->f);
    }
    t->id = id;
    t->f = f;
    t->nfields = n;
    t->nscope = nscope;
    t->options = (uint8_t)options;
    t->flowish = (uint8_t)flowish;
    t->min_len = min_len;
    if (options) c->st.option_templates++;
    else c->st.templates++;
    decode_pending(c, exp, id);
    return 0;
}

/* --- the output queue ---------------------------------------------------------------------- */
static mapi_flowrec *new_record(mapi_nf *c)
{
    if (c->qlen == c->qcap) {
        if (c->qcap >= c->max_queue) {
            c->st.records_dropped++;
            return NULL;
        }
        uint32_t cap = c->qcap * 2;
        mapi_flowrec *n = malloc((size_t)cap * sizeof *n);
        if (!n) { c->st.records_dropped++; return NULL; }
        for (uint32_t i = 0; i < c->qlen; i++) n[i] = c->q[(c->qhead + i) % c->qcap];
        free(c->q);
        c->q = n;
        c->qcap = cap;
        c->qhead = 0;
    }
    mapi_flowrec *r = &c->q[(c->qhead + c->qlen) % c->qcap];
    c->qlen++;
    memset(r, 0, sizeof *r);
    r->direction = 255;
    return r;
}

static void record_header(mapi_flowrec *r, const nf_exporter *e, const nf_ctx *x, uint16_t tid)
{
    memcpy(r->exporter, e->addr, 16);
    r->exporter_family = (uint8_t)e->family;
    r->version = (uint8_t)x->version;
    r->domain = e->domain;
    r->export_ns = x->export_ns;
    r->recv_ns = x->recv_ns;
    r->sequence = x->seq;
    r->template_id = tid;
}

static int64_t ntp_ns(uint64_t v)
{
    int64_t sec = (int64_t)(v >> 32) - NTP_UNIX_OFFSET;
    uint64_t frac = v & 0xFFFFFFFFu;
    return sec * 1000000000LL + (int64_t)((frac * 1000000000ULL) >> 32);
}

/* Exported times are hostile input: a value times its unit (plus an offset) that does not fit
 * in 64 bits is "not exported" (0), never an overflow. */
static int64_t times_unit(int64_t v, int64_t unit, int64_t plus)
{
    int64_t r;
    if (__builtin_mul_overflow(v, unit, &r) || __builtin_add_overflow(r, plus, &r)) return 0;
    return r;
}

/* --- one data record ----------------------------------------------------------------------- */
typedef struct rec_times {
    int64_t first, last;          /* absolute ns, 0 unknown */
    int64_t first_up, last_up;    /* sysUpTime ms (+1 so 0 means unknown) */
    int64_t dur_ms;               /* -1 unknown */
    int64_t start_delta_us, end_delta_us;   /* -1 unknown */
    uint64_t total_pkts, total_bytes;
    int has_delta_pkts, has_delta_bytes, has_total_pkts, has_total_bytes;
    uint32_t sampling;            /* interval exported in the record itself */
    int64_t sampler_id;           /* -1: the record names no sampler */
} rec_times;

static void apply_field(mapi_flowrec *r, rec_times *t, const nf_field *f, const uint8_t *v,
                        uint32_t len)
{
    if (f->pen == PEN_REVERSE) {                  /* biflow: the reverse direction's counters */
        if (f->ie == 1 || f->ie == 85) { r->out_bytes = rdn(v, len); r->flags |= MAPI_FLOWREC_HAS_OUT; }
        if (f->ie == 2 || f->ie == 86) { r->out_packets = rdn(v, len); r->flags |= MAPI_FLOWREC_HAS_OUT; }
        return;
    }
    if (f->pen) return;
    switch (f->ie) {
    case 1: r->bytes = rdn(v, len); t->has_delta_bytes = 1; break;
    case 2: r->packets = rdn(v, len); t->has_delta_pkts = 1; break;
    case 85: t->total_bytes = rdn(v, len); t->has_total_bytes = 1; break;
    case 86: t->total_pkts = rdn(v, len); t->has_total_pkts = 1; break;
    case 23: r->out_bytes = rdn(v, len); r->flags |= MAPI_FLOWREC_HAS_OUT; break;
    case 24: r->out_packets = rdn(v, len); r->flags |= MAPI_FLOWREC_HAS_OUT; break;
    case 4: r->proto = (uint8_t)rdn(v, len); break;
    case 5: r->tos = (uint8_t)rdn(v, len); break;
    case 6: r->tcp_flags = (uint8_t)rdn(v, len); break;
    case 7: r->sport = (uint16_t)rdn(v, len); break;
    case 11: r->dport = (uint16_t)rdn(v, len); break;
    case 8: if (len == 4) { memcpy(r->src, v, 4); if (!r->family) r->family = 4; } break;
    case 12: if (len == 4) { memcpy(r->dst, v, 4); if (!r->family) r->family = 4; } break;
    case 27: if (len == 16) { memcpy(r->src, v, 16); r->family = 6; } break;
    case 28: if (len == 16) { memcpy(r->dst, v, 16); r->family = 6; } break;
    case 9: case 29: r->src_mask = (uint8_t)rdn(v, len); break;
    case 13: case 30: r->dst_mask = (uint8_t)rdn(v, len); break;
    case 10: r->input = (uint32_t)rdn(v, len); break;
    case 14: r->output = (uint32_t)rdn(v, len); break;
    case 15: if (len == 4) memcpy(r->nexthop, v, 4); break;
    case 62: if (len == 16) memcpy(r->nexthop, v, 16); break;
    case 16: r->src_as = (uint32_t)rdn(v, len); break;
    case 17: r->dst_as = (uint32_t)rdn(v, len); break;
    case 58: case 243: r->vlan = (uint16_t)rdn(v, len); break;
    case 61: r->direction = (uint8_t)rdn(v, len); break;
    case 32: case 139: {
        uint32_t tc = (uint32_t)rdn(v, len);
        r->icmp_type = (uint8_t)(tc >> 8);
        r->icmp_code = (uint8_t)tc;
        break;
    }
    case 34: case 50: t->sampling = (uint32_t)rdn(v, len); break;
    case 48: case 302: t->sampler_id = (int64_t)rdn(v, len); break;
    /* sysUpTime is 32 bits (RFC 3954, IEs 21/22): wider encodings keep their low 32 */
    case 21: t->last_up = (int64_t)(rdn(v, len) & 0xFFFFFFFFu) + 1; break;
    case 22: t->first_up = (int64_t)(rdn(v, len) & 0xFFFFFFFFu) + 1; break;
    case 150: t->first = times_unit((int64_t)rdn(v, len), 1000000000LL, 0); break;
    case 151: t->last = times_unit((int64_t)rdn(v, len), 1000000000LL, 0); break;
    case 152: t->first = times_unit((int64_t)rdn(v, len), 1000000LL, 0); break;
    case 153: t->last = times_unit((int64_t)rdn(v, len), 1000000LL, 0); break;
    case 154: case 156: if (len == 8) t->first = ntp_ns(rdn(v, 8)); break;
    case 155: case 157: if (len == 8) t->last = ntp_ns(rdn(v, 8)); break;
    case 158: t->start_delta_us = (int64_t)rdn(v, len); break;
    case 159: t->end_delta_us = (int64_t)rdn(v, len); break;
    case 161: t->dur_ms = (int64_t)rdn(v, len); break;
    default: break;
    }
}

static void finish_times(mapi_flowrec *r, rec_times *t, const nf_exporter *e, const nf_ctx *x)
{
    if (!t->has_delta_pkts && t->has_total_pkts) {
        r->packets = t->total_pkts;
        r->flags |= MAPI_FLOWREC_TOTAL_COUNTS;
    }
    if (!t->has_delta_bytes && t->has_total_bytes) {
        r->bytes = t->total_bytes;
        r->flags |= MAPI_FLOWREC_TOTAL_COUNTS;
    }
    int64_t base_ms = -1;                 /* absolute ms of sysUpTime 0 */
    if (x->version == 9) base_ms = (int64_t)x->unix_secs * 1000 - x->uptime_ms;
    else if (e->sys_init_ms) base_ms = e->sys_init_ms;
    if (!t->first && t->first_up && base_ms >= 0) {
        if (x->version == 9)   /* uptime may have wrapped between the flow and the export */
            t->first = ((int64_t)x->unix_secs * 1000 +
                        (int32_t)((uint32_t)(t->first_up - 1) - x->uptime_ms)) * 1000000LL;
        else
            t->first = times_unit(base_ms, 1000000LL, (t->first_up - 1) * 1000000LL);
    }
    if (!t->last && t->last_up && base_ms >= 0) {
        if (x->version == 9)
            t->last = ((int64_t)x->unix_secs * 1000 +
                       (int32_t)((uint32_t)(t->last_up - 1) - x->uptime_ms)) * 1000000LL;
        else
            t->last = times_unit(base_ms, 1000000LL, (t->last_up - 1) * 1000000LL);
    }
    if (!t->first && t->start_delta_us >= 0) t->first = times_unit(t->start_delta_us, -1000, x->export_ns);
    if (!t->last && t->end_delta_us >= 0) t->last = times_unit(t->end_delta_us, -1000, x->export_ns);
    if (t->first && !t->last && t->dur_ms >= 0) t->last = times_unit(t->dur_ms, 1000000LL, t->first);
    if (t->last && !t->first && t->dur_ms >= 0) t->first = times_unit(t->dur_ms, -1000000LL, t->last);
    r->first_ns = t->first;
    r->last_ns = t->last;
    if (t->first || t->last) r->flags |= MAPI_FLOWREC_HAS_TIMES;
    if (t->sampling) {
        r->sampling = t->sampling;
    } else {                      /* announced by options data: this record's sampler, or the
                                     exporter's default one */
        r->sampling = e->sampling;
        for (uint32_t i = 0; i < e->nsamplers; i++)
            if (t->sampler_id >= 0 && e->sampler_id[i] == t->sampler_id) {
                r->sampling = e->sampler_rate[i];
                r->flags |= MAPI_FLOWREC_SAMPLER_NAMED;
            }
        if (r->sampling) r->flags |= MAPI_FLOWREC_SAMPLING_OPTION;
    }
    if ((r->proto == 1 || r->proto == 58) && !r->icmp_type && !r->icmp_code && r->dport) {
        /* NetFlow v5/v9 exporters put ICMP type and code in the destination port */
        r->icmp_type = (uint8_t)(r->dport >> 8);
        r->icmp_code = (uint8_t)r->dport;
    }
}

static void set_sampler(nf_exporter *e, int64_t id, uint32_t rate)
{
    if (id < 0) { e->sampling = rate; return; }
    for (uint32_t i = 0; i < e->nsamplers; i++)
        if (e->sampler_id[i] == id) { e->sampler_rate[i] = rate; return; }
    uint32_t i = e->nsamplers < NF_SAMPLERS ? e->nsamplers++ : NF_SAMPLERS - 1;
    e->sampler_id[i] = id;
    e->sampler_rate[i] = rate;
}

/* Decode the records of one data set.  Returns records produced, -1 if malformed. */
static int decode_data_set(mapi_nf *c, const nf_ctx *x, nf_template *t, const uint8_t *p,
                           const uint8_t *end)
{
    nf_exporter *e = &c->exp[x->exp];
    int produced = 0;
    while ((uint64_t)(end - p) >= t->min_len) {
        const uint8_t *q = p;
        int keep = !t->options && t->flowish;
        mapi_flowrec tmp, *r = keep ? NULL : &tmp;
        if (!r) {
            r = new_record(c);
            if (!r) r = &tmp;                          /* queue full: decode, count, drop */
        }
        if (r == &tmp) { memset(&tmp, 0, sizeof tmp); tmp.direction = 255; }
        rec_times tm;
        memset(&tm, 0, sizeof tm);
        tm.dur_ms = tm.start_delta_us = tm.end_delta_us = tm.sampler_id = -1;
        int64_t sys_init = 0, opt_sampler = -1;
        uint64_t opt_interval = 0, opt_pkt = 0, opt_space = 0;
        for (uint16_t i = 0; i < t->nfields; i++) {
            const nf_field *f = &t->f[i];
            uint32_t len = f->len;
            if (len == 65535) {
                if (q >= end) goto bad;
                len = *q++;
                if (len == 255) {
                    if (end - q < 2) goto bad;
                    len = rd16(q);
                    q += 2;
                }
            }
            if ((uint64_t)(end - q) < len) goto bad;
            if (t->options) {
                if (!f->pen) {
                    switch (f->ie) {
                    case 34: case 50: opt_interval = rdn(q, len); break;
                    case 305: opt_pkt = rdn(q, len); break;
                    case 306: opt_space = rdn(q, len); break;
                    case 48: case 302: opt_sampler = (int64_t)rdn(q, len); break;
                    case 160: sys_init = (int64_t)rdn(q, len); break;
                    }
                }
            } else {
                apply_field(r, &tm, f, q, len);
            }
            q += len;
        }
        if (t->options) {
            c->st.option_records++;
            if (!opt_interval && opt_pkt) opt_interval = (opt_pkt + opt_space) / opt_pkt;
            if (opt_interval) set_sampler(e, opt_sampler, (uint32_t)opt_interval);
            if (sys_init) e->sys_init_ms = sys_init;
        } else if (!t->flowish) {
            c->st.non_flow_records++;
        } else {
            record_header(r, e, x, t->id);
            finish_times(r, &tm, e, x);
            if (r != &tmp) {
                produced++;
                c->st.records++;
                e->records++;
            }
        }
        c->records_this_msg++;
        p = q;
        continue;
    bad:
        if (keep && r != &tmp) c->qlen--;              /* take the half-decoded record back */
        set_err(c, "%s: template %ld: a record runs past the end of its set (%ld bytes left)",
                "data set", t->id, (long)(end - p));
        return -1;
    }
    return produced;
}

/* --- pending data sets --------------------------------------------------------------------- */
static void drop_pending_head(mapi_nf *c)
{
    nf_pending *p = c->pend_head;
    c->pend_head = p->next;
    if (!c->pend_head) c->pend_tail = NULL;
    c->pend_bytes -= p->len;
    c->st.pending_dropped++;
    free(p);
}

static void expire_pending(mapi_nf *c, int64_t now_ns)
{
    while (c->pend_head && c->pending_ttl_ms &&
           now_ns - c->pend_head->ctx.recv_ns > (int64_t)c->pending_ttl_ms * 1000000LL)
        drop_pending_head(c);
}

static void add_pending(mapi_nf *c, const nf_ctx *x, uint16_t tid, const uint8_t *p, uint32_t len)
{
    if (len > c->max_pending_bytes) {
        c->st.pending_sets++;
        c->st.pending_dropped++;
        return;
    }
    while (c->pend_head && c->pend_bytes + len > c->max_pending_bytes) drop_pending_head(c);
    nf_pending *n = malloc(sizeof *n + len);
    if (!n) { c->st.pending_dropped++; return; }
    n->next = NULL;
    n->ctx = *x;
    n->tid = tid;
    n->len = len;
    memcpy(n->data, p, len);
    if (c->pend_tail) c->pend_tail->next = n;
    else c->pend_head = n;
    c->pend_tail = n;
    c->pend_bytes += len;
    c->st.pending_sets++;
}

static void decode_pending(mapi_nf *c, uint32_t exp, uint16_t tid)
{
    nf_pending **pp = &c->pend_head, *prev = NULL;
    while (*pp) {
        nf_pending *p = *pp;
        if (p->ctx.exp == exp && p->tid == tid) {
            *pp = p->next;
            if (c->pend_tail == p) c->pend_tail = prev;
            c->pend_bytes -= p->len;
            nf_template *t = find_template(&c->exp[exp], tid);
            if (t && decode_data_set(c, &p->ctx, t, p->data, p->data + p->len) >= 0)
                c->st.pending_decoded++;
            else
                c->st.pending_dropped++;
            free(p);
        } else {
            prev = p;
            pp = &p->next;
        }
    }
}

void mapi_nf_flush_pending(mapi_nf *c)
{
    while (c->pend_head) drop_pending_head(c);
}

/* --- template sets ------------------------------------------------------------------------- */
/* fields of a template record at p: IPFIX ones may carry an enterprise number */
static const uint8_t *read_fields(mapi_nf *c, const uint8_t *p, const uint8_t *end, uint16_t n,
                                  int ipfix, nf_field **out)
{
    nf_field *f = calloc(n ? n : 1, sizeof *f);
    if (!f) return NULL;
    for (uint16_t i = 0; i < n; i++) {
        if (end - p < 4) { free(f); return NULL; }
        uint16_t ie = (uint16_t)rd16(p), len = (uint16_t)rd16(p + 2);
        p += 4;
        if (ipfix && (ie & 0x8000)) {
            if (end - p < 4) { free(f); return NULL; }
            f[i].pen = rd32(p);
            p += 4;
            ie &= 0x7FFF;
        }
        if (len == 65535 && !ipfix) {
            set_err(c, "%s: field %ld has the invalid length %ld", "template", ie, len);
            free(f);
            return NULL;
        }
        f[i].ie = ie;
        f[i].len = len;
    }
    *out = f;
    return p;
}

static int template_set(mapi_nf *c, const nf_ctx *x, const uint8_t *p, const uint8_t *end,
                        int options)
{
    int ipfix = x->version == 10;
    nf_exporter *e = &c->exp[x->exp];
    while (end - p >= 4) {
        uint16_t tid = (uint16_t)rd16(p), n = (uint16_t)rd16(p + 2), nscope = 0;
        if (tid == 0 && n == 0) break;                 /* padding */
        if (!ipfix && options) {                       /* v9: scope and option lengths in bytes */
            if (end - p < 6) break;
            uint16_t slen = (uint16_t)rd16(p + 2), olen = (uint16_t)rd16(p + 4);
            p += 6;
            if (slen % 4 || olen % 4) {
                set_err(c, "%s %ld: scope/option lengths %ld not multiples of 4", "options template",
                        tid, (long)slen * 65536 + olen);
                return -1;
            }
            nscope = slen / 4;
            n = (uint16_t)(nscope + olen / 4);
        } else {
            p += 4;
            if (ipfix && options) {
                if (end - p < 2) return -1;
                nscope = (uint16_t)rd16(p);
                p += 2;
                if (n && (nscope == 0 || nscope > n)) {
                    set_err(c, "%s %ld: scope field count %ld invalid", "options template", tid, nscope);
                    return -1;
                }
            }
        }
        if (tid < 256) {
            if (ipfix && (tid == 2 || tid == 3) && n == 0) {   /* withdraw all */
                withdraw(e, 0, 1);
                c->st.template_withdrawals++;
                continue;
            }
            set_err(c, "%s: template id %ld is below 256%.0ld", "template", tid, 0);
            return -1;
        }
        if (n == 0) {
            if (ipfix) {                               /* template withdrawal */
                withdraw(e, tid, 0);
                c->st.template_withdrawals++;
                continue;
            }
            set_err(c, "%s %ld: no fields%.0ld", "template", tid, 0);
            return -1;
        }
        nf_field *f = NULL;
        const uint8_t *q = read_fields(c, p, end, n, ipfix, &f);
        if (!q) {
            c->st.templates_rejected++;
            if (!c->err[0])
                set_err(c, "%s %ld: its %ld fields run past the end of the set", "template", tid, n);
            return -1;
        }
        p = q;
        add_template(c, x->exp, tid, f, n, nscope, options);
        e = &c->exp[x->exp];
        if (!ipfix && options) {                       /* v9 options templates are padded */
            while (p < end && (end - p) < 6 && *p == 0) p++;
        }
    }
    return 0;
}

/* --- messages ------------------------------------------------------------------------------ */
static int decode_sets(mapi_nf *c, nf_ctx *x, const uint8_t *p, const uint8_t *end, int *produced)
{
    int ipfix = x->version == 10;
    while (end - p >= 4) {
        uint16_t sid = (uint16_t)rd16(p), slen = (uint16_t)rd16(p + 2);
        if (slen < 4 || slen > end - p) {
            set_err(c, "%s: set length %ld with %ld bytes left in the message", "set", slen, (long)(end - p));
            return -1;
        }
        const uint8_t *body = p + 4, *send = p + slen;
        p = send;
        int tmpl = ipfix ? sid == 2 : sid == 0;
        int opt = ipfix ? sid == 3 : sid == 1;
        if (tmpl || opt) {
            if (template_set(c, x, body, send, opt) < 0) return -1;
        } else if (sid >= 256) {
            nf_template *t = find_template(&c->exp[x->exp], sid);
            if (!t) {
                add_pending(c, x, sid, body, (uint32_t)(send - body));
                continue;
            }
            int r = decode_data_set(c, x, t, body, send);
            if (r < 0) return -1;
            *produced += r;
        } else {
            set_err(c, "%s: reserved set id %ld%.0ld", "set", sid, 0);
            return -1;
        }
    }
    return 0;
}

static void check_sequence(mapi_nf *c, nf_exporter *e, uint32_t seq, uint32_t next)
{
    if (e->have_seq) {
        uint32_t gap = seq - e->next_seq;
        if (gap && gap < 0x80000000u) c->st.sequence_gaps += gap;
    }
    e->have_seq = 1;
    e->next_seq = next;
}

static int decode_v5(mapi_nf *c, const uint8_t *p, uint32_t len, const uint8_t *addr, int32_t fam,
                     int64_t recv_ns)
{
    if (len < 24) {
        set_err(c, "%s: %ld bytes, shorter than its 24-byte header%.0ld", "NetFlow v5", len, 0);
        return -1;
    }
    uint32_t count = rd16(p + 2);
    if (count == 0 || 24 + 48 * count > len) {
        set_err(c, "%s: header says %ld records, the packet has room for %ld", "NetFlow v5",
                count, (long)(len - 24) / 48);
        return -1;
    }
    nf_ctx x;
    memset(&x, 0, sizeof x);
    x.version = 5;
    x.uptime_ms = rd32(p + 4);
    x.unix_secs = rd32(p + 8);
    x.export_ns = (int64_t)x.unix_secs * 1000000000LL + rd32(p + 12);
    x.recv_ns = recv_ns;
    x.seq = rd32(p + 16);
    uint32_t engine = ((uint32_t)p[20] << 8) | p[21];
    int64_t ei = find_exporter(c, addr, fam, 5, engine);
    if (ei < 0) return -1;
    x.exp = (uint32_t)ei;
    nf_exporter *e = &c->exp[ei];
    e->packets++;
    check_sequence(c, e, x.seq, x.seq + count);
    uint32_t sampling = rd16(p + 22) & 0x3FFF;
    int produced = 0;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *f = p + 24 + 48 * i;
        mapi_flowrec *r = new_record(c);
        if (!r) continue;
        record_header(r, e, &x, 0);
        r->family = 4;
        memcpy(r->src, f, 4);
        memcpy(r->dst, f + 4, 4);
        memcpy(r->nexthop, f + 8, 4);
        r->input = rd16(f + 12);
        r->output = rd16(f + 14);
        r->packets = rd32(f + 16);
        r->bytes = rd32(f + 20);
        uint32_t first = rd32(f + 24), last = rd32(f + 28);
        r->first_ns = ((int64_t)x.unix_secs * 1000 + (int32_t)(first - x.uptime_ms)) * 1000000LL +
                      rd32(p + 12);
        r->last_ns = ((int64_t)x.unix_secs * 1000 + (int32_t)(last - x.uptime_ms)) * 1000000LL +
                     rd32(p + 12);
        r->flags |= MAPI_FLOWREC_HAS_TIMES;
        r->sport = (uint16_t)rd16(f + 32);
        r->dport = (uint16_t)rd16(f + 34);
        r->tcp_flags = f[37];
        r->proto = f[38];
        r->tos = f[39];
        r->src_as = rd16(f + 40);
        r->dst_as = rd16(f + 42);
        r->src_mask = f[44];
        r->dst_mask = f[45];
        rec_times tm;
        memset(&tm, 0, sizeof tm);
        tm.first = r->first_ns;
        tm.last = r->last_ns;
        tm.sampling = sampling;
        tm.dur_ms = tm.start_delta_us = tm.end_delta_us = tm.sampler_id = -1;
        finish_times(r, &tm, e, &x);
        produced++;
        c->st.records++;
        e->records++;
    }
    return produced;
}

int mapi_nf_decode(mapi_nf *c, const uint8_t *pkt, uint32_t len, const uint8_t *exporter,
                   int32_t family, int64_t recv_ns)
{
    uint8_t addr[16];
    memset(addr, 0, sizeof addr);
    memcpy(addr, exporter, family == 6 ? 16 : 4);
    c->st.packets++;
    c->st.bytes += len;
    c->err[0] = 0;
    expire_pending(c, recv_ns);
    if (len < 4) {
        c->st.not_export++;
        set_err(c, "%s: %ld bytes is too short for an export packet%.0ld", "packet", len, 0);
        return -1;
    }
    uint32_t version = rd16(pkt);
    int produced = 0;
    if (version == 5) {
        c->st.v5_packets++;
        int r = decode_v5(c, pkt, len, addr, family, recv_ns);
        if (r < 0) { c->st.malformed++; return -1; }
        return r;
    }
    if (version != 9 && version != 10) {
        c->st.not_export++;
        set_err(c, "%s: version %ld is not NetFlow v5/v9 or IPFIX%.0ld", "packet", version, 0);
        return -1;
    }
    nf_ctx x;
    memset(&x, 0, sizeof x);
    x.version = (int32_t)version;
    x.recv_ns = recv_ns;
    const uint8_t *end = pkt + len, *body;
    uint32_t domain;
    if (version == 9) {
        c->st.v9_packets++;
        if (len < 20) {
            c->st.malformed++;
            set_err(c, "%s: %ld bytes, shorter than its 20-byte header%.0ld", "NetFlow v9", len, 0);
            return -1;
        }
        x.uptime_ms = rd32(pkt + 4);
        x.unix_secs = rd32(pkt + 8);
        x.export_ns = (int64_t)x.unix_secs * 1000000000LL;
        x.seq = rd32(pkt + 12);
        domain = rd32(pkt + 16);
        body = pkt + 20;
    } else {
        c->st.ipfix_packets++;
        uint32_t mlen = len >= 4 ? rd16(pkt + 2) : 0;
        if (len < 16 || mlen < 16 || mlen > len) {
            c->st.malformed++;
            set_err(c, "%s: message length %ld, packet length %ld", "IPFIX", mlen, len);
            return -1;
        }
        end = pkt + mlen;
        x.unix_secs = rd32(pkt + 4);
        x.export_ns = (int64_t)x.unix_secs * 1000000000LL;
        x.seq = rd32(pkt + 8);
        domain = rd32(pkt + 12);
        body = pkt + 16;
    }
    int64_t ei = find_exporter(c, addr, family, (int32_t)version, domain);
    if (ei < 0) return -1;
    x.exp = (uint32_t)ei;
    c->exp[ei].packets++;
    c->records_this_msg = 0;
    int rc = decode_sets(c, &x, body, end, &produced);
    nf_exporter *e = &c->exp[ei];
    if (version == 9) check_sequence(c, e, x.seq, x.seq + 1);
    else check_sequence(c, e, x.seq, x.seq + (uint32_t)c->records_this_msg);
    if (rc < 0) {
        c->st.malformed++;
        return -1;
    }
    return produced;
}

int mapi_nf_decode_frames(mapi_nf *c, const mapi_batch *b, uint16_t port)
{
    int total = 0;
    for (uint32_t i = 0; i < b->n; i++) {
        const uint8_t *p = b->base + b->off[i];
        mapi_hdr h;
        if (!mapi_hdr_parse(b->linktype, p, b->caplen[i], &h) || h.proto != 17 ||
            !(h.flags & MAPI_HDR_HAS_PORTS) || (h.flags & MAPI_HDR_LATER_FRAGMENT) ||
            (port && h.dport != port)) {
            c->st.not_export++;
            continue;
        }
        uint32_t off = h.l4_off + 8;
        if (off > b->caplen[i]) { c->st.not_export++; continue; }
        uint32_t ulen = rd16(p + h.l4_off + 4);
        uint32_t avail = b->caplen[i] - off;
        uint32_t len = ulen >= 8 && ulen - 8 <= avail ? ulen - 8 : avail;
        int r = mapi_nf_decode(c, p + off, len, h.src, h.ipver == 6 ? 6 : 4, b->ts[i]);
        if (r > 0) total += r;
    }
    return total;
}

int mapi_nf_recv(mapi_nf *c, int32_t fd, int32_t wake_fd, int32_t timeout_ms, uint32_t max,
                 int32_t *err)
{
    *err = 0;
    if (!c->rbuf) {
        c->rbuf = malloc((size_t)RECV_SLOTS * RECV_SLOT_BYTES);
        c->msgs = calloc(RECV_SLOTS, sizeof *c->msgs);
        c->iov = calloc(RECV_SLOTS, sizeof *c->iov);
        c->from = calloc(RECV_SLOTS, sizeof *c->from);
        c->ctl = calloc(RECV_SLOTS, 64);
        if (!c->rbuf || !c->msgs || !c->iov || !c->from || !c->ctl) { *err = ENOMEM; return -2; }
    }
    struct pollfd pf[2] = {{fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int r = poll(pf, wake_fd >= 0 ? 2 : 1, timeout_ms);
    if (r < 0) {
        if (errno == EINTR) return 0;
        *err = errno;
        return -2;
    }
    if (wake_fd >= 0 && (pf[1].revents & POLLIN)) return -1;
    if (r == 0) return 0;
    if (max > RECV_SLOTS) max = RECV_SLOTS;
    for (uint32_t i = 0; i < max; i++) {
        c->iov[i].iov_base = c->rbuf + (size_t)i * RECV_SLOT_BYTES;
        c->iov[i].iov_len = RECV_SLOT_BYTES;
        struct msghdr *m = &c->msgs[i].msg_hdr;
        memset(m, 0, sizeof *m);
        m->msg_name = &c->from[i];
        m->msg_namelen = sizeof c->from[i];
        m->msg_iov = &c->iov[i];
        m->msg_iovlen = 1;
        m->msg_control = c->ctl + i * 64;
        m->msg_controllen = 64;
    }
    int got = recvmmsg(fd, c->msgs, max, MSG_DONTWAIT, NULL);
    if (got < 0) {
        if (errno == EAGAIN || errno == EINTR) return 0;
        *err = errno;
        return -2;
    }
    for (int i = 0; i < got; i++) {
        struct msghdr *m = &c->msgs[i].msg_hdr;
        int64_t ts = 0;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm)) {
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
                struct timespec t;
                memcpy(&t, CMSG_DATA(cm), sizeof t);
                ts = (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
            }
        }
        if (!ts) {
            struct timespec t;
            clock_gettime(CLOCK_REALTIME, &t);
            ts = (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
        }
        uint8_t addr[16];
        int32_t fam = 4;
        memset(addr, 0, sizeof addr);
        if (c->from[i].ss_family == AF_INET) {
            memcpy(addr, &((struct sockaddr_in *)&c->from[i])->sin_addr, 4);
        } else if (c->from[i].ss_family == AF_INET6) {
            const uint8_t *a6 = ((struct sockaddr_in6 *)&c->from[i])->sin6_addr.s6_addr;
            static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
            if (!memcmp(a6, mapped, 12)) memcpy(addr, a6 + 12, 4);
            else { memcpy(addr, a6, 16); fam = 6; }
        }
        uint32_t len = c->msgs[i].msg_len;
        if (m->msg_flags & MSG_TRUNC) len = RECV_SLOT_BYTES;
        mapi_nf_decode(c, (const uint8_t *)c->iov[i].iov_base, len, addr, fam, ts);
    }
    return got;
}

uint32_t mapi_nf_take(mapi_nf *c, mapi_batch *b, mapi_flowrec *buf, uint32_t room)
{
    uint32_t n = c->qlen < room ? c->qlen : room;
    if (n > b->cap) n = b->cap;
    b->base = (const uint8_t *)buf;
    b->linktype = MAPI_LINKTYPE_FLOWREC;
    for (uint32_t i = 0; i < n; i++) {
        buf[i] = c->q[(c->qhead + i) % c->qcap];
        b->off[i] = (uint64_t)i * sizeof(mapi_flowrec);
        b->caplen[i] = sizeof(mapi_flowrec);
        b->wirelen[i] = buf[i].bytes > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)buf[i].bytes;
        b->ts[i] = buf[i].recv_ns;
        b->ifindex[i] = 0;
    }
    c->qhead = (c->qhead + n) % c->qcap;
    c->qlen -= n;
    b->n = n;
    return n;
}

uint32_t mapi_nf_queued(mapi_nf *c) { return c->qlen; }

void mapi_nf_get_stats(mapi_nf *c, mapi_nf_stats *st)
{
    *st = c->st;
    st->pending_bytes = c->pend_bytes;
}

const char *mapi_nf_last_error(mapi_nf *c) { return c->err; }

int mapi_nf_exporter(mapi_nf *c, uint32_t i, uint8_t *addr, int32_t *family, int32_t *version,
                     uint32_t *domain, uint64_t *packets, uint64_t *records, uint32_t *templates)
{
    if (i >= c->nexp) return -1;
    nf_exporter *e = &c->exp[i];
    memcpy(addr, e->addr, 16);
    *family = e->family;
    *version = e->version;
    *domain = e->domain;
    *packets = e->packets;
    *records = e->records;
    *templates = e->ntpl;
    return 0;
}
