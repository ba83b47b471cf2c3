/* RECORD_TOP: the values of a flow record field with the most records, packets or bytes, in a
 * hash table; batches of another link type leave it untouched. */
#ifndef MAPI_FN_RECORD_TOP_H
#define MAPI_FN_RECORD_TOP_H
#include <stdint.h>
#include "../engine.h"
#include "record_fields.h"

typedef struct mapi_rtop_item {
    uint8_t key[16];
    uint8_t family;                  /* 4/6 for address keys, 0 for numbers (in key[0..7]) */
    uint8_t _pad[7];
    uint64_t records, packets, bytes;
} mapi_rtop_item;
typedef struct mapi_rtop mapi_rtop;
mapi_rtop *mapi_rtop_new(int32_t field, uint32_t max_entries);
void mapi_rtop_free(mapi_rtop *t);
uint32_t mapi_rtop_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                          uint32_t *out);
/* metric: 0 records, 1 packets, 2 bytes; the x best (ties: more bytes, then the smaller key) */
uint32_t mapi_rtop_collect(mapi_rtop *t, uint32_t x, int32_t metric, mapi_rtop_item *items);
uint64_t mapi_rtop_overflow(mapi_rtop *t);
uint32_t mapi_rtop_size(mapi_rtop *t);
void mapi_rtop_reset(mapi_rtop *t);
#endif
