/* SAMPLE: periodic (1 in N by arrival index) or probabilistic (seeded splitmix64) selection. */
#ifndef MAPI_FN_SAMPLE_H
#define MAPI_FN_SAMPLE_H
#include <stdint.h>
#include "../engine.h"

#define MAPI_SAMPLE_PERIODIC 1
#define MAPI_SAMPLE_PROBABILISTIC 2

typedef struct mapi_sample_state {
    int32_t mode;            /* MAPI_SAMPLE_* */
    uint32_t _pad;
    uint64_t period;         /* periodic: keep index % period == 0 */
    uint64_t threshold;      /* probabilistic: keep when (draw >> 11) < threshold (2^53 = all) */
    uint64_t rng;            /* splitmix64 state: advanced once per packet that reaches us */
    uint64_t seen;           /* packets that reached the sampler */
    uint64_t kept;
    int64_t last_ts;         /* time of the last kept packet */
} mapi_sample_state;

void mapi_sample_init(mapi_sample_state *s, int32_t mode, uint64_t period, double percent,
                      uint64_t seed);
uint32_t mapi_sample_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                            uint32_t *out);
/* The draw splitmix64 gives for state `x` (after its increment), for tests and docs. */
uint64_t mapi_sample_splitmix64(uint64_t *x);
#endif
