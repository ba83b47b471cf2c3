/* COOKING kernel; see cooking.h.
 *
 * Where the bytes wait: in-order bytes are queued without a copy while the input batch lives
 * (waitq.h) and copied once, behind the chunk's headers in the made batch, when the chunk is
 * released; only what still waits when the call ends is copied into a buffer of the direction
 * first.  With the default release (MAPI_COOKING_SEGMENT) nothing waits past the packet that
 * brought it, so every byte is copied once, into the made batch, and read again from there
 * while it is still in cache. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "cooking.h"
#include "hdr_parse.h"
#include "ipsum.h"
#include "htab.h"
#include "lru.h"
#include "outbatch.h"
#include "waitq.h"

#define NO_FIN UINT64_MAX
#define OLDEST(c) ((conn *)(c)->lru.oldest)
#define CONN(n) ((conn *)((char *)(n) - offsetof(conn, hn)))
#define WINDOW (1u << 30)          /* a segment further than this from `next` is not ours */
#define F_FIN 0x01
#define F_SYN 0x02
#define F_RST 0x04
#define F_PSH 0x08
#define F_ACK 0x10

typedef struct seg {               /* out-of-order bytes, sorted by stream offset */
    struct seg *next;
    uint64_t off;
    uint32_t len;
    uint8_t data[];
} seg;

typedef struct half {              /* one direction of a connection */
    uint32_t isn;                  /* sequence number of stream offset 0 */
    uint8_t started, done;         /* offsets known; FIN reached (or reset) */
    uint64_t next;                 /* stream offset expected next */
    uint64_t fin;                  /* stream offset of the FIN, NO_FIN if none seen */
    mapi_waitq wait;               /* in-order bytes not handed on yet (offsets next - len ..) */
    int64_t wait_ts;               /* when the first of them came */
    seg *held;
    uint32_t held_bytes;
} half;

typedef struct conn {
    mapi_lru_node lru;             /* creation order, oldest first (first member) */
    mapi_hnode hn;                 /* hash chain */
    uint8_t addr[2][16];           /* side 0 opened the connection */
    uint16_t port[2];
    uint8_t v6, closed;            /* closed: FIN both ways or RST; kept close_ns */
    uint64_t id;
    int64_t last_ts;
    half h[2];
} conn;

struct mapi_cooking {
    mapi_cooking_config cfg;
    mapi_cooking_stats st;
    mapi_outbatch out;
    mapi_htab tab;
    mapi_waitpool wait;
    mapi_lru lru;
    int64_t now, next_sweep;
    uint64_t cur_seq;              /* device index of the packet being handled */
};

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xFF; }
static inline void wr32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24; p[1] = (v >> 16) & 0xFF; p[2] = (v >> 8) & 0xFF; p[3] = v & 0xFF;
}

static void held_add(mapi_cooking *c, int64_t n)
{
    c->st.held_bytes += n;
    if (c->st.held_bytes > c->st.peak_bytes) c->st.peak_bytes = c->st.held_bytes;
}

static inline uint32_t waiting(const half *h) { return h->wait.blen + h->wait.plen; }

/* ---- chunks out ---------------------------------------------------------------------------- */

/* Sum of n big-endian 16-bit words (an address). */
static inline uint64_t words(const uint8_t *p, int n)
{
    uint64_t sum = 0;
    for (int i = 0; i < n; i++) sum += (uint32_t)(p[2 * i] << 8 | p[2 * i + 1]);
    return sum;
}

/* The chunk's IP and TCP headers (ipl + 20 bytes) for `len` bytes of direction d from stream
 * offset `off` whose checksum sum is `dsum`; the header checksums are summed from the values
 * written, word by word, rather than read back. */
