/* THRESHOLD on a PKT_COUNTER or BYTE_COUNTER: the kernel hangs right after the counter (anchored
 * node), keeps its own running copy of the count and finds the very packet that crosses. */
#ifndef MAPI_FN_THRESHOLD_H
#define MAPI_FN_THRESHOLD_H
#include <stdint.h>
#include "../engine.h"
#include "bucket.h"

#define MAPI_THRESHOLD_NONE 0        /* judged from Python at interval ends only */
#define MAPI_THRESHOLD_GREATER 1     /* the packet after which the value first exceeds */
#define MAPI_THRESHOLD_EQUAL 2       /* the packet after which the value equals */
#define MAPI_THRESHOLD_EVENTS 1024   /* events kept between two drains from Python */

typedef struct mapi_threshold_event {
    int64_t ts;              /* timestamp of the crossing packet (ns) */
    int64_t value;           /* the watched value after it (relative to `base`) */
    uint64_t seq;            /* device-wide index of the packet */
} mapi_threshold_event;

typedef struct mapi_threshold {
    uint64_t value;          /* running copy of the counter (set from its result when joining) */
    uint64_t base;           /* counter value at the start of the current interval; 0: level */
    int64_t threshold;
    uint32_t step;           /* MAPI_STEP_* */
    uint32_t kind;           /* MAPI_THRESHOLD_* */
    uint64_t remaining;      /* events still allowed (UINT64_MAX: no limit) */
    uint64_t dropped;        /* events lost because the buffer was full */
    uint32_t nevents;
    uint32_t _pad;
    mapi_threshold_event events[MAPI_THRESHOLD_EVENTS];
} mapi_threshold;

uint32_t mapi_threshold_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                               uint32_t nsel, uint32_t *out);
#endif
