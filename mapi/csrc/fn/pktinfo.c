/* PKTINFO kernel; see pktinfo.h. */
#include "pktinfo.h"

uint32_t mapi_pktinfo_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                             uint32_t nsel, uint32_t *out)
{
    (void)out;
    mapi_pktinfo_state *s = state;
    uint32_t i = sel[nsel - 1];
    switch (s->field) {
    case MAPI_PKTINFO_TS: s->value = (uint64_t)b->ts[i]; break;
    case MAPI_PKTINFO_SIZE: s->value = b->wirelen[i]; break;
    case MAPI_PKTINFO_CAPLEN: s->value = b->caplen[i]; break;
    default: break;
    }
    s->packets += nsel;
    s->last_ts = b->ts[i];
    return nsel;
}
