/* HASHSAMP kernel; see hashsamp.h. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "hashsamp.h"
#include "hdr_parse.h"

struct mapi_hashsamp {
    uint32_t range;
    int keep;
    int symmetric;
    mapi_hashsamp_counts c;
    pthread_mutex_t lock;            /* guards the ring (engine thread vs. reader) */
    uint64_t head, tail;             /* ring positions: records head-tail .. head-1 are unread */
    mapi_hashsamp_rec ring[MAPI_HASHSAMP_RING];
};

/* lookup2's mixing step, as RFC 5475 A.2 gives it */
#define BOB_MIX(a, b, c) do { \
    a -= b; a -= c; a ^= (c >> 13); \
    b -= c; b -= a; b ^= (a << 8);  \
    c -= a; c -= b; c ^= (b >> 13); \
    a -= b; a -= c; a ^= (c >> 12); \
    b -= c; b -= a; b ^= (a << 16); \
    c -= a; c -= b; c ^= (b >> 5);  \
    a -= b; a -= c; a ^= (c >> 3);  \
    b -= c; b -= a; b ^= (a << 10); \
    c -= a; c -= b; c ^= (b >> 15); \
} while (0)

static inline uint32_t le32(const uint8_t *k)
{
    return (uint32_t)k[0] | (uint32_t)k[1] << 8 | (uint32_t)k[2] << 16 | (uint32_t)k[3] << 24;
}

uint32_t mapi_hashsamp_bob(const uint8_t *k, uint32_t len, uint32_t initval)
{
    uint32_t a = 0x9E3779B9u, b = 0x9E3779B9u, c = initval;
    uint32_t left = len;
    while (left >= 12) {
        a += le32(k); b += le32(k + 4); c += le32(k + 8);
        BOB_MIX(a, b, c);
        k += 12;
        left -= 12;
    }
    c += len;
    /* the tail: bytes 0-3 into a, 4-7 into b, 8-10 into c's upper bytes (its low byte holds len) */
    for (uint32_t i = 0; i < left; i++) {
        uint32_t v = k[i];
        if (i < 4) a += v << (8 * i);
        else if (i < 8) b += v << (8 * (i - 4));
        else c += v << (8 * (i - 7));
    }
    BOB_MIX(a, b, c);
    return c;
}

/* The hash-domain bytes of a parsed packet; returns their length. */
static uint32_t hash_key(const mapi_hdr *h, int symmetric, uint8_t key[40])
{
    uint32_t alen = h->ipver == 4 ? 4 : 16;
    const uint8_t *s = h->src, *d = h->dst;
    uint16_t sp = h->sport, dp = h->dport;
    if (symmetric) {
        int cmp = memcmp(s, d, alen);
        if (cmp > 0 || (cmp == 0 && sp > dp)) {
            const uint8_t *t = s; s = d; d = t;
            uint16_t tp = sp; sp = dp; dp = tp;
        }
    }
    memcpy(key, s, alen);
    memcpy(key + alen, d, alen);
    uint8_t *q = key + 2 * alen;
    q[0] = h->proto;
    q[1] = (uint8_t)(sp >> 8); q[2] = (uint8_t)sp;
    q[3] = (uint8_t)(dp >> 8); q[4] = (uint8_t)dp;
    return 2 * alen + 5;
}

static inline uint32_t select_value(const mapi_hdr *h, int symmetric)
{
    uint8_t key[40];
    uint32_t n = hash_key(h, symmetric, key);
    return mapi_hashsamp_bob(key, n, 0) & (MAPI_HASHSAMP_BUCKETS - 1);
}

int32_t mapi_hashsamp_value(int32_t linktype, const uint8_t *p, uint32_t caplen, int symmetric)
{
    mapi_hdr h;
    if (!mapi_hdr_parse(linktype, p, caplen, &h)) return -1;
    return (int32_t)select_value(&h, symmetric);
}

mapi_hashsamp *mapi_hashsamp_new(uint32_t range, int keep, int symmetric)
{
    mapi_hashsamp *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->range = range;
    h->keep = keep;
    h->symmetric = symmetric;
    pthread_mutex_init(&h->lock, NULL);
    return h;
}

void mapi_hashsamp_free(mapi_hashsamp *h)
{
    if (!h) return;
    pthread_mutex_destroy(&h->lock);
    free(h);
}

uint32_t mapi_hashsamp_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                              uint32_t nsel, uint32_t *out)
{
    mapi_hashsamp *hs = state;
    uint32_t n = 0, not_ip = 0;
    mapi_hdr h;
    if (hs->keep) pthread_mutex_lock(&hs->lock);
    for (uint32_t j = 0; j < nsel; j++) {
        uint32_t i = sel[j];
        if (!mapi_hdr_parse(b->linktype, b->base + b->off[i], b->caplen[i], &h)) {
            not_ip++;
            continue;
        }
        uint32_t v = select_value(&h, hs->symmetric);
        if (v >= hs->range) continue;
        out[n++] = i;
        if (hs->keep) {
            mapi_hashsamp_rec *r = &hs->ring[hs->head % MAPI_HASHSAMP_RING];
            if (hs->head - hs->tail == MAPI_HASHSAMP_RING) { hs->tail++; hs->c.lost_records++; }
            r->ts = b->ts[i];
            memcpy(r->src, h.src, 16);
            memcpy(r->dst, h.dst, 16);
            r->sport = h.sport; r->dport = h.dport;
            r->tcp_seq = h.tcp_seq; r->tcp_flags = h.tcp_flags;
            r->ipver = h.ipver; r->proto = h.proto; r->hash = v;
            hs->head++;
        }
    }
    if (hs->keep) pthread_mutex_unlock(&hs->lock);
    hs->c.seen += nsel;
    hs->c.selected += n;
    hs->c.not_ip += not_ip;
    if (n) hs->c.last_ts = b->ts[out[n - 1]];
    return n;
}

void mapi_hashsamp_get_counts(mapi_hashsamp *h, mapi_hashsamp_counts *c)
{
    pthread_mutex_lock(&h->lock);
    *c = h->c;
    pthread_mutex_unlock(&h->lock);
}

uint32_t mapi_hashsamp_drain(mapi_hashsamp *h, mapi_hashsamp_rec *out, uint32_t max)
{
    pthread_mutex_lock(&h->lock);
    uint32_t n = 0;
    while (n < max && h->tail < h->head) out[n++] = h->ring[h->tail++ % MAPI_HASHSAMP_RING];
    pthread_mutex_unlock(&h->lock);
    return n;
}

void mapi_hashsamp_reset(mapi_hashsamp *h)
{
    pthread_mutex_lock(&h->lock);
    memset(&h->c, 0, sizeof h->c);
    h->head = h->tail = 0;
    pthread_mutex_unlock(&h->lock);
}
