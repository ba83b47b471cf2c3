/* RECORD_COUNTER; see record_counter.h. */
#include "record_counter.h"

uint32_t mapi_rsum_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                          uint32_t *out)
{
    mapi_rsum_state *s = state;
    (void)out;
    if (b->linktype != MAPI_LINKTYPE_FLOWREC) return nsel;
    for (uint32_t j = 0; j < nsel; j++) {
        if (b->caplen[sel[j]] < sizeof(mapi_flowrec)) continue;
        const mapi_flowrec *r = (const mapi_flowrec *)(b->base + b->off[sel[j]]);
        uint64_t k = r->sampling > 1 ? r->sampling : 1;
        s->records++;
        s->packets += r->packets;
        s->bytes += r->bytes;
        s->out_packets += r->out_packets;
        s->out_bytes += r->out_bytes;
        s->scaled_packets += (r->packets + r->out_packets) * k;
        s->scaled_bytes += (r->bytes + r->out_bytes) * k;
        s->last_ts = b->ts[sel[j]];
    }
    return nsel;
}
