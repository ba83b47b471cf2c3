/* DEFRAG kernel; see defrag.h. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "defrag.h"
#include "hdr_parse.h"
#include "ipsum.h"
#include "htab.h"
#include "lru.h"
#include "outbatch.h"

#define MAX_PAYLOAD 65535u
#define OLDEST(d) ((dgram *)(d)->lru.oldest)
#define DGRAM(n) ((dgram *)((char *)(n) - offsetof(dgram, hn)))

typedef struct range { uint32_t s, e; } range;

typedef struct dgram {
    mapi_lru_node lru;             /* first member */
    mapi_hnode hn;
    uint8_t src[16], dst[16];
    uint32_t id;
    uint8_t v6, proto, next_header, have_hdr;
    int64_t first_ts;
    uint8_t *hdr;                  /* link + IP header of the first fragment (IPv6: without the
                                      fragment header) */
    uint32_t hdrlen, l3_off, nh_pos;   /* nh_pos: IPv6 next-header byte to patch in hdr */
    uint8_t *data;
    uint32_t cap, total;           /* total: payload length once the last fragment came */
    range *r;
    uint32_t nr, rcap, nfrags;
} dgram;

typedef struct frag {              /* one fragment, parsed */
    const uint8_t *frame;
    uint32_t l3, hdr_end;          /* IP header (+ extension headers before the fragment header) */
    uint32_t frag_hdr;             /* IPv6: offset of the fragment header */
    uint32_t nh_pos;
    uint32_t off, len;             /* payload offset in the datagram and length */
    const uint8_t *payload;
    int more;
    uint8_t next_header;
} frag;

struct mapi_defrag {
    int policy;
    int64_t timeout_ns, now, next_sweep;
    uint64_t max_bytes;
    uint32_t max_dgrams;
    mapi_defrag_stats st;
    mapi_outbatch out;
    mapi_htab tab;
    mapi_lru lru;
};

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static void held(mapi_defrag *d, int64_t n) { d->st.held_bytes += n; }

static void forget(mapi_defrag *d, dgram *g)
{
    mapi_htab_remove(&d->tab, &g->hn);
    mapi_lru_unlink(&d->lru, &g->lru);
    held(d, -(int64_t)(g->cap + g->hdrlen + g->rcap * sizeof(range) + sizeof *g));
    free(g->hdr);
    free(g->data);
    free(g->r);
    free(g);
    d->st.held_datagrams--;
}

static void give_up(mapi_defrag *d, dgram *g, uint64_t *counter)
{
    (*counter)++;
    d->st.given_up_fragments += g->nfrags;
    forget(d, g);
}

/* Parse a fragment; 0 if the frame is not an IP fragment. */
static int parse(const uint8_t *p, uint32_t caplen, const mapi_hdr *h, frag *f, uint32_t *id)
{
    uint32_t l3 = h->l3_off;
    uint32_t end = mapi_ip_end(p, caplen, l3, h->ipver);
    f->frame = p;
    f->l3 = l3;
    if (h->ipver == 4) {
        uint32_t ihl = (uint32_t)(p[l3] & 0x0F) * 4;
        uint16_t fr = rd16(p + l3 + 6);
        f->hdr_end = l3 + ihl;
        f->off = (uint32_t)(fr & 0x1FFF) * 8;
        f->more = (fr & 0x2000) != 0;
        *id = rd16(p + l3 + 4);
    } else {
        uint8_t nh = p[l3 + 6];
        uint32_t pos = l3 + 6, off = l3 + 40;
        while (nh != 44) {
            if ((nh != 0 && nh != 43 && nh != 60) || caplen < off + 2) return 0;
            pos = off;
            nh = p[off];
            off += ((uint32_t)p[off + 1] + 1) * 8;
        }
        if (caplen < off + 8) return 0;
        f->hdr_end = off;
        f->frag_hdr = off;
        f->nh_pos = pos;
        f->next_header = p[off];
        f->off = rd16(p + off + 2) & 0xFFF8;
        f->more = p[off + 3] & 1;
        *id = (uint32_t)p[off + 4] << 24 | (uint32_t)p[off + 5] << 16 | (uint32_t)p[off + 6] << 8 | p[off + 7];
        off += 8;
        f->payload = p + off;
        f->len = end > off ? end - off : 0;
        return end <= caplen ? 6 : -1;
    }
    f->payload = p + f->hdr_end;
    f->len = end > f->hdr_end ? end - f->hdr_end : 0;
    return end <= caplen ? 4 : -1;
}

