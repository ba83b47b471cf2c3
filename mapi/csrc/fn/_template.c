/* TEMPLATE_BAND's kernel; see _template.h.  Runs in the engine's processor thread with the GIL
 * released, once per batch and node: no Python, no allocation, no blocking here. */
#include "_template.h"

uint32_t mapi_template_band_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                                   uint32_t nsel, uint32_t *out)
{
    mapi_template_band *s = state;
    uint32_t n = 0;
    uint64_t bytes = 0;
    for (uint32_t j = 0; j < nsel; j++) {
        uint32_t i = sel[j], w = b->wirelen[i];
        if (w >= s->lo && w <= s->hi) {
            out[n++] = i;
            bytes += w;
        }
    }
    s->seen += nsel;
    s->packets += n;
    s->bytes += bytes;
    if (n) s->last_ts = b->ts[out[n - 1]];
    return n;
}
