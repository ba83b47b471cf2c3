/* Kernels over flow records (mapi_flowrec, link type MAPI_LINKTYPE_FLOWREC): a filter on
 * record fields (a small stack program compiled from "proto=6 and dport=443"), exact 64-bit sums
 * of the records' counters, top-X by a record field, and a report writer (CSV lines or IPFIX
 * messages).  Batches of another link type pass the filter with nothing kept and leave the
 * other kernels untouched. */
#ifndef MAPI_LIVE_RECORDS_H
#define MAPI_LIVE_RECORDS_H
#include <stdint.h>
#include "engine.h"

/* fields */
#define MAPI_RF_PROTO 1
#define MAPI_RF_SPORT 2
#define MAPI_RF_DPORT 3
#define MAPI_RF_SRC 4
#define MAPI_RF_DST 5
#define MAPI_RF_NEXTHOP 6
#define MAPI_RF_EXPORTER 7
#define MAPI_RF_PACKETS 8
#define MAPI_RF_BYTES 9
#define MAPI_RF_OUT_PACKETS 10
#define MAPI_RF_OUT_BYTES 11
#define MAPI_RF_TOS 12
#define MAPI_RF_TCP_FLAGS 13
#define MAPI_RF_INPUT 14
#define MAPI_RF_OUTPUT 15
#define MAPI_RF_SRC_AS 16
#define MAPI_RF_DST_AS 17
#define MAPI_RF_SRC_MASK 18
#define MAPI_RF_DST_MASK 19
#define MAPI_RF_VLAN 20
#define MAPI_RF_DIRECTION 21
#define MAPI_RF_VERSION 22
#define MAPI_RF_DOMAIN 23
#define MAPI_RF_TEMPLATE 24
#define MAPI_RF_SAMPLING 25
#define MAPI_RF_FAMILY 26
#define MAPI_RF_DURATION 27          /* ms; last - first */
#define MAPI_RF_ICMP_TYPE 28
#define MAPI_RF_ICMP_CODE 29
#define MAPI_RF_NFIELDS 30

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

#define MAPI_RF_MAX_STACK 64

typedef struct mapi_rf_insn {
    uint8_t op;
    uint8_t field;
    uint8_t cmp;
    uint8_t plen;                    /* prefix length for MAPI_RF_IN */
    uint8_t family;                  /* 4 or 6 for MAPI_RF_IN */
    uint8_t _pad[3];
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
/* 1 if record r passes the program (used by tests and the report writer's self-check) */
int mapi_rf_eval(const mapi_rf_state *st, const void *record);

/* exact sums over records */
typedef struct mapi_rsum_state {
    uint64_t records;
    uint64_t packets, bytes;
    uint64_t out_packets, out_bytes;
    uint64_t scaled_packets, scaled_bytes;     /* times each record's sampling interval */
    int64_t last_ts;
} mapi_rsum_state;
uint32_t mapi_rsum_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                          uint32_t *out);

/* top-X by a record field */
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

/* report writer: CSV lines to a file descriptor, or IPFIX messages (to a connected UDP socket
 * or a file: one write per message) */
#define MAPI_RREP_CSV 1
#define MAPI_RREP_IPFIX 2
typedef struct mapi_rrep mapi_rrep;
mapi_rrep *mapi_rrep_new(int32_t format, int32_t fd, uint32_t domain, uint32_t mtu);
void mapi_rrep_free(mapi_rrep *r);
uint32_t mapi_rrep_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                          uint32_t *out);
/* send/write what is buffered; returns -1 with errno-like code in *err on a write error */
int mapi_rrep_flush(mapi_rrep *r, int32_t *err);
void mapi_rrep_counts(mapi_rrep *r, uint64_t *records, uint64_t *messages, uint64_t *bytes,
                      uint64_t *errors);
#endif