static dgram *lookup(mapi_defrag *d, const mapi_hdr *h, uint32_t id, int create)
{
    int alen = h->ipver == 6 ? 16 : 4;
    uint8_t proto = h->ipver == 4 ? h->proto : 0;
    uint32_t x = mapi_hash_bytes(h->src, alen, id) ^ mapi_hash_bytes(h->dst, alen, proto);
    for (mapi_hnode *n = mapi_htab_bucket(&d->tab, x); n; n = n->next) {
        dgram *g = DGRAM(n);
        if (n->hash == x && g->id == id && g->v6 == (alen == 16) && g->proto == proto &&
            !memcmp(g->src, h->src, alen) && !memcmp(g->dst, h->dst, alen))
            return g;
    }
    if (!create) return NULL;
    dgram *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    memcpy(g->src, h->src, alen);
    memcpy(g->dst, h->dst, alen);
    g->id = id;
    g->v6 = alen == 16;
    g->proto = proto;
    g->first_ts = d->now;
    mapi_htab_insert(&d->tab, &g->hn, x);
    held(d, sizeof *g);
    d->st.held_datagrams++;
    return g;
}

/* Mark [s, e) received (ranges stay sorted and merged). */
static int add_range(mapi_defrag *d, dgram *g, uint32_t s, uint32_t e)
{
    uint32_t i = 0;
    while (i < g->nr && g->r[i].e < s) i++;
    uint32_t j = i;
    while (j < g->nr && g->r[j].s <= e) {
        if (g->r[j].s < s) s = g->r[j].s;
        if (g->r[j].e > e) e = g->r[j].e;
        j++;
    }
    if (i == j) {                                   /* a new range at i */
        if (g->nr == g->rcap) {
            uint32_t cap = g->rcap ? g->rcap * 2 : 4;
            range *r = realloc(g->r, cap * sizeof *r);
            if (!r) return -1;
            held(d, (int64_t)(cap - g->rcap) * sizeof *r);
            g->r = r;
            g->rcap = cap;
        }
        memmove(g->r + i + 1, g->r + i, (g->nr - i) * sizeof *g->r);
        g->nr++;
    } else if (j > i + 1) {                         /* ranges i..j-1 become one */
        memmove(g->r + i + 1, g->r + j, (g->nr - j) * sizeof *g->r);
        g->nr -= j - i - 1;
    }
    g->r[i].s = s;
    g->r[i].e = e;
    return 0;
}