static void headers(conn *k, int d, uint8_t *p, uint32_t len, uint64_t off, uint8_t flags,
                    uint64_t dsum)
{
    half *h = &k->h[d], *o = &k->h[1 - d];
    uint32_t ipl = k->v6 ? 40 : 20, total = ipl + 20 + len;
    uint32_t tag = (uint32_t)(k->id << 1 | (uint64_t)d);
    const uint8_t *src = k->addr[d], *dst = k->addr[1 - d];
    uint64_t addrs = words(src, k->v6 ? 8 : 2) + words(dst, k->v6 ? 8 : 2);
    if (k->v6) {
        wr32(p, 0x60000000u | (tag & 0xFFFFF));
        wr16(p + 4, (uint16_t)(20 + len));
        p[6] = 6;
        p[7] = 64;
        memcpy(p + 8, src, 16);
        memcpy(p + 24, dst, 16);
    } else {
        p[0] = 0x45; p[1] = 0;
        wr16(p + 2, (uint16_t)total);
        wr16(p + 4, (uint16_t)tag);
        wr16(p + 6, 0x4000);
        p[8] = 64; p[9] = 6;
        memcpy(p + 12, src, 4);
        memcpy(p + 16, dst, 4);
        wr16(p + 10, mapi_csum_fold(0x4500 + total + (tag & 0xFFFF) + 0x4000 + 0x4006 + addrs));
    }
    uint8_t *t = p + ipl;
    uint32_t seq = h->isn + (uint32_t)off, ack = o->started ? o->isn + (uint32_t)o->next : 0;
    uint8_t tf = F_ACK | F_PSH | flags;
    wr16(t, k->port[d]);
    wr16(t + 2, k->port[1 - d]);
    wr32(t + 4, seq);
    wr32(t + 8, ack);
    t[12] = 5 << 4;
    t[13] = tf;
    wr16(t + 14, 65535);
    wr32(t + 16, 0);
    /* pseudo header (addresses, protocol, TCP length), then the TCP header's words */
    uint64_t sum = addrs + 6 + 20 + len + dsum + k->port[0] + k->port[1] + (seq >> 16) +
                   (seq & 0xFFFF) + (ack >> 16) + (ack & 0xFFFF) + (0x50u << 8 | tf) + 65535;
    wr16(t + 16, mapi_csum_fold(sum));
}

/* Hand on what direction d has in order (with FIN/RST: also when it is nothing), copied
 * behind the headers in the made batch. */
static void release(mapi_cooking *c, conn *k, int d, uint8_t flags)
{
    half *h = &k->h[d];
    uint32_t len = waiting(h);
    if (len == 0 && !(flags & (F_FIN | F_RST))) return;
    uint32_t hl = (k->v6 ? 40 : 20) + 20;
    uint8_t *p = mapi_outbatch_put(&c->out, hl + len, hl + len, c->now, c->cur_seq, 0);
    if (!p) return;                                   /* out of memory: they wait */
    uint64_t sum = mapi_waitq_take(&c->wait, &h->wait, p + hl);
    headers(k, d, p, len, h->next - len, flags, sum);
    c->st.chunks++;
    c->st.bytes += len;
}

/* n in-order bytes at p, cut at the chunk size; `owned`: the kernel's own bytes (held
 * segments), else bytes of the input batch. */
static void append(mapi_cooking *c, conn *k, int d, const uint8_t *p, uint32_t n, int owned)
{
    half *h = &k->h[d];
    while (n) {
        if (waiting(h) == 0) h->wait_ts = c->now;
        uint32_t room = c->cfg.chunk_size - waiting(h);
        uint32_t take = n < room ? n : room;
        if ((owned ? mapi_waitq_add_copy : mapi_waitq_add_ref)(&c->wait, &h->wait, p, take) < 0)
            return;                                   /* out of memory: a gap at the end */
        h->next += take;
        p += take;
        n -= take;
        if (waiting(h) == c->cfg.chunk_size) release(c, k, d, 0);
    }
}

/* Move held segments that now continue the stream into it; with `skip`, jump over a gap. */
static void pull(mapi_cooking *c, conn *k, int d, int skip)
{
    half *h = &k->h[d];
    while (h->held) {
        seg *s = h->held;
        if (s->off > h->next) {
            if (!skip) break;
            c->st.gaps++;
            c->st.gap_bytes += s->off - h->next;
            release(c, k, d, 0);          /* a chunk never spans a gap */
            h->next = s->off;
        }
        uint64_t end = s->off + s->len;
        if (end > h->next) {
            uint32_t from = (uint32_t)(h->next - s->off);
            append(c, k, d, s->data + from, s->len - from, 1);
        }
        h->held = s->next;
        h->held_bytes -= s->len;
        held_add(c, -(int64_t)(sizeof *s + s->len));
        free(s);
    }
}

