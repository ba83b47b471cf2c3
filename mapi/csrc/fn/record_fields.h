/* The fields of a flow record (mapi_flowrec) that RECORD_FILTER tests and RECORD_TOP ranks:
 * numbers (protocol, ports, counters, interfaces...) and addresses (source, destination, next
 * hop, exporter). */
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
#define MAPI_RF_DURATION 27          /* ms; last - first */
#define MAPI_RF_ICMP_TYPE 28
#define MAPI_RF_ICMP_CODE 29
#define MAPI_RF_NFIELDS 30


/* A numeric field's value (0 for address fields). */
uint64_t mapi_rf_value(const mapi_flowrec *r, int32_t f);
/* An address field's 16 bytes (IPv4 in the first 4) and its family (4, 6; 0: not exported), or
 * NULL for a numeric field. */
const uint8_t *mapi_rf_addr(const mapi_flowrec *r, int32_t f, int32_t *family);
#endif
