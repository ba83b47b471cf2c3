/* NetFlow v5 / v9 (RFC 3954) / IPFIX (RFC 7011) collector: export packets in, flow records out.
 *
 * Flow records are the "packets" of a collector device: fixed-size mapi_flowrec structs, link
 * type MAPI_LINKTYPE_FLOWREC (in pcap's private LINKTYPE_USER range).  Templates are kept per
 * exporter (address, version, source id / observation domain); data sets whose template is not
 * known yet wait (bounded in bytes and time) and are decoded when it arrives.  Every limit and
 * every malformed input is a counter, never a crash: a bad packet is dropped at the first
 * inconsistency and the collector goes on with the next one. */
#ifndef SCAMPI_NETFLOW_COLLECTOR_H
#define SCAMPI_NETFLOW_COLLECTOR_H
#include <stdint.h>
#include "engine.h"
#include "flowrec.h"

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
    uint64_t extra_elements;       /* elements kept beside the fixed fields of records */
    uint64_t elements_not_kept;    /* enterprise-specific or unregistered elements of records */
    uint64_t extra_truncated;      /* records whose extra elements passed MAPI_FLOWREC_MAX_EXTRA */
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

/* Move up to `room` queued records into buf (an array of mapi_flowrec: the fixed part only) and
 * describe them in `b` (base = buf, caplen = sizeof(mapi_flowrec), wirelen = bytes capped at
 * 2^32-1, ts = recv_ns, linktype MAPI_LINKTYPE_FLOWREC).  Returns the number moved. */
uint32_t mapi_nf_take(mapi_nf *c, mapi_batch *b, mapi_flowrec *buf, uint32_t room);
/* The same with each record's extra elements after it (flowrec.h): records laid out one after
 * the other in buf (8-byte aligned, `bytes` at most), caplen = fixed part + extras. */
uint32_t mapi_nf_take_records(mapi_nf *c, mapi_batch *b, uint8_t *buf, uint64_t bytes);
uint32_t mapi_nf_queued(mapi_nf *c);
void mapi_nf_get_stats(mapi_nf *c, mapi_nf_stats *st);
/* Text of the last problem (malformed packet, limit reached), "" if none. */
const char *mapi_nf_last_error(mapi_nf *c);
/* Exporter i (0 <= i < stats.exporters): address, version, domain, packets, records. */
int mapi_nf_exporter(mapi_nf *c, uint32_t i, uint8_t *addr, int32_t *family, int32_t *version,
                     uint32_t *domain, uint64_t *packets, uint64_t *records, uint32_t *templates);
#endif
