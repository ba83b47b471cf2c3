/* Savefile record parsers; see reader.h.  Classic pcap and what every format shares live here;
 * pcapng and ERF in their own files, reached through mapi_reader_open()/mapi_reader_parse().
 *
 * Classic pcap follows libpcap 1.10.3's sf-pcap.c as observed with tcpdump on crafted files:
 * which records come out, their lengths, and the record at which an error is reported. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "reader_formats.h"
#include "byteorder.h"

#define PCAP_MAGIC_US 0xa1b2c3d4u
#define PCAP_MAGIC_NS 0xa1b23c4du
#define PCAP_MAGIC_KUZNETZOV 0xa1b2cd34u
#define LT_LINKTYPE_MASK 0x03FFFFFFu   /* libpcap 1.10's LT_LINKTYPE() */

void mapi_reader_init(mapi_reader *r, int32_t format)
{
    memset(r, 0, sizeof *r);
    r->format = format;
    r->hdrsize = 16;
    r->snaplen = 262144;
    r->max_caplen = 262144;
    r->max_batch_bytes = 8u << 20;
    r->linktype = 1;
}

int mapi_reader_fail(mapi_reader *r, int32_t code, uint64_t offset, const char *pcap_text,
                     const char *fmt, ...)
{
    va_list ap;
    r->err_code = code;
    r->err_offset = offset;
    if (pcap_text && pcap_text != r->pcap_err)
        snprintf(r->pcap_err, sizeof r->pcap_err, "%s", pcap_text);
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
    return MAPI_PARSE_ERROR;
}

const char *mapi_reader_pcap_text(mapi_reader *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->pcap_err, sizeof r->pcap_err, fmt, ap);
    va_end(ap);
    return r->pcap_err;
}

/* libpcap's linktype_to_dlt(): LINKTYPE_ values 104..289 equal their DLT_; below that a few
 * differ (Linux values). */
int32_t mapi_linktype_dlt(int32_t linktype)
{
    switch (linktype) {
    case 100: return 11;     /* ATM_RFC1483 */
    case 101: return 12;     /* RAW */
    case 102: return 15;     /* SLIP_BSDOS */
    case 103: return 16;     /* PPP_BSDOS */
    default: return linktype;
    }
}

/* libpcap's max_snaplen_for_dlt() */
uint32_t mapi_max_snaplen(int32_t dlt)
{
    switch (dlt) {
    case 231: return 128u * 1024 * 1024;   /* DBUS */
    case 279: return 8u * 1024 * 1024;     /* EBHSCR */
    case 249: return 1024u * 1024;         /* USBPCAP */
    default: return 262144;
    }
}

/* libpcap's pcap_adjust_snapshot(): a bogus snapshot length becomes the link type's maximum */
uint32_t mapi_adjust_snaplen(int32_t dlt, uint32_t snaplen)
{
    if (snaplen == 0 || snaplen > INT_MAX) return mapi_max_snaplen(dlt);
    return snaplen;
}

int32_t mapi_reader_detect(const uint8_t *head, uint64_t len)
{
    if (len >= 4) {
        uint32_t m = mapi_rd32(head, 0), s = __builtin_bswap32(m);
        if (m == PCAP_MAGIC_US || m == PCAP_MAGIC_NS || m == PCAP_MAGIC_KUZNETZOV ||
            s == PCAP_MAGIC_US || s == PCAP_MAGIC_NS || s == PCAP_MAGIC_KUZNETZOV)
            return MAPI_FMT_PCAP;
        if (m == 0x0A0D0D0Au) return MAPI_FMT_PCAPNG;
    }
    if (mapi_erf_plausible(head, len)) return MAPI_FMT_ERF;
    return 0;
}

