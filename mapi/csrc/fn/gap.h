/* GAP: time between the last two packets that reached it, in ns (packet time). */
#ifndef MAPI_FN_GAP_H
#define MAPI_FN_GAP_H
#include <stdint.h>
#include "../engine.h"

typedef struct mapi_gap_state {
    int64_t gap;                 /* ts(last) - ts(previous); negative if time went backwards */
    int64_t last_ts;
    uint64_t packets;            /* packets seen (< 2: no gap yet) */
} mapi_gap_state;

uint32_t mapi_gap_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                         uint32_t *out);
#endif
