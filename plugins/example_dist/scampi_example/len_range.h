/* LEN_RANGE's kernel: keep packets whose wire length is within [lo, hi]. */
#ifndef SCAMPI_EXAMPLE_LEN_RANGE_H
#define SCAMPI_EXAMPLE_LEN_RANGE_H
#include <stdint.h>
#include "engine.h"

typedef struct len_range { uint32_t lo, hi; } len_range;

uint32_t len_range_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                          uint32_t *out);
#endif
