/* ERF (Endace DAG) records into batches; see reader.h.
 *
 * A record is a 16-byte header (64-bit little-endian fixed-point timestamp: seconds in the high
 * half, a binary fraction in the low half; type, flags, then big-endian rlen, lctr, wlen),
 * optional 8-byte extension headers (type bit 0x80, and bit 0x80 of each extension's first byte,
 * say another follows), then the payload.  Ethernet payloads start with 2 bytes of padding and
 * their wlen counts the 4-byte FCS, which we leave out like libtrace's and libpcap's ERF readers
 * (so a file converted to pcap gives the same lengths).  Ethernet, HDLC/POS and IPv4/IPv6
 * records are delivered; ATM, AAL, pad, provenance and unknown types are counted and skipped.
 * The loss counters of non-color record types add up in `lost`. */
#include <stdio.h>
#include <string.h>
#include "reader_formats.h"
#include "byteorder.h"

enum {
    ERF_HDLC_POS = 1, ERF_ETH = 2, ERF_MC_HDLC = 5, ERF_COLOR_HDLC_POS = 10, ERF_COLOR_ETH = 11,
    ERF_DSM_COLOR_HDLC_POS = 15, ERF_DSM_COLOR_ETH = 16, ERF_COLOR_MC_HDLC_POS = 17,
    ERF_COLOR_HASH_POS = 19, ERF_COLOR_HASH_ETH = 20, ERF_IPV4 = 22, ERF_IPV6 = 23,
    ERF_META = 27, ERF_PAD = 48,
};

#define LINKTYPE_ETHERNET 1
#define LINKTYPE_PPP_HDLC 50
#define LINKTYPE_RAW 101
#define LINKTYPE_C_HDLC 104


/* What a record type carries: 0 nothing we deliver, 1 Ethernet, 2 HDLC/POS, 3 raw IP,
 * 4 multichannel HDLC (a 4-byte channel header first). */
static int kind_of(uint32_t t)
{
    switch (t) {
    case ERF_ETH: case ERF_COLOR_ETH: case ERF_DSM_COLOR_ETH: case ERF_COLOR_HASH_ETH:
        return 1;
    case ERF_HDLC_POS: case ERF_COLOR_HDLC_POS: case ERF_DSM_COLOR_HDLC_POS:
    case ERF_COLOR_HASH_POS:
        return 2;
    case ERF_IPV4: case ERF_IPV6:
        return 3;
    case ERF_MC_HDLC: case ERF_COLOR_MC_HDLC_POS:
        return 4;
    default:
        return 0;
    }
}

/* In color record types the lctr field holds a color or flow hash, not a loss count. */
static int is_color(uint32_t t)
{
    return t == ERF_COLOR_HDLC_POS || t == ERF_COLOR_ETH || t == ERF_DSM_COLOR_HDLC_POS ||
           t == ERF_DSM_COLOR_ETH || t == ERF_COLOR_MC_HDLC_POS || t == ERF_COLOR_HASH_POS ||
           t == ERF_COLOR_HASH_ETH;
}

/* ERF has no magic number: the first records must look like ERF records. */
int32_t mapi_erf_plausible(const uint8_t *head, uint64_t len)
{
    uint64_t pos = 0;
    int seen = 0;
    uint64_t last_ts = 0;
    while (seen < 3 && len - pos >= 16) {
        const uint8_t *h = head + pos;
        uint32_t t = h[8] & 0x7f, rlen = mapi_be16(h + 10);
        if (t == 0 || (t > 29 && t != ERF_PAD) || (h[9] & 0x80)) return 0;
        if (rlen < 16 || (kind_of(t) == 1 && rlen < 18)) return 0;
        uint64_t ts = mapi_le64(h);
        if (seen && ts < last_ts && t != ERF_PAD) return 0;
        last_ts = ts;
        seen++;
        pos += rlen;
        if (pos > len) break;
    }
    return seen > 0;
}

/* Where a record's packet is: sets *lt, *start (payload offset in the record), *caplen and
 * *wirelen; returns 0 for records that carry no packet, -1 for a malformed one. */
static int locate(mapi_reader *r, const uint8_t *h, uint32_t rlen, uint64_t foff, int32_t *lt,
                  uint32_t *start, uint32_t *caplen, uint32_t *wirelen)
{
    uint32_t type = h[8] & 0x7f, p = 16;
    int more = h[8] & 0x80;
    while (more) {                       /* extension headers */
        if (rlen - p < 8) {
            mapi_reader_fail(r, MAPI_READER_EFORMAT, foff, NULL, "the ERF record at offset %llu "
                             "(length %u) ends inside its extension headers",
                             (unsigned long long)foff, rlen);
            return -1;
        }
        more = h[p] & 0x80;
        p += 8;
    }
    int kind = kind_of(type);
    if (kind == 0) return 0;
    uint32_t wlen = mapi_be16(h + 14);
    uint32_t skip = kind == 1 ? 2 : kind == 4 ? 4 : 0;
    if (rlen - p < skip) {
        mapi_reader_fail(r, MAPI_READER_EFORMAT, foff, NULL, "the ERF record at offset %llu "
                         "(type %u, length %u) is too short for its headers",
                         (unsigned long long)foff, type, rlen);
        return -1;
    }
    p += skip;
    uint32_t cap = rlen - p;
    if (kind == 1) {
        *lt = LINKTYPE_ETHERNET;
        wlen = wlen >= 4 ? wlen - 4 : 0;     /* the FCS */
    } else if (kind == 3) {
        *lt = LINKTYPE_RAW;
    } else {
        /* PPP in HDLC-like framing starts with address 0xff; Cisco HDLC with 0x0f / 0x8f */
        *lt = cap > 0 && h[p] == 0xff ? LINKTYPE_PPP_HDLC : LINKTYPE_C_HDLC;
    }
    if (cap > wlen) cap = wlen;              /* records are padded; wlen is the packet */
    *start = p;
    *caplen = cap;
    *wirelen = wlen;
    return 1;
}

