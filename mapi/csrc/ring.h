/* TO_BUFFER's packet ring: one writer (the engine), one reader (the flow's owner).
 *
 * Lossless rings (offline devices) make the writer wait for room; lossy rings (live devices)
 * drop what does not fit and count it, so a slow reader loses only its own packets.
 * A packet returned by mapi_ring_next() stays valid until the next call on that ring. */
#ifndef MAPI_RING_H
#define MAPI_RING_H
#include <stdint.h>
#include "engine.h"

typedef struct mapi_pkthdr {
    int64_t  ts;        /* ns since the epoch */
    uint32_t caplen;
    uint32_t wirelen;
    uint64_t seq;       /* device-wide packet index */
    uint16_t ifindex;
    int16_t  linktype;
    uint32_t reclen;    /* bytes this record takes in the ring (internal) */
} mapi_pkthdr;

typedef struct mapi_ring mapi_ring;

typedef struct mapi_ring_stats {
    uint64_t written;     /* packets stored */
    uint64_t dropped;     /* packets that found no room (lossy rings only) */
    uint64_t delivered;   /* packets handed to the reader */
} mapi_ring_stats;

mapi_ring *mapi_ring_new(uint64_t bytes, int lossless);
void mapi_ring_free(mapi_ring *r);

/* The TO_BUFFER kernel (state = the ring): copies every selected packet in; passes all on. */
uint32_t mapi_ring_kernel(void *ring, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                          uint32_t *out);

#define MAPI_RING_PACKET 1
#define MAPI_RING_EMPTY 0        /* nothing within the timeout */
#define MAPI_RING_END (-1)       /* the writer ended and everything was read */
#define MAPI_RING_BREAK (-2)     /* mapi_ring_interrupt() was called */
/* timeout_ms: 0 = do not wait, <0 = wait for ever. */
int mapi_ring_next(mapi_ring *r, int timeout_ms, const mapi_pkthdr **hdr, const uint8_t **data);
/* Up to `max` packets at once without waiting past the first (pcap_dispatch's shape).
 * Fills hdrs/datas; returns the count, or MAPI_RING_END / MAPI_RING_BREAK with none. */
int mapi_ring_next_many(mapi_ring *r, int timeout_ms, uint32_t max, const mapi_pkthdr **hdrs,
                        const uint8_t **datas);

/* Take every packet that is there (waiting up to timeout_ms for the first) without handing
 * them out: adds their count and captured bytes to *packets / *bytes.  Returns how many were
 * taken, or MAPI_RING_END / MAPI_RING_BREAK with none (a consumer that only counts). */
int64_t mapi_ring_drain(mapi_ring *r, int timeout_ms, uint64_t *packets, uint64_t *bytes);

int mapi_ring_fd(mapi_ring *r);                 /* readable while packets are pending */
void mapi_ring_interrupt(mapi_ring *r);          /* async-signal-safe; wakes a waiting reader */
void mapi_ring_clear_interrupt(mapi_ring *r);
void mapi_ring_end(mapi_ring *r);                /* writer: no more packets will come */
void mapi_ring_detach(mapi_ring *r);             /* reader gone: writer stops waiting */
void mapi_ring_get_stats(mapi_ring *r, mapi_ring_stats *st);
uint64_t mapi_ring_pending(mapi_ring *r);        /* packets stored and not yet read */
#endif