/* Copy the fragment's bytes as the policy says; -1: discard the datagram, 1: a duplicate. */
static int place(mapi_defrag *d, dgram *g, const frag *f)
{
    uint32_t s = f->off, e = f->off + f->len;
    int overlap = 0, inside = 0;
    for (uint32_t i = 0; i < g->nr; i++) {
        if (g->r[i].s <= s && e <= g->r[i].e) inside = 1;        /* wholly received already */
        if (g->r[i].s < e && s < g->r[i].e) overlap = 1;
    }
    if (overlap) d->st.overlaps++;
    if (inside && d->policy != MAPI_DEFRAG_LAST) { d->st.duplicates++; return 1; }
    if (overlap && d->policy == MAPI_DEFRAG_LINUX) return -1;
    if (e > g->cap) {
        uint32_t cap = g->cap ? g->cap : 2048;
        while (cap < e) cap *= 2;
        if (cap > MAX_PAYLOAD) cap = MAX_PAYLOAD;
        uint8_t *b = realloc(g->data, cap);
        if (!b) return -1;
        held(d, (int64_t)cap - g->cap);
        g->data = b;
        g->cap = cap;
    }
    if (overlap && d->policy == MAPI_DEFRAG_FIRST) {
        uint32_t at = s;                              /* copy only into the holes */
        for (uint32_t i = 0; i <= g->nr && at < e; i++) {
            uint32_t hole_end = i < g->nr ? g->r[i].s : e;
            if (hole_end > e) hole_end = e;
            if (hole_end > at) memcpy(g->data + at, f->payload + (at - s), hole_end - at);
            if (i < g->nr && g->r[i].e > at) at = g->r[i].e;
        }
    } else {
        memcpy(g->data + s, f->payload, f->len);
    }
    return add_range(d, g, s, e);
}

static void keep_header(mapi_defrag *d, dgram *g, const frag *f)
{
    uint32_t len = f->hdr_end;
    g->hdr = malloc(len);
    if (!g->hdr) return;
    memcpy(g->hdr, f->frame, len);
    g->hdrlen = len;
    g->l3_off = f->l3;
    g->nh_pos = f->nh_pos;
    g->next_header = f->next_header;
    g->have_hdr = 1;
    held(d, len);
}

static void emit(mapi_defrag *d, dgram *g, const mapi_batch *b, uint32_t i)
{
    uint32_t len = g->hdrlen + g->total;
    uint8_t *p = mapi_outbatch_add(&d->out, len, len, b->ts[i], mapi_batch_seq(b, i), b->ifindex[i]);
    if (!p) return;
    memcpy(p, g->hdr, g->hdrlen);
    memcpy(p + g->hdrlen, g->data, g->total);
    uint8_t *ip = p + g->l3_off;
    if (g->v6) {
        p[g->nh_pos] = g->next_header;
        uint32_t plen = g->hdrlen - g->l3_off - 40 + g->total;
        ip[4] = (uint8_t)(plen >> 8);
        ip[5] = plen & 0xFF;
    } else {
        uint32_t ihl = g->hdrlen - g->l3_off, tl = ihl + g->total;
        ip[2] = (uint8_t)(tl >> 8);
        ip[3] = tl & 0xFF;
        ip[6] &= 0x40;                               /* DF stays; MF and the offset go */
        ip[7] = 0;
        ip[10] = ip[11] = 0;
        uint16_t c = mapi_csum_fold(mapi_csum_add(0, ip, ihl));
        ip[10] = c >> 8;
        ip[11] = c & 0xFF;
    }
    d->st.reassembled++;
}

static void sweep(mapi_defrag *d)
{
    d->next_sweep = d->now + (d->timeout_ns > 2 ? d->timeout_ns / 2 : 1);
    for (dgram *g = OLDEST(d), *nx; g; g = nx) {
        nx = (dgram *)g->lru.next;
        if (d->now - g->first_ts >= d->timeout_ns) give_up(d, g, &d->st.timeouts);
    }
}

