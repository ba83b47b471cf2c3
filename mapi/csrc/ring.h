/* TO_BUFFER's packet ring: one writer (the engine), one reader (the flow's owner).
 *
 * Lossless rings (offline devices) make the writer wait for room; lossy rings (live devices)
 * drop what does not fit and count it, so a slow reader loses only its own packets.
 * A packet returned by mapi_ring_next() stays valid until the next call on that ring.
 *
 * The ring lives in shared memory (a sealed memfd): a control block page, then the data.  The
 * writer's process creates it (mapi_ring_new); a reader in another process maps the same memfd
 * (mapi_ring_attach, given the memfd and the two eventfds) and reads packets in place with the
 * same calls.  The layout is written down in docs/protocol.md.  Neither side trusts the other's
 * fields: the writer keeps its own head and counters and treats a bad tail as "no room"; the
 * reader checks every record against the ring's bounds. */
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

#define MAPI_RING_MAGIC 0x474e524d      /* "MRNG" little-endian */
#define MAPI_RING_VERSION 1
#define MAPI_RING_DATA_OFFSET 4096

/* The control block at offset 0 of the shared memory; one cache line per writer. */
typedef struct mapi_ring_shm {
    uint32_t magic;            /* MAPI_RING_MAGIC */
    uint32_t version;          /* MAPI_RING_VERSION */
    uint64_t cap;              /* data bytes, a multiple of 8 */
    uint64_t data_offset;      /* MAPI_RING_DATA_OFFSET */
    uint32_t hdr_size;         /* sizeof(mapi_pkthdr) = 32 */
    uint32_t lossless;         /* the writer's mode (information only) */
    uint8_t  _pad0[32];
    /* offset 64: the writer's */
    uint64_t head;             /* bytes ever written (monotonic, record-aligned) */
    uint64_t written;          /* packets stored */
    uint64_t dropped;          /* packets that found no room or came after detach */
    uint64_t written_bytes;    /* captured bytes stored */
    uint32_t ended;            /* 1: no more packets will come */
    uint32_t writer_waiting;   /* 1: a lossless writer sleeps on the space eventfd */
    uint32_t detached;         /* 1: the flow is closing; the writer stores nothing more */
    uint8_t  _pad1[20];
    /* offset 128: the reader's */
    uint64_t tail;             /* bytes ever released by the reader */
    uint64_t delivered;        /* packets handed out */
    uint8_t  _pad2[48];
    /* offset 192: both */
    uint32_t data_signaled;    /* writer sets it when it signals the data eventfd; reader clears */
    uint8_t  _pad3[60];
} mapi_ring_shm;

typedef struct mapi_ring mapi_ring;

typedef struct mapi_ring_stats {
    uint64_t written;     /* packets stored */
    uint64_t dropped;     /* packets that found no room (lossy rings only) */
    uint64_t delivered;   /* packets handed to the reader */
    uint64_t bytes;       /* captured bytes stored */
} mapi_ring_stats;

mapi_ring *mapi_ring_new(uint64_t bytes, int lossless);
/* The reader's side in another process: the ring's memfd and its data and space eventfds (the
 * ring owns them from now on: mapi_ring_free closes them).  NULL if they do not describe a
 * ring (bad magic, version, header size or bounds). */
mapi_ring *mapi_ring_attach(int shm_fd, int data_fd, int space_fd);
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

/* One run of records lying back to back in the ring (a remote batch's records as they are). */
typedef struct mapi_ring_span {
    const uint8_t *start;      /* the first record's header */
    uint64_t span;             /* record bytes from start (headers, data, padding) */
    uint64_t caplen_sum;       /* captured bytes of its packets */
    int64_t last_ts;           /* the timestamp of its last packet */
} mapi_ring_span;

/* Up to `max` packets whose records are contiguous and total at most max_bytes (at least one),
 * waiting up to timeout_ms for the first: a stretch of the ring to copy out in one piece.
 * Returns the count (held until the next call, like mapi_ring_next_many), or
 * MAPI_RING_EMPTY / MAPI_RING_END / MAPI_RING_BREAK. */
int mapi_ring_next_span(mapi_ring *r, int timeout_ms, uint32_t max, uint64_t max_bytes,
                        mapi_ring_span *out);

/* Take every packet that is there (waiting up to timeout_ms for the first) without handing
 * them out: adds their count and captured bytes to *packets / *bytes.  Returns how many were
 * taken, or MAPI_RING_END / MAPI_RING_BREAK with none (a consumer that only counts). */
int64_t mapi_ring_drain(mapi_ring *r, int timeout_ms, uint64_t *packets, uint64_t *bytes);

int mapi_ring_fd(mapi_ring *r);                 /* readable while packets are pending */
int mapi_ring_shm_fd(mapi_ring *r);             /* the memfd to pass to a reader (-1: none) */
int mapi_ring_space_fd(mapi_ring *r);           /* the writer's wakeup eventfd */
uint64_t mapi_ring_capacity(mapi_ring *r);      /* data bytes */
void mapi_ring_set_lossless(mapi_ring *r, int lossless);   /* writer: between two batches */
void mapi_ring_interrupt(mapi_ring *r);          /* async-signal-safe; wakes a waiting reader */
void mapi_ring_clear_interrupt(mapi_ring *r);
void mapi_ring_end(mapi_ring *r);                /* writer: no more packets will come */
void mapi_ring_detach(mapi_ring *r);             /* reader gone: writer stops waiting */
void mapi_ring_get_stats(mapi_ring *r, mapi_ring_stats *st);
uint64_t mapi_ring_pending(mapi_ring *r);        /* packets stored and not yet read */
/* Writer: fault in the first max_bytes of the data (at most the capacity) from a thread of its
 * own, so that the thread writing packets into a fresh ring does not stall zeroing new pages
 * (a live capture's first lap).  Stops when the ring is freed.  0, or -1 (nothing started). */
int mapi_ring_warm(mapi_ring *r, uint64_t max_bytes);
#endif
