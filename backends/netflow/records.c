/* One flow record out of a v9/IPFIX data record or a v5 record: fields, times (absolute,
 * sysUpTime-relative, deltas, durations), sampling; see nf_internal.h.
 *
 * Everything read from a packet is bounds-checked against the end of its set before use; a
 * record that runs past it drops the rest of the set. */
#include <string.h>
#include "iana_ie.h"
#include "nf_internal.h"

void nf_record_header(mapi_flowrec *r, const nf_exporter *e, const nf_ctx *x, uint16_t tid)
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
    uint8_t v4[8];                /* IPv4 source and destination, when exported */
    uint8_t have_v4, have_v6;
} rec_times;

/* An address element of 4 or 16 bytes into a 16-byte field and its family. */
static void put_addr(uint8_t *dst, uint8_t *family, const uint8_t *v, uint32_t len)
{
    if (len != 4 && len != 16) return;
    memset(dst, 0, 16);
    memcpy(dst, v, len);
    *family = len == 4 ? 4 : 6;
}

/* Elements with a place in the fixed record; 1 if the element went there. */
static int fixed_extra(mapi_flowrec *r, uint16_t ie, const uint8_t *v, uint32_t len)
{
    switch (ie) {
    case 38: r->engine_type = (uint8_t)nf_rdn(v, len); return 1;
    case 39: r->engine_id = (uint8_t)nf_rdn(v, len); return 1;
    case 55: r->dst_tos = (uint8_t)nf_rdn(v, len); return 1;
    case 59: r->dst_vlan = (uint16_t)nf_rdn(v, len); return 1;
    case 56: if (len != 6) return 0; memcpy(r->src_mac, v, 6); return 1;
    case 80: if (len != 6) return 0; memcpy(r->dst_mac, v, 6); return 1;
    case 70: r->mpls_label1 = (uint32_t)nf_rdn(v, len > 3 ? 3 : len); return 1;
    case 95: r->app_id = nf_rdn(v, len); return 1;
    case 136: r->end_reason = (uint8_t)nf_rdn(v, len); return 1;
    case 225: case 281: put_addr(r->nat_src, &r->nat_family, v, len); return r->nat_family != 0;
    case 226: case 282: put_addr(r->nat_dst, &r->nat_family, v, len); return r->nat_family != 0;
    case 227: r->nat_sport = (uint16_t)nf_rdn(v, len); return 1;
    case 228: r->nat_dport = (uint16_t)nf_rdn(v, len); return 1;
    case 230: r->nat_event = (uint8_t)nf_rdn(v, len); return 1;
    case 234: r->ingress_vrf = (uint32_t)nf_rdn(v, len); return 1;
    case 235: r->egress_vrf = (uint32_t)nf_rdn(v, len); return 1;
    case 18: case 63: put_addr(r->bgp_nexthop, &r->bgp_family, v, len); return r->bgp_family != 0;
    }
    return 0;
}

