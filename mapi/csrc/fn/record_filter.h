/* RECORD_FILTER: a filter on flow record fields, a small stack program compiled (in Python) from
 * nfdump's filter syntax ("proto tcp and dst port 443").  Batches of another link type pass with
 * nothing kept. */
#ifndef MAPI_FN_RECORD_FILTER_H
#define MAPI_FN_RECORD_FILTER_H
#include <stdint.h>
#include "../engine.h"
#include "record_fields.h"

/* instructions */
#define MAPI_RF_CMP 1                /* push (field cmp value/addr) */
#define MAPI_RF_AND 2
#define MAPI_RF_OR 3
#define MAPI_RF_NOT 4
#define MAPI_RF_TRUE 5

/* comparisons */
#define MAPI_RF_EQ 1
#define MAPI_RF_NE 2
#define MAPI_RF_LT 3
#define MAPI_RF_LE 4
#define MAPI_RF_GT 5
#define MAPI_RF_GE 6
#define MAPI_RF_ANY 7                /* (value & k) != 0 */
#define MAPI_RF_IN 8                 /* address in addr/plen of family `family` */
#define MAPI_RF_ALL 9                /* (value & k) == k (nfdump's "flags SA") */
#define MAPI_RF_BYTES_EQ 10          /* a byte field equals addr[0..blen) */
#define MAPI_RF_PRESENT 11           /* the extra element was exported */

#define MAPI_RF_MAX_STACK 64

typedef struct mapi_rf_insn {
    uint8_t op;
    uint8_t field;
    uint8_t cmp;
    uint8_t plen;                    /* prefix length for MAPI_RF_IN */
    uint8_t family;                  /* 4 or 6 for MAPI_RF_IN */
    uint8_t blen;                    /* bytes of addr compared by MAPI_RF_BYTES_EQ */
    uint16_t ie;                     /* MAPI_RF_EXTRA: the element id */
    uint64_t value;
    uint8_t addr[16];
} mapi_rf_insn;

typedef struct mapi_rf_state {
    const mapi_rf_insn *prog;
    uint32_t n;
    uint32_t _pad;
    uint64_t other_linktype;         /* packets of batches that were not flow records */
} mapi_rf_state;

uint32_t mapi_rf_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                        uint32_t *out);
/* 1 if record r (caplen bytes with its extra elements) passes the program */
int mapi_rf_eval_len(const mapi_rf_state *st, const void *record, uint32_t caplen);
/* the same for a fixed record without extra elements */
int mapi_rf_eval(const mapi_rf_state *st, const void *record);
#endif
