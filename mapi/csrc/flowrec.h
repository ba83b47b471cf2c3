/* Flow records: the "packets" of a flow collector device (the netflow backend) and what the
 * RECORD_* functions read.  A record is a mapi_flowrec in a batch of link type
 * MAPI_LINKTYPE_FLOWREC (in pcap's private LINKTYPE_USER range); its wire length is the flow's
 * byte count (capped at 2^32-1) and its timestamp the arrival time of the export packet.
 *
 * The fixed struct holds the common elements at fixed places for the kernels.  Every other
 * element the exporter sent that IANA's registry defines follows it, as exported: a list of
 * (uint16 element id, bit 15 set for an RFC 5103 reverse element; uint16 length; the value in
 * network order), ended by the record's capture length or by an id of 0 (padding to a multiple of
 * 8 bytes).  So a record's capture length is sizeof(mapi_flowrec) + its extra elements; code
 * that copies only the fixed struct keeps a valid record without them.  docs/records.md
 * describes the layout and the files `mapi collect` writes. */
#ifndef MAPI_FLOWREC_H
#define MAPI_FLOWREC_H
#include <stdint.h>

#define MAPI_LINKTYPE_FLOWREC 157        /* LINKTYPE_USER10 */

#define MAPI_FLOWREC_HAS_OUT 1           /* out_packets / out_bytes were exported */
#define MAPI_FLOWREC_HAS_TIMES 2         /* first_ns / last_ns are absolute times */
#define MAPI_FLOWREC_TOTAL_COUNTS 4      /* packets/bytes came from total (not delta) counters */
#define MAPI_FLOWREC_SAMPLING_OPTION 8   /* sampling was announced in options data, not in the record */
#define MAPI_FLOWREC_SAMPLER_NAMED 16    /* ... by a sampler the record names (samplerId/selectorId) */

#define MAPI_FLOWREC_LAYOUT 2            /* this struct's layout (in the files of mapi collect) */
#define MAPI_FLOWREC_REVERSE 0x8000      /* extra element id bit: an RFC 5103 reverse element */
#define MAPI_FLOWREC_MAX_EXTRA 16384     /* bytes of extra elements a record keeps at most */

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
    /* common elements beyond the flow key (0: not exported) */
    uint8_t engine_type;       /* NetFlow v5 header, engineType (38) */
    uint8_t engine_id;         /* NetFlow v5 header, engineId (39) */
    uint8_t dst_tos;           /* postIpClassOfService (55) */
    uint8_t nat_event;         /* natEvent (230) */
    uint8_t end_reason;        /* flowEndReason (136) */
    uint8_t nat_family;        /* 4 or 6 when a NAT address was exported */
    uint8_t bgp_family;        /* 4 or 6 when a BGP next hop was exported */
    uint8_t nexthop_family;    /* 4 or 6 when a next hop was exported */
    uint16_t dst_vlan;         /* postVlanId (59) */
    uint16_t nat_sport;        /* postNAPTSourceTransportPort (227) */
    uint16_t nat_dport;        /* postNAPTDestinationTransportPort (228) */
    uint8_t src_mac[6];        /* sourceMacAddress (56) */
    uint8_t dst_mac[6];        /* destinationMacAddress (80) */
    uint32_t mpls_label1;      /* mplsTopLabelStackSection (70): label << 4 | exp << 1 | bottom */
    uint32_t ingress_vrf;      /* ingressVRFID (234) */
    uint32_t egress_vrf;       /* egressVRFID (235) */
    uint64_t app_id;           /* applicationId (95) as a big-endian number (its last 8 bytes) */
    uint8_t nat_src[16];       /* postNATSourceIPv4Address (225) / IPv6 (281) */
    uint8_t nat_dst[16];       /* postNATDestinationIPv4Address (226) / IPv6 (282) */
    uint8_t bgp_nexthop[16];   /* bgpNextHopIPv4Address (18) / IPv6 (63) */
} mapi_flowrec;
#endif
