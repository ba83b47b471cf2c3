/* The batch a producer makes (engine.h, "Derived batches"): arrays of its own plus an arena for
 * the bytes it writes; packets of its input can be handed on without a copy.  Filled during one
 * kernel call (begin .. add/pass .. finish) and valid until the next begin. */
#ifndef MAPI_FN_OUTBATCH_H
#define MAPI_FN_OUTBATCH_H
#include <stdint.h>
#include <stddef.h>
#include "../engine.h"

typedef struct mapi_outbatch_pend mapi_outbatch_pend;

typedef struct mapi_outbatch {
    mapi_batch b;            /* what the children read; b.seq always set */
    uint8_t *arena;          /* bytes the producer wrote */
    size_t used, size;
    uint64_t *aoff;          /* per packet: arena offset + 1, 0 for a packet of the input,
                                UINT64_MAX for bytes elsewhere (ref) */
    mapi_outbatch_pend *phead, *ptail;   /* packets made while the batch was full */
    uint64_t backlog;        /* how many of them */
} mapi_outbatch;

/* cap packets (at most the plan's slot capacity); arena_size initial bytes (grows as needed). */
int mapi_outbatch_init(mapi_outbatch *o, uint32_t cap, size_t arena_size, int32_t linktype);
void mapi_outbatch_release(mapi_outbatch *o);
/* Start a new batch; `in` (may be NULL) is the batch whose packets pass() hands on (and whose
 * clock_ns the new batch carries).  Packets that waited for room (put) come first. */
void mapi_outbatch_begin(mapi_outbatch *o, const mapi_batch *in);
/* Like add, but when the batch is full the packet waits for the next batch (in order); NULL
 * only when memory ran out. */
uint8_t *mapi_outbatch_put(mapi_outbatch *o, uint32_t len, uint32_t wirelen, int64_t ts,
                           uint64_t seq, uint16_t ifindex);
/* Room for one more packet? */
int mapi_outbatch_full(const mapi_outbatch *o);
/* Append a packet of len bytes written by the producer; returns where to write them (valid
 * until the next add), or NULL when the batch is full or memory ran out. */
uint8_t *mapi_outbatch_add(mapi_outbatch *o, uint32_t len, uint32_t wirelen, int64_t ts,
                           uint64_t seq, uint16_t ifindex);
/* Hand on len bytes at p that the producer keeps valid until its next call (no copy); 0, or
 * -1 when full. */
int mapi_outbatch_ref(mapi_outbatch *o, const uint8_t *p, uint32_t len, uint32_t wirelen,
                      int64_t ts, uint64_t seq, uint16_t ifindex);
/* Hand on packet i of the input as it is; 0, or -1 when full. */
int mapi_outbatch_pass(mapi_outbatch *o, const mapi_batch *in, uint32_t i);
/* Shorten the last packet added to len bytes (never longer). */
void mapi_outbatch_trim(mapi_outbatch *o, uint32_t len);
/* Fix the offsets once every packet is in; returns b.n. */
uint32_t mapi_outbatch_finish(mapi_outbatch *o);
/* Device index of packet i of a batch. */
uint64_t mapi_batch_seq(const mapi_batch *b, uint32_t i);
#endif
