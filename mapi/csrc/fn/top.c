/* TOP kernel; see top.h.  Open addressing with linear probing; the table doubles at 70 % load
 * until max_values distinct values are held. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "hdr_parse.h"
#include "top.h"

typedef struct slot {
    uint8_t key[16];
    uint8_t family;
    uint8_t keylen;
    uint8_t used;
    uint8_t _pad[5];
    uint64_t packets;
    uint64_t bytes;
} slot;

struct mapi_top {
    int32_t field;
    uint64_t max_values;
    slot *slots;
    uint64_t cap;                /* power of two */
    mapi_top_counts c;
    pthread_mutex_t lock;        /* the engine inserts while a reader may collect */
};

#define INITIAL_CAP 1024

mapi_top *mapi_top_new(int32_t field, uint64_t max_values)
{
    if (field < MAPI_TOP_IP_SRC || field > MAPI_TOP_UDP_DPORT) return NULL;
    mapi_top *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->field = field;
    t->max_values = max_values ? max_values : 1;
    t->cap = INITIAL_CAP;
    t->slots = calloc(t->cap, sizeof *t->slots);
    if (!t->slots) { free(t); return NULL; }
    pthread_mutex_init(&t->lock, NULL);
    return t;
}

void mapi_top_free(mapi_top *t)
{
    if (!t) return;
    pthread_mutex_destroy(&t->lock);
    free(t->slots);
    free(t);
}

static inline uint64_t key_hash(const uint8_t key[16], uint8_t family)
{
    uint64_t a, b;
    memcpy(&a, key, 8);
    memcpy(&b, key + 8, 8);
    uint64_t h = (a ^ (b * 0x9E3779B97F4A7C15ULL) ^ family) * 0xBF58476D1CE4E5B9ULL;
    return h ^ (h >> 31);
}

static slot *find(slot *slots, uint64_t cap, const uint8_t key[16], uint8_t family)
{
    uint64_t i = key_hash(key, family) & (cap - 1);
    for (;;) {
        slot *s = &slots[i];
        if (!s->used || (s->family == family && memcmp(s->key, key, 16) == 0)) return s;
        i = (i + 1) & (cap - 1);
    }
}

static int grow(mapi_top *t)
{
    uint64_t ncap = t->cap * 2;
    slot *ns = calloc(ncap, sizeof *ns);
    if (!ns) return -1;
    for (uint64_t i = 0; i < t->cap; i++)
        if (t->slots[i].used) *find(ns, ncap, t->slots[i].key, t->slots[i].family) = t->slots[i];
    free(t->slots);
    t->slots = ns;
    t->cap = ncap;
    return 0;
}

/* The field's value in key/family/keylen; 0 if the packet does not have it. */
static int extract(int32_t field, const mapi_hdr *h, uint8_t key[16], uint8_t *family,
                   uint8_t *keylen)
{
    memset(key, 0, 16);
    *family = 0;
    uint16_t port;
    switch (field) {
    case MAPI_TOP_IP_SRC: case MAPI_TOP_IP_DST:
        if (h->ipver != 4) return 0;
        memcpy(key, field == MAPI_TOP_IP_SRC ? h->src : h->dst, 4);
        *family = 4; *keylen = 4;
        return 1;
    case MAPI_TOP_IPV6_SRC: case MAPI_TOP_IPV6_DST:
        if (h->ipver != 6) return 0;
        memcpy(key, field == MAPI_TOP_IPV6_SRC ? h->src : h->dst, 16);
        *family = 6; *keylen = 16;
        return 1;
    case MAPI_TOP_ADDR_SRC: case MAPI_TOP_ADDR_DST:
        if (!h->ipver) return 0;
        *family = h->ipver; *keylen = h->ipver == 4 ? 4 : 16;
        memcpy(key, field == MAPI_TOP_ADDR_SRC ? h->src : h->dst, *keylen);
        return 1;
    case MAPI_TOP_IP_PROTO:
        if (!h->ipver) return 0;
        key[0] = h->proto; *keylen = 1;
        return 1;
    case MAPI_TOP_TCP_SPORT: case MAPI_TOP_TCP_DPORT:
    case MAPI_TOP_UDP_SPORT: case MAPI_TOP_UDP_DPORT: {
        uint8_t want = (field == MAPI_TOP_TCP_SPORT || field == MAPI_TOP_TCP_DPORT) ? 6 : 17;
        if (h->proto != want || !(h->flags & MAPI_HDR_HAS_PORTS)) return 0;
        port = (field == MAPI_TOP_TCP_SPORT || field == MAPI_TOP_UDP_SPORT) ? h->sport : h->dport;
        key[0] = (uint8_t)(port >> 8); key[1] = (uint8_t)port; *keylen = 2;
        return 1;
    }
    default:
        return 0;
    }
}

