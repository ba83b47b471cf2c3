/* DEFRAG: IPv4 and IPv6 fragment reassembly; a producer (engine.h) whose batch has the input's
 * link type: packets that are not fragments pass as they are (no copy), fragments are held, and
 * each reassembled datagram is handed on when its last missing fragment comes (with that
 * fragment's time): the first fragment's link header, its IP header (IPv4: total length set,
 * MF and offset cleared, checksum recomputed; IPv6: the fragment header taken out, payload
 * length set), then the whole payload.
 *
 * Fragments belong together by (source, destination, protocol, identification) for IPv4 and
 * (source, destination, identification) for IPv6.  Overlaps (policy):
 *   FIRST  bytes already received win;
 *   LAST   bytes of the later fragment win;
 *   LINUX  as Linux since 4.19 and RFC 5722: a fragment lying wholly within bytes already
 *          received is dropped as a duplicate; any other overlap discards the whole datagram.
 * Given up and counted: datagrams not complete timeout_ns after their first fragment came (by
 * packet time), the least recently touched ones when more than max_datagrams or max_bytes are
 * held, ones that would exceed 65535 bytes of IP payload, and those still incomplete at the end
 * of the stream.  Fragments whose bytes were not all captured pass as they are (counted). */
#ifndef MAPI_FN_DEFRAG_H
#define MAPI_FN_DEFRAG_H
#include <stdint.h>
#include "../engine.h"

#define MAPI_DEFRAG_FIRST 0
#define MAPI_DEFRAG_LAST 1
#define MAPI_DEFRAG_LINUX 2

typedef struct mapi_defrag_stats {
    uint64_t packets;            /* packets that reached DEFRAG */
    uint64_t fragments;          /* IPv4/IPv6 fragments held */
    uint64_t reassembled;        /* datagrams handed on */
    uint64_t overlaps;           /* fragments that overlapped bytes already received */
    uint64_t duplicates;         /* fragments dropped as wholly received already */
    uint64_t timeouts;           /* datagrams given up at the timeout */
    uint64_t evicted;            /* ... for the memory/datagram limits */
    uint64_t discarded;          /* ... for an overlap (LINUX) or an impossible length */
    uint64_t unfinished;         /* ... because the stream ended */
    uint64_t given_up_fragments; /* fragments of all the datagrams given up */
    uint64_t truncated;          /* fragments not wholly captured, passed as they are */
    uint64_t held_bytes;         /* bytes held now */
    uint64_t held_datagrams;
} mapi_defrag_stats;

typedef struct mapi_defrag mapi_defrag;

mapi_defrag *mapi_defrag_new(int32_t policy, int64_t timeout_ns, uint64_t max_bytes,
                             uint32_t max_datagrams);
void mapi_defrag_free(mapi_defrag *d);
uint32_t mapi_defrag_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                            uint32_t nsel, uint32_t *out);
uint32_t mapi_defrag_drain(void *state);
mapi_batch *mapi_defrag_batch(mapi_defrag *d);
void mapi_defrag_get_stats(mapi_defrag *d, mapi_defrag_stats *st);
#endif
