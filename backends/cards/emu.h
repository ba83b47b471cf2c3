/* Emulated capture cards (COMBO6 / SCAMPI adapter, DAG): the card's units run over one raw batch
 * per call and hand back only the packets that cross the emulated PCI bus.
 *
 * The units, in the order a packet meets them:
 *   TSU   re-stamps the packet (timestamps floored to the card's clock resolution);
 *   HFE   extracts the unified header record (card_hdr) from an Ethernet frame: header bytes at
 *         fixed offsets and the bytes after the IPv4 header (as BPF's "ld [x+k]" after
 *         "ldxb 4*([14]&0xf)" sees them, also for one VLAN tag), with how much of each window
 *         was captured, so a field is absent exactly when a BPF load of it would fail;
 *   LUP   header filter: CAM entries (value/mask over record bytes), entries that must miss,
 *         and the arithmetic comparator; a node keeps a packet when one of its paths holds;
 *   DSM   (DAG) up to 7 bit-mask filters over the first 64 bytes, combined per node through a
 *         128-entry lookup table; steering hashes (RFC 5475's BOB over the 5-tuple, i.e.
 *         HASHSAMP's selection value);
 *   FILE  (DAG) ERF records written straight from the card's stream (TO_FILE's kernel);
 *   SAU   periodic and probabilistic sampling (SAMPLE's splitmix64 draws);
 *   STU   counter sets: packets, sum and sum of squares, min, max of wire length or gap;
 *   PCK   payload check: strings of up to 16 bytes in a window of the captured bytes;
 *   DRAM  the packets that some software node needs (deliver_all or a tag in deliver_mask)
 *         are listed in the output batch (no copy; seq = device-wide index) and counted as bus
 *         traffic.  The first and last packet of every batch cross too, whatever their tags,
 *         so packet time reaches the host as it does without the card (ticks, intervals and
 *         relative times start and end where software would put them); no software node
 *         sees them unless its tags say so.
 * Hardware nodes are evaluated in topological order; node b sets tag bit hw_id when the packet
 * reached it through its parent and passed it.
 */
#ifndef SCAMPI_CARDS_EMU_H
#define SCAMPI_CARDS_EMU_H
#include <stdint.h>
#include "engine.h"

#define CARD_HDR_ABS 72          /* frame bytes [0, 72) */
#define CARD_HDR_IND 16          /* bytes [X+xbase, X+xbase+16) after the IPv4 header */
#define CARD_REC_BYTES 104       /* 72 + 16 (xbase 14: untagged) + 16 (xbase 18: one VLAN tag) */
#define CARD_WIN_ABS 0
#define CARD_WIN_IND14 1
#define CARD_WIN_IND18 2
#define CARD_WIN_LEN 3           /* comparisons only: the wire length */
#define CARD_NWIN 3

#define CARD_MATCH_BYTES 68      /* two 272-bit CAM entries */
#define CARD_REC_WORDS 13
#define CARD_DSM_FILTERS 7

#define CARD_OP_EQ 0
#define CARD_OP_GT 1
#define CARD_OP_GE 2
#define CARD_OP_SET 3

#define CARD_TERM_HIT 0          /* the match must hit */
#define CARD_TERM_MISS 1         /* the match must miss */
#define CARD_TERM_CMP 2          /* the comparison must hold */

#define CARD_UNIT_LUP 1
#define CARD_UNIT_DSM 2
#define CARD_UNIT_SAU 3
#define CARD_UNIT_STU 4
#define CARD_UNIT_PCK 5
#define CARD_UNIT_HASH 6
#define CARD_UNIT_FILE 7         /* DAG: ERF records written from the card's stream */

#define CARD_SAU_PERIODIC 1
#define CARD_SAU_PROBABILISTIC 2

#define CARD_VALUE_LENGTH 1      /* STU value: wire length */
#define CARD_VALUE_GAP 2         /* STU value: ns since the previous packet of the set */

#define CARD_OK 0
#define CARD_ERR_LINKTYPE 1      /* the header units need Ethernet frames */
#define CARD_ERR_CAPACITY 2      /* output batch too small */

typedef struct card_hdr {        /* HFE output for one packet */
    uint64_t w[13];              /* the record's 104 bytes (byte i: bits 8*(i%8) of w[i/8]) */
    int32_t avail[3];            /* bytes of each window that were captured */
    uint32_t wirelen;
    uint32_t caplen;
    uint32_t _pad;
} card_hdr;

typedef struct card_match {      /* a CAM entry (LUP) or a bit-mask filter (DSM) */
    uint32_t nwords;             /* record words compared */
    int32_t need[3];             /* bytes that must be present in each window (0: none) */
    uint32_t word[13];           /* record word index */
    uint32_t _pad;
    uint64_t val[13];
    uint64_t mask[13];
} card_match;

