/* RECORD_TOP: the keys (one or several flow record fields) with the most records, packets or
 * bytes, in a hash table; batches of another link type leave it untouched. */
#ifndef MAPI_FN_RECORD_TOP_H
#define MAPI_FN_RECORD_TOP_H
#include <stdint.h>
#include "../engine.h"
#include "record_fields.h"

#define MAPI_RTOP_MAX_FIELDS 6
#define MAPI_RTOP_KEY_BYTES 72

/* how a field goes into the key */
#define MAPI_RTOP_NUMBER 1           /* 8 bytes, big-endian */
#define MAPI_RTOP_ADDRESS 2          /* family byte + 16 bytes; records without it are skipped */
#define MAPI_RTOP_BYTES 3            /* length byte + 16 bytes (MACs, extra elements) */
/* this address field and the next one, the smaller first (a conversation: both directions) */
#define MAPI_RTOP_PAIR 4
/* proto values: only transports with ports (TCP, UDP, SCTP), or 0 for the others */
#define MAPI_RTOP_PORTS 255
#define MAPI_RTOP_PORTS_OR_ZERO 254

typedef struct mapi_rtop_field {
    int32_t field;                   /* MAPI_RF_* */
    uint16_t ie;                     /* MAPI_RF_EXTRA: element id */
    uint8_t kind;                    /* MAPI_RTOP_* */
    uint8_t family;                  /* addresses: only this family (0: any) */
    uint8_t proto;                   /* only records of this protocol (0: any; MAPI_RTOP_PORTS...) */
    uint8_t _pad[3];
} mapi_rtop_field;

typedef struct mapi_rtop_item {
    uint8_t key[MAPI_RTOP_KEY_BYTES];
    uint64_t records, packets, bytes;
    uint8_t used;
    uint8_t _pad[7];
} mapi_rtop_item;
typedef struct mapi_rtop mapi_rtop;
mapi_rtop *mapi_rtop_new(const mapi_rtop_field *fields, uint32_t nfields, uint32_t max_entries);
void mapi_rtop_free(mapi_rtop *t);
/* bytes of a key of these fields (0: too many fields or bytes) */
uint32_t mapi_rtop_key_len(const mapi_rtop_field *fields, uint32_t nfields);
uint32_t mapi_rtop_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                          uint32_t *out);
/* metric: 0 records, 1 packets, 2 bytes; the x best (ties: more bytes, then the smaller key) */
uint32_t mapi_rtop_collect(mapi_rtop *t, uint32_t x, int32_t metric, mapi_rtop_item *items);
uint64_t mapi_rtop_overflow(mapi_rtop *t);
uint32_t mapi_rtop_size(mapi_rtop *t);
void mapi_rtop_reset(mapi_rtop *t);
#endif
