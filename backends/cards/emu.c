/* Emulated capture cards: the units over one batch; see emu.h.  SAMPLE's draws (rng.h) and
 * HASHSAMP's selection value (the engine API table) are the engine's own, so the units keep
 * exactly the packets the software functions keep; the ERF writer is the flow's own TO_FILE
 * kernel, handed in. */
#include <string.h>
#include "mapi_plugin.h"
#include "rng.h"
#include "emu.h"

static inline void hfe_extract(const uint8_t *p, uint32_t caplen, uint32_t wirelen, card_hdr *h)
{
    uint8_t *b = (uint8_t *)h->w;
    if (caplen >= CARD_HDR_ABS) {
        memcpy(b, p, CARD_HDR_ABS);
        h->avail[CARD_WIN_ABS] = CARD_HDR_ABS;
    } else {
        memcpy(b, p, caplen);
        h->avail[CARD_WIN_ABS] = (int32_t)caplen;
    }
    h->wirelen = wirelen;
    h->caplen = caplen;
    /* BPF's "ldxb 4*([xbase]&0xf)" fails when the byte is not captured: the window is absent */
    static const uint32_t xbase[2] = {14, 18};
    for (int w = 0; w < 2; w++) {
        int32_t avail = 0;
        if (caplen > xbase[w]) {
            uint64_t start = 4u * (p[xbase[w]] & 0xfu) + xbase[w];
            uint8_t *dst = b + CARD_HDR_ABS + w * CARD_HDR_IND;
            if (caplen >= start + CARD_HDR_IND) {
                memcpy(dst, p + start, CARD_HDR_IND);
                avail = CARD_HDR_IND;
            } else if (caplen > start) {
                avail = (int32_t)(caplen - start);
                memcpy(dst, p + start, (size_t)avail);
            }
        }
        h->avail[1 + w] = avail;
    }
}

/* Bytes beyond a window's avail may hold an earlier packet's: every compared byte is covered
 * by the match's need, so they never decide a hit. */
static inline int match_hits(const card_match *m, const card_hdr *h)
{
    if (m->need[0] > h->avail[0] || m->need[1] > h->avail[1] || m->need[2] > h->avail[2])
        return 0;
    for (uint32_t i = 0; i < m->nwords; i++)
        if ((h->w[m->word[i]] ^ m->val[i]) & m->mask[i]) return 0;
    return 1;
}

