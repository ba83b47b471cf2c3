/* HASHSAMP: PSAMP hash-based selection (RFC 5475 section 6.2.4) on the 5-tuple.
 *
 * Hash input (the "hash domain"): source address, destination address (4 or 16 bytes each),
 * protocol (1 byte), source port, destination port (2 bytes each, network order; 0 for
 * protocols other than TCP/UDP and for later fragments): 13 bytes for IPv4, 37 for IPv6.
 * Symmetric mode puts the smaller (address, port) end first, so both directions agree.
 * Hash function: BOB (RFC 5475 appendix A.2, Bob Jenkins' lookup2) with init value 0; the
 * selection value is its low 10 bits (0..1023); a packet is selected when value < range.
 * Packets without an IP header are not selected. */
#ifndef MAPI_FN_HASHSAMP_H
#define MAPI_FN_HASHSAMP_H
#include <stdint.h>
#include "../engine.h"

#define MAPI_HASHSAMP_BUCKETS 1024
#define MAPI_HASHSAMP_RING 4096    /* sampled-packet records kept between two reads */

typedef struct mapi_hashsamp_rec {
    int64_t ts;
    uint8_t src[16];
    uint8_t dst[16];
    uint16_t sport;
    uint16_t dport;
    uint32_t tcp_seq;
    uint8_t ipver;
    uint8_t proto;
    uint8_t tcp_flags;
    uint8_t _pad;
    uint32_t hash;               /* the selection value, 0..1023 */
} mapi_hashsamp_rec;

typedef struct mapi_hashsamp_counts {
    uint64_t seen;               /* packets that reached HASHSAMP */
    uint64_t selected;
    uint64_t not_ip;             /* dropped: no IP header */
    uint64_t lost_records;       /* records overwritten before they were read (keep mode) */
    int64_t last_ts;
} mapi_hashsamp_counts;

typedef struct mapi_hashsamp mapi_hashsamp;

mapi_hashsamp *mapi_hashsamp_new(uint32_t range, int keep, int symmetric);
void mapi_hashsamp_free(mapi_hashsamp *h);
uint32_t mapi_hashsamp_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                              uint32_t nsel, uint32_t *out);
void mapi_hashsamp_get_counts(mapi_hashsamp *h, mapi_hashsamp_counts *c);
/* Move up to `max` records (oldest first) out of the keep ring; returns how many. */
uint32_t mapi_hashsamp_drain(mapi_hashsamp *h, mapi_hashsamp_rec *out, uint32_t max);
void mapi_hashsamp_reset(mapi_hashsamp *h);
/* BOB / lookup2 over len bytes (exposed for documentation and tests). */
uint32_t mapi_hashsamp_bob(const uint8_t *k, uint32_t len, uint32_t initval);
/* The selection value (0..1023) of one frame, or -1 when it has no IP header. */
int32_t mapi_hashsamp_value(int32_t linktype, const uint8_t *p, uint32_t caplen, int symmetric);
#endif