int mapi_erf_open(mapi_reader *r, const uint8_t *region, uint64_t len, int32_t at_eof,
                  uint64_t *consumed)
{
    (void)at_eof;
    *consumed = 0;
    r->format = MAPI_FMT_ERF;
    r->nsec = 1;
    r->snaplen = 65535;                  /* rlen is 16 bits */
    r->max_caplen = 65535;
    r->linktype = LINKTYPE_ETHERNET;
    /* report the first packet's link type (a look only: nothing is consumed) */
    uint64_t pos = 0;
    for (int i = 0; i < 64 && len - pos >= 16; i++) {
        const uint8_t *h = region + pos;
        uint32_t rlen = mapi_be16(h + 10), start, cap, wl;
        int32_t lt;
        if (rlen < 16 || len - pos < rlen) break;
        char keep[256];
        memcpy(keep, r->err, sizeof keep);
        int k = locate(r, h, rlen, pos, &lt, &start, &cap, &wl);
        memcpy(r->err, keep, sizeof keep);
        if (k < 0) break;
        if (k > 0) { r->linktype = lt; break; }
        pos += rlen;
    }
    r->first_linktype = r->linktype;
    r->first_snaplen = r->snaplen;
    r->err_code = 0;
    return MAPI_PARSE_OK;
}

int mapi_erf_parse(mapi_reader *r, const uint8_t *region, uint64_t len, uint64_t file_offset,
                   int32_t at_eof, mapi_batch *b, uint64_t *consumed)
{
    uint64_t pos = 0;
    uint32_t n = 0;
    int rc = MAPI_PARSE_OK;
    int32_t blt = -1;
    while (n < b->cap && pos < r->max_batch_bytes) {
        const uint64_t foff = file_offset + pos;
        uint64_t avail = len - pos;
        if (avail < 16) {
            if (!at_eof) { r->need = 16; rc = MAPI_PARSE_NEED_MORE; break; }
            if (avail == 0) { rc = MAPI_PARSE_END; break; }
            rc = mapi_reader_fail(r, MAPI_READER_ETRUNC, foff, NULL, "file ends inside the ERF "
                                  "record header at offset %llu (%llu of its 16 bytes)",
                                  (unsigned long long)foff, (unsigned long long)avail);
            break;
        }
        const uint8_t *h = region + pos;
        uint32_t rlen = mapi_be16(h + 10);
        if (rlen < 16) {
            rc = mapi_reader_fail(r, MAPI_READER_EFORMAT, foff, NULL, "the ERF record at offset "
                                  "%llu gives a record length of %u, less than its 16-byte header "
                                  "(file corrupt or not ERF)", (unsigned long long)foff, rlen);
            break;
        }
        if (avail < rlen) {
            if (!at_eof) { r->need = rlen; rc = MAPI_PARSE_NEED_MORE; break; }
            rc = mapi_reader_fail(r, MAPI_READER_ETRUNC, foff, NULL, "file ends inside the ERF "
                                  "record at offset %llu (%llu of its %u bytes)",
                                  (unsigned long long)foff, (unsigned long long)avail, rlen);
            break;
        }
        uint32_t start, cap, wl;
        int32_t lt;
        int k = locate(r, h, rlen, foff, &lt, &start, &cap, &wl);
        if (k < 0) { rc = MAPI_PARSE_ERROR; break; }
        uint32_t type = h[8] & 0x7f;
        if (k == 0) {
            if (!is_color(type) && type != ERF_PAD && type != ERF_META) r->lost += mapi_be16(h + 12);
            r->skipped++;
            r->records++;
            pos += rlen;
            continue;
        }
        if (blt < 0) {
            blt = lt;
            b->linktype = lt;
            r->linktype = lt;
        } else if (lt != blt) {
            break;                       /* the next batch has the other link type */
        }
        if (!is_color(type)) r->lost += mapi_be16(h + 12);
        uint64_t t = mapi_le64(h);
        /* the binary fraction rounded to the nearest ns */
        uint64_t frac_ns = ((t & 0xffffffffu) * 1000000000u + 0x80000000u) >> 32;
        b->off[n] = pos + start;
        b->caplen[n] = cap;
        b->wirelen[n] = wl;
        b->ts[n] = (int64_t)((t >> 32) * 1000000000u + frac_ns);
        b->ifindex[n] = (uint16_t)(((h[9] & 0x40) >> 4) | (h[9] & 0x03));
        n++;
        r->records++;
        pos += rlen;
    }
    if (blt < 0) b->linktype = r->linktype;
    b->n = n;
    r->packets += n;
    *consumed = pos;
    return rc;
}
