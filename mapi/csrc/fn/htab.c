/* Growing chained hash tables; see htab.h. */
#include <stdlib.h>
#include <string.h>
#include "htab.h"

#define FIRST_BUCKETS 1024u

int mapi_htab_init(mapi_htab *t, uint32_t max_entries)
{
    memset(t, 0, sizeof *t);
    t->max_buckets = FIRST_BUCKETS;
    while (t->max_buckets < max_entries && t->max_buckets < (1u << 24)) t->max_buckets <<= 1;
    t->b = calloc(FIRST_BUCKETS, sizeof *t->b);
    t->mask = FIRST_BUCKETS - 1;
    return t->b ? 0 : -1;
}

void mapi_htab_release(mapi_htab *t)
{
    free(t->b);
    t->b = NULL;
}

mapi_hnode *mapi_htab_bucket(const mapi_htab *t, uint32_t hash) { return t->b[hash & t->mask]; }

static void grow(mapi_htab *t)
{
    uint32_t n = (t->mask + 1) * 2;
    mapi_hnode **nb = calloc(n, sizeof *nb);
    if (!nb) return;                              /* longer chains, still correct */
    for (uint32_t i = 0; i <= t->mask; i++) {
        for (mapi_hnode *e = t->b[i], *nx; e; e = nx) {
            nx = e->next;
            e->next = nb[e->hash & (n - 1)];
            nb[e->hash & (n - 1)] = e;
        }
    }
    free(t->b);
    t->b = nb;
    t->mask = n - 1;
}

void mapi_htab_insert(mapi_htab *t, mapi_hnode *n, uint32_t hash)
{
    if (t->count >= t->mask + 1 && t->mask + 1 < t->max_buckets) grow(t);
    n->hash = hash;
    n->next = t->b[hash & t->mask];
    t->b[hash & t->mask] = n;
    t->count++;
}

void mapi_htab_remove(mapi_htab *t, mapi_hnode *n)
{
    mapi_hnode **pp = &t->b[n->hash & t->mask];
    while (*pp && *pp != n) pp = &(*pp)->next;
    if (*pp) { *pp = n->next; t->count--; }
}

uint32_t mapi_hash_bytes(const void *p, uint32_t n, uint64_t seed)
{
    const uint8_t *s = p;
    uint64_t h = seed ^ 0x9E3779B97F4A7C15ull;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, s, n);
        h = (h ^ w) * 0x94D049BB133111EBull;
    }
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    return (uint32_t)(h ^ (h >> 32));
}
