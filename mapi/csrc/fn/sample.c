/* SAMPLE kernel; see sample.h. */
#include "sample.h"
#include "../rng.h"

uint64_t mapi_sample_splitmix64(uint64_t *x)
{
    return mapi_splitmix64(x);
}

void mapi_sample_init(mapi_sample_state *s, int32_t mode, uint64_t period, double percent,
                      uint64_t seed)
{
    s->mode = mode;
    s->period = period ? period : 1;
    /* percent of 2^53, so 100 % keeps every draw and 0 % none */
    const double all = 9007199254740992.0;      /* 2^53 */
    double t = percent / 100.0 * all;
    if (!(t > 0)) t = 0;
    if (t > all) t = all;
    s->threshold = (uint64_t)(t + 0.5);
    s->rng = seed;
    s->seen = s->kept = 0;
    s->last_ts = 0;
}

uint32_t mapi_sample_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                            uint32_t *out)
{
    mapi_sample_state *s = state;
    uint32_t n = 0;
    if (s->mode == MAPI_SAMPLE_PERIODIC) {
        uint64_t p = s->period;
        /* first index >= seen that is a multiple of p, then every p-th */
        uint64_t next = (s->seen + p - 1) / p * p;
        uint64_t j = next - s->seen;
        for (; j < nsel; j += p) out[n++] = sel[j];
        s->seen += nsel;
    } else {
        uint64_t x = s->rng, thr = s->threshold;
        for (uint32_t j = 0; j < nsel; j++)
            if ((mapi_splitmix64(&x) >> 11) < thr) out[n++] = sel[j];
        s->rng = x;
        s->seen += nsel;
    }
    s->kept += n;
    if (n) s->last_ts = b->ts[out[n - 1]];
    return n;
}