/* Returns 1 if the element went into the fixed record (or the record's times/sampling). */
static int apply_field(mapi_flowrec *r, rec_times *t, const nf_field *f, const uint8_t *v,
                       uint32_t len)
{
    if (f->pen == PEN_REVERSE) {                  /* biflow: the reverse direction's counters */
        if (f->ie == 1 || f->ie == 85) { r->out_bytes = nf_rdn(v, len); r->flags |= MAPI_FLOWREC_HAS_OUT; return 1; }
        if (f->ie == 2 || f->ie == 86) { r->out_packets = nf_rdn(v, len); r->flags |= MAPI_FLOWREC_HAS_OUT; return 1; }
        return 0;
    }
    if (f->pen) return 0;
    if (fixed_extra(r, f->ie, v, len)) return 1;
    switch (f->ie) {
    case 1: r->bytes = nf_rdn(v, len); t->has_delta_bytes = 1; break;
    case 2: r->packets = nf_rdn(v, len); t->has_delta_pkts = 1; break;
    case 85: t->total_bytes = nf_rdn(v, len); t->has_total_bytes = 1; break;
    case 86: t->total_pkts = nf_rdn(v, len); t->has_total_pkts = 1; break;
    case 23: r->out_bytes = nf_rdn(v, len); r->flags |= MAPI_FLOWREC_HAS_OUT; break;
    case 24: r->out_packets = nf_rdn(v, len); r->flags |= MAPI_FLOWREC_HAS_OUT; break;
    case 4: r->proto = (uint8_t)nf_rdn(v, len); break;
    case 5: r->tos = (uint8_t)nf_rdn(v, len); break;
    case 6: r->tcp_flags = (uint8_t)nf_rdn(v, len); break;
    case 7: r->sport = (uint16_t)nf_rdn(v, len); break;
    case 11: r->dport = (uint16_t)nf_rdn(v, len); break;
    case 8: case 12: if (len == 4) { memcpy(t->v4 + (f->ie == 8 ? 0 : 4), v, 4); t->have_v4 = 1; } break;
    case 27: if (len == 16) { memcpy(r->src, v, 16); t->have_v6 = 1; } break;
    case 28: if (len == 16) { memcpy(r->dst, v, 16); t->have_v6 = 1; } break;
    case 9: case 29: r->src_mask = (uint8_t)nf_rdn(v, len); break;
    case 13: case 30: r->dst_mask = (uint8_t)nf_rdn(v, len); break;
    case 10: r->input = (uint32_t)nf_rdn(v, len); break;
    case 14: r->output = (uint32_t)nf_rdn(v, len); break;
    case 15: case 62: put_addr(r->nexthop, &r->nexthop_family, v, len); break;
    case 16: r->src_as = (uint32_t)nf_rdn(v, len); break;
    case 17: r->dst_as = (uint32_t)nf_rdn(v, len); break;
    case 58: r->vlan = (uint16_t)nf_rdn(v, len); break;
    case 61: r->direction = (uint8_t)nf_rdn(v, len); break;
    case 32: case 139: {
        uint32_t tc = (uint32_t)nf_rdn(v, len);
        r->icmp_type = (uint8_t)(tc >> 8);
        r->icmp_code = (uint8_t)tc;
        break;
    }
    case 34: case 50: t->sampling = (uint32_t)nf_rdn(v, len); break;
    case 48: case 302: t->sampler_id = (int64_t)nf_rdn(v, len); break;
    /* sysUpTime is 32 bits (RFC 3954, IEs 21/22): wider encodings keep their low 32 */
    case 21: t->last_up = (int64_t)(nf_rdn(v, len) & 0xFFFFFFFFu) + 1; break;
    case 22: t->first_up = (int64_t)(nf_rdn(v, len) & 0xFFFFFFFFu) + 1; break;
    case 150: t->first = times_unit((int64_t)nf_rdn(v, len), 1000000000LL, 0); break;
    case 151: t->last = times_unit((int64_t)nf_rdn(v, len), 1000000000LL, 0); break;
    case 152: t->first = times_unit((int64_t)nf_rdn(v, len), 1000000LL, 0); break;
    case 153: t->last = times_unit((int64_t)nf_rdn(v, len), 1000000LL, 0); break;
    case 154: case 156: if (len == 8) t->first = ntp_ns(nf_rdn(v, 8)); break;
    case 155: case 157: if (len == 8) t->last = ntp_ns(nf_rdn(v, 8)); break;
    case 158: t->start_delta_us = (int64_t)nf_rdn(v, len); break;
    case 159: t->end_delta_us = (int64_t)nf_rdn(v, len); break;
    case 161: t->dur_ms = (int64_t)nf_rdn(v, len); break;
    default: return 0;
    }
    return 1;
}

/* An element that is not in the fixed record: kept beside it when IANA's registry defines it
 * (padding excepted), counted otherwise. */
