/* A producer's batch; see outbatch.h. */
#include <stdlib.h>
#include <string.h>
#include "outbatch.h"

struct mapi_outbatch_pend {
    mapi_outbatch_pend *next;
    uint32_t len, wirelen;
    int64_t ts;
    uint64_t seq;
    uint16_t ifindex;
    uint8_t data[];
};

int mapi_outbatch_init(mapi_outbatch *o, uint32_t cap, size_t arena_size, int32_t linktype)
{
    memset(o, 0, sizeof *o);
    o->b.cap = cap;
    o->b.linktype = linktype;
    o->b.off = malloc((size_t)cap * sizeof *o->b.off);
    o->b.caplen = malloc((size_t)cap * sizeof *o->b.caplen);
    o->b.wirelen = malloc((size_t)cap * sizeof *o->b.wirelen);
    o->b.ts = malloc((size_t)cap * sizeof *o->b.ts);
    o->b.ifindex = malloc((size_t)cap * sizeof *o->b.ifindex);
    o->b.seq = malloc((size_t)cap * sizeof *o->b.seq);
    o->aoff = malloc((size_t)cap * sizeof *o->aoff);
    o->size = arena_size ? arena_size : 4096;
    o->arena = malloc(o->size);
    if (!o->b.off || !o->b.caplen || !o->b.wirelen || !o->b.ts || !o->b.ifindex || !o->b.seq ||
        !o->aoff || !o->arena) {
        mapi_outbatch_release(o);
        return -1;
    }
    return 0;
}

void mapi_outbatch_release(mapi_outbatch *o)
{
    while (o->phead) {
        mapi_outbatch_pend *q = o->phead;
        o->phead = q->next;
        free(q);
    }
    free(o->b.off); free(o->b.caplen); free(o->b.wirelen); free(o->b.ts); free(o->b.ifindex);
    free(o->b.seq); free(o->aoff); free(o->arena);
    memset(o, 0, sizeof *o);
}

void mapi_outbatch_begin(mapi_outbatch *o, const mapi_batch *in)
{
    o->b.n = 0;
    o->used = 0;
    o->b.base = in ? in->base : NULL;
    o->b.first_seq = in ? in->first_seq : 0;
    o->b.clock_ns = in ? in->clock_ns : 0;   /* an idle tick reaches the children too */
    o->b.tags = NULL;
    while (o->phead) {
        mapi_outbatch_pend *q = o->phead;
        uint8_t *p = mapi_outbatch_add(o, q->len, q->wirelen, q->ts, q->seq, q->ifindex);
        if (!p) break;
        memcpy(p, q->data, q->len);
        o->phead = q->next;
        if (!o->phead) o->ptail = NULL;
        o->backlog--;
        free(q);
    }
}

uint8_t *mapi_outbatch_put(mapi_outbatch *o, uint32_t len, uint32_t wirelen, int64_t ts,
                           uint64_t seq, uint16_t ifindex)
{
    if (!o->phead) {
        uint8_t *p = mapi_outbatch_add(o, len, wirelen, ts, seq, ifindex);
        if (p) return p;
    }
    mapi_outbatch_pend *q = malloc(sizeof *q + len);
    if (!q) return NULL;
    q->next = NULL;
    q->len = len;
    q->wirelen = wirelen;
    q->ts = ts;
    q->seq = seq;
    q->ifindex = ifindex;
    if (o->ptail) o->ptail->next = q; else o->phead = q;
    o->ptail = q;
    o->backlog++;
    return q->data;
}

uint8_t *mapi_outbatch_add(mapi_outbatch *o, uint32_t len, uint32_t wirelen, int64_t ts,
                           uint64_t seq, uint16_t ifindex)
{
    if (o->b.n >= o->b.cap) return NULL;
    size_t need = o->used + ((len + 7u) & ~7u);
    if (need > o->size) {
        size_t size = o->size;
        while (size < need) size *= 2;
        uint8_t *a = realloc(o->arena, size);
        if (!a) return NULL;
        o->arena = a;
        o->size = size;
    }
    uint32_t k = o->b.n++;
    o->aoff[k] = o->used + 1;
    o->b.caplen[k] = len;
    o->b.wirelen[k] = wirelen;
    o->b.ts[k] = ts;
    o->b.seq[k] = seq;
    o->b.ifindex[k] = ifindex;
    uint8_t *p = o->arena + o->used;
    o->used = need;
    return p;
}

int mapi_outbatch_ref(mapi_outbatch *o, const uint8_t *p, uint32_t len, uint32_t wirelen,
                      int64_t ts, uint64_t seq, uint16_t ifindex)
{
    if (o->b.n >= o->b.cap || o->phead) return -1;
    uint32_t k = o->b.n++;
    o->aoff[k] = UINT64_MAX;
    o->b.off[k] = (uint64_t)(uintptr_t)p;
    o->b.caplen[k] = len;
    o->b.wirelen[k] = wirelen;
    o->b.ts[k] = ts;
    o->b.seq[k] = seq;
    o->b.ifindex[k] = ifindex;
    return 0;
}

int mapi_outbatch_pass(mapi_outbatch *o, const mapi_batch *in, uint32_t i)
{
    if (o->b.n >= o->b.cap) return -1;
    uint32_t k = o->b.n++;
    o->aoff[k] = 0;
    o->b.off[k] = in->off[i];
    o->b.caplen[k] = in->caplen[i];
    o->b.wirelen[k] = in->wirelen[i];
    o->b.ts[k] = in->ts[i];
    o->b.seq[k] = mapi_batch_seq(in, i);
    o->b.ifindex[k] = in->ifindex[i];
    return 0;
}

void mapi_outbatch_trim(mapi_outbatch *o, uint32_t len)
{
    if (o->b.n && len < o->b.caplen[o->b.n - 1]) o->b.caplen[o->b.n - 1] = len;
}

uint32_t mapi_outbatch_finish(mapi_outbatch *o)
{
    /* the arena no longer moves: arena offsets become offsets from base (wrapping) */
    if (!o->b.base) o->b.base = o->arena;
    uint64_t base = (uint64_t)(uintptr_t)o->b.base;
    uint64_t delta = (uint64_t)(uintptr_t)o->arena - base;
    for (uint32_t k = 0; k < o->b.n; k++) {
        if (o->aoff[k] == UINT64_MAX) o->b.off[k] -= base;
        else if (o->aoff[k]) o->b.off[k] = delta + o->aoff[k] - 1;
    }
    return o->b.n;
}

int mapi_outbatch_full(const mapi_outbatch *o) { return o->b.n >= o->b.cap; }

uint64_t mapi_batch_seq(const mapi_batch *b, uint32_t i)
{
    return b->seq ? b->seq[i] : b->first_seq + i;
}
