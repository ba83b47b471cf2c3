/* TOP kernel; see top.h.  Open addressing with linear probing; the table doubles at 70 % load
 * until max_values distinct keys are held.  A key is built field by field into a fixed-width
 * buffer, so one hash table serves single fields, conversations and 5-tuples alike. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "hdr_parse.h"
#include "top.h"

#define KEY MAPI_TOP_KEY_BYTES

typedef struct slot {
    uint8_t key[KEY];
    uint8_t family;
    uint8_t keylen;
    uint8_t used;
    uint8_t _pad[5];
    uint64_t packets;
    uint64_t bytes;
} slot;

struct mapi_top {
    int32_t fields[MAPI_TOP_MAX_FIELDS];
    uint32_t nfields;
    uint32_t keylen;
    uint32_t cmplen;             /* keylen rounded up to 8: what is hashed and compared */
    int32_t by;                  /* MAPI_TOP_BY_* */
    uint64_t max_values;
    slot *slots;
    uint64_t cap;                /* power of two */
    mapi_top_counts c;
    pthread_mutex_t lock;        /* the engine inserts while a reader may collect */
};

#define INITIAL_CAP 1024

uint32_t mapi_top_field_width(int32_t field)
{
    switch (field & ~MAPI_TOP_OPTIONAL) {
    case MAPI_TOP_IP_SRC: case MAPI_TOP_IP_DST: case MAPI_TOP_IPV6_SRC: case MAPI_TOP_IPV6_DST:
    case MAPI_TOP_ADDR_SRC: case MAPI_TOP_ADDR_DST:
        return 16;
    case MAPI_TOP_CONV:
        return 32;
    case MAPI_TOP_IP_PROTO:
        return 1;
    case MAPI_TOP_TCP_SPORT: case MAPI_TOP_TCP_DPORT: case MAPI_TOP_UDP_SPORT:
    case MAPI_TOP_UDP_DPORT: case MAPI_TOP_PORT_SRC: case MAPI_TOP_PORT_DST:
        return 2;
    default:
        return 0;
    }
}

