/* libFuzzer target: the engine's savefile readers (mapi/csrc/reader.c, pcapng.c, erf.c).
 *
 * Built once per format (-DFUZZ_FORMAT=MAPI_FMT_PCAP, _PCAPNG, _ERF).  The input is a file.  It
 * is parsed twice, as backends/savefile.py drives the reader: once as one region holding the
 * whole file, once through small regions that grow on NEED_MORE (a stream read in pieces).
 * Checked on every batch: each packet lies inside its region and caplen <= wirelen is not
 * assumed (libpcap allows either); both passes must deliver the same packets with the same
 * bytes up to the same error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reader.h"

#ifndef FUZZ_FORMAT
#error "build with -DFUZZ_FORMAT=MAPI_FMT_..."
#endif

#define BATCH_CAP 64
#define MAX_PACKETS 4096

typedef struct { uint64_t n, bytes, hash; int rc; uint64_t err_offset; int err_code; } summary;

static void check_batch(const mapi_batch *b, const uint8_t *region, uint64_t len, summary *s)
{
    if (b->base != region) __builtin_trap();
    for (uint32_t i = 0; i < b->n; i++) {
        if (b->off[i] > len || b->caplen[i] > len - b->off[i]) __builtin_trap();
        const uint8_t *p = region + b->off[i];
        uint64_t h = s->hash ^ b->caplen[i] ^ ((uint64_t)b->wirelen[i] << 32) ^ (uint64_t)b->ts[i];
        for (uint32_t j = 0; j < b->caplen[i]; j++) h = (h ^ p[j]) * 0x100000001b3ULL;
        s->hash = h;
        s->n++;
        s->bytes += b->caplen[i];
    }
}

/* Parse data[0..size) handing the reader regions of at most `window` bytes (0: everything). */
static void run(const uint8_t *data, size_t size, uint64_t window, mapi_batch *b, summary *s)
{
    static mapi_reader r;
    memset(s, 0, sizeof *s);
    mapi_reader_init(&r, FUZZ_FORMAT);
    r.libpcap_compat = size & 1;     /* both modes: the bit costs the fuzzer one mutation */
    r.raw_ts = (size >> 1) & 1;
    /* the parser byte-swaps some headers in place (USB, NFLOG): a private, writable copy */
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    uint64_t want = window ? window : size, consumed = 0, pos = 0;
    int rc;
    for (;;) {
        uint64_t len = want < size ? want : size;
        /* a region of exactly `len` bytes in its own allocation: ASan sees any read past it */
        uint8_t *reg = malloc(len ? len : 1);
        memcpy(reg, copy, len);
        rc = mapi_reader_open(&r, reg, len, len == size, &consumed);
        free(reg);
        if (rc == MAPI_PARSE_NEED_MORE && len < size) {
            want = r.need > len ? r.need : len * 2;
            continue;
        }
        break;
    }
    if (rc != MAPI_PARSE_OK) {
        s->rc = rc;
        s->err_code = r.err_code;
        s->err_offset = r.err_offset;
        free(copy);
        return;
    }
    pos = consumed;
    uint64_t need = window;
    for (int rounds = 0; rounds < 100000 && s->n < MAX_PACKETS; rounds++) {
        uint64_t len = size - pos;
        if (window && len > need) len = need;
        uint8_t *reg = malloc(len ? len : 1);
        memcpy(reg, copy + pos, len);
        b->n = 0;
        rc = mapi_reader_parse(&r, reg, len, pos, pos + len == size, b, &consumed);
        if (consumed > len) __builtin_trap();
        check_batch(b, reg, len, s);
        /* what the reader changed in place (byte-swapped headers) stays for the next pass */
        memcpy(copy + pos, reg, len);
        free(reg);
        int at_eof = pos + len == size;
        pos += consumed;
        if (rc == MAPI_PARSE_ERROR || rc == MAPI_PARSE_END) break;
        if (rc == MAPI_PARSE_NEED_MORE) {
            if (at_eof) { rc = -1; break; }      /* the reader must not ask past the end */
            need = r.need > window ? r.need : window;
            if (consumed == 0 && need <= len) need = len * 2;
        } else if (consumed == 0 && b->n == 0) {
            rc = -2;                     /* no progress: backends/savefile.py raises here */
            break;
        }
    }
    s->rc = rc;
    s->err_code = rc == MAPI_PARSE_ERROR ? r.err_code : 0;
    s->err_offset = rc == MAPI_PARSE_ERROR ? r.err_offset : 0;
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mapi_batch *b;
    if (!b) {
        b = calloc(1, sizeof *b);
        b->cap = BATCH_CAP;
        b->off = calloc(BATCH_CAP, sizeof *b->off);
        b->caplen = calloc(BATCH_CAP, sizeof *b->caplen);
        b->wirelen = calloc(BATCH_CAP, sizeof *b->wirelen);
        b->ts = calloc(BATCH_CAP, sizeof *b->ts);
        b->ifindex = calloc(BATCH_CAP, sizeof *b->ifindex);
    }
    summary whole, pieces;
    run(data, size, 0, b, &whole);
    run(data, size, 512, b, &pieces);
    /* a stream read in pieces delivers what the whole file delivers (when neither stopped at
     * the packet limit) */
    if (whole.n < MAX_PACKETS && pieces.n < MAX_PACKETS &&
        (whole.n != pieces.n || whole.hash != pieces.hash || whole.rc != pieces.rc ||
         whole.err_offset != pieces.err_offset)) {
        fprintf(stderr, "whole: %lu packets hash %lx rc %d err@%lu; pieces: %lu packets hash %lx rc %d err@%lu\n",
                (unsigned long)whole.n, (unsigned long)whole.hash, whole.rc, (unsigned long)whole.err_offset,
                (unsigned long)pieces.n, (unsigned long)pieces.hash, pieces.rc, (unsigned long)pieces.err_offset);
        __builtin_trap();
    }
    return 0;
}
