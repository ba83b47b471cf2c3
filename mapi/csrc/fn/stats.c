/* STATS per packet: exact integer moments (128-bit sums, so squares of byte counts never wrap). */
#include <stdint.h>
#include "../engine.h"
#include "stats.h"

uint32_t mapi_stats_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                           uint32_t nsel, uint32_t *out)
{
    (void)out;
    mapi_stats *s = state;
    unsigned __int128 sum = ((unsigned __int128)s->sum_hi << 64) | s->sum_lo;
    unsigned __int128 sum2 = ((unsigned __int128)s->sum2_hi << 64) | s->sum2_lo;
    uint64_t value = s->counter.value, lo = s->min, hi = s->max;
    if (s->count == 0) { lo = UINT64_MAX; hi = 0; }
    const int bytes = s->counter.step == MAPI_STEP_WIRELEN;
    for (uint32_t j = 0; j < nsel; j++) {
        uint64_t inc = bytes ? b->wirelen[sel[j]] : 1;
        value += inc;
        uint64_t x = s->counter.delta ? inc : value;
        sum += x;
        sum2 += (unsigned __int128)x * x;
        if (x < lo) lo = x;
        if (x > hi) hi = x;
    }
    s->counter.value = value;
    s->count += nsel;
    s->sum_lo = (uint64_t)sum; s->sum_hi = (uint64_t)(sum >> 64);
    s->sum2_lo = (uint64_t)sum2; s->sum2_hi = (uint64_t)(sum2 >> 64);
    s->min = lo; s->max = hi;
    return nsel;
}
