/* GAP kernel; see gap.h. */
#include "gap.h"

uint32_t mapi_gap_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                         uint32_t *out)
{
    (void)out;
    mapi_gap_state *s = state;
    int64_t last = b->ts[sel[nsel - 1]];
    /* the packet before the last one: in this batch, or the last of an earlier batch */
    int64_t prev = nsel >= 2 ? b->ts[sel[nsel - 2]] : s->last_ts;
    if (s->packets + nsel >= 2) s->gap = last - prev;
    s->last_ts = last;
    s->packets += nsel;
    return nsel;
}
