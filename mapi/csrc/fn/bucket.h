/* Shared by the kernels that follow a PKT_COUNTER or BYTE_COUNTER packet by packet (THRESHOLD,
 * STATS, DIST): what one packet adds to the counter they watch. */
#ifndef MAPI_FN_BUCKET_H
#define MAPI_FN_BUCKET_H
#include <stdint.h>

#define MAPI_STEP_PACKETS 0      /* PKT_COUNTER: each packet adds 1 */
#define MAPI_STEP_WIRELEN 1      /* BYTE_COUNTER: each packet adds its wire length */

/* What a kernel sampling such a counter after each packet keeps of it (STATS, DIST). */
typedef struct mapi_counter_sampler {
    uint64_t value;          /* running copy of the counter (set from its result when joining) */
    uint32_t step;           /* MAPI_STEP_* */
    uint32_t delta;          /* 1: sample what each packet adds; 0: the counter after it */
} mapi_counter_sampler;

#endif
