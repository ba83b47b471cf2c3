/* Savefile parsers: classic pcap (4 variants + Kuznetzov's), pcapng and ERF records into batches.
 *
 * The caller reads the file into a region (a read buffer or a mapped window) and calls
 * mapi_reader_open() once on the start of the file (format header; for pcapng every block up to
 * and including the first Interface Description Block), then mapi_reader_parse() on the rest.
 * The parser fills a batch with the offsets of the packets inside the region, so packets are
 * never copied.  It stops when the batch is full, at a link-type change (a batch has one link
 * type), at an incomplete record at the end of the region, or at an error.
 *
 * Classic pcap and pcapng follow libpcap 1.10's readers record for record: the same records are
 * delivered with the same lengths, and an error comes at the same record, with libpcap's own
 * text in pcap_err beside our message in err. */
#ifndef MAPI_READER_H
#define MAPI_READER_H
#include <stdint.h>
#include <stddef.h>
#include "engine.h"

#define MAPI_FMT_PCAP 1
#define MAPI_FMT_PCAPNG 2
#define MAPI_FMT_ERF 3

#define MAPI_PARSE_OK 0          /* batch full or link type changed: call again */
#define MAPI_PARSE_NEED_MORE 1   /* the region ends inside a record: `need` says how much */
#define MAPI_PARSE_ERROR 2       /* malformed or cut record: see err_code / err / err_offset */
#define MAPI_PARSE_END 3         /* at_eof and every record was delivered */

/* error classes: the numbers of mapi.errors.EFORMAT and ETRUNC */
#define MAPI_READER_EFORMAT 1011
#define MAPI_READER_ETRUNC 1012

#define MAPI_MAX_IFACES 256

/* pcapng timestamp units to ns: multiply, divide, or (binary resolutions) scale and shift */
#define MAPI_TS_MUL 0
#define MAPI_TS_DIV 1
#define MAPI_TS_BIN 2

typedef struct mapi_ng_iface {
    int32_t linktype;
    uint32_t snaplen;         /* after libpcap's adjustment (0 or > INT_MAX: the maximum) */
    uint64_t tsresol;         /* timestamp units per second */
    uint64_t tsscale;         /* MUL/DIV: factor between units and ns; BIN: unused */
    int64_t tsoffset;         /* seconds added to every timestamp */
    uint32_t tsmode;          /* MAPI_TS_* */
    uint32_t tsshift;         /* BIN: the resolution is 2^-tsshift s */
} mapi_ng_iface;

typedef struct mapi_reader {
    int32_t format;
    int32_t swapped;          /* byte order differs from ours (pcapng: current section) */
    int32_t nsec;             /* pcap: fractions are ns (else us) */
    int32_t linktype;         /* link type (LINKTYPE_*) of the packets now delivered */
    uint32_t linktype_ext;    /* pcap: the header's link-type bits above LT_LINKTYPE (FCS info) */
    uint32_t snaplen;         /* snapshot length as libpcap reports it, after its adjustments */
    uint32_t file_snaplen;    /* pcap: as stored in the file header */
    uint32_t max_caplen;      /* pcap: libpcap's sanity maximum for the link type */
    uint32_t hdrsize;         /* pcap: record header bytes, 16 (24 in Kuznetzov's format) */
    int32_t lengths_swapped;  /* pcap: 0 no, 1 yes (< 2.3, 543.0), 2 when caplen > len (2.3) */
    uint32_t version_major;
    uint32_t version_minor;
    int32_t thiszone;
    uint32_t sigfigs;
    /* options: set by the caller before parsing */
    int32_t raw_ts;           /* pcap: ts[i] = sec << 32 | frac as stored (a libpcap shim's view) */
    int32_t libpcap_compat;   /* pcapng: also fail where libpcap does (a second link type or
                               * snapshot length, a section in the other byte order) */
    uint32_t max_batch_bytes; /* end a batch after this many bytes of region */
    /* pcapng: interfaces of the current section */
    uint32_t nifaces;
    uint32_t iface_base;      /* ifindex of the section's interface 0 (numbered across sections) */
    uint32_t sections;
    uint32_t max_blocksize;
    int32_t first_linktype;   /* the file's first interface (what libpcap reports) */
    uint32_t first_snaplen;
    mapi_ng_iface ifaces[MAPI_MAX_IFACES];
    /* ERF */
    uint64_t lost;            /* sum of the loss counters of the records */
    /* progress */
    uint64_t next_seq;        /* device-wide index of the next packet */
    uint64_t records;         /* records / blocks consumed, packets or not */
    uint64_t packets;         /* packets delivered */
    uint64_t skipped;         /* records that carry no packet we deliver (ERF ATM, pad, ...) */
    uint64_t snapped;         /* pcap: records cut to the snapshot length as libpcap does */
    uint64_t need;            /* after NEED_MORE: region bytes needed from *consumed on */
    /* error */
    int32_t err_code;         /* MAPI_READER_EFORMAT or MAPI_READER_ETRUNC */
    uint32_t _pad;
    uint64_t err_offset;      /* file offset of the bad record */
    char err[256];            /* what is wrong and where */
    char pcap_err[256];       /* libpcap 1.10's text for the same error ("" if it has none) */
} mapi_reader;

void mapi_reader_init(mapi_reader *r, int32_t format);
/* Which format starts with these bytes: MAPI_FMT_* or 0. */
int32_t mapi_reader_detect(const uint8_t *head, uint64_t len);
/* Parse the file header (pcapng: up to and including the first IDB) from region[0..len), the
 * start of the file; at_eof says the region holds the whole rest of the file.  Returns OK
 * (*consumed = header bytes), NEED_MORE or ERROR (an error libpcap reports at open time). */
int mapi_reader_open(mapi_reader *r, const uint8_t *region, uint64_t len, int32_t at_eof,
                     uint64_t *consumed);
/* Parse records from region[0..len) whose first byte is at file offset `file_offset`.
 * Sets b->base = region and fills packets (b->n, offsets relative to region).
 * *consumed = bytes of complete records used.  Returns one of MAPI_PARSE_*. */
int mapi_reader_parse(mapi_reader *r, const uint8_t *region, uint64_t len, uint64_t file_offset,
                      int32_t at_eof, mapi_batch *b, uint64_t *consumed);
#endif
