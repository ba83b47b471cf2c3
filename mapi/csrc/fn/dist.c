/* DIST per packet: samples are unsigned counts, bounds signed; compare in 128 bits. */
#include <stdint.h>
#include "../engine.h"
#include "dist.h"

uint32_t mapi_dist_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                          uint32_t nsel, uint32_t *out)
{
    (void)out;
    mapi_dist *d = state;
    uint64_t value = d->counter.value;
    const int bytes = d->counter.step == MAPI_STEP_WIRELEN;
    const __int128 lo = d->min, hi = d->max;
    for (uint32_t j = 0; j < nsel; j++) {
        uint64_t inc = bytes ? b->wirelen[sel[j]] : 1;
        value += inc;
        __int128 x = d->counter.delta ? inc : value;
        if (x < lo) d->under++;
        else if (x >= hi) d->over++;
        else d->bins[(uint64_t)((x - lo) / d->width)]++;
    }
    d->counter.value = value;
    return nsel;
}