static void finish_half(mapi_cooking *c, conn *k, int d, uint8_t flags)
{
    half *h = &k->h[d];
    if (h->done) return;
    h->done = 1;
    release(c, k, d, h->started ? flags : 0);      /* an empty FIN/RST chunk marks the end */
}

static void check_fin(mapi_cooking *c, conn *k, int d)
{
    half *h = &k->h[d];
    if (!h->done && h->fin != NO_FIN && h->next >= h->fin) {
        finish_half(c, k, d, F_FIN);
        if (k->h[1 - d].done) k->closed = 1;
    }
}

/* Hold an out-of-order segment (the bytes already held win where they overlap). */
static void hold(mapi_cooking *c, conn *k, int d, uint64_t off, const uint8_t *p, uint32_t n)
{
    half *h = &k->h[d];
    seg **pp = &h->held;
    int overlapped = 0;
    while (n) {
        seg *s = *pp;
        if (s && s->off + s->len <= off) { pp = &s->next; continue; }
        uint32_t take = n;
        if (s && s->off <= off) {                      /* inside s: skip what s has */
            uint32_t dup = (uint32_t)((s->off + s->len - off) < n ? s->off + s->len - off : n);
            c->st.overlap_bytes += dup;
            overlapped = 1;
            off += dup; p += dup; n -= dup;
            pp = &s->next;
            continue;
        }
        if (s && off + take > s->off) take = (uint32_t)(s->off - off);
        seg *ns = malloc(sizeof *ns + take);
        if (!ns) return;
        ns->off = off;
        ns->len = take;
        memcpy(ns->data, p, take);
        ns->next = s;
        *pp = ns;
        pp = &ns->next;
        h->held_bytes += take;
        held_add(c, sizeof *ns + take);
        off += take; p += take; n -= take;
    }
    if (overlapped) c->st.overlaps++;
    c->st.out_of_order++;
    if (h->held_bytes > c->cfg.max_stream) pull(c, k, d, 1);
}

static void segment(mapi_cooking *c, conn *k, int d, uint32_t seq, uint8_t flags,
                    const uint8_t *p, uint32_t n)
{
    half *h = &k->h[d];
    if (flags & F_SYN) {
        if (!h->started || (h->next == 0 && waiting(h) == 0 && !h->held)) {
            h->isn = seq + 1;
            h->next = 0;
            h->started = 1;
        }
        seq++;
    }
    if (!h->started) {
        if (!n && !(flags & F_FIN)) return;            /* no offsets to learn from a bare ACK */
        h->isn = seq;
        h->next = 0;
        h->started = 1;
    }
    int32_t delta = (int32_t)(seq - (h->isn + (uint32_t)h->next));
    if ((delta > 0 && (uint32_t)delta > WINDOW) || (delta < 0 && (uint32_t)-delta > WINDOW)) {
        c->st.out_of_window++;
        return;
    }
    uint64_t off = h->next + (int64_t)delta;
    if ((int64_t)h->next + delta < 0) {                 /* before the stream began */
        uint32_t cut = (uint32_t)(-((int64_t)h->next + delta));
        if (cut >= n) { n = 0; } else { p += cut; n -= cut; }
        off = 0;
        seq += cut;
    }
    if (flags & F_FIN) {
        uint64_t f = off + n;
        if (h->fin == NO_FIN || f < h->fin) h->fin = f;
    }
    if (n && !h->done) {
        c->st.segments++;
        k->last_ts = c->now;
        if (off + n <= h->next) {
            c->st.duplicates++;
        } else {
            if (waiting(&k->h[1 - d])) release(c, k, 1 - d, 0);   /* conversation order */
            if (off < h->next) {
                uint32_t cut = (uint32_t)(h->next - off);
                c->st.overlaps++;
                c->st.overlap_bytes += cut;
                p += cut; n -= cut; off = h->next;
            }
            if (off == h->next) {
                append(c, k, d, p, n, 0);
                if (h->held) pull(c, k, d, 0);
            } else {
                hold(c, k, d, off, p, n);
            }
        }
    }
    check_fin(c, k, d);
    if (c->cfg.release == MAPI_COOKING_SEGMENT) release(c, k, d, 0);
}

