/* DIST sampled per packet of a PKT_COUNTER or BYTE_COUNTER (anchored right after it): a
 * histogram of equal bins over [min, max), plus counts below min and at or above max. */
#ifndef MAPI_FN_DIST_H
#define MAPI_FN_DIST_H
#include <stdint.h>
#include "../engine.h"
#include "bucket.h"

typedef struct mapi_dist {
    mapi_counter_sampler counter;   /* the counter sampled */
    int64_t min;
    int64_t max;
    uint64_t width;          /* bin k holds [min + k*width, min + (k+1)*width) */
    uint64_t nbins;
    uint64_t under;          /* samples < min */
    uint64_t over;           /* samples >= max */
    uint64_t *bins;          /* nbins counters (memory owned by the Python instance) */
} mapi_dist;

uint32_t mapi_dist_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                          uint32_t nsel, uint32_t *out);
#endif
