/* FLOW_REPORT's metering: packets in, finished flows out as mapi_flowrec records (link type
 * MAPI_LINKTYPE_FLOWREC, what the NetFlow collector makes), so the record functions work on
 * them; a producer (engine.h).  Each finished flow is also handed to an exporter when one is
 * set (flow_export.h).
 *
 * A flow is the packets sharing the configured key fields (and IP version).  Biflow (RFC 5103):
 * both directions are one flow, the first packet's sender its source; the reverse direction's
 * packets/bytes/flags go to out_packets/out_bytes (and the record says MAPI_FLOWREC_HAS_OUT).
 * Bytes are IP bytes (the IP header's length, as NetFlow counts them); packets that carry no
 * IP are ignored and counted.  A flow ends (flowEndReason) at the idle timeout (1), the active
 * timeout (2: the record is exported and the flow goes on counting afresh), tcp_end_ns after a
 * FIN or RST was seen (3), at the end of the stream (4) or when the table is full and it is the
 * oldest (5).  ICMP flows have sport 0 and dport type << 8 | code (as NetFlow v5
 * carries them).  Time is packet time. */
#ifndef MAPI_FN_FLOW_METER_H
#define MAPI_FN_FLOW_METER_H
#include <stdint.h>
#include "../engine.h"

#define MAPI_FLOWKEY_SRC 1
#define MAPI_FLOWKEY_DST 2
#define MAPI_FLOWKEY_SPORT 4
#define MAPI_FLOWKEY_DPORT 8
#define MAPI_FLOWKEY_PROTO 16
#define MAPI_FLOWKEY_TOS 32
#define MAPI_FLOWKEY_IFINDEX 64

#define MAPI_FLOWEND_IDLE 1
#define MAPI_FLOWEND_ACTIVE 2
#define MAPI_FLOWEND_END 3
#define MAPI_FLOWEND_FORCED 4
#define MAPI_FLOWEND_RESOURCES 5

typedef struct mapi_flowmeter_config {
    uint32_t key;                /* MAPI_FLOWKEY_* bits */
    uint32_t biflow;
    uint32_t max_flows;
    uint32_t sampling;           /* 1-in-N packet sampling before the meter (0: none), noted */
    uint32_t domain;             /* observation domain / source id in the records */
    uint8_t version;             /* mapi_flowrec.version of the records (10, 9, 5, or 0) */
    uint8_t _pad[3];
    int64_t active_ns, idle_ns, tcp_end_ns;
    void *exporter;              /* a mapi_flowexp (flow_export.h); NULL: records only */
} mapi_flowmeter_config;

typedef struct mapi_flowmeter_stats {
    uint64_t packets;            /* packets that reached the meter */
    uint64_t ignored;            /* not IP */
    uint64_t ignored_bytes;      /* their wire bytes */
    uint64_t flows;              /* flows started (an active timeout starts none) */
    uint64_t active;             /* flows in the table now */
    uint64_t records;            /* records handed on */
    uint64_t by_reason[6];       /* records by MAPI_FLOWEND_* */
} mapi_flowmeter_stats;

typedef struct mapi_flowmeter mapi_flowmeter;

mapi_flowmeter *mapi_flowmeter_new(const mapi_flowmeter_config *cfg);
void mapi_flowmeter_free(mapi_flowmeter *m);
uint32_t mapi_flowmeter_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                               uint32_t nsel, uint32_t *out);
uint32_t mapi_flowmeter_drain(void *state);
mapi_batch *mapi_flowmeter_batch(mapi_flowmeter *m);
void mapi_flowmeter_get_stats(mapi_flowmeter *m, mapi_flowmeter_stats *st);
#endif