/* ---- connections ---------------------------------------------------------------------------- */

/* One side's hash (address and port); a connection's is the sum of its sides' (either order). */
static uint32_t side_hash(const uint8_t *a, uint16_t port, int v6)
{
    uint64_t w;
    if (v6) {
        uint64_t x, y;
        memcpy(&x, a, 8);
        memcpy(&y, a + 8, 8);
        w = x ^ (y * 0x9E3779B97F4A7C15ull) ^ port;
    } else {
        uint32_t x;
        memcpy(&x, a, 4);
        w = (uint64_t)x << 16 | port;
    }
    w ^= w >> 33;                      /* a 64-bit finalizer: every input bit moves the result */
    w *= 0xFF51AFD7ED558CCDull;
    w ^= w >> 33;
    w *= 0xC4CEB9FE1A85EC53ull;
    return (uint32_t)(w ^ (w >> 33));
}

static inline int addr_eq(const uint8_t *a, const uint8_t *b, int v6)
{
    uint64_t x[2], y[2];
    if (!v6) {
        uint32_t u, v;
        memcpy(&u, a, 4);
        memcpy(&v, b, 4);
        return u == v;
    }
    memcpy(x, a, 16);
    memcpy(y, b, 16);
    return x[0] == y[0] && x[1] == y[1];
}

static void free_half(mapi_cooking *c, half *h)
{
    while (h->held) {
        seg *s = h->held;
        h->held = s->next;
        held_add(c, -(int64_t)(sizeof *s + s->len));
        free(s);
    }
    mapi_waitq_free(&c->wait, &h->wait);
}

/* Release everything a connection holds (skipping gaps) and forget it. */
static void drop_conn(mapi_cooking *c, conn *k, uint8_t flags)
{
    for (int d = 0; d < 2; d++) {
        if (!k->h[d].done) {
            pull(c, k, d, 1);
            finish_half(c, k, d, k->h[d].fin != NO_FIN && k->h[d].next >= k->h[d].fin ? F_FIN : flags);
        }
    }
    mapi_htab_remove(&c->tab, &k->hn);
    mapi_lru_unlink(&c->lru, &k->lru);
    free_half(c, &k->h[0]);
    free_half(c, &k->h[1]);
    held_add(c, -(int64_t)sizeof *k);
    free(k);
    c->st.active--;
}

static conn *lookup(mapi_cooking *c, const mapi_hdr *hd, int v6, int *dir, uint32_t *hash)
{
    uint32_t x = side_hash(hd->src, hd->sport, v6) + side_hash(hd->dst, hd->dport, v6);
    *hash = x;
    for (mapi_hnode *n = mapi_htab_bucket(&c->tab, x); n; n = n->next) {
        conn *k = CONN(n);
        if (n->hash != x || k->v6 != v6) continue;
        for (int d = 0; d < 2; d++)
            if (k->port[d] == hd->sport && k->port[1 - d] == hd->dport &&
                addr_eq(k->addr[d], hd->src, v6) && addr_eq(k->addr[1 - d], hd->dst, v6)) {
                *dir = d;
                return k;
            }
    }
    return NULL;
}

static void enforce_limits(mapi_cooking *c, conn *keep)
{
    while (OLDEST(c) && OLDEST(c) != keep &&
           (c->st.held_bytes > c->cfg.max_bytes || c->st.active > c->cfg.max_conns)) {
        c->st.flushed++;
        drop_conn(c, OLDEST(c), 0);
    }
}

static conn *new_conn(mapi_cooking *c, const mapi_hdr *hd, int v6, uint32_t hash, int *dir)
{
    conn *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    /* side 0 opened the connection: the SYN's sender, the SYN-ACK's receiver, else the sender */
    int d = ((hd->tcp_flags & (F_SYN | F_ACK)) == (F_SYN | F_ACK)) ? 1 : 0;
    int alen = v6 ? 16 : 4;
    memcpy(k->addr[d], hd->src, alen);
    memcpy(k->addr[1 - d], hd->dst, alen);
    k->port[d] = hd->sport;
    k->port[1 - d] = hd->dport;
    k->v6 = (uint8_t)v6;
    k->id = c->st.connections++;
    for (int s = 0; s < 2; s++) {
        k->h[s].fin = NO_FIN;
        mapi_waitq_init(&k->h[s].wait);
    }
    mapi_htab_insert(&c->tab, &k->hn, hash);
    c->st.active++;
    held_add(c, sizeof *k);
    mapi_lru_touch(&c->lru, &k->lru);
    *dir = d;
    return k;
}

