/* RECORD_TOP; see record_top.h. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include "record_top.h"

struct mapi_rtop {
    int32_t field;
    uint32_t max_entries, cap, size;
    mapi_rtop_item *slots;           /* open addressing; family 255 marks an empty slot */
    uint64_t overflow;
};

#define EMPTY 255

mapi_rtop *mapi_rtop_new(int32_t field, uint32_t max_entries)
{
    mapi_rtop *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->field = field;
    t->max_entries = max_entries ? max_entries : 1;
    t->cap = 1024;
    t->slots = malloc(t->cap * sizeof *t->slots);
    if (!t->slots) { free(t); return NULL; }
    for (uint32_t i = 0; i < t->cap; i++) t->slots[i].family = EMPTY;
    return t;
}

void mapi_rtop_free(mapi_rtop *t)
{
    if (!t) return;
    free(t->slots);
    free(t);
}

void mapi_rtop_reset(mapi_rtop *t)
{
    for (uint32_t i = 0; i < t->cap; i++) t->slots[i].family = EMPTY;
    t->size = 0;
    t->overflow = 0;
}

static uint64_t hash_key(const uint8_t *k, uint8_t fam)
{
    uint64_t h = 1469598103934665603ULL ^ fam;
    for (int i = 0; i < 16; i++) { h ^= k[i]; h *= 1099511628211ULL; }
    return h ^ (h >> 29);
}

static mapi_rtop_item *slot_for(mapi_rtop *t, const uint8_t *key, uint8_t fam, int insert)
{
    uint32_t mask = t->cap - 1;
    uint32_t i = (uint32_t)hash_key(key, fam) & mask;
    for (;;) {
        mapi_rtop_item *s = &t->slots[i];
        if (s->family == EMPTY) {
            if (!insert) return NULL;
            memcpy(s->key, key, 16);
            s->family = fam;
            s->records = s->packets = s->bytes = 0;
            t->size++;
            return s;
        }
        if (s->family == fam && !memcmp(s->key, key, 16)) return s;
        i = (i + 1) & mask;
    }
}

static int grow(mapi_rtop *t)
{
    uint32_t cap = t->cap * 2;
    mapi_rtop_item *old = t->slots;
    uint32_t oldcap = t->cap;
    mapi_rtop_item *n = malloc((size_t)cap * sizeof *n);
    if (!n) return -1;
    for (uint32_t i = 0; i < cap; i++) n[i].family = EMPTY;
    t->slots = n;
    t->cap = cap;
    t->size = 0;
    for (uint32_t i = 0; i < oldcap; i++) {
        if (old[i].family == EMPTY) continue;
        mapi_rtop_item *s = slot_for(t, old[i].key, old[i].family, 1);
        *s = old[i];
    }
    free(old);
    return 0;
}

uint32_t mapi_rtop_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                          uint32_t *out)
{
    mapi_rtop *t = state;
    (void)out;
    if (b->linktype != MAPI_LINKTYPE_FLOWREC) return nsel;
    for (uint32_t j = 0; j < nsel; j++) {
        if (b->caplen[sel[j]] < sizeof(mapi_flowrec)) continue;
        const mapi_flowrec *r = (const mapi_flowrec *)(b->base + b->off[sel[j]]);
        uint8_t key[16];
        uint8_t fam = 0;
        memset(key, 0, sizeof key);
        int32_t afam;
        const uint8_t *a = mapi_rf_addr(r, t->field, &afam);
        if (a) {
            if (afam != 4 && afam != 6) continue;       /* no address exported */
            memcpy(key, a, afam == 6 ? 16 : 4);
            fam = (uint8_t)afam;
        } else {
            uint64_t v = mapi_rf_value(r, t->field);
            for (int i = 0; i < 8; i++) key[i] = (uint8_t)(v >> (56 - 8 * i));
        }
        mapi_rtop_item *s = slot_for(t, key, fam, 0);
        if (!s) {
            if (t->size >= t->max_entries) { t->overflow++; continue; }
            if ((t->size + 1) * 2 > t->cap && grow(t) < 0) { t->overflow++; continue; }
            s = slot_for(t, key, fam, 1);
        }
        s->records++;
        s->packets += r->packets;
        s->bytes += r->bytes;
    }
    return nsel;
}

static int cmp_items(const void *pa, const void *pb, void *arg)
{
    const mapi_rtop_item *a = pa, *b = pb;
    int metric = *(const int *)arg;
    uint64_t ma = metric == 0 ? a->records : metric == 1 ? a->packets : a->bytes;
    uint64_t mb = metric == 0 ? b->records : metric == 1 ? b->packets : b->bytes;
    if (ma != mb) return ma > mb ? -1 : 1;
    if (a->bytes != b->bytes) return a->bytes > b->bytes ? -1 : 1;
    if (a->family != b->family) return a->family < b->family ? -1 : 1;
    return memcmp(a->key, b->key, 16);
}

uint32_t mapi_rtop_collect(mapi_rtop *t, uint32_t x, int32_t metric, mapi_rtop_item *items)
{
    mapi_rtop_item *all = malloc((size_t)(t->size ? t->size : 1) * sizeof *all);
    if (!all) return 0;
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->cap; i++)
        if (t->slots[i].family != EMPTY) all[n++] = t->slots[i];
    int m = metric;
    qsort_r(all, n, sizeof *all, cmp_items, &m);
    if (n > x) n = x;
    memcpy(items, all, (size_t)n * sizeof *all);
    free(all);
    return n;
}

uint64_t mapi_rtop_overflow(mapi_rtop *t) { return t->overflow; }
uint32_t mapi_rtop_size(mapi_rtop *t) { return t->size; }