/* --- classic pcap: file header ------------------------------------------------------------- */
static int pcap_open(mapi_reader *r, const uint8_t *h, uint64_t len, int32_t at_eof,
                     uint64_t *consumed)
{
    *consumed = 0;
    if (len < 4) {
        if (!at_eof) { r->need = 4; return MAPI_PARSE_NEED_MORE; }
        return mapi_reader_fail(r, MAPI_READER_ETRUNC, 0,
                                mapi_reader_pcap_text(r, "truncated dump file; tried to read 4 "
                                                      "file header bytes, only got %llu",
                                                      (unsigned long long)len),
                                "the file ends at offset %llu, inside the pcap file header",
                                (unsigned long long)len);
    }
    uint32_t magic = mapi_rd32(h, 0);
    int sw = 0;
    if (magic != PCAP_MAGIC_US && magic != PCAP_MAGIC_NS && magic != PCAP_MAGIC_KUZNETZOV) {
        magic = __builtin_bswap32(magic);
        sw = 1;
        if (magic != PCAP_MAGIC_US && magic != PCAP_MAGIC_NS && magic != PCAP_MAGIC_KUZNETZOV) {
            return mapi_reader_fail(r, MAPI_READER_EFORMAT, 0,
                                    mapi_reader_pcap_text(r, "unknown file format"),
                                    "not a pcap file: the magic number at offset 0 is %02x %02x "
                                    "%02x %02x", h[0], h[1], h[2], h[3]);
        }
    }
    if (len < 24) {
        if (!at_eof) { r->need = 24; return MAPI_PARSE_NEED_MORE; }
        return mapi_reader_fail(r, MAPI_READER_ETRUNC, len,
                                mapi_reader_pcap_text(r, "truncated dump file; tried to read 24 "
                                                      "file header bytes, only got %llu",
                                                      (unsigned long long)(len - 4)),
                                "the pcap file header is cut short at offset %llu (%llu of its 24 "
                                "bytes)", (unsigned long long)len, (unsigned long long)len);
    }
    uint32_t major = mapi_rd16(h + 4, sw), minor = mapi_rd16(h + 6, sw);
    if (major < 2) {
        return mapi_reader_fail(r, MAPI_READER_EFORMAT, 4,
                                mapi_reader_pcap_text(r, "archaic pcap savefile format"),
                                "pcap version %u.%u at offset 4 is an archaic format that cannot "
                                "be read", major, minor);
    }
    if (!((major == 2 && minor <= 4) || (major == 543 && minor == 0))) {
        return mapi_reader_fail(r, MAPI_READER_EFORMAT, 4,
                                mapi_reader_pcap_text(r, "unsupported pcap savefile version %u.%u",
                                                      major, minor), "unsupported pcap version "
                                "%u.%u at offset 4 (2.0 to 2.4 are known)", major, minor);
    }
    uint32_t network = mapi_rd32(h + 20, sw);
    r->format = MAPI_FMT_PCAP;
    r->swapped = sw;
    r->nsec = magic == PCAP_MAGIC_NS;
    r->version_major = major;
    r->version_minor = minor;
    r->thiszone = (int32_t)mapi_rd32(h + 8, sw);
    r->sigfigs = mapi_rd32(h + 12, sw);
    r->file_snaplen = mapi_rd32(h + 16, sw);
    r->linktype = (int32_t)(network & LT_LINKTYPE_MASK);
    r->linktype_ext = network & ~LT_LINKTYPE_MASK;
    int32_t dlt = mapi_linktype_dlt(r->linktype);
    r->max_caplen = mapi_max_snaplen(dlt);
    r->snaplen = mapi_adjust_snaplen(dlt, r->file_snaplen);
    /* caplen and len were swapped before 2.3; 2.3 files come both ways; DG/UX writes 543.0 */
    if (major == 2 && minor < 3) r->lengths_swapped = 1;
    else if (major == 2 && minor == 3) r->lengths_swapped = 2;
    else if (major == 543) r->lengths_swapped = 1;
    else r->lengths_swapped = 0;
    r->hdrsize = 16;
    if (magic == PCAP_MAGIC_KUZNETZOV) {
        /* 8 more bytes per record (ifindex, protocol, pkt_type); cooked captures on Ethernet
         * could hold 14 bytes more than the snapshot length */
        r->hdrsize = 24;
        if (dlt == 1) r->snaplen = r->snaplen <= INT_MAX - 14 ? r->snaplen + 14 : INT_MAX;
    }
    *consumed = 24;
    return MAPI_PARSE_OK;
}

