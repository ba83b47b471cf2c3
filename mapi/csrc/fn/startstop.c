/* STARTSTOP kernel; see startstop.h. */
#include "startstop.h"

void mapi_startstop_set_ref(mapi_startstop_state *s, int64_t ts)
{
    if (!s->have_ref) {
        s->ref = ts;
        s->have_ref = 1;
    }
}

static int64_t bound(int32_t kind, int64_t v, int64_t ref, int64_t if_none)
{
    if (kind == MAPI_STARTSTOP_ABS) return v;
    if (kind == MAPI_STARTSTOP_REL) return ref + v;
    return if_none;
}

uint32_t mapi_startstop_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                               uint32_t nsel, uint32_t *out)
{
    mapi_startstop_state *s = state;
    if (b->n) mapi_startstop_set_ref(s, b->ts[0]);
    int64_t lo = bound(s->start_kind, s->start, s->ref, INT64_MIN);
    int64_t hi = bound(s->stop_kind, s->stop, s->ref, INT64_MAX);
    uint32_t n = 0;
    for (uint32_t j = 0; j < nsel; j++) {
        int64_t t = b->ts[sel[j]];
        if (t >= lo && t < hi) out[n++] = sel[j];
    }
    s->seen += nsel;
    s->passed += n;
    if (n) s->last_ts = b->ts[out[n - 1]];
    return n;
}
