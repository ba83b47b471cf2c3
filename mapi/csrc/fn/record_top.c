/* RECORD_TOP; see record_top.h. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include "record_top.h"

struct mapi_rtop {
    mapi_rtop_field f[MAPI_RTOP_MAX_FIELDS];
    uint32_t nf, klen;
    uint32_t max_entries, cap, size;
    mapi_rtop_item *slots;           /* open addressing; used == 0 marks an empty slot */
    uint64_t overflow;
};

static uint32_t width(const mapi_rtop_field *f)
{
    switch (f->kind) {
    case MAPI_RTOP_NUMBER: return 8;
    case MAPI_RTOP_PAIR: return 34;
    default: return 17;
    }
}

uint32_t mapi_rtop_key_len(const mapi_rtop_field *fields, uint32_t nfields)
{
    uint32_t n = 0;
    if (nfields == 0 || nfields > MAPI_RTOP_MAX_FIELDS) return 0;
    for (uint32_t i = 0; i < nfields; i++) {
        n += width(&fields[i]);
        if (fields[i].kind == MAPI_RTOP_PAIR) i++;          /* the pair's second address */
    }
    return n <= MAPI_RTOP_KEY_BYTES ? n : 0;
}

mapi_rtop *mapi_rtop_new(const mapi_rtop_field *fields, uint32_t nfields, uint32_t max_entries)
{
    uint32_t klen = mapi_rtop_key_len(fields, nfields);
    if (!klen) return NULL;
    mapi_rtop *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    memcpy(t->f, fields, nfields * sizeof *fields);
    t->nf = nfields;
    t->klen = klen;
    t->max_entries = max_entries ? max_entries : 1;
    t->cap = 1024;
    t->slots = calloc(t->cap, sizeof *t->slots);
    if (!t->slots) { free(t); return NULL; }
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
    memset(t->slots, 0, (size_t)t->cap * sizeof *t->slots);
    t->size = 0;
    t->overflow = 0;
}

static uint64_t hash_key(const uint8_t *k, uint32_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (uint32_t i = 0; i < n; i++) { h ^= k[i]; h *= 1099511628211ULL; }
    return h ^ (h >> 29);
}

static mapi_rtop_item *slot_for(mapi_rtop *t, const uint8_t *key, int insert)
{
    uint32_t mask = t->cap - 1;
    uint32_t i = (uint32_t)hash_key(key, t->klen) & mask;
    for (;;) {
        mapi_rtop_item *s = &t->slots[i];
        if (!s->used) {
            if (!insert) return NULL;
            memset(s, 0, sizeof *s);
            memcpy(s->key, key, t->klen);
            s->used = 1;
            t->size++;
            return s;
        }
        if (!memcmp(s->key, key, t->klen)) return s;
        i = (i + 1) & mask;
    }
}

static int grow(mapi_rtop *t)
{
    uint32_t oldcap = t->cap;
    mapi_rtop_item *old = t->slots, *n = calloc((size_t)oldcap * 2, sizeof *n);
    if (!n) return -1;
    t->slots = n;
    t->cap = oldcap * 2;
    t->size = 0;
    for (uint32_t i = 0; i < oldcap; i++)
        if (old[i].used) *slot_for(t, old[i].key, 1) = old[i];
    free(old);
    return 0;
}

/* One address of the key: family byte and 16 bytes; 0 if the record lacks it. */
static int put_address(const mapi_rf_rec *rec, const mapi_rtop_field *f, uint8_t *k)
{
    int32_t fam;
    uint32_t len;
    const uint8_t *a = mapi_rf_bytes(rec, f->field, f->ie, &fam, &len);
    if (a && !fam) fam = len == 4 ? 4 : len == 16 ? 6 : 0;  /* an address element */
    if (!a || (fam != 4 && fam != 6) || (f->family && fam != f->family)) return 0;
    k[0] = (uint8_t)fam;
    memcpy(k + 1, a, fam == 6 ? 16 : 4);
    return 1;
}

