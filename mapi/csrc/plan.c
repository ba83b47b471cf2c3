/* Running a device's global monitoring graph over one batch: nodes in topological order, each
 * reading one selection vector and (if it filters) writing another. */
#include <stdlib.h>
#include <string.h>
#include "engine.h"

mapi_plan *mapi_plan_new(uint32_t nnodes, uint32_t nslots, uint32_t slot_cap)
{
    mapi_plan *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->nnodes = nnodes;
    p->nslots = nslots ? nslots : 1;
    p->slot_cap = slot_cap;
    p->nodes = calloc(nnodes ? nnodes : 1, sizeof *p->nodes);
    p->slots = calloc(p->nslots, sizeof *p->slots);
    p->slot_n = calloc(p->nslots, sizeof *p->slot_n);
    p->batches = calloc((size_t)nnodes + 1, sizeof *p->batches);
    if (!p->nodes || !p->slots || !p->slot_n || !p->batches) { mapi_plan_free(p); return NULL; }
    for (uint32_t i = 0; i < p->nslots; i++) {
        p->slots[i] = malloc((size_t)slot_cap * sizeof(uint32_t));
        if (!p->slots[i]) { mapi_plan_free(p); return NULL; }
    }
    return p;
}

void mapi_plan_free(mapi_plan *p)
{
    if (!p) return;
    if (p->slots)
        for (uint32_t i = 0; i < p->nslots; i++) free(p->slots[i]);
    free(p->slots);
    free(p->slot_n);
    free(p->batches);
    free(p->nodes);
    free(p);
}

void mapi_plan_take_counters(mapi_plan *p, uint64_t *out)
{
    for (uint32_t i = 0; i < p->nnodes; i++) {
        mapi_node *n = &p->nodes[i];
        out[4 * (size_t)i] = n->pkts_in;
        out[4 * (size_t)i + 1] = n->pkts_out;
        out[4 * (size_t)i + 2] = n->bytes_in;
        out[4 * (size_t)i + 3] = n->bytes_out;
        n->pkts_in = n->pkts_out = n->bytes_in = n->bytes_out = 0;
    }
}

int mapi_plan_begin(mapi_plan *p, const mapi_batch *b)
{
    if (b->n > p->slot_cap) return -1;
    uint32_t *s = p->slots[0];
    for (uint32_t i = 0; i < b->n; i++) s[i] = i;
    p->slot_n[0] = b->n;
    return 0;
}

/* A producer's batch is what its children read, every packet selected. */
static int select_made(mapi_plan *p, mapi_node *nd, uint32_t nout)
{
    if (nout > p->slot_cap || nout > nd->made->n) return -1;
    uint32_t *s = p->slots[nd->out_slot];
    for (uint32_t k = 0; k < nout; k++) s[k] = k;
    p->slot_n[nd->out_slot] = nout;
    p->batches[nd->out_batch] = nd->made;
    nd->pkts_out += nout;
    if (p->count_bytes) nd->bytes_out += mapi_sel_bytes(nd->made, s, nout);
    return 0;
}

const mapi_batch *mapi_plan_input(mapi_plan *p, uint32_t i, const mapi_batch *b)
{
    int32_t k = p->nodes[i].in_batch;
    return k ? p->batches[k] : b;
}