uint32_t mapi_top_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                         uint32_t *out)
{
    (void)out;
    mapi_top *t = state;
    mapi_hdr h;
    uint8_t key[16], family, keylen = 0;
    pthread_mutex_lock(&t->lock);
    for (uint32_t j = 0; j < nsel; j++) {
        uint32_t i = sel[j];
        mapi_hdr_parse(b->linktype, b->base + b->off[i], b->caplen[i], &h);
        if (!extract(t->field, &h, key, &family, &keylen)) continue;
        t->c.counted++;
        slot *s = find(t->slots, t->cap, key, family);
        if (!s->used) {
            if (t->c.distinct >= t->max_values) { t->c.overflow++; continue; }
            if ((t->c.distinct + 1) * 10 > t->cap * 7) {
                if (grow(t) < 0) { t->c.overflow++; continue; }
                s = find(t->slots, t->cap, key, family);
            }
            memcpy(s->key, key, 16);
            s->family = family;
            s->keylen = keylen;
            s->used = 1;
            t->c.distinct++;
        }
        s->packets++;
        s->bytes += b->wirelen[i];
    }
    t->c.seen += nsel;
    t->c.last_ts = b->ts[sel[nsel - 1]];
    pthread_mutex_unlock(&t->lock);
    return nsel;
}

/* a ranks strictly before b */
static int ranks_before(const slot *a, const slot *b)
{
    if (a->packets != b->packets) return a->packets > b->packets;
    if (a->bytes != b->bytes) return a->bytes > b->bytes;
    if (a->family != b->family) return a->family < b->family;
    return memcmp(a->key, b->key, 16) < 0;
}

static int cmp_rank(const void *x, const void *y)
{
    const slot *a = *(const slot *const *)x, *b = *(const slot *const *)y;
    return ranks_before(a, b) ? -1 : ranks_before(b, a) ? 1 : 0;
}

/* min-heap on rank: heap[0] is the worst of the best x kept so far */
static void sift_down(const slot **heap, uint32_t n, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && ranks_before(heap[w], heap[l])) w = l;
        if (r < n && ranks_before(heap[w], heap[r])) w = r;
        if (w == i) return;
        const slot *tmp = heap[i]; heap[i] = heap[w]; heap[w] = tmp;
        i = w;
    }
}

static void sift_up(const slot **heap, uint32_t i)
{
    while (i) {
        uint32_t p = (i - 1) / 2;
        if (!ranks_before(heap[p], heap[i])) return;
        const slot *tmp = heap[i]; heap[i] = heap[p]; heap[p] = tmp;
        i = p;
    }
}

uint32_t mapi_top_collect(mapi_top *t, uint32_t x, mapi_top_item *out)
{
    if (x == 0) return 0;
    pthread_mutex_lock(&t->lock);
    uint32_t room = x < t->c.distinct ? x : (uint32_t)t->c.distinct;
    const slot **heap = malloc((room ? room : 1) * sizeof *heap);
    uint32_t n = 0;
    if (!heap) { pthread_mutex_unlock(&t->lock); return 0; }
    for (uint64_t i = 0; i < t->cap && room; i++) {
        const slot *s = &t->slots[i];
        if (!s->used) continue;
        if (n < room) {
            heap[n] = s;
            sift_up(heap, n++);
        } else if (ranks_before(s, heap[0])) {
            heap[0] = s;
            sift_down(heap, n, 0);
        }
    }
    qsort(heap, n, sizeof *heap, cmp_rank);
    for (uint32_t k = 0; k < n; k++) {
        memset(&out[k], 0, sizeof out[k]);
        memcpy(out[k].key, heap[k]->key, 16);
        out[k].family = heap[k]->family;
        out[k].keylen = heap[k]->keylen;
        out[k].packets = heap[k]->packets;
        out[k].bytes = heap[k]->bytes;
    }
    free(heap);
    pthread_mutex_unlock(&t->lock);
    return n;
}

void mapi_top_get_counts(mapi_top *t, mapi_top_counts *c)
{
    pthread_mutex_lock(&t->lock);
    *c = t->c;
    pthread_mutex_unlock(&t->lock);
}

void mapi_top_reset(mapi_top *t)
{
    pthread_mutex_lock(&t->lock);
    memset(t->slots, 0, t->cap * sizeof *t->slots);
    memset(&t->c, 0, sizeof t->c);
    pthread_mutex_unlock(&t->lock);
}