int mapi_reader_open(mapi_reader *r, const uint8_t *region, uint64_t len, int32_t at_eof,
                     uint64_t *consumed)
{
    r->err[0] = 0;
    r->pcap_err[0] = 0;
    r->need = 0;
    *consumed = 0;
    int32_t fmt = r->format;
    if (fmt == 0) {
        fmt = mapi_reader_detect(region, len);
        if (fmt == 0 && len < 4 && !at_eof) { r->need = 4; return MAPI_PARSE_NEED_MORE; }
        if (fmt == 0) {
            if (len < 4) {
                mapi_reader_fail(r, MAPI_READER_ETRUNC, len,
                                 mapi_reader_pcap_text(r, "truncated dump file; tried to read 4 "
                                                       "file header bytes, only got %llu",
                                                       (unsigned long long)len),
                                 len ? "the file ends at offset %llu: too short for any "
                                       "savefile header"
                                     : "the file is empty (it ends at offset %llu)",
                                 (unsigned long long)len);
            } else {
                mapi_reader_fail(r, MAPI_READER_EFORMAT, 0,
                                 mapi_reader_pcap_text(r, "unknown file format"), "not a pcap, "
                                 "pcapng or ERF file: offset 0 holds %02x %02x %02x %02x",
                                 region[0], region[1], region[2], region[3]);
            }
            return MAPI_PARSE_ERROR;
        }
        r->format = fmt;
    }
    switch (fmt) {
    case MAPI_FMT_PCAP: return pcap_open(r, region, len, at_eof, consumed);
    case MAPI_FMT_PCAPNG: return mapi_pcapng_open(r, region, len, at_eof, consumed);
    case MAPI_FMT_ERF: return mapi_erf_open(r, region, len, at_eof, consumed);
    default:
        return mapi_reader_fail(r, MAPI_READER_EFORMAT, 0, NULL, "unknown savefile format code %d",
                                fmt);
    }
}

/* --- classic pcap: records ----------------------------------------------------------------- */

/* The rare paths of a record: caplen above the snapshot length or libpcap's maximum, or a record
 * the file ends inside.  Returns 1 when the record is delivered (*deliver = its caplen),
 * 0 to stop with *rc. */
static int pcap_slow_record(mapi_reader *r, uint64_t avail, uint32_t caplen, uint64_t foff,
                            int32_t at_eof, uint32_t *deliver, int *rc)
{
    const uint32_t hs = r->hdrsize, snap = r->snaplen;
    uint64_t body = avail - hs;
    if (caplen > r->max_caplen) {
        const char *pcap =
            caplen > snap ? mapi_reader_pcap_text(r, "invalid packet capture length %u, bigger "
                                                  "than snaplen of %d", caplen, (int)snap)
                          : mapi_reader_pcap_text(r, "invalid packet capture length %u, bigger "
                                                  "than maximum of %u", caplen, r->max_caplen);
        *rc = mapi_reader_fail(r, MAPI_READER_EFORMAT, foff, pcap, "record at offset %llu has a "
                               "captured length of %u, more than the maximum of %u for link type "
                               "%d (file corrupt?)", (unsigned long long)foff, caplen,
                               r->max_caplen, r->linktype);
        return 0;
    }
    if (body >= caplen) {                       /* complete; longer than the snapshot length */
        *deliver = caplen > snap ? snap : caplen;
        if (caplen > snap) r->snapped++;
        return 1;
    }
    if (!at_eof) {
        r->need = (uint64_t)hs + caplen;
        *rc = MAPI_PARSE_NEED_MORE;
        return 0;
    }
    /* libpcap reads min(caplen, snapshot) bytes first, then discards the rest */
    uint32_t tried = caplen > snap && body < snap ? snap : caplen;
    *rc = mapi_reader_fail(r, MAPI_READER_ETRUNC, foff,
                           mapi_reader_pcap_text(r, "truncated dump file; tried to read %u "
                                                 "captured bytes, only got %llu", tried,
                                                 (unsigned long long)body), "file ends inside the "
                           "record at offset %llu: %llu of its %u captured bytes are present",
                           (unsigned long long)foff, (unsigned long long)body, caplen);
    return 0;
}

#define PREFETCH_AHEAD 4096