static inline int cmp_holds(const card_cmp *c, const card_hdr *h)
{
    uint32_t v;
    if (c->win == CARD_WIN_LEN) {
        v = h->wirelen;
    } else {
        if (c->need > h->avail[c->win]) return 0;      /* absent: the BPF load would fail */
        const uint8_t *q = (const uint8_t *)h->w + c->pos;
        v = c->size == 1 ? q[0] : c->size == 2 ? (uint32_t)q[0] << 8 | q[1]
            : (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
    }
    v &= c->mask;
    int r;
    switch (c->op) {
    case CARD_OP_EQ: r = v == c->k; break;
    case CARD_OP_GT: r = v > c->k; break;
    case CARD_OP_GE: r = v >= c->k; break;
    default: r = (v & c->k) != 0; break;
    }
    return r == (c->positive != 0);
}

static inline int lup_accepts(const card_config *cfg, uint32_t first, uint32_t count,
                              const card_hdr *h)
{
    for (uint32_t p = first; p < first + count; p++) {
        const card_path *path = &cfg->paths[p];
        int ok = 1;
        for (uint32_t t = path->first; ok && t < path->first + path->nterms; t++) {
            const card_term *term = &cfg->terms[t];
            switch (term->kind) {
            case CARD_TERM_HIT: ok = match_hits(&cfg->matches[term->index], h); break;
            case CARD_TERM_MISS: ok = !match_hits(&cfg->matches[term->index], h); break;
            default: ok = cmp_holds(&cfg->cmps[term->index], h); break;
            }
        }
        if (ok) return 1;
    }
    return 0;
}

/* exported for tests; the engine calls the inline versions (no PLT hop per packet) */
void card_hfe_extract(const uint8_t *p, uint32_t caplen, uint32_t wirelen, card_hdr *h)
{
    hfe_extract(p, caplen, wirelen, h);
}

int card_lup_accepts(const card_config *cfg, uint32_t first, uint32_t count, const card_hdr *h)
{
    return lup_accepts(cfg, first, count, h);
}

static inline int sau_keeps(card_sampler *s, int64_t ts)
{
    int keep;
    if (s->mode == CARD_SAU_PERIODIC) {
        keep = s->seen % s->period == 0;
    } else {
        keep = (mapi_splitmix64(&s->rng) >> 11) < s->threshold;
    }
    s->seen++;
    if (keep) {
        s->kept++;
        s->last_ts = ts;
    }
    return keep;
}

static inline void stu_count(card_counters *c, uint32_t wirelen, int64_t ts)
{
    uint64_t v;
    int have = 1;
    if (c->value == CARD_VALUE_GAP) {
        have = c->packets > 0;
        v = have ? (uint64_t)(ts - c->last_ts) : 0;
    } else {
        v = wirelen;
    }
    if (c->packets == 0) c->first_ts = ts;
    c->packets++;
    c->last_ts = ts;
    if (!have) return;
    if (c->values == 0 || v < c->min) c->min = v;
    if (c->values == 0 || v > c->max) c->max = v;
    c->values++;
    c->sum += v;
    unsigned __int128 sq = (unsigned __int128)v * v;
    unsigned __int128 acc = ((unsigned __int128)c->sumsq_hi << 64 | c->sumsq_lo) + sq;
    c->sumsq_lo = (uint64_t)acc;
    c->sumsq_hi = (uint64_t)(acc >> 64);
}

static inline int pck_finds(card_patterns *s, const uint8_t *p, uint32_t caplen, int64_t ts)
{
    s->seen++;
    if (caplen <= s->offset) return 0;
    uint32_t len = caplen - s->offset;
    if (s->depth && len > s->depth) len = s->depth;
    const uint8_t *w = p + s->offset;
    for (uint32_t i = 0; i < len; i++) {
        if (s->single[w[i]]) goto found;
        if (i + 1 >= len) break;
        uint32_t key = (uint32_t)w[i] << 8 | w[i + 1];
        for (uint32_t j = s->bucket_start[key]; j < s->bucket_start[key + 1]; j++) {
            uint32_t k = s->bucket_pat[j];
            uint32_t l = s->lens[k];
            if (l <= len - i && memcmp(w + i, s->bytes + 16 * k, l) == 0) goto found;
        }
    }
    return 0;
found:
    s->matched++;
    s->last_ts = ts;
    return 1;
}

static inline int hash_selects(card_hash *s, int32_t linktype, const uint8_t *p, uint32_t caplen,
                               int64_t ts)
{
    s->seen++;
    int32_t v = mapi_api->hashsamp_value(linktype, p, caplen, s->symmetric);
    if (v < 0) {
        s->not_ip++;
        return 0;
    }
    if ((uint32_t)v >= s->range) return 0;
    s->selected++;
    s->last_ts = ts;
    return 1;
}

int card_run(const card_config *cfg, card_stats *st, const mapi_batch *in, mapi_batch *out)
{
    const uint32_t n = in->n;
    if (out->cap < n) return CARD_ERR_CAPACITY;
    const uint32_t nnodes = cfg ? cfg->nnodes : 0;
    const int need_hfe = cfg && cfg->need_hfe;
    if (need_hfe && in->linktype != 1) return CARD_ERR_LINKTYPE;
    const int deliver_all = !cfg || cfg->deliver_all;
    const uint64_t deliver_mask = cfg ? cfg->deliver_mask : 0;
    const int64_t q = st->ts_quantum > 1 ? st->ts_quantum : 1;
    card_hdr h;
    uint32_t m = 0;
    uint64_t wire = 0, bus_bytes = 0, clock = 0, clock_bytes = 0;

    out->base = in->base;
    out->linktype = in->linktype;
    out->first_seq = in->first_seq;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p = in->base + in->off[i];
        const uint32_t caplen = in->caplen[i], wirelen = in->wirelen[i];
        int64_t ts = in->ts[i];
        if (q > 1) {                            /* TSU: floor to the clock's resolution */
            int64_t r = ts % q;
            ts -= r < 0 ? r + q : r;
        }
        wire += wirelen;
        uint64_t tags = 0;
        if (nnodes) {
            uint32_t dsm = 0;
            if (need_hfe) {
                hfe_extract(p, caplen, wirelen, &h);
                for (uint32_t f = 0; f < cfg->ndsm; f++)
                    if (match_hits(&cfg->dsm[f], &h)) dsm |= 1u << f;
            }
            for (uint32_t k = 0; k < nnodes; k++) {
                card_node *nd = &cfg->nodes[k];
                if (nd->parent >= 0 && !(tags >> cfg->nodes[nd->parent].hw_id & 1)) continue;
                int pass;
                nd->pkts_in++;
                nd->bytes_in += wirelen;
                switch (nd->unit) {
                case CARD_UNIT_LUP:
                    pass = lup_accepts(cfg, nd->first, nd->count, &h);
                    break;
                case CARD_UNIT_DSM:
                    pass = ((const uint8_t *)nd->unit_state)[dsm] != 0;
                    break;
                case CARD_UNIT_SAU:
                    pass = sau_keeps(nd->unit_state, ts);
                    break;
                case CARD_UNIT_STU:
                    stu_count(nd->unit_state, wirelen, ts);
                    pass = 1;
                    break;
                case CARD_UNIT_PCK:
                    pass = pck_finds(nd->unit_state, p, caplen, ts);
                    break;
                case CARD_UNIT_HASH:
                    pass = hash_selects(nd->unit_state, in->linktype, p, caplen, ts);
                    break;
                case CARD_UNIT_FILE:
                    nd->kernel(nd->unit_state, in, &i, 1, NULL);
                    pass = 1;
                    break;
                default:
                    pass = 0;
                    break;
                }
                if (pass) {
                    nd->pkts_out++;
                    nd->bytes_out += wirelen;
                    tags |= 1ull << nd->hw_id;
                }
            }
        }
        const int needed = deliver_all || (tags & deliver_mask);
        if (needed || i == 0 || i + 1 == n) {
            if (!needed) {
                clock++;
                clock_bytes += caplen;
            }
            out->off[m] = in->off[i];
            out->caplen[m] = caplen;
            out->wirelen[m] = wirelen;
            out->ts[m] = ts;
            out->ifindex[m] = in->ifindex[i];
            if (out->seq) out->seq[m] = in->seq ? in->seq[i] : in->first_seq + i;
            if (out->tags) out->tags[m] = tags;
            bus_bytes += caplen;
            m++;
        }
    }
    out->n = m;
    st->link_packets += n;
    st->link_bytes += wire;
    st->bus_packets += m;
    st->bus_bytes += bus_bytes;
    st->clock_packets += clock;
    st->clock_bytes += clock_bytes;
    st->batches++;
    return CARD_OK;
}