int64_t mapi_plan_run(mapi_plan *p, const mapi_batch *b, uint32_t from, uint32_t to)
{
    if (to > p->nnodes) to = p->nnodes;
    for (uint32_t i = from; i < to; i++) {
        mapi_node *nd = &p->nodes[i];
        if (!nd->fn) return i;
        const mapi_batch *bin = nd->in_batch ? p->batches[nd->in_batch] : b;
        const uint32_t *in = p->slots[nd->in_slot];
        uint32_t nin = p->slot_n[nd->in_slot];
        uint32_t nout;
        if (nd->made) {             /* called even with nothing in: time passes */
            nout = nd->fn(nd->state, bin, in, nin, NULL);
            nd->pkts_in += nin;
            if (p->count_bytes) nd->bytes_in += mapi_sel_bytes(bin, in, nin);
            if (select_made(p, nd, nout) < 0) return -1;
            continue;
        }
        if (nin == 0) {
            nout = 0;
        } else if (nd->out_slot == nd->in_slot) {
            nout = nd->fn(nd->state, bin, in, nin, (uint32_t *)in);
        } else {
            nout = nd->fn(nd->state, bin, in, nin, p->slots[nd->out_slot]);
        }
        nd->pkts_in += nin;
        nd->pkts_out += nout;
        p->slot_n[nd->out_slot] = nout;
        if (p->count_bytes && nin) {
            uint64_t bin_bytes = mapi_sel_bytes(bin, in, nin);
            nd->bytes_in += bin_bytes;
            /* a filter's kept packets are summed apart; anything else passes its input on */
            nd->bytes_out += nout == nin ? bin_bytes
                                         : mapi_sel_bytes(bin, p->slots[nd->out_slot], nout);
        }
    }
    return to;
}

int64_t mapi_plan_drain(mapi_plan *p, uint32_t i)
{
    if (i >= p->nnodes) return -1;
    mapi_node *nd = &p->nodes[i];
    if (!nd->made) return -1;
    if (!nd->drain) return 0;
    uint32_t n = nd->drain(nd->state);
    if (select_made(p, nd, n) < 0) return -1;
    return n;
}

mapi_batch *mapi_batch_new(uint32_t cap)
{
    mapi_batch *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->cap = cap;
    b->off = malloc((size_t)cap * sizeof *b->off);
    b->caplen = malloc((size_t)cap * sizeof *b->caplen);
    b->wirelen = malloc((size_t)cap * sizeof *b->wirelen);
    b->ts = malloc((size_t)cap * sizeof *b->ts);
    b->ifindex = calloc(cap, sizeof *b->ifindex);
    if (!b->off || !b->caplen || !b->wirelen || !b->ts || !b->ifindex) {
        mapi_batch_free(b);
        return NULL;
    }
    return b;
}

void mapi_batch_free(mapi_batch *b)
{
    if (!b) return;
    free(b->off); free(b->caplen); free(b->wirelen); free(b->ts); free(b->ifindex);
    free(b);
}

void mapi_batch_slice(const mapi_batch *src, uint32_t start, uint32_t n, mapi_batch *dst)
{
    *dst = *src;
    dst->off = src->off + start;
    dst->caplen = src->caplen + start;
    dst->wirelen = src->wirelen + start;
    dst->ts = src->ts + start;
    dst->ifindex = src->ifindex + start;
    dst->n = n;
    dst->cap = n;
    dst->first_seq = src->first_seq + start;
    dst->seq = src->seq ? src->seq + start : NULL;
    dst->tags = src->tags ? src->tags + start : NULL;
}

uint32_t mapi_batch_find_ts(const mapi_batch *b, uint32_t from, int64_t t_ns)
{
    for (uint32_t i = from; i < b->n; i++)
        if (b->ts[i] >= t_ns) return i;
    return b->n;
}

void mapi_free(void *p) { free(p); }

uint32_t mapi_tag_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                         uint32_t *out)
{
    const uint64_t mask = ((const mapi_tag_state *)state)->mask;
    uint32_t n = 0;
    if (!b->tags) return 0;
    for (uint32_t j = 0; j < nsel; j++)
        if (b->tags[sel[j]] & mask) out[n++] = sel[j];
    return n;
}

uint32_t mapi_pass_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                          uint32_t *out)
{
    (void)state; (void)b; (void)sel; (void)out;
    return nsel;
}

uint64_t mapi_sel_bytes(const mapi_batch *b, const uint32_t *sel, uint32_t nsel)
{
    uint64_t w = 0;
    for (uint32_t j = 0; j < nsel; j++) w += b->wirelen[sel[j]];
    return w;
}

void mapi_batch_sums(const mapi_batch *b, uint64_t *wire, uint64_t *captured)
{
    uint64_t w = 0, c = 0;
    for (uint32_t i = 0; i < b->n; i++) { w += b->wirelen[i]; c += b->caplen[i]; }
    *wire = w;
    *captured = c;
}
