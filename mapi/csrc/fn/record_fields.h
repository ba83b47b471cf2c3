/* The fields of a flow record (mapi_flowrec and the extra elements after it) that RECORD_FILTER
 * tests and RECORD_TOP ranks: numbers (protocol, ports, counters, interfaces...), addresses
 * (source, destination, next hop, exporter, NAT, BGP next hop), byte strings (MAC addresses),
 * and any extra element by its IANA element id. */
#ifndef MAPI_FN_RECORD_FIELDS_H
#define MAPI_FN_RECORD_FIELDS_H
#include <stdint.h>
#include "../flowrec.h"

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
#define MAPI_RF_DURATION 27          /* ms; last - first (0 when not both exported) */
#define MAPI_RF_ICMP_TYPE 28
#define MAPI_RF_ICMP_CODE 29
#define MAPI_RF_ENGINE_TYPE 30
#define MAPI_RF_ENGINE_ID 31
#define MAPI_RF_DST_TOS 32
#define MAPI_RF_NAT_EVENT 33
#define MAPI_RF_END_REASON 34
#define MAPI_RF_DST_VLAN 35
#define MAPI_RF_NAT_SPORT 36
#define MAPI_RF_NAT_DPORT 37
#define MAPI_RF_MPLS_LABEL1 38       /* the top label's 20-bit value */
#define MAPI_RF_INGRESS_VRF 39
#define MAPI_RF_EGRESS_VRF 40
#define MAPI_RF_APP_ID 41
#define MAPI_RF_NAT_SRC 42
#define MAPI_RF_NAT_DST 43
#define MAPI_RF_BGP_NEXTHOP 44
#define MAPI_RF_SRC_MAC 45           /* 6 bytes */
#define MAPI_RF_DST_MAC 46
#define MAPI_RF_BPP 47               /* bytes / packets */
#define MAPI_RF_PPS 48               /* packets per second over the duration (0: duration 0) */
#define MAPI_RF_BPS 49               /* bits per second over the duration */
#define MAPI_RF_FIRST 50             /* ms since the epoch */
#define MAPI_RF_LAST 51
#define MAPI_RF_MPLS_EXP1 52         /* the top label's experimental bits */
#define MAPI_RF_RECORD 53            /* 1 for every record (a key for totals) */
#define MAPI_RF_EXTRA 60             /* an extra element: its id in the instruction */
#define MAPI_RF_NFIELDS 61

/* A record as the kernels see it: the fixed struct and its capture length (extras after it). */
typedef struct mapi_rf_rec {
    const mapi_flowrec *r;
    uint32_t caplen;
} mapi_rf_rec;

/* The value of extra element `ie` (MAPI_FLOWREC_REVERSE bit for a reverse element) of a record
 * and its length, or NULL when the record does not have it. */
const uint8_t *mapi_rf_extra(const mapi_rf_rec *rec, uint16_t ie, uint32_t *len);
/* A numeric field's value (0 for address fields and elements not exported); an extra element
 * reads as a big-endian unsigned number (its last 8 bytes when longer). */
uint64_t mapi_rf_value(const mapi_rf_rec *rec, int32_t f, uint16_t ie);
/* The bytes of an address or byte-string field: 16 bytes with *family 4 or 6 for addresses (IPv4
 * in the first 4), *len bytes with *family 0 for MAC addresses and extra elements; NULL for a
 * numeric field or an element the record does not have. */
const uint8_t *mapi_rf_bytes(const mapi_rf_rec *rec, int32_t f, uint16_t ie, int32_t *family,
                             uint32_t *len);
#endif
