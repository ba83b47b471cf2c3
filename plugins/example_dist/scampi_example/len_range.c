/* LEN_RANGE's kernel; see len_range.h.  A filter: it writes the indices it keeps to `out`. */
#include "len_range.h"

uint32_t len_range_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                          uint32_t *out)
{
    const len_range *r = state;
    uint32_t n = 0;
    for (uint32_t j = 0; j < nsel; j++) {
        uint32_t w = b->wirelen[sel[j]];
        if (w >= r->lo && w <= r->hi) out[n++] = sel[j];
    }
    return n;
}