static void keep_extra(mapi_nf *c, const nf_field *f, const uint8_t *v, uint32_t len)
{
    int known = (f->pen == 0 || f->pen == PEN_REVERSE) && f->ie <= NF_IANA_MAX_ID &&
                nf_iana_type[f->ie] != 0;
    if (f->ie == 210 && !f->pen) return;                  /* paddingOctets */
    if (!known) { c->st.elements_not_kept++; return; }
    nf_ext_add(c, (uint16_t)(f->ie | (f->pen ? MAPI_FLOWREC_REVERSE : 0)), v, len);
}

static int all_zero(const uint8_t *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

/* Templates may carry both IPv4 and IPv6 addresses, one pair of them zero: the other is the
 * flow's. */
static void finish_family(mapi_flowrec *r, const rec_times *t)
{
    if (t->have_v4 && (!t->have_v6 || (all_zero(r->src, 16) && all_zero(r->dst, 16)))) {
        memset(r->src, 0, 16);
        memset(r->dst, 0, 16);
        memcpy(r->src, t->v4, 4);
        memcpy(r->dst, t->v4 + 4, 4);
        r->family = 4;
    } else if (t->have_v6) {
        r->family = 6;
    }
}

static void finish_times(mapi_flowrec *r, rec_times *t, const nf_exporter *e, const nf_ctx *x)
{
    finish_family(r, t);
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
    if (!t->first && t->start_delta_us >= 0)
        t->first = times_unit(t->start_delta_us, -1000, x->export_ns);
    if (!t->last && t->end_delta_us >= 0)
        t->last = times_unit(t->end_delta_us, -1000, x->export_ns);
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
    } else if ((r->proto == 1 || r->proto == 58) && !r->dport) {
        /* ... and nfdump's filters find them there: keep both places in step */
        r->dport = (uint16_t)(r->icmp_type << 8 | r->icmp_code);
    }
}

void nf_finish_v5(mapi_flowrec *r, uint32_t sampling, const nf_exporter *e, const nf_ctx *x)
{
    rec_times tm;
    memset(&tm, 0, sizeof tm);
    tm.first = r->first_ns;
    tm.last = r->last_ns;
    tm.sampling = sampling;
    tm.dur_ms = tm.start_delta_us = tm.end_delta_us = tm.sampler_id = -1;
    finish_times(r, &tm, e, x);
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

int nf_decode_data_set(mapi_nf *c, const nf_ctx *x, nf_template *t, const uint8_t *p,
                           const uint8_t *end)
{
    nf_exporter *e = &c->exp[x->exp];
    int produced = 0;
    while ((uint64_t)(end - p) >= t->min_len) {
        const uint8_t *q = p;
        int keep = !t->options && t->flowish;
        mapi_flowrec tmp, *r = keep ? NULL : &tmp;
        if (!r) {
            r = nf_new_record(c);
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
                    len = mapi_be16(q);
                    q += 2;
                }
            }
            if ((uint64_t)(end - q) < len) goto bad;
            if (t->options) {
                if (!f->pen) {
                    switch (f->ie) {
                    case 34: case 50: opt_interval = nf_rdn(q, len); break;
                    case 305: opt_pkt = nf_rdn(q, len); break;
                    case 306: opt_space = nf_rdn(q, len); break;
                    case 48: case 302: opt_sampler = (int64_t)nf_rdn(q, len); break;
                    case 160: sys_init = (int64_t)nf_rdn(q, len); break;
                    }
                }
            } else if (!apply_field(r, &tm, f, q, len) && r != &tmp) {
                keep_extra(c, f, q, len);
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
            nf_record_header(r, e, x, t->id);
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
        if (keep && r != &tmp) nf_drop_last(c);        /* take the half-decoded record back */
        nf_set_err(c, "%s: template %ld: a record runs past the end of its set (%ld bytes left)",
                "data set", t->id, (long)(end - p));
        return -1;
    }
    return produced;
}