static inline __attribute__((always_inline))
int pcap_records(mapi_reader *r, const uint8_t *region, uint64_t len, uint64_t file_offset,
                 int32_t at_eof, mapi_batch *b, uint64_t *consumed, const int sw)
{
    uint64_t pos = 0;
    uint32_t n = 0;
    int rc = MAPI_PARSE_OK;
    const uint32_t hs = r->hdrsize;
    const uint32_t fast_max = r->snaplen < r->max_caplen ? r->snaplen : r->max_caplen;
    const int64_t mul = r->nsec ? 1 : 1000;
    const int raw = r->raw_ts, ls = r->lengths_swapped;
    const uint32_t cap = b->cap;
    const uint64_t limit = r->max_batch_bytes;
    uint64_t *off = b->off;
    uint32_t *cl = b->caplen, *wl = b->wirelen;
    int64_t *ts = b->ts;
    uint16_t *ifx = b->ifindex;
    const uint8_t *pf = region, *pf_end = region + len;
    while (n < cap && pos < limit) {
        uint64_t avail = len - pos;
        if (__builtin_expect(avail < hs, 0)) {
            if (!at_eof) { r->need = hs; rc = MAPI_PARSE_NEED_MORE; break; }
            if (avail == 0) { rc = MAPI_PARSE_END; break; }
            rc = mapi_reader_fail(r, MAPI_READER_ETRUNC, file_offset + pos,
                                  mapi_reader_pcap_text(r, "truncated dump file; tried to read %u "
                                                        "header bytes, only got %llu", hs,
                                                        (unsigned long long)avail), "file ends "
                                  "inside the record header at offset %llu (%llu of its %u bytes)",
                                  (unsigned long long)(file_offset + pos),
                                  (unsigned long long)avail, hs);
            break;
        }
        const uint8_t *h = region + pos;
        /* every line a little ahead: each record's header address comes from the one before,
         * so without prefetching the walk waits on memory at every record */
        while (pf < h + PREFETCH_AHEAD && pf < pf_end) {
            __builtin_prefetch(pf);
            pf += 64;
        }
        uint32_t sec = mapi_rd32(h, sw), frac = mapi_rd32(h + 4, sw);
        uint32_t caplen = mapi_rd32(h + 8, sw), wirelen = mapi_rd32(h + 12, sw);
        if (__builtin_expect(ls != 0, 0) && (ls == 1 || caplen > wirelen)) {
            uint32_t t = caplen; caplen = wirelen; wirelen = t;
        }
        uint32_t deliver = caplen;
        if (__builtin_expect(caplen > fast_max || avail - hs < caplen, 0)) {
            if (!pcap_slow_record(r, avail, caplen, file_offset + pos, at_eof, &deliver, &rc))
                break;
        }
        off[n] = pos + hs;
        cl[n] = deliver;
        wl[n] = wirelen;
        ts[n] = raw ? (int64_t)(((uint64_t)sec << 32) | frac)
                    : (int64_t)sec * 1000000000 + (int64_t)frac * mul;
        ifx[n] = 0;
        n++;
        pos += hs + (uint64_t)caplen;
    }
    b->n = n;
    *consumed = pos;
    return rc;
}

static int parse_pcap(mapi_reader *r, const uint8_t *region, uint64_t len, uint64_t file_offset,
                      int32_t at_eof, mapi_batch *b, uint64_t *consumed)
{
    b->linktype = r->linktype;
    int rc = r->swapped ? pcap_records(r, region, len, file_offset, at_eof, b, consumed, 1)
                        : pcap_records(r, region, len, file_offset, at_eof, b, consumed, 0);
    r->records += b->n;
    r->packets += b->n;
    mapi_reader_post_process(r, region, b);
    return rc;
}

int mapi_reader_parse(mapi_reader *r, const uint8_t *region, uint64_t len, uint64_t file_offset,
                      int32_t at_eof, mapi_batch *b, uint64_t *consumed)
{
    int rc;
    r->need = 0;
    b->base = region;
    b->first_seq = r->next_seq;
    b->n = 0;
    *consumed = 0;
    switch (r->format) {
    case MAPI_FMT_PCAP:
        rc = parse_pcap(r, region, len, file_offset, at_eof, b, consumed);
        break;
    case MAPI_FMT_PCAPNG:
        rc = mapi_pcapng_parse(r, region, len, file_offset, at_eof, b, consumed);
        break;
    case MAPI_FMT_ERF:
        rc = mapi_erf_parse(r, region, len, file_offset, at_eof, b, consumed);
        break;
    default:
        return mapi_reader_fail(r, MAPI_READER_EFORMAT, file_offset, NULL, "unknown savefile "
                                "format code %d", r->format);
    }
    r->next_seq += b->n;
    return rc;
}

/* --- pseudo-headers libpcap rewrites after reading ---------------------------------------- */
/* libpcap hands Linux USB and NFLOG pseudo-headers over in the reader's byte order, and fixes
 * the wire length of some memory-mapped USB isochronous captures; packets are changed in place
 * (the region must be writable for these link types). */

static void swap16_at(uint8_t *p) { uint16_t v; memcpy(&v, p, 2); v = __builtin_bswap16(v); memcpy(p, &v, 2); }
static void swap32_at(uint8_t *p) { uint32_t v; memcpy(&v, p, 4); v = __builtin_bswap32(v); memcpy(p, &v, 4); }
static void swap64_at(uint8_t *p) { uint64_t v; memcpy(&v, p, 8); v = __builtin_bswap64(v); memcpy(p, &v, 8); }

