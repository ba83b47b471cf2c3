/* What a classic BPF program does, found before native code is emitted for it (dataflow over
 * its jumps, backward ones included): registers read before written, scratch words read before
 * stored, packet bytes every path has bounds-checked already, and an order for its blocks. */
#ifndef MAPI_BPF_FLOW_H
#define MAPI_BPF_FLOW_H
#include <stdint.h>
#include "bpf.h"

enum { MAPI_BPF_LIVE_A = 1, MAPI_BPF_LIVE_X = 2 };

typedef struct mapi_bpf_flow {
    uint16_t zeroed;       /* scratch words some path reads before storing them */
    uint8_t entry_live;    /* A and X some path reads before writing them */
    uint8_t packet;        /* the program reads packet bytes */
    uint8_t *live_out;     /* per instruction: A/X read later without being written first */
    uint8_t *target;       /* per instruction: some jump (conditional fall-through too) lands on it */
    uint32_t *known;       /* per instruction: captured bytes every path to it has checked */
    uint8_t *leader;       /* per instruction: a block starts here */
    uint32_t *order;       /* block starts, in the order to emit them */
    uint32_t nblocks;
} mapi_bpf_flow;

/* Bytes a packet load reads (0: not a packet load). */
uint32_t mapi_bpf_load_size(uint16_t code);
/* 0, or -1 out of memory.  Free with mapi_bpf_flow_free. */
int mapi_bpf_flow_analyse(const mapi_bpf_insn *p, uint32_t n, mapi_bpf_flow *f);
void mapi_bpf_flow_free(mapi_bpf_flow *f);
#endif
