/* RECORD_COUNTER: exact 64-bit sums of flow records' counters; batches of another link type
 * leave it untouched. */
#ifndef MAPI_FN_RECORD_COUNTER_H
#define MAPI_FN_RECORD_COUNTER_H
#include <stdint.h>
#include "../engine.h"
#include "../flowrec.h"

typedef struct mapi_rsum_state {
    uint64_t records;
    uint64_t packets, bytes;
    uint64_t out_packets, out_bytes;
    uint64_t scaled_packets, scaled_bytes;     /* times each record's sampling interval */
    int64_t last_ts;
} mapi_rsum_state;
uint32_t mapi_rsum_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                          uint32_t *out);
#endif