/* Ethernet II, IPv4, TCP, not a fragment (most frames): the fields packet() reads, as
 * mapi_hdr_parse gives them, without its walk; 0 when the frame is not that. */
static int parse_eth_ipv4_tcp(const uint8_t *p, uint32_t caplen, mapi_hdr *hd)
{
    if (caplen < 54 || p[12] != 0x08 || p[13] != 0x00 || (p[14] & 0xF0) != 0x40 ||
        (p[14] & 0x0F) < 5 || p[23] != 6 || ((p[20] << 8 | p[21]) & 0x3FFF))
        return 0;
    uint32_t l4 = 14 + (uint32_t)(p[14] & 0x0F) * 4;
    if (caplen < l4 + 20) return 0;
    const uint8_t *t = p + l4;
    memcpy(hd->src, p + 26, 4);
    memcpy(hd->dst, p + 30, 4);
    hd->sport = (uint16_t)(t[0] << 8 | t[1]);
    hd->dport = (uint16_t)(t[2] << 8 | t[3]);
    hd->tcp_seq = (uint32_t)t[4] << 24 | (uint32_t)t[5] << 16 | (uint32_t)t[6] << 8 | t[7];
    hd->tcp_flags = t[13];
    hd->proto = 6;
    hd->flags = MAPI_HDR_HAS_PORTS | MAPI_HDR_HAS_TCP;
    hd->l3_off = 14;
    hd->l4_off = l4;
    return 4;
}

static void packet(mapi_cooking *c, int32_t linktype, const uint8_t *p, uint32_t caplen)
{
    mapi_hdr hd;
    int v = linktype == 1 ? parse_eth_ipv4_tcp(p, caplen, &hd) : 0;
    if (!v) v = mapi_hdr_parse(linktype, p, caplen, &hd);
    if (!v || hd.proto != 6 || !(hd.flags & MAPI_HDR_HAS_TCP) || (hd.flags & MAPI_HDR_FRAGMENT) ||
        caplen < hd.l4_off + 20) {
        c->st.not_tcp++;
        return;
    }
    const uint8_t *t = p + hd.l4_off;
    uint32_t thl = (uint32_t)(t[12] >> 4) * 4;
    uint32_t ip_end = mapi_ip_end(p, caplen, hd.l3_off, v);
    if (thl < 20 || ip_end < hd.l4_off + thl) { c->st.not_tcp++; return; }
    uint32_t n = ip_end - hd.l4_off - thl;              /* payload by the IP length (no padding) */
    uint32_t have = caplen > hd.l4_off + thl ? caplen - hd.l4_off - thl : 0;
    if (have < n) { c->st.truncated++; n = have; }
    int v6 = v == 6, d;
    uint32_t hash;
    uint8_t fl = hd.tcp_flags;
    conn *k = lookup(c, &hd, v6, &d, &hash);
    if (k && k->closed && (fl & (F_SYN | F_ACK)) == F_SYN) {   /* port reuse: a new connection */
        drop_conn(c, k, 0);
        k = NULL;
    }
    if (!k) {
        if (fl & F_RST) return;                      /* nothing to learn from a stray reset */
        k = new_conn(c, &hd, v6, hash, &d);
        if (!k) return;
        enforce_limits(c, k);
    }
    if (k->closed) return;                           /* late retransmissions after the close */
    k->last_ts = c->now;
    segment(c, k, d, hd.tcp_seq, fl, t + thl, n);
    if (fl & F_RST) {
        for (int s = 0; s < 2; s++) {
            pull(c, k, s, 1);
            finish_half(c, k, s, F_RST);
        }
        k->closed = 1;
    }
    if (c->st.held_bytes > c->cfg.max_bytes) enforce_limits(c, k);
}