typedef struct card_cmp {        /* the LUP comparator: ((field & mask) op k) == positive */
    uint8_t win;                 /* CARD_WIN_* (CARD_WIN_LEN: wire length) */
    uint8_t pos;                 /* record byte index of the field */
    uint8_t size;                /* 1, 2 or 4 bytes */
    uint8_t op;                  /* CARD_OP_* */
    int32_t positive;
    int32_t need;                /* bytes that must be present in the window */
    uint32_t mask;
    uint32_t k;
} card_cmp;

typedef struct card_term { uint32_t kind; uint32_t index; } card_term;
typedef struct card_path { uint32_t first; uint32_t nterms; } card_path;

typedef struct card_sampler {    /* SAU: SAMPLE's definition, draw for draw */
    int32_t mode;                /* CARD_SAU_* */
    uint32_t _pad;
    uint64_t period;
    uint64_t threshold;          /* keep when (splitmix64 >> 11) < threshold */
    uint64_t rng;
    uint64_t seen;
    uint64_t kept;
    int64_t last_ts;
} card_sampler;

typedef struct card_counters {   /* STU: one counter set */
    int32_t value;               /* CARD_VALUE_* */
    uint32_t _pad;
    uint64_t packets;
    uint64_t values;             /* values accumulated (packets, or packets - 1 for gaps) */
    uint64_t sum;
    uint64_t sumsq_lo;           /* sum of squares, 128 bits */
    uint64_t sumsq_hi;
    uint64_t min;
    uint64_t max;
    int64_t first_ts;
    int64_t last_ts;
} card_counters;

typedef struct card_patterns {   /* PCK: strings of 1..16 bytes in [offset, offset+depth) */
    uint32_t offset;
    uint32_t depth;              /* 0: to the end of the captured bytes */
    uint32_t npat;
    uint32_t _pad;
    const uint8_t *bytes;        /* npat x 16 */
    const uint8_t *lens;
    const uint32_t *bucket_start;   /* 65537 entries: patterns of >= 2 bytes by first two bytes */
    const uint16_t *bucket_pat;
    const uint8_t *single;       /* 256 flags: a 1-byte pattern equal to this byte */
    uint64_t seen;
    uint64_t matched;
    int64_t last_ts;
} card_patterns;

typedef struct card_hash {       /* DAG steering hash used as HASHSAMP (BOB 5-tuple value) */
    uint32_t range;
    int32_t symmetric;
    uint64_t seen;
    uint64_t selected;
    uint64_t not_ip;
    int64_t last_ts;
} card_hash;

typedef struct card_node {
    int32_t unit;                /* CARD_UNIT_* */
    int32_t parent;              /* index of the parent node (earlier in the array); -1: raw */
    uint32_t hw_id;              /* tag bit */
    uint32_t first;              /* LUP: paths [first, first + count) */
    uint32_t count;
    uint32_t _pad;
    void *unit_state;            /* DSM: uint8_t[128] lookup table; SAU: card_sampler;
                                    STU: card_counters; PCK: card_patterns; HASH: card_hash;
                                    FILE: the flow's TO_FILE writer (its kernel's state) */
    mapi_kernel_fn kernel;       /* FILE: the flow's TO_FILE kernel, run on each packet */
    uint64_t pkts_in;
    uint64_t pkts_out;
    uint64_t bytes_in;           /* wire bytes */
    uint64_t bytes_out;
} card_node;

typedef struct card_config {     /* one whole configuration, swapped between batches */
    uint32_t nnodes;
    uint32_t ndsm;
    card_node *nodes;            /* parents before children */
    card_match *matches;
    card_cmp *cmps;
    card_term *terms;
    card_path *paths;
    card_match *dsm;             /* DSM filters (bit i of the lookup index: filter i hit) */
    uint64_t deliver_mask;       /* a packet with one of these tags crosses the bus */
    int32_t deliver_all;
    int32_t need_hfe;            /* some node reads the header record */
} card_config;

typedef struct card_stats {
    int64_t ts_quantum;          /* TSU: timestamps floored to a multiple of this (ns); 1: as is */
    uint64_t link_packets;       /* packets that arrived on the link */
    uint64_t link_bytes;         /* their wire bytes */
    uint64_t bus_packets;        /* packets that crossed the bus into host memory */
    uint64_t bus_bytes;          /* their captured bytes */
    uint64_t clock_packets;      /* of those, packets that crossed only to carry the link's time */
    uint64_t clock_bytes;
    uint64_t batches;
} card_stats;

/* Run the card over a raw batch.  `out` must have room for in->n packets and its own seq and
 * tags arrays; it is filled with the packets that cross the bus (they stay in in's memory).
 * Returns CARD_OK or CARD_ERR_*. */
int card_run(const card_config *cfg, card_stats *st, const mapi_batch *in, mapi_batch *out);

/* HFE alone, for tests: the header record of one Ethernet frame. */
void card_hfe_extract(const uint8_t *p, uint32_t caplen, uint32_t wirelen, card_hdr *h);
/* LUP alone, for tests: does path set [first, first+count) of cfg accept the record? */
int card_lup_accepts(const card_config *cfg, uint32_t first, uint32_t count, const card_hdr *h);
#endif
