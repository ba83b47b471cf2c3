/* A router's mirror port, emulated over batches: ACL rules on header fields (conjunctions of
 * conditions on packet loads, taken from BPF path analysis) and interface / ACL-entry counters.
 * Every packet of the mirrored link goes through the configured nodes; only packets some
 * software node needs cross the mirror port (the output batch), with per-packet tag bits. */
#ifndef SCAMPI_ROUTER_MIRROR_H
#define SCAMPI_ROUTER_MIRROR_H
#include <stdint.h>
#include "engine.h"

#define MAPI_ACL_ABS 0           /* packet[off] */
#define MAPI_ACL_IND 1           /* packet[4 * (packet[xbase] & 0xf) + off] */
#define MAPI_ACL_EQ 0            /* (v & mask) == k */
#define MAPI_ACL_GT 1
#define MAPI_ACL_GE 2
#define MAPI_ACL_SET 3           /* (v & k) != 0 */

#define MAPI_ROUTER_FILTER 1
#define MAPI_ROUTER_COUNTER 2
#define MAPI_ROUTER_MAX_NODES 64

typedef struct mapi_acl_cond {
    uint8_t kind;
    uint8_t size;                /* 1, 2 or 4 bytes */
    uint8_t op;
    uint8_t xbase;
    uint32_t off;
    uint32_t mask;
    uint32_t k;
    uint8_t negate;              /* the condition must not hold (the load must still succeed) */
    uint8_t _pad[3];
} mapi_acl_cond;

typedef struct mapi_acl_rule {
    uint32_t first;              /* index of its first condition */
    uint32_t n;                  /* conditions, all must hold (0: any packet) */
} mapi_acl_rule;

typedef struct mapi_router_node {
    int32_t kind;                /* MAPI_ROUTER_FILTER or MAPI_ROUTER_COUNTER */
    int32_t parent;              /* node whose packets it sees, -1: the whole link */
    uint32_t first_rule;         /* filters: rules [first_rule, first_rule + nrules) */
    uint32_t nrules;
    int32_t deliver;             /* its packets must cross the mirror */
    uint32_t _pad;
    uint64_t packets;            /* packets that passed (filters) or were counted (counters) */
    uint64_t bytes;              /* wire bytes of those */
    int64_t last_ts;
} mapi_router_node;

typedef struct mapi_router {
    mapi_router_node nodes[MAPI_ROUTER_MAX_NODES];
    uint32_t nnodes;
    int32_t deliver_all;
    const mapi_acl_rule *rules;
    const mapi_acl_cond *conds;
    uint64_t link_packets;       /* every packet of the mirrored link */
    uint64_t link_bytes;
    uint64_t mirror_packets;     /* those that crossed the mirror port */
    uint64_t mirror_bytes;
} mapi_router;

/* Run the router over `in`; `out` gets the packets that cross (arrays of in->n entries given by
 * the caller: off, caplen, wirelen, ts, ifindex, seq, tags).  Returns out->n. */
uint32_t mapi_router_process(mapi_router *r, const mapi_batch *in, mapi_batch *out);
#endif
