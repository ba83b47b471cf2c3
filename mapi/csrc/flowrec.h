/* Flow records: the "packets" of a flow collector device (the netflow backend) and what the
 * RECORD_* functions read.  A record is a fixed-size mapi_flowrec in a batch of link type
 * MAPI_LINKTYPE_FLOWREC (in pcap's private LINKTYPE_USER range); its wire length is the flow's
 * byte count (capped at 2^32-1) and its timestamp the arrival time of the export packet. */
#ifndef MAPI_FLOWREC_H
#define MAPI_FLOWREC_H
#include <stdint.h>

#define MAPI_LINKTYPE_FLOWREC 157        /* LINKTYPE_USER10 */

#define MAPI_FLOWREC_HAS_OUT 1           /* out_packets / out_bytes were exported */
#define MAPI_FLOWREC_HAS_TIMES 2         /* first_ns / last_ns are absolute times */
#define MAPI_FLOWREC_TOTAL_COUNTS 4      /* packets/bytes came from total (not delta) counters */
#define MAPI_FLOWREC_SAMPLING_OPTION 8   /* sampling was announced in options data, not in the record */
#define MAPI_FLOWREC_SAMPLER_NAMED 16    /* ... by a sampler the record names (samplerId/selectorId) */

typedef struct mapi_flowrec {
    int64_t first_ns;          /* flow start, ns since the epoch (0: not exported) */
    int64_t last_ns;           /* flow end */
    int64_t export_ns;         /* export time from the packet header */
    int64_t recv_ns;           /* when the export packet arrived (capture time offline) */
    uint64_t packets;          /* packetDeltaCount / dPkts (or the total counters) */
    uint64_t bytes;            /* octetDeltaCount / dOctets */
    uint64_t out_packets;      /* postPacketDeltaCount / OUT_PKTS, or a biflow's reverse count */
    uint64_t out_bytes;
    uint8_t src[16];           /* IPv4 addresses in the first 4 bytes, network order */
    uint8_t dst[16];
    uint8_t nexthop[16];
    uint8_t exporter[16];      /* the exporter's address (IPv4: first 4 bytes) */
    uint32_t input;            /* ingress / egress interface (SNMP index) */
    uint32_t output;
    uint32_t src_as;
    uint32_t dst_as;
    uint32_t domain;           /* v9 source id / IPFIX observation domain */
    uint32_t sampling;         /* 1-in-N sampling of this flow's packets (0: none announced) */
    uint32_t sequence;         /* the export packet's sequence number */
    uint16_t sport;            /* host order; ICMP: 0 and icmp_type/icmp_code */
    uint16_t dport;
    uint16_t template_id;      /* 0 for NetFlow v5 */
    uint16_t vlan;
    uint8_t family;            /* 4, 6, or 0 when no address was exported */
    uint8_t exporter_family;
    uint8_t proto;
    uint8_t tcp_flags;
    uint8_t tos;
    uint8_t version;           /* 5, 9 or 10 */
    uint8_t src_mask;
    uint8_t dst_mask;
    uint8_t direction;         /* flowDirection: 0 ingress, 1 egress, 255 not exported */
    uint8_t icmp_type;
    uint8_t icmp_code;
    uint8_t flags;             /* MAPI_FLOWREC_* */
    uint32_t _pad;
} mapi_flowrec;
#endif
