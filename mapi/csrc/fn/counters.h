/* PKT_COUNTER, BYTE_COUNTER */
#ifndef MAPI_FN_COUNTERS_H
#define MAPI_FN_COUNTERS_H
#include <stdint.h>
#include "../engine.h"

typedef struct mapi_counter { uint64_t value; int64_t last_ts; } mapi_counter;
uint32_t mapi_pkt_counter_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                                 uint32_t nsel, uint32_t *out);
uint32_t mapi_byte_counter_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                                  uint32_t nsel, uint32_t *out);
#endif
