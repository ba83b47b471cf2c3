/* NetFlow v5 / v9 (RFC 3954) / IPFIX (RFC 7011) collector: export packets in, flow records out.
 *
 * Flow records are the "packets" of a collector device: fixed-size mapi_flowrec structs, link
 * type MAPI_LINKTYPE_FLOWREC (in pcap's private LINKTYPE_USER range).  Templates are kept per
 * exporter (address, version, source id / observation domain); data sets whose template is not
 * known yet wait (bounded in bytes and time) and are decoded when it arrives.  Every limit and
 * every malformed input is a counter, never a crash: a bad packet is dropped at the first
 * inconsistency and the collector goes on with the next one. */
#ifndef MAPI_LIVE_NETFLOW_H
#define MAPI_LIVE_NETFLOW_H
#include <stdint.h>
#include "engine.h"

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

typedef struct mapi_nf_stats {
    uint64_t packets;              /* export packets offered */
    uint64_t bytes;
    uint64_t v5_packets, v9_packets, ipfix_packets;
    uint64_t not_export;           /* not NetFlow/IPFIX (other UDP, TCP, non-IP frames) */
    uint64_t malformed;            /* export packets dropped (or cut) at a bad length/field */
    uint64_t records;              /* flow records produced */
    uint64_t option_records;       /* options data records (sampling, system init time, ...) */
    uint64_t non_flow_records;     /* data records without any flow key, counter or time */
    uint64_t templates;            /* template records accepted (new or updated) */
    uint64_t option_templates;
    uint64_t template_withdrawals;
    uint64_t templates_rejected;   /* over the per-exporter limit, or invalid */
    uint64_t exporters;            /* exporters (address, version, domain) known */
    uint64_t exporters_rejected;   /* packets from exporters over the limit */
    uint64_t pending_sets;         /* data sets that waited for their template */
    uint64_t pending_decoded;      /* of those, decoded when the template came */
    uint64_t pending_dropped;      /* of those, dropped (too old, too many, or at the end) */
    uint64_t pending_bytes;        /* bytes waiting now */
    uint64_t sequence_gaps;        /* export packets lost, from sequence numbers */
    uint64_t records_dropped;      /* records the output queue had no room for */
} mapi_nf_stats;

typedef struct mapi_nf mapi_nf;

/* max_exporters, max_templates (per exporter), max_pending_bytes, pending_ttl_ms (by arrival
 * time), max_queue (records waiting to be taken). */
mapi_nf *mapi_nf_new(uint32_t max_exporters, uint32_t max_templates, uint32_t max_pending_bytes,
                     uint32_t pending_ttl_ms, uint32_t max_queue);
void mapi_nf_free(mapi_nf *c);

/* Decode one export packet (UDP payload).  exporter: 16 bytes (IPv4 in the first 4), family
 * 4 or 6.  Records go to the output queue.  Returns the number of records added, or -1 when
 * the packet was dropped as malformed/unknown (see mapi_nf_last_error). */
int mapi_nf_decode(mapi_nf *c, const uint8_t *pkt, uint32_t len, const uint8_t *exporter,
                   int32_t family, int64_t recv_ns);
/* The UDP payloads of a batch of captured frames (any link type mapi_hdr_parse knows); only
 * UDP packets whose destination port is `port` (0: any) are decoded.  Returns records added. */
int mapi_nf_decode_frames(mapi_nf *c, const mapi_batch *b, uint16_t port);
/* Receive up to `max` datagrams from a bound UDP socket (after poll() of fd and wake_fd up
 * to timeout_ms) and decode them.  Returns datagrams read (0: timeout), -1 when wake_fd fired,
 * -2 on a socket error (errno-like code in *err). */
int mapi_nf_recv(mapi_nf *c, int32_t fd, int32_t wake_fd, int32_t timeout_ms, uint32_t max,
                 int32_t *err);
/* Drop every data set still waiting for its template (end of the stream). */
void mapi_nf_flush_pending(mapi_nf *c);

/* Move up to `room` queued records into buf (an array of mapi_flowrec) and describe them in
 * `b` (base = buf, caplen = sizeof(mapi_flowrec), wirelen = bytes capped at 2^32-1, ts =
 * recv_ns, linktype MAPI_LINKTYPE_FLOWREC).  Returns the number moved. */
uint32_t mapi_nf_take(mapi_nf *c, mapi_batch *b, mapi_flowrec *buf, uint32_t room);
uint32_t mapi_nf_queued(mapi_nf *c);
void mapi_nf_get_stats(mapi_nf *c, mapi_nf_stats *st);
/* Text of the last problem (malformed packet, limit reached), "" if none. */
const char *mapi_nf_last_error(mapi_nf *c);
/* Exporter i (0 <= i < stats.exporters): address, version, domain, packets, records. */
int mapi_nf_exporter(mapi_nf *c, uint32_t i, uint8_t *addr, int32_t *family, int32_t *version,
                     uint32_t *domain, uint64_t *packets, uint64_t *records, uint32_t *templates);
#endif
