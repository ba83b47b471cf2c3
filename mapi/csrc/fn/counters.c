/* PKT_COUNTER and BYTE_COUNTER kernels: count what reaches them (bytes = wire length). */
#include "../engine.h"
#include "counters.h"

uint32_t mapi_pkt_counter_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                                 uint32_t nsel, uint32_t *out)
{
    (void)out;
    mapi_counter *c = state;
    c->value += nsel;
    c->last_ts = b->ts[sel[nsel - 1]];
    return nsel;
}

uint32_t mapi_byte_counter_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                                  uint32_t nsel, uint32_t *out)
{
    (void)out;
    mapi_counter *c = state;
    uint64_t sum = 0;
    for (uint32_t j = 0; j < nsel; j++) sum += b->wirelen[sel[j]];
    c->value += sum;
    c->last_ts = b->ts[sel[nsel - 1]];
    return nsel;
}