static void fragment(mapi_defrag *d, const mapi_batch *b, uint32_t i, const mapi_hdr *h)
{
    frag f;
    uint32_t id;
    memset(&f, 0, sizeof f);
    int v = parse(b->base + b->off[i], b->caplen[i], h, &f, &id);
    if (v <= 0) {                                     /* not all captured: hand it on as is */
        d->st.truncated++;
        mapi_outbatch_pass(&d->out, b, i);
        return;
    }
    d->st.fragments++;
    dgram *g = lookup(d, h, id, 1);
    if (!g) return;
    mapi_lru_touch(&d->lru, &g->lru);
    g->nfrags++;
    uint32_t end = f.off + f.len;
    uint32_t beyond = g->total ? g->total : (!f.more ? end : UINT32_MAX);
    int bad = end > MAX_PAYLOAD || (!f.more && g->total && g->total != end);
    if (!bad && (end > beyond || (!f.more && g->nr && g->r[g->nr - 1].e > end))) {
        /* bytes past the end the last fragment set: Linux discards, the others ignore them */
        if (d->policy == MAPI_DEFRAG_LINUX) bad = 1;
        else if (end > beyond) f.len = f.off < beyond ? beyond - f.off : 0;
    }
    if (bad) {
        give_up(d, g, &d->st.discarded);
        return;
    }
    int rc = place(d, g, &f);
    if (rc < 0) { give_up(d, g, &d->st.discarded); return; }
    if (rc == 0 && f.off == 0 && !g->have_hdr) keep_header(d, g, &f);
    if (!f.more) g->total = end;
    if (g->total && g->have_hdr && g->nr && g->r[0].s == 0 && g->r[0].e >= g->total) {
        if (g->hdrlen - g->l3_off - (g->v6 ? 40 : 0) + g->total > MAX_PAYLOAD) {
            give_up(d, g, &d->st.discarded);       /* its length field cannot say so much */
            return;
        }
        emit(d, g, b, i);
        forget(d, g);
        return;
    }
    while (OLDEST(d) && OLDEST(d) != g &&
           (d->st.held_bytes > d->max_bytes || d->st.held_datagrams > d->max_dgrams))
        give_up(d, OLDEST(d), &d->st.evicted);
}

uint32_t mapi_defrag_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                            uint32_t nsel, uint32_t *out)
{
    (void)out;
    mapi_defrag *d = state;
    mapi_outbatch_begin(&d->out, b);
    d->out.b.linktype = b->linktype;
    for (uint32_t j = 0; j < nsel; j++) {
        uint32_t i = sel[j];
        d->now = b->ts[i];
        if (d->now >= d->next_sweep) sweep(d);
        d->st.packets++;
        mapi_hdr h;
        if (mapi_hdr_parse(b->linktype, b->base + b->off[i], b->caplen[i], &h) &&
            (h.flags & MAPI_HDR_FRAGMENT))
            fragment(d, b, i, &h);
        else
            mapi_outbatch_pass(&d->out, b, i);
    }
    if (b->n) d->now = b->ts[b->n - 1];
    else if (b->clock_ns > d->now) d->now = b->clock_ns;   /* a live device's clock */
    if (d->now >= d->next_sweep) sweep(d);
    return mapi_outbatch_finish(&d->out);
}

uint32_t mapi_defrag_drain(void *state)
{
    mapi_defrag *d = state;
    while (OLDEST(d)) give_up(d, OLDEST(d), &d->st.unfinished);
    return 0;
}

mapi_defrag *mapi_defrag_new(int32_t policy, int64_t timeout_ns, uint64_t max_bytes,
                             uint32_t max_datagrams)
{
    mapi_defrag *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->policy = policy;
    d->timeout_ns = timeout_ns;
    d->max_bytes = max_bytes;
    d->max_dgrams = max_datagrams;
    if (mapi_htab_init(&d->tab, max_datagrams) < 0 ||
        mapi_outbatch_init(&d->out, 65536, 1 << 20, 1) < 0) {
        mapi_defrag_free(d);
        return NULL;
    }
    d->next_sweep = INT64_MIN;
    return d;
}

void mapi_defrag_free(mapi_defrag *d)
{
    if (!d) return;
    while (OLDEST(d)) forget(d, OLDEST(d));
    mapi_htab_release(&d->tab);
    mapi_outbatch_release(&d->out);
    free(d);
}

mapi_batch *mapi_defrag_batch(mapi_defrag *d) { return &d->out.b; }

void mapi_defrag_get_stats(mapi_defrag *d, mapi_defrag_stats *st) { *st = d->st; }