mapi_top *mapi_top_new(const int32_t *fields, uint32_t nfields, int32_t by, uint64_t max_values)
{
    uint32_t keylen = 0;
    if (nfields < 1 || nfields > MAPI_TOP_MAX_FIELDS) return NULL;
    if (by != MAPI_TOP_BY_PACKETS && by != MAPI_TOP_BY_BYTES) return NULL;
    for (uint32_t i = 0; i < nfields; i++) {
        uint32_t w = mapi_top_field_width(fields[i]);
        if (!w) return NULL;
        keylen += w;
    }
    if (keylen > KEY) return NULL;
    mapi_top *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    memcpy(t->fields, fields, nfields * sizeof *fields);
    t->nfields = nfields;
    t->keylen = keylen;
    t->cmplen = (keylen + 7) & ~7u;
    t->by = by;
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

/* Keys are compared and hashed on their first `len` bytes (the key's width rounded up to 8);
 * the bytes after them stay zero. */
static inline uint64_t key_hash(const uint8_t key[KEY], uint32_t len, uint8_t family)
{
    uint64_t h = family;
    for (uint32_t i = 0; i < len; i += 8) {
        uint64_t w;
        memcpy(&w, key + i, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
        h ^= h >> 29;
    }
    h *= 0xBF58476D1CE4E5B9ULL;
    return h ^ (h >> 31);
}

static slot *find(slot *slots, uint64_t cap, const uint8_t key[KEY], uint32_t len, uint8_t family)
{
    uint64_t i = key_hash(key, len, family) & (cap - 1);
    for (;;) {
        slot *s = &slots[i];
        if (!s->used || (s->family == family && memcmp(s->key, key, len) == 0)) return s;
        i = (i + 1) & (cap - 1);
    }
}

static int grow(mapi_top *t)
{
    uint64_t ncap = t->cap * 2;
    slot *ns = calloc(ncap, sizeof *ns);
    if (!ns) return -1;
    for (uint64_t i = 0; i < t->cap; i++)
        if (t->slots[i].used)
            *find(ns, ncap, t->slots[i].key, t->cmplen, t->slots[i].family) = t->slots[i];
    free(t->slots);
    t->slots = ns;
    t->cap = ncap;
    return 0;
}

/* One field of the packet into k (its width); 0 if the packet does not have it.  An address
 * field sets *family. */
static int extract(int32_t field, const mapi_hdr *h, uint8_t *k, uint8_t *family)
{
    uint16_t port;
    switch (field) {
    case MAPI_TOP_IP_SRC: case MAPI_TOP_IP_DST:
    case MAPI_TOP_IPV6_SRC: case MAPI_TOP_IPV6_DST:
    case MAPI_TOP_ADDR_SRC: case MAPI_TOP_ADDR_DST: {
        int want = (field == MAPI_TOP_IP_SRC || field == MAPI_TOP_IP_DST) ? 4
                 : (field == MAPI_TOP_IPV6_SRC || field == MAPI_TOP_IPV6_DST) ? 6 : 0;
        if (!h->ipver || (want && h->ipver != want)) return 0;
        int src = field == MAPI_TOP_IP_SRC || field == MAPI_TOP_IPV6_SRC || field == MAPI_TOP_ADDR_SRC;
        memcpy(k, src ? h->src : h->dst, h->ipver == 4 ? 4 : 16);
        *family = h->ipver;
        return 1;
    }
    case MAPI_TOP_CONV: {
        if (!h->ipver) return 0;
        uint32_t n = h->ipver == 4 ? 4 : 16;
        int swap = memcmp(h->src, h->dst, n) > 0;
        memcpy(k, swap ? h->dst : h->src, n);
        memcpy(k + 16, swap ? h->src : h->dst, n);
        *family = h->ipver;
        return 1;
    }
    case MAPI_TOP_IP_PROTO:
        if (!h->ipver) return 0;
        k[0] = h->proto;
        return 1;
    case MAPI_TOP_TCP_SPORT: case MAPI_TOP_TCP_DPORT:
    case MAPI_TOP_UDP_SPORT: case MAPI_TOP_UDP_DPORT: {
        uint8_t want = (field == MAPI_TOP_TCP_SPORT || field == MAPI_TOP_TCP_DPORT) ? 6 : 17;
        if (h->proto != want || !(h->flags & MAPI_HDR_HAS_PORTS)) return 0;
        port = (field == MAPI_TOP_TCP_SPORT || field == MAPI_TOP_UDP_SPORT) ? h->sport : h->dport;
        break;
    }
    case MAPI_TOP_PORT_SRC: case MAPI_TOP_PORT_DST:
        if (!(h->flags & MAPI_HDR_HAS_PORTS)) return 0;
        port = field == MAPI_TOP_PORT_SRC ? h->sport : h->dport;
        break;
    default:
        return 0;
    }
    k[0] = (uint8_t)(port >> 8);
    k[1] = (uint8_t)port;
    return 1;
}

/* The packet's key; 0 if a field it needs is missing. */
static int make_key(const mapi_top *t, const mapi_hdr *h, uint8_t key[KEY], uint8_t *family)
{
    uint32_t off = 0;
    memset(key, 0, t->cmplen);
    *family = 0;
    for (uint32_t f = 0; f < t->nfields; f++) {
        int32_t field = t->fields[f];
        uint32_t w = mapi_top_field_width(field);
        if (!extract(field & ~MAPI_TOP_OPTIONAL, h, key + off, family) && !(field & MAPI_TOP_OPTIONAL))
            return 0;
        off += w;
    }
    return 1;
}

uint32_t mapi_top_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                         uint32_t *out)
{
    (void)out;
    mapi_top *t = state;
    mapi_hdr h;
    uint8_t key[KEY], family;
    pthread_mutex_lock(&t->lock);
    for (uint32_t j = 0; j < nsel; j++) {
        uint32_t i = sel[j];
        mapi_hdr_parse(b->linktype, b->base + b->off[i], b->caplen[i], &h);
        if (!make_key(t, &h, key, &family)) continue;
        t->c.counted++;
        slot *s = find(t->slots, t->cap, key, t->cmplen, family);
        if (!s->used) {
            if (t->c.distinct >= t->max_values) { t->c.overflow++; continue; }
            if ((t->c.distinct + 1) * 10 > t->cap * 7) {
                if (grow(t) < 0) { t->c.overflow++; continue; }
                s = find(t->slots, t->cap, key, t->cmplen, family);
            }
            memcpy(s->key, key, t->cmplen);      /* the rest of a slot stays zero */
            s->family = family;
            s->keylen = (uint8_t)t->keylen;
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
static int ranks_before(int32_t by, const slot *a, const slot *b)
{
    uint64_t a1 = by == MAPI_TOP_BY_BYTES ? a->bytes : a->packets;
    uint64_t b1 = by == MAPI_TOP_BY_BYTES ? b->bytes : b->packets;
    uint64_t a2 = by == MAPI_TOP_BY_BYTES ? a->packets : a->bytes;
    uint64_t b2 = by == MAPI_TOP_BY_BYTES ? b->packets : b->bytes;
    if (a1 != b1) return a1 > b1;
    if (a2 != b2) return a2 > b2;
    if (a->family != b->family) return a->family < b->family;
    return memcmp(a->key, b->key, KEY) < 0;
}

static int32_t sort_by;          /* qsort has no context argument; set under sort_lock */
static pthread_mutex_t sort_lock = PTHREAD_MUTEX_INITIALIZER;

static int cmp_rank(const void *x, const void *y)
{
    const slot *a = *(const slot *const *)x, *b = *(const slot *const *)y;
    return ranks_before(sort_by, a, b) ? -1 : ranks_before(sort_by, b, a) ? 1 : 0;
}

/* min-heap on rank: heap[0] is the worst of the best x kept so far */
static void sift_down(int32_t by, const slot **heap, uint32_t n, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && ranks_before(by, heap[w], heap[l])) w = l;
        if (r < n && ranks_before(by, heap[w], heap[r])) w = r;
        if (w == i) return;
        const slot *tmp = heap[i]; heap[i] = heap[w]; heap[w] = tmp;
        i = w;
    }
}

static void sift_up(int32_t by, const slot **heap, uint32_t i)
{
    while (i) {
        uint32_t p = (i - 1) / 2;
        if (!ranks_before(by, heap[p], heap[i])) return;
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
            sift_up(t->by, heap, n++);
        } else if (ranks_before(t->by, s, heap[0])) {
            heap[0] = s;
            sift_down(t->by, heap, n, 0);
        }
    }
    pthread_mutex_lock(&sort_lock);
    sort_by = t->by;
    qsort(heap, n, sizeof *heap, cmp_rank);
    pthread_mutex_unlock(&sort_lock);
    for (uint32_t k = 0; k < n; k++) {
        memset(&out[k], 0, sizeof out[k]);
        memcpy(out[k].key, heap[k]->key, KEY);
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
