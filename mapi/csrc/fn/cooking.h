/* COOKING: TCP stream reassembly per connection and direction; a producer (engine.h).
 *
 * In: frames of any link type mapi_hdr_parse knows.  Out: stream chunks as raw IP packets
 * (LINKTYPE_RAW, 101): an IPv4 or IPv6 header and a 20-byte TCP header from the sending side
 * (addresses and ports as on the wire), then the chunk's stream bytes.  TCP seq is the sequence
 * number of the chunk's first byte, ack what the sender's peer had sent up to then; flags
 * ACK|PSH, plus FIN when the chunk ends the direction by a FIN and RST when it was released by
 * a reset.  The IPv4 identification / IPv6 flow label carry (connection number << 1 | direction)
 * (direction 0: from the side that opened the connection -- sent the SYN, or, with no SYN seen,
 * sent the first packet).  Header checksums are correct.
 *
 * Per direction: bytes before the next expected one are duplicates (dropped; where a segment
 * partly overlaps, the bytes already there win); later ones wait, in order, until the gap
 * closes.  When a chunk is released depends on cfg.release:
 *   MAPI_COOKING_SEGMENT       at once: a chunk is what the segment put in order (its own new
 *                              bytes and the held ones it let follow), as an application's
 *                              read() would get them right after it came;
 *   MAPI_COOKING_CONVERSATION  in-order bytes wait until the other direction sends data (so a
 *                              chunk holds a whole message of a request/response protocol),
 *                              until they reach chunk_size, FIN/RST, or their first byte has
 *                              waited flush_ns of packet time;
 * and with either at chunk_size bytes, at FIN/RST and at the end of the stream.  Chunks come in
 * conversation order either way.  A gap that never fills is
 * skipped (counted) when the direction ends, when it holds more than max_stream bytes out of
 * order, at the idle timeout and at the end.  A connection with nothing for idle_ns is released
 * and forgotten; after FIN both ways or RST it is kept close_ns to swallow retransmissions.  When
 * all connections together hold more than max_bytes, or there are max_conns of them, the oldest
 * are released and forgotten (counted as flushed).
 * Time is packet time: the last packet of each batch the kernel is given; on a live device a
 * batch without packets carries the device clock (mapi_batch.clock_ns), so what waits is
 * released by timeout while the link is idle. */
#ifndef MAPI_FN_COOKING_H
#define MAPI_FN_COOKING_H
#include <stdint.h>
#include "../engine.h"

#define MAPI_COOKING_LINKTYPE 101
#define MAPI_COOKING_MAX_CHUNK 65495    /* IPv4 total length 65535 minus the two headers */
#define MAPI_COOKING_SEGMENT 0          /* release: bytes as soon as they are in order */
#define MAPI_COOKING_CONVERSATION 1     /* release: when the other side sends (and limits) */

typedef struct mapi_cooking_config {
    uint32_t chunk_size;         /* bytes per chunk at most (<= MAPI_COOKING_MAX_CHUNK) */
    uint32_t max_stream;         /* out-of-order bytes one direction may hold */
    uint64_t max_bytes;          /* bytes all connections may hold (buffers and state) */
    uint32_t max_conns;
    uint32_t release;            /* MAPI_COOKING_SEGMENT or MAPI_COOKING_CONVERSATION */
    int64_t flush_ns, idle_ns, close_ns;
} mapi_cooking_config;

typedef struct mapi_cooking_stats {
    uint64_t packets;            /* packets that reached COOKING */
    uint64_t not_tcp;            /* not TCP (or IP fragments, or headers not captured) */
    uint64_t connections;        /* connections seen */
    uint64_t active;             /* connections kept now */
    uint64_t segments;           /* TCP segments with payload */
    uint64_t bytes;              /* stream bytes handed on (reassembled) */
    uint64_t chunks;             /* chunks handed on */
    uint64_t duplicates;         /* segments whose bytes were all there already */
    uint64_t overlaps;           /* segments partly overlapping bytes already there */
    uint64_t overlap_bytes;
    uint64_t out_of_order;       /* segments held until a gap closed */
    uint64_t gaps;               /* holes skipped (bytes never seen) */
    uint64_t gap_bytes;
    uint64_t truncated;          /* segments whose payload was not all captured */
    uint64_t flushed;            /* connections released early for the memory/connection limits */
    uint64_t idle_expired;       /* connections released at the idle timeout */
    uint64_t out_of_window;      /* segments too far from the expected sequence number */
    uint64_t held_bytes;         /* bytes held now */
    uint64_t peak_bytes;         /* most bytes held at once */
} mapi_cooking_stats;

typedef struct mapi_cooking mapi_cooking;

mapi_cooking *mapi_cooking_new(const mapi_cooking_config *cfg);
void mapi_cooking_free(mapi_cooking *c);
uint32_t mapi_cooking_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                             uint32_t nsel, uint32_t *out);
uint32_t mapi_cooking_drain(void *state);
mapi_batch *mapi_cooking_batch(mapi_cooking *c);
void mapi_cooking_get_stats(mapi_cooking *c, mapi_cooking_stats *st);
#endif
