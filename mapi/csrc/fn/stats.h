/* STATS sampled per packet of a PKT_COUNTER or BYTE_COUNTER (anchored right after it): count,
 * sum, sum of squares (128-bit, as two halves), min and max of the samples. */
#ifndef MAPI_FN_STATS_H
#define MAPI_FN_STATS_H
#include <stdint.h>
#include "../engine.h"
#include "bucket.h"

typedef struct mapi_stats {
    mapi_counter_sampler counter;   /* the counter sampled */
    uint64_t count;
    uint64_t sum_lo, sum_hi;
    uint64_t sum2_lo, sum2_hi;
    uint64_t min, max;       /* meaningful once count > 0 */
} mapi_stats;

uint32_t mapi_stats_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                           uint32_t nsel, uint32_t *out);
#endif
