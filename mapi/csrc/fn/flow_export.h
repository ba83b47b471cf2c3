/* FLOW_REPORT's exporter: flow records as IPFIX (RFC 7011), NetFlow v9 (RFC 3954) or NetFlow v5
 * messages, written to a file descriptor one message per write (a connected UDP socket: one
 * datagram each; a file: the messages back to back, which for IPFIX is RFC 5655's file format).
 *
 * IPFIX: templates 256 (IPv4) and 257 (IPv6) with sourceIPv4Address/sourceIPv6Address (8/27),
 * destination... (12/28), sourceTransportPort (7), destinationTransportPort (11),
 * protocolIdentifier (4), ipClassOfService (5), tcpControlBits (6, 2 bytes), ingressInterface
 * (10), flowStartMilliseconds (152), flowEndMilliseconds (153), packetDeltaCount (2),
 * octetDeltaCount (1), flowEndReason (136); a biflow adds RFC 5103's reversePacketDeltaCount,
 * reverseOctetDeltaCount and reverseTcpControlBits (enterprise 29305).  Options template 258
 * (scope observationDomainId, 149): exportedMessageTotalCount (41), exportedFlowRecordTotalCount
 * (42), exportedOctetTotalCount (40), ignoredPacketTotalCount (164), samplingInterval (34),
 * samplingAlgorithm (35).  Sequence numbers count data records.
 * v9: the same fields under their v9 names (TCP_FLAGS 1 byte, FIRST/LAST_SWITCHED in sysUptime
 * ms, OUT_PKTS/OUT_BYTES for the reverse direction) plus ICMP_TYPE (32: type * 256 + code for
 * ICMP/ICMPv6, else 0; nfdump reads an ICMP flow's type from it), options template 258 with scope System and
 * SAMPLING_INTERVAL, SAMPLING_ALGORITHM, TOTAL_BYTES_EXP, TOTAL_PKTS_EXP, TOTAL_FLOWS_EXP;
 * flowsets padded to 4 bytes; sequence numbers count export packets.
 * v5: 30 records per message at most, IPv4 only (IPv6 records are counted as not exportable),
 * sampling in the header.  v5/v9 sysUptime is counted from the first record's flow start.
 * Templates and options are sent in the first message and every `refresh` messages. */
#ifndef MAPI_FN_FLOW_EXPORT_H
#define MAPI_FN_FLOW_EXPORT_H
#include <stdint.h>

#define MAPI_FLOWEXP_V5 5
#define MAPI_FLOWEXP_V9 9
#define MAPI_FLOWEXP_IPFIX 10

typedef struct mapi_flowexp mapi_flowexp;

typedef struct mapi_flowexp_stats {
    uint64_t records;            /* data records sent */
    uint64_t messages;
    uint64_t bytes;
    uint64_t templates;          /* template and options template records sent */
    uint64_t not_exportable;     /* records the format cannot carry (IPv6 in v5) */
    uint64_t write_errors;       /* messages lost to a failed write */
    int32_t last_errno;
    int32_t _pad;
} mapi_flowexp_stats;

/* fd stays the caller's.  mtu: bytes per message at most (>= 512).  biflow: reverse fields. */
mapi_flowexp *mapi_flowexp_new(int32_t format, int32_t fd, uint32_t domain, uint32_t mtu,
                               uint32_t refresh, uint32_t sampling, int32_t biflow);
void mapi_flowexp_free(mapi_flowexp *e);
/* Add one record (a mapi_flowrec); reason: MAPI_FLOWEND_*. */
void mapi_flowexp_add(mapi_flowexp *e, const void *record, int32_t reason, uint8_t flags,
                      uint8_t reverse_flags);
/* Send what is buffered (now: packet time, ns). */
void mapi_flowexp_flush(mapi_flowexp *e, int64_t now);
/* The last records are in: send the options data once more (final counts). */
void mapi_flowexp_finish(mapi_flowexp *e, int64_t now);
/* Packets the meter ignored (for ignoredPacketTotalCount). */
void mapi_flowexp_set_ignored(mapi_flowexp *e, uint64_t packets);
void mapi_flowexp_get_stats(mapi_flowexp *e, mapi_flowexp_stats *st);
#endif