/* Timeouts, by packet time, every half of the shortest of them. */
static void sweep(mapi_cooking *c)
{
    int64_t step = c->cfg.flush_ns < c->cfg.close_ns ? c->cfg.flush_ns : c->cfg.close_ns;
    if (step > c->cfg.idle_ns) step = c->cfg.idle_ns;
    c->next_sweep = c->now + (step > 2 ? step / 2 : 1);
    conn *k = OLDEST(c);
    while (k) {
        conn *nx = (conn *)k->lru.next;
        int64_t idle = c->now - k->last_ts;
        if (k->closed ? idle >= c->cfg.close_ns : idle >= c->cfg.idle_ns) {
            if (!k->closed) c->st.idle_expired++;
            drop_conn(c, k, 0);
        } else {
            for (int d = 0; d < 2; d++)
                if (waiting(&k->h[d]) && c->now - k->h[d].wait_ts >= c->cfg.flush_ns)
                    release(c, k, d, 0);
        }
        k = nx;
    }
}

uint32_t mapi_cooking_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                             uint32_t nsel, uint32_t *out)
{
    (void)out;
    mapi_cooking *c = state;
    mapi_outbatch_begin(&c->out, NULL);
    c->out.b.clock_ns = b->clock_ns;
    mapi_waitpool_reserve(&c->wait, nsel);
    for (uint32_t j = 0; j < nsel; j++) {
        uint32_t i = sel[j];
        c->now = b->ts[i];
        c->cur_seq = mapi_batch_seq(b, i);
        if (c->now >= c->next_sweep) sweep(c);
        c->st.packets++;
        packet(c, b->linktype, b->base + b->off[i], b->caplen[i]);
    }
    if (b->n) {                          /* time passes for packets that did not reach us too */
        c->now = b->ts[b->n - 1];
        c->cur_seq = mapi_batch_seq(b, b->n - 1);
    } else if (b->clock_ns > c->now) {   /* a live device's clock: time passes without packets */
        c->now = b->clock_ns;
    }
    if (b->clock_ns > c->now) c->now = b->clock_ns;   /* a live device's clock, without packets */
    if (c->now >= c->next_sweep) sweep(c);
    uint64_t lost = mapi_waitpool_end_call(&c->wait);   /* the input batch goes back */
    if (lost) {
        c->st.gaps++;
        c->st.gap_bytes += lost;
    }
    if (c->st.held_bytes > c->cfg.max_bytes) enforce_limits(c, NULL);
    return mapi_outbatch_finish(&c->out);
}

uint32_t mapi_cooking_drain(void *state)
{
    mapi_cooking *c = state;
    mapi_outbatch_begin(&c->out, NULL);
    while (OLDEST(c) && !c->out.backlog && !mapi_outbatch_full(&c->out))
        drop_conn(c, OLDEST(c), 0);
    return mapi_outbatch_finish(&c->out);
}

mapi_cooking *mapi_cooking_new(const mapi_cooking_config *cfg)
{
    mapi_cooking *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->cfg = *cfg;
    if (!c->cfg.chunk_size || c->cfg.chunk_size > MAPI_COOKING_MAX_CHUNK)
        c->cfg.chunk_size = MAPI_COOKING_MAX_CHUNK;
    if (mapi_htab_init(&c->tab, c->cfg.max_conns) < 0 ||
        mapi_outbatch_init(&c->out, 65536, 1 << 20, MAPI_COOKING_LINKTYPE) < 0 ||
        mapi_waitpool_init(&c->wait, &c->st.held_bytes, &c->st.peak_bytes) < 0) {
        mapi_cooking_free(c);
        return NULL;
    }
    c->next_sweep = INT64_MIN;
    return c;
}

void mapi_cooking_free(mapi_cooking *c)
{
    if (!c) return;
    while (OLDEST(c)) {
        conn *k = OLDEST(c);
        mapi_lru_unlink(&c->lru, &k->lru);
        free_half(c, &k->h[0]);
        free_half(c, &k->h[1]);
        free(k);
    }
    mapi_waitpool_release(&c->wait);
    mapi_htab_release(&c->tab);
    mapi_outbatch_release(&c->out);
    free(c);
}

mapi_batch *mapi_cooking_batch(mapi_cooking *c) { return &c->out.b; }

void mapi_cooking_get_stats(mapi_cooking *c, mapi_cooking_stats *st) { *st = c->st; }
