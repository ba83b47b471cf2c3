/* Savefile parsers: classic pcap (4 variants), pcapng and ERF records into batches.
 *
 * A parser walks a byte region that holds the file's records (after the file header, which the
 * Python side reads) and fills a batch with the offsets of the packets inside that region, so
 * the packets are never copied.  It stops when the batch is full, at a link-type change (a
 * batch has one link type), at an incomplete record at the end of the region, or at an error. */
#ifndef MAPI_READER_H
#define MAPI_READER_H
#include <stdint.h>
#include <stddef.h>
#include "engine.h"

#define MAPI_FMT_PCAP 1
#define MAPI_FMT_PCAPNG 2
#define MAPI_FMT_ERF 3

#define MAPI_PARSE_OK 0          /* batch full or link type changed: call again */
#define MAPI_PARSE_NEED_MORE 1   /* the region ends inside a record (or is used up) */
#define MAPI_PARSE_ERROR 2       /* malformed record: see err / err_offset */

#define MAPI_MAX_IFACES 256

typedef struct mapi_reader {
    int32_t format;
    int32_t swapped;          /* pcap/pcapng section: byte order differs from ours */
    int32_t nsec;             /* pcap: timestamps are in ns */
    int32_t linktype;         /* pcap: from the file header */
    uint32_t snaplen;         /* pcap: from the file header */
    uint32_t max_caplen;      /* records with a larger caplen are an error */
    uint32_t max_batch_bytes; /* stop a batch after this many bytes of region */
    /* pcapng interface table of the current section */
    uint32_t nifaces;
    int32_t if_linktype[MAPI_MAX_IFACES];
    uint32_t if_snaplen[MAPI_MAX_IFACES];
    int64_t if_tsoffset_ns[MAPI_MAX_IFACES];
    uint64_t if_tsresol_num[MAPI_MAX_IFACES];   /* units per second: 10^6 default */
    /* progress */
    uint64_t next_seq;        /* device-wide index of the next packet */
    uint64_t records;         /* records parsed (including non-packet blocks) */
    uint64_t skipped;         /* records not delivered (unsupported ERF types, ...) */
    /* error */
    uint64_t err_offset;      /* file offset of the bad record */
    char err[256];
} mapi_reader;

void mapi_reader_init(mapi_reader *r, int32_t format);
/* Parse records from region[0..len) whose first byte is at file offset `file_offset`.
 * Sets b->base = region and fills packets (b->n, offsets relative to region).
 * *consumed = bytes of complete records used.  Returns one of MAPI_PARSE_*. */
int mapi_reader_parse(mapi_reader *r, const uint8_t *region, uint64_t len, uint64_t file_offset,
                      mapi_batch *b, uint64_t *consumed);
#endif
