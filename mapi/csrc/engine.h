/*
 * The batch engine's C ABI: what a packet source hands over and what a function kernel gets.
 *
 * A batch is a run of packets that stay where the source put them (a mmapped file window or a
 * read buffer); nothing is copied to give packets to functions.  Functions see a *selection
 * vector*: the indices (into the batch) of the packets that reached them.  A filter writes the
 * indices it keeps into its own output vector; every other function passes its input on as is.
 * One call to mapi_plan_run() drives every node of every flow of a device over one batch.
 */
#ifndef MAPI_ENGINE_H
#define MAPI_ENGINE_H
#include <stdint.h>
#include <stddef.h>

typedef struct mapi_batch {
    const uint8_t *base;   /* packet i's bytes are base + off[i] .. + caplen[i] */
    uint64_t *off;
    uint32_t *caplen;
    uint32_t *wirelen;
    int64_t  *ts;          /* nanoseconds since the epoch */
    uint16_t *ifindex;     /* capture interface (pcapng IDB index, ERF port); 0 otherwise */
    uint32_t n;            /* packets in the batch */
    uint32_t cap;          /* room in the arrays */
    int32_t  linktype;     /* LINKTYPE_* shared by every packet of the batch */
    uint32_t _pad;
    uint64_t first_seq;    /* device-wide 0-based index of packet 0 */
    uint64_t *seq;         /* per-packet device index when packets were skipped (an emulated
                              card delivers only what crossed its bus); NULL: first_seq + i */
    uint64_t *tags;        /* per-packet bits set by hardware units (bit b: the packet passed
                              hardware node b); NULL when no hardware ran */
    int64_t  clock_ns;     /* live devices: in a batch without packets, the time (ns since the
                              epoch, the device clock) that passed; producers expire what they
                              hold on it.  0 otherwise (offline, time is packet time only) */
} mapi_batch;

/*
 * A function kernel.  `sel` holds `nsel` ascending packet indices.  A filtering kernel writes
 * the indices it keeps to `out` (in order) and returns how many; `out` never aliases `sel`.
 * A non-filtering kernel gets out == sel, must not write it, and returns nsel.
 */
typedef uint32_t (*mapi_kernel_fn)(void *state, const mapi_batch *b,
                                   const uint32_t *sel, uint32_t nsel, uint32_t *out);

/*
 * Derived batches.  A function that makes packets of its own (reassembled datagrams, stream
 * chunks, flow records, modified copies) is a *producer*: its node has `made`, a batch its state
 * owns.  Its kernel is called for every batch (also when nothing reached it, so it can release
 * what it holds as time passes), fills `made` and returns made->n (at most the plan's slot
 * capacity); `out` is then not written by the kernel.  The node's children read `made`, with
 * every packet of it selected; it stays valid until the producer's next call.  A derived batch
 * may mix packets of its input with bytes of its own: off[i] is then relative to base with
 * 64-bit wrap-around.  At the end of the stream `drain` puts what the producer still holds into
 * `made` (returns its n; 0 when nothing is left) and the children run again.
 */
typedef uint32_t (*mapi_drain_fn)(void *state);

typedef struct mapi_node {
    mapi_kernel_fn fn;     /* NULL: a node run from Python between plan segments */
    void *state;
    int32_t in_slot;       /* selection vector read; slot 0 holds every packet */
    int32_t out_slot;      /* == in_slot for nodes that do not filter */
    uint64_t pkts_in;      /* hit counters, read by explain() */
    uint64_t pkts_out;
    mapi_batch *made;      /* producer: the batch its kernel fills; NULL otherwise */
    mapi_drain_fn drain;   /* producer: end-of-stream release (may be NULL) */
    int32_t in_batch;      /* batch read: 0 the device's, k the one node k-1 made */
    int32_t out_batch;     /* == in_batch unless the node is a producer */
    uint32_t subtree_end;  /* index after the last node of this node's subtree */
    uint32_t _pad;
    uint64_t bytes_in;     /* wire bytes in and out, counted only when the plan's count_bytes */
    uint64_t bytes_out;
} mapi_node;

typedef struct mapi_plan {
    mapi_node *nodes;
    uint32_t nnodes;
    uint32_t nslots;
    uint32_t **slots;      /* nslots vectors of slot_cap indices */
    uint32_t *slot_n;      /* current length of each slot */
    uint32_t slot_cap;
    const mapi_batch **batches;  /* nnodes + 1: [0] the device's batch, [k] made by node k-1 */
    uint32_t count_bytes;  /* nonzero: nodes also count wire bytes (a server's metrics); off by
                              default, it costs a pass over each selection */
    uint32_t _pad;
} mapi_plan;

/* Plans */
mapi_plan *mapi_plan_new(uint32_t nnodes, uint32_t nslots, uint32_t slot_cap);
void mapi_plan_free(mapi_plan *p);
/* Fill slot 0 with 0..b->n-1 (call once per batch before the first segment). */
int mapi_plan_begin(mapi_plan *p, const mapi_batch *b);
/* Run nodes [from, to) over the batch; stops early at a node whose fn is NULL and returns its
 * index (the caller runs it and continues from index+1); returns `to` when done, -1 on error. */
int64_t mapi_plan_run(mapi_plan *p, const mapi_batch *b, uint32_t from, uint32_t to);
/* End of stream: let producer node i put what it holds into its batch and select all of it;
 * returns how many packets (run nodes [i+1, subtree_end) next), 0 when it holds nothing more,
 * -1 when node i is not a producer or made too many. */
int64_t mapi_plan_drain(mapi_plan *p, uint32_t i);
/* The batch node i reads (the device's batch b for in_batch 0). */
const mapi_batch *mapi_plan_input(mapi_plan *p, uint32_t i, const mapi_batch *b);
/* Move the hit counters out, between two batches: out[4i .. 4i+3] = pkts_in, pkts_out,
 * bytes_in, bytes_out of node i, whose counters are then zero (a plan being replaced hands its
 * counts to the graph's nodes once, in one call instead of a field access per counter). */
void mapi_plan_take_counters(mapi_plan *p, uint64_t *out);

/* Batches */
mapi_batch *mapi_batch_new(uint32_t cap);
void mapi_batch_free(mapi_batch *b);
/* A view of packets [start, start+n) of `src` (shares the arrays; no copy). */
void mapi_batch_slice(const mapi_batch *src, uint32_t start, uint32_t n, mapi_batch *dst);
/* First index i >= from with ts[i] >= t_ns, or b->n if none (used to cut batches at ticks). */
uint32_t mapi_batch_find_ts(const mapi_batch *b, uint32_t from, int64_t t_ns);

/* Hardware proxies: a node the mapper placed in hardware keeps a software stand-in.  State is a
 * mapi_tag_state; the filter keeps packets whose tag bit is set. */
typedef struct mapi_tag_state { uint64_t mask; } mapi_tag_state;
uint32_t mapi_tag_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                         uint32_t *out);
uint32_t mapi_pass_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                          uint32_t *out);

/* Wire bytes of the selected packets of a batch (a node's byte counters). */
uint64_t mapi_sel_bytes(const mapi_batch *b, const uint32_t *sel, uint32_t nsel);

/* Sums of wire and captured lengths of a batch (device statistics). */
void mapi_batch_sums(const mapi_batch *b, uint64_t *wire, uint64_t *captured);

/* Free memory the engine allocated for Python (compiled programs, ...). */
void mapi_free(void *p);

#endif