/* Linux USB header: id(8) event type dev bus(2) setup data ts_sec(8) ts_usec status urb_len
 * data_len s(8) [64-byte form: interval start_frame xfer_flags ndesc, then iso descriptors] */
static void swap_usb_header(uint8_t *p, uint32_t caplen, int long_form)
{
    if (caplen < 8) return;
    swap64_at(p);
    if (caplen < 14) return;
    swap16_at(p + 12);
    if (caplen < 24) return;
    swap64_at(p + 16);
    static const uint8_t at32[] = {24, 28, 32, 36};
    for (unsigned i = 0; i < 4; i++) {
        if (caplen < at32[i] + 4u) return;
        swap32_at(p + at32[i]);
    }
    int iso = p[9] == 0;                 /* transfer type URB_ISOCHRONOUS */
    if (iso) {
        if (caplen < 44) return;
        swap32_at(p + 40);
        if (caplen < 48) return;
        swap32_at(p + 44);
    }
    if (!long_form) return;
    for (uint32_t o = 48; o < 64; o += 4) {
        if (caplen < o + 4) return;
        swap32_at(p + o);
    }
    if (!iso) return;
    uint32_t ndesc;
    memcpy(&ndesc, p + 60, 4);
    uint64_t o = 64;
    for (uint32_t i = 0; i < ndesc; i++, o += 16) {
        if (caplen < o + 4) return;
        swap32_at(p + o);
        if (caplen < o + 8) return;
        swap32_at(p + o + 4);
        if (caplen < o + 12) return;
        swap32_at(p + o + 8);
    }
}

/* NFLOG: 4-byte header, then TLVs of (length, type) in the writer's byte order */
static void swap_nflog_header(uint8_t *p, uint32_t caplen, uint32_t wirelen)
{
    if (caplen < 4 || wirelen < 4 || p[1] != 0) return;
    caplen -= 4;
    wirelen -= 4;
    p += 4;
    while (caplen >= 4) {
        swap16_at(p);
        swap16_at(p + 2);
        uint16_t size;
        memcpy(&size, p, 2);
        if (size % 4) size += 4 - size % 4;
        if (size < 4 || caplen < size || wirelen < size) return;
        caplen -= size;
        wirelen -= size;
        p += size;
    }
}

/* Old memory-mapped USB captures computed the length of incoming isochronous completions from
 * the URB length; libpcap recomputes it from the descriptors. */
static void fix_usb_mmapped_len(const uint8_t *p, uint32_t caplen, uint32_t *wirelen)
{
    if (caplen < 64) return;
    uint32_t urb_len, ndesc;
    memcpy(&urb_len, p + 32, 4);
    memcpy(&ndesc, p + 60, 4);
    if (p[15] != 0) return;                                  /* data_flag: no data */
    if (*wirelen != (uint32_t)(64 + ndesc * 16 + urb_len)) return;
    if (p[9] != 0 || p[8] != 'C' || !(p[10] & 0x80)) return; /* iso, complete, incoming */
    uint32_t left = caplen - 64, end = 0;
    for (uint32_t d = 0; d < ndesc && left >= 16; d++, left -= 16) {
        uint32_t doff, dlen;
        memcpy(&doff, p + 64 + 16 * d + 4, 4);
        memcpy(&dlen, p + 64 + 16 * d + 8, 4);
        if (dlen != 0 && doff + dlen > end) end = doff + dlen;
    }
    uint32_t full = 64 + ndesc * 16 + end;
    if (full >= caplen) *wirelen = full;
    if (caplen > *wirelen) *wirelen = caplen;
}

void mapi_reader_post_process(mapi_reader *r, const uint8_t *region, mapi_batch *b)
{
    int32_t lt = b->linktype;
    if (lt != 189 && lt != 220 && lt != 239) return;
    for (uint32_t i = 0; i < b->n; i++) {
        uint8_t *p = (uint8_t *)(region + b->off[i]);
        if (r->swapped) {
            if (lt == 239) swap_nflog_header(p, b->caplen[i], b->wirelen[i]);
            else swap_usb_header(p, b->caplen[i], lt == 220);
        }
        if (lt == 220) fix_usb_mmapped_len(p, b->caplen[i], &b->wirelen[i]);
    }
}