/* The key of a record; 0 when it lacks a field (or its protocol does not have it). */
static int make_key(const mapi_rtop *t, const mapi_rf_rec *rec, uint8_t *k)
{
    memset(k, 0, MAPI_RTOP_KEY_BYTES);
    uint8_t *p = k;
    uint8_t pr = rec->r->proto;
    int ports = pr == 6 || pr == 17 || pr == 132;
    for (uint32_t i = 0; i < t->nf; i++) {
        const mapi_rtop_field *f = &t->f[i];
        if (f->proto == MAPI_RTOP_PORTS ? !ports : f->proto && f->proto != MAPI_RTOP_PORTS_OR_ZERO && pr != f->proto)
            return 0;
        if (f->kind == MAPI_RTOP_NUMBER) {
            uint64_t v = f->proto == MAPI_RTOP_PORTS_OR_ZERO && !ports ? 0 : mapi_rf_value(rec, f->field, f->ie);
            for (int b = 0; b < 8; b++) p[b] = (uint8_t)(v >> (56 - 8 * b));
        } else if (f->kind == MAPI_RTOP_ADDRESS) {
            if (!put_address(rec, f, p)) return 0;
        } else if (f->kind == MAPI_RTOP_PAIR && i + 1 < t->nf) {
            if (!put_address(rec, f, p) || !put_address(rec, &t->f[i + 1], p + 17)) return 0;
            if (memcmp(p, p + 17, 17) > 0) {
                uint8_t tmp[17];
                memcpy(tmp, p, 17); memcpy(p, p + 17, 17); memcpy(p + 17, tmp, 17);
            }
            i++;
        } else {
            int32_t fam;
            uint32_t len;
            const uint8_t *a = mapi_rf_bytes(rec, f->field, f->ie, &fam, &len);
            if (!a) return 0;
            if (len > 16) len = 16;
            p[0] = (uint8_t)len;
            memcpy(p + 1, a, len);
        }
        p += width(f);
    }
    return 1;
}

uint32_t mapi_rtop_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                          uint32_t *out)
{
    mapi_rtop *t = state;
    (void)out;
    if (b->linktype != MAPI_LINKTYPE_FLOWREC) return nsel;
    uint8_t key[MAPI_RTOP_KEY_BYTES];
    for (uint32_t j = 0; j < nsel; j++) {
        uint32_t i = sel[j];
        if (b->caplen[i] < sizeof(mapi_flowrec)) continue;
        mapi_rf_rec rec = {(const mapi_flowrec *)(b->base + b->off[i]), b->caplen[i]};
        if (!make_key(t, &rec, key)) continue;
        mapi_rtop_item *s = slot_for(t, key, 0);
        if (!s) {
            if (t->size >= t->max_entries) { t->overflow++; continue; }
            if ((t->size + 1) * 2 > t->cap && grow(t) < 0) { t->overflow++; continue; }
            s = slot_for(t, key, 1);
        }
        s->records++;                   /* a biflow record counts both directions, as nfdump -s */
        s->packets += rec.r->packets + rec.r->out_packets;
        s->bytes += rec.r->bytes + rec.r->out_bytes;
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
    return memcmp(a->key, b->key, MAPI_RTOP_KEY_BYTES);
}

uint32_t mapi_rtop_collect(mapi_rtop *t, uint32_t x, int32_t metric, mapi_rtop_item *items)
{
    mapi_rtop_item *all = malloc((size_t)(t->size ? t->size : 1) * sizeof *all);
    if (!all) return 0;
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->cap; i++)
        if (t->slots[i].used) all[n++] = t->slots[i];
    int m = metric;
    qsort_r(all, n, sizeof *all, cmp_items, &m);
    if (n > x) n = x;
    memcpy(items, all, (size_t)n * sizeof *all);
    free(all);
    return n;
}

uint64_t mapi_rtop_overflow(mapi_rtop *t) { return t->overflow; }
uint32_t mapi_rtop_size(mapi_rtop *t) { return t->size; }
