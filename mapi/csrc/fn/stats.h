/* STATS sampled per packet of a PKT_COUNTER or BYTE_COUNTER (anchored right after it): count,
 * sum, sum of squares (128-bit, as two halves), min and max of the samples. */
#ifndef MAPI_FN_STATS_H
#define MAPI_FN_STATS_H
#include <stdint.h>
#include "../engine.h"
#include "bucket.h"

typedef struct mapi_stats {
    uint64_t value;          /* running copy of the counter (set from its result when joining) */
    uint32_t step;           /* MAPI_STEP_* */
    uint32_t delta;          /* 1: sample what each packet adds; 0: the counter after it */
    uint64_t count;
    uint64_t sum_lo, sum_hi;
    uint64_t sum2_lo, sum2_hi;
    uint64_t min, max;       /* meaningful once count > 0 */
} mapi_stats;

uint32_t mapi_stats_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                           uint32_t nsel, uint32_t *out);
#endif
