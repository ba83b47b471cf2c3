/* Export packets: NetFlow v5, v9 (RFC 3954) and IPFIX (RFC 7011) headers, template sets and
 * data sets; see collector.h.
 *
 * Any inconsistency drops the rest of that packet and is counted; the collector goes on with
 * the next one. */
#include <stdlib.h>
#include <string.h>
#include "nf_internal.h"

/* --- template sets ------------------------------------------------------------------------- */
/* fields of a template record at p: IPFIX ones may carry an enterprise number */
static const uint8_t *read_fields(mapi_nf *c, const uint8_t *p, const uint8_t *end, uint16_t n,
                                  int ipfix, nf_field **out)
{
    nf_field *f = calloc(n ? n : 1, sizeof *f);
    if (!f) return NULL;
    for (uint16_t i = 0; i < n; i++) {
        if (end - p < 4) { free(f); return NULL; }
        uint16_t ie = (uint16_t)mapi_be16(p), len = (uint16_t)mapi_be16(p + 2);
        p += 4;
        if (ipfix && (ie & 0x8000)) {
            if (end - p < 4) { free(f); return NULL; }
            f[i].pen = mapi_be32(p);
            p += 4;
            ie &= 0x7FFF;
        }
        if (len == 65535 && !ipfix) {
            nf_set_err(c, "%s: field %ld has the invalid length %ld", "template", ie, len);
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
        uint16_t tid = (uint16_t)mapi_be16(p), n = (uint16_t)mapi_be16(p + 2), nscope = 0;
        if (tid == 0 && n == 0) break;                 /* padding */
        if (!ipfix && options) {                       /* v9: scope and option lengths in bytes */
            if (end - p < 6) break;
            uint16_t slen = (uint16_t)mapi_be16(p + 2), olen = (uint16_t)mapi_be16(p + 4);
            p += 6;
            if (slen % 4 || olen % 4) {
                nf_set_err(c, "%s %ld: scope/option lengths %ld not multiples of 4", "options template",
                        tid, (long)slen * 65536 + olen);
                return -1;
            }
            nscope = slen / 4;
            n = (uint16_t)(nscope + olen / 4);
        } else {
            p += 4;
            if (ipfix && options) {
                if (end - p < 2) return -1;
                nscope = (uint16_t)mapi_be16(p);
                p += 2;
                if (n && (nscope == 0 || nscope > n)) {
                    nf_set_err(c, "%s %ld: scope field count %ld invalid", "options template", tid, nscope);
                    return -1;
                }
            }
        }
        if (tid < 256) {
            if (ipfix && (tid == 2 || tid == 3) && n == 0) {   /* withdraw all */
                nf_withdraw(e, 0, 1);
                c->st.template_withdrawals++;
                continue;
            }
            nf_set_err(c, "%s: template id %ld is below 256%.0ld", "template", tid, 0);
            return -1;
        }
        if (n == 0) {
            if (ipfix) {                               /* template withdrawal */
                nf_withdraw(e, tid, 0);
                c->st.template_withdrawals++;
                continue;
            }
            nf_set_err(c, "%s %ld: no fields%.0ld", "template", tid, 0);
            return -1;
        }
        nf_field *f = NULL;
        const uint8_t *q = read_fields(c, p, end, n, ipfix, &f);
        if (!q) {
            c->st.templates_rejected++;
            if (!c->err[0])
                nf_set_err(c, "%s %ld: its %ld fields run past the end of the set", "template", tid, n);
            return -1;
        }
        p = q;
        nf_add_template(c, x->exp, tid, f, n, nscope, options);
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
        uint16_t sid = (uint16_t)mapi_be16(p), slen = (uint16_t)mapi_be16(p + 2);
        if (slen < 4 || slen > end - p) {
            nf_set_err(c, "%s: set length %ld with %ld bytes left in the message", "set", slen, (long)(end - p));
            return -1;
        }
        const uint8_t *body = p + 4, *send = p + slen;
        p = send;
        int tmpl = ipfix ? sid == 2 : sid == 0;
        int opt = ipfix ? sid == 3 : sid == 1;
        if (tmpl || opt) {
            if (template_set(c, x, body, send, opt) < 0) return -1;
        } else if (sid >= 256) {
            nf_template *t = nf_find_template(&c->exp[x->exp], sid);
            if (!t) {
                nf_add_pending(c, x, sid, body, (uint32_t)(send - body));
                continue;
            }
            int r = nf_decode_data_set(c, x, t, body, send);
            if (r < 0) return -1;
            *produced += r;
        } else {
            nf_set_err(c, "%s: reserved set id %ld%.0ld", "set", sid, 0);
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
        nf_set_err(c, "%s: %ld bytes, shorter than its 24-byte header%.0ld", "NetFlow v5", len, 0);
        return -1;
    }
    uint32_t count = mapi_be16(p + 2);
    if (count == 0 || 24 + 48 * count > len) {
        nf_set_err(c, "%s: header says %ld records, the packet has room for %ld", "NetFlow v5",
                count, (long)(len - 24) / 48);
        return -1;
    }
    nf_ctx x;
    memset(&x, 0, sizeof x);
    x.version = 5;
    x.uptime_ms = mapi_be32(p + 4);
    x.unix_secs = mapi_be32(p + 8);
    x.export_ns = (int64_t)x.unix_secs * 1000000000LL + mapi_be32(p + 12);
    x.recv_ns = recv_ns;
    x.seq = mapi_be32(p + 16);
    uint32_t engine = ((uint32_t)p[20] << 8) | p[21];
    int64_t ei = nf_find_exporter(c, addr, fam, 5, engine);
    if (ei < 0) return -1;
    x.exp = (uint32_t)ei;
    nf_exporter *e = &c->exp[ei];
    e->packets++;
    check_sequence(c, e, x.seq, x.seq + count);
    uint32_t sampling = mapi_be16(p + 22) & 0x3FFF;
    int produced = 0;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *f = p + 24 + 48 * i;
        mapi_flowrec *r = nf_new_record(c);
        if (!r) continue;
        nf_record_header(r, e, &x, 0);
        r->family = 4;
        memcpy(r->src, f, 4);
        memcpy(r->dst, f + 4, 4);
        memcpy(r->nexthop, f + 8, 4);
        r->nexthop_family = 4;
        r->input = mapi_be16(f + 12);
        r->output = mapi_be16(f + 14);
        r->packets = mapi_be32(f + 16);
        r->bytes = mapi_be32(f + 20);
        uint32_t first = mapi_be32(f + 24), last = mapi_be32(f + 28);
        r->first_ns = ((int64_t)x.unix_secs * 1000 + (int32_t)(first - x.uptime_ms)) * 1000000LL +
                      mapi_be32(p + 12);
        r->last_ns = ((int64_t)x.unix_secs * 1000 + (int32_t)(last - x.uptime_ms)) * 1000000LL +
                     mapi_be32(p + 12);
        r->flags |= MAPI_FLOWREC_HAS_TIMES;
        r->sport = (uint16_t)mapi_be16(f + 32);
        r->dport = (uint16_t)mapi_be16(f + 34);
        r->tcp_flags = f[37];
        r->proto = f[38];
        r->tos = f[39];
        r->src_as = mapi_be16(f + 40);
        r->dst_as = mapi_be16(f + 42);
        r->src_mask = f[44];
        r->dst_mask = f[45];
        r->engine_type = p[20];
        r->engine_id = p[21];
        nf_finish_v5(r, sampling, e, &x);
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
    nf_expire_pending(c, recv_ns);
    if (len < 4) {
        c->st.not_export++;
        nf_set_err(c, "%s: %ld bytes is too short for an export packet%.0ld", "packet", len, 0);
        return -1;
    }
    uint32_t version = mapi_be16(pkt);
    int produced = 0;
    if (version == 5) {
        c->st.v5_packets++;
        int r = decode_v5(c, pkt, len, addr, family, recv_ns);
        if (r < 0) { c->st.malformed++; return -1; }
        return r;
    }
    if (version != 9 && version != 10) {
        c->st.not_export++;
        nf_set_err(c, "%s: version %ld is not NetFlow v5/v9 or IPFIX%.0ld", "packet", version, 0);
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
            nf_set_err(c, "%s: %ld bytes, shorter than its 20-byte header%.0ld", "NetFlow v9", len, 0);
            return -1;
        }
        x.uptime_ms = mapi_be32(pkt + 4);
        x.unix_secs = mapi_be32(pkt + 8);
        x.export_ns = (int64_t)x.unix_secs * 1000000000LL;
        x.seq = mapi_be32(pkt + 12);
        domain = mapi_be32(pkt + 16);
        body = pkt + 20;
    } else {
        c->st.ipfix_packets++;
        uint32_t mlen = len >= 4 ? mapi_be16(pkt + 2) : 0;
        if (len < 16 || mlen < 16 || mlen > len) {
            c->st.malformed++;
            nf_set_err(c, "%s: message length %ld, packet length %ld", "IPFIX", mlen, len);
            return -1;
        }
        end = pkt + mlen;
        x.unix_secs = mapi_be32(pkt + 4);
        x.export_ns = (int64_t)x.unix_secs * 1000000000LL;
        x.seq = mapi_be32(pkt + 8);
        domain = mapi_be32(pkt + 12);
        body = pkt + 16;
    }
    int64_t ei = nf_find_exporter(c, addr, family, (int32_t)version, domain);
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
