/* pcapng blocks into batches; see reader.h.
 *
 * SHB (either byte order, several sections), IDB (if_tsresol in powers of 10 or 2, if_tsoffset,
 * snaplen), EPB, SPB (interface 0, no timestamp) and the obsolete PB; every other block is
 * skipped.  Packets of several interfaces are delivered with ifindex = the interface's number
 * in the file (sections numbered on); a batch ends where the link type changes.
 *
 * Checks and their order follow libpcap 1.10.3's sf-pcapng.c (observed with tcpdump on crafted
 * files), and pcap_err gets its text.  libpcap also refuses a second link type or snapshot
 * length and a section in the other byte order; we read those unless libpcap_compat is set. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include "reader_formats.h"
#include "byteorder.h"

#define BT_SHB 0x0A0D0D0Au
#define BT_IDB 1u
#define BT_PB 2u
#define BT_SPB 3u
#define BT_EPB 6u
#define BYTE_ORDER_MAGIC 0x1A2B3C4Du
#define SHB_INSANE_MAX (1024u * 1024u)
#define INITIAL_MAX_BLOCKSIZE (16u * 1024u * 1024u)

static const char *block_name(uint32_t type)
{
    switch (type) {
    case BT_SHB: return "section header block";
    case BT_IDB: return "interface description block";
    case BT_PB: return "packet block";
    case BT_SPB: return "simple packet block";
    case BT_EPB: return "enhanced packet block";
    default: return "block";
    }
}

static int too_short(mapi_reader *r, uint32_t type, uint64_t foff)
{
    return mapi_reader_fail(r, MAPI_READER_EFORMAT, foff,
                            mapi_reader_pcap_text(r, "block of type %u in pcapng dump file is too "
                                                  "short", type), "the %s at offset %llu is too "
                            "short for its contents", block_name(type), (unsigned long long)foff);
}

/* The block starting at region[pos]: check its framing (libpcap's read_block()).  Returns
 * OK with *type and *tlen, or END / NEED_MORE / ERROR. */
static int frame_block(mapi_reader *r, const uint8_t *region, uint64_t len, uint64_t pos,
                       uint64_t foff, int32_t at_eof, int sw, uint32_t *type, uint32_t *tlen)
{
    uint64_t avail = len - pos;
    if (avail < 8) {
        if (!at_eof) { r->need = 8; return MAPI_PARSE_NEED_MORE; }
        if (avail == 0) return MAPI_PARSE_END;
        return mapi_reader_fail(r, MAPI_READER_ETRUNC, foff,
                                mapi_reader_pcap_text(r, "truncated pcapng dump file; tried to "
                                                      "read 8 bytes, only got %llu",
                                                      (unsigned long long)avail), "file ends "
                                "inside the block header at offset %llu (%llu of its 8 bytes)",
                                (unsigned long long)foff, (unsigned long long)avail);
    }
    const uint8_t *h = region + pos;
    uint32_t t = mapi_rd32(h, sw), n = mapi_rd32(h + 4, sw);
    if (n < 12) {
        return mapi_reader_fail(r, MAPI_READER_EFORMAT, foff,
                                mapi_reader_pcap_text(r, "block in pcapng dump file has a length "
                                                      "of %u < 12", n), "the %s at offset %llu "
                                "gives a total length of %u, less than the 12-byte minimum",
                                block_name(t), (unsigned long long)foff, n);
    }
    if (n % 4) {
        return mapi_reader_fail(r, MAPI_READER_EFORMAT, foff,
                                mapi_reader_pcap_text(r, "block in pcapng dump file has a length "
                                                      "of %u that is not a multiple of 4", n),
                                "the %s at offset %llu gives a total length of %u, not a multiple "
                                "of 4", block_name(t), (unsigned long long)foff, n);
    }
    if (n > r->max_blocksize) {
        return mapi_reader_fail(r, MAPI_READER_EFORMAT, foff,
                                mapi_reader_pcap_text(r, "pcapng block size %u > maximum %u", n,
                                                      r->max_blocksize), "the %s at offset %llu "
                                "gives a total length of %u, more than the maximum of %u (file "
                                "corrupt?)", block_name(t), (unsigned long long)foff, n,
                                r->max_blocksize);
    }
    if (avail < n) {
        if (!at_eof) { r->need = n; return MAPI_PARSE_NEED_MORE; }
        return mapi_reader_fail(r, MAPI_READER_ETRUNC, foff,
                                mapi_reader_pcap_text(r, "truncated pcapng dump file; tried to "
                                                      "read %u bytes, only got %llu", n - 8,
                                                      (unsigned long long)(avail - 8)),
                                "file ends inside the %s at offset %llu (%llu of its %u bytes)",
                                block_name(t), (unsigned long long)foff, (unsigned long long)avail,
                                n);
    }
    if (mapi_rd32(h + n - 4, sw) != n) {
        return mapi_reader_fail(r, MAPI_READER_EFORMAT, foff,
                                mapi_reader_pcap_text(r, "block total length in header and trailer "
                                                      "don't match"), "the %s at offset %llu has "
                                "total length %u in its header but %u in its trailer",
                                block_name(t), (unsigned long long)foff, n,
                                mapi_rd32(h + n - 4, sw));
    }
    *type = t;
    *tlen = n;
    return MAPI_PARSE_OK;
}

static void set_ts_mode(mapi_ng_iface *f, uint64_t resol, int binary, uint32_t shift)
{
    f->tsresol = resol;
    if (binary) {
        f->tsmode = MAPI_TS_BIN;
        f->tsshift = shift;
        f->tsscale = 0;
    } else if (resol <= 1000000000u) {
        f->tsmode = MAPI_TS_MUL;
        f->tsscale = 1000000000u / resol;
    } else {
        f->tsmode = MAPI_TS_DIV;
        f->tsscale = resol / 1000000000u;
    }
}

/* An IDB's fixed part and options (libpcap's add_interface()/process_idb_options()).
 * body = after the 8-byte block header, blen = body bytes before the trailer. */
/* An IDB option `name` whose length is not `want`, or that stands twice: libpcap's words and ours. */
static int idb_option_length(mapi_reader *r, uint64_t foff, const char *name, uint32_t olen,
                             uint32_t want)
{
    return mapi_reader_fail(r, MAPI_READER_EFORMAT, foff,
                            mapi_reader_pcap_text(r, "Interface Description Block has %s option with "
                                                  "length %u != %u", name, olen, want),
                            "the interface description block at offset %llu has an %s option of "
                            "length %u, not %u", (unsigned long long)foff, name, olen, want);
}

static int idb_option_twice(mapi_reader *r, uint64_t foff, const char *name)
{
    return mapi_reader_fail(r, MAPI_READER_EFORMAT, foff,
                            mapi_reader_pcap_text(r, "Interface Description Block has more than one "
                                                  "%s option", name),
                            "the interface description block at offset %llu has two %s options",
                            (unsigned long long)foff, name);
}

/* if_tsresol finer than base^-most: libpcap's words and ours */
static int idb_tsresol_too_fine(mapi_reader *r, uint64_t foff, uint32_t base, uint32_t exp,
                                uint32_t most)
{
    return mapi_reader_fail(r, MAPI_READER_EFORMAT, foff,
                            mapi_reader_pcap_text(r, "Interface Description Block if_tsresol option "
                                                  "resolution %u^-%u is too high", base, exp),
                            "the interface description block at offset %llu has a timestamp "
                            "resolution of %u^-%u s, finer than %u^-%u", (unsigned long long)foff,
                            base, exp, base, most);
}

static int read_idb(mapi_reader *r, const uint8_t *body, uint32_t blen, int sw, uint64_t foff,
                    mapi_ng_iface *f)
{
    if (blen < 8) return too_short(r, BT_IDB, foff);
    f->linktype = mapi_rd16(body, sw);
    uint32_t snap = mapi_rd32(body + 4, sw);
    f->snaplen = mapi_adjust_snaplen(mapi_linktype_dlt(f->linktype), snap);
    f->tsoffset = 0;
    set_ts_mode(f, 1000000, 0, 0);
    int saw_resol = 0, saw_offset = 0;
    uint32_t p = 8;
    while (p < blen) {
        if (blen - p < 4) return too_short(r, BT_IDB, foff);
        uint32_t code = mapi_rd16(body + p, sw), olen = mapi_rd16(body + p + 2, sw);
        uint32_t padded = (olen + 3u) & ~3u;
        p += 4;
        if (blen - p < padded) return too_short(r, BT_IDB, foff);
        const uint8_t *v = body + p;
        p += padded;
        if (code == 0) {
            if (olen != 0) {
                return mapi_reader_fail(r, MAPI_READER_EFORMAT, foff,
                                        mapi_reader_pcap_text(r, "Interface Description Block has "
                                                              "opt_endofopt option with length %u "
                                                              "!= 0", olen), "the interface "
                                        "description block at offset %llu has an end-of-options "
                                        "option of length %u", (unsigned long long)foff, olen);
            }
            break;
        }
        if (code == 9) {                 /* if_tsresol */
            if (olen != 1) return idb_option_length(r, foff, "if_tsresol", olen, 1);
            if (saw_resol) return idb_option_twice(r, foff, "if_tsresol");
            saw_resol = 1;
            uint8_t res = v[0];
            if (res & 0x80) {
                uint32_t shift = res & 0x7f;
                if (shift > 63) return idb_tsresol_too_fine(r, foff, 2, shift, 63);
                set_ts_mode(f, (uint64_t)1 << shift, 1, shift);
            } else {
                if (res > 19) return idb_tsresol_too_fine(r, foff, 10, res, 19);
                uint64_t resol = 1;
                for (uint32_t i = 0; i < res; i++) resol *= 10;
                set_ts_mode(f, resol, 0, 0);
            }
        } else if (code == 14) {         /* if_tsoffset */
            if (olen != 8) return idb_option_length(r, foff, "if_tsoffset", olen, 8);
            if (saw_offset) return idb_option_twice(r, foff, "if_tsoffset");
            saw_offset = 1;
            uint64_t o;
            memcpy(&o, v, 8);
            f->tsoffset = (int64_t)(sw ? __builtin_bswap64(o) : o);
        }
    }
    return MAPI_PARSE_OK;
}

static int add_iface(mapi_reader *r, const mapi_ng_iface *f, uint64_t foff)
{
    if (r->nifaces >= MAPI_MAX_IFACES) {
        return mapi_reader_fail(r, MAPI_READER_EFORMAT, foff, NULL, "the interface description "
                                "block at offset %llu is the %u. of its section; at most %u are "
                                "supported", (unsigned long long)foff, r->nifaces + 1,
                                MAPI_MAX_IFACES);
    }
    r->ifaces[r->nifaces++] = *f;
    return MAPI_PARSE_OK;
}

int mapi_pcapng_open(mapi_reader *r, const uint8_t *region, uint64_t len, int32_t at_eof,
                     uint64_t *consumed)
{
    *consumed = 0;
    /* the first SHB: libpcap only calls the file pcapng once the byte-order magic is right */
    if (len < 12 && !at_eof) { r->need = 12; return MAPI_PARSE_NEED_MORE; }
    uint32_t bom = len >= 12 ? mapi_rd32(region + 8, 0) : 0;
    int sw = bom == __builtin_bswap32(BYTE_ORDER_MAGIC);
    if (len < 12 || (bom != BYTE_ORDER_MAGIC && !sw) || mapi_rd32(region, 0) != BT_SHB) {
        return mapi_reader_fail(r, MAPI_READER_EFORMAT, len >= 12 ? 8 : len,
                                mapi_reader_pcap_text(r, "unknown file format"),
                                len < 12 ? "the file ends at offset %llu, inside the pcapng "
                                           "section header"
                                         : "not a pcapng file: no byte-order magic at offset 8 "
                                           "of the section header", (unsigned long long)len);
    }
    uint32_t n = mapi_rd32(region + 4, sw);
    if (n < 28 || n > SHB_INSANE_MAX) {
        return mapi_reader_fail(r, MAPI_READER_EFORMAT, 4,
                                mapi_reader_pcap_text(r, "Section Header Block in pcapng dump file "
                                                      "has invalid length %u < _%u_ < %u "
                                                      "(BT_SHB_INSANE_MAX)", 28u, n,
                                                      SHB_INSANE_MAX),
                                "the section header block at offset 0 gives a total length of %u, "
                                "outside 28..%u", n, SHB_INSANE_MAX);
    }
    if (len < n) {
        if (!at_eof) { r->need = n; return MAPI_PARSE_NEED_MORE; }
        return mapi_reader_fail(r, MAPI_READER_ETRUNC, 0,
                                mapi_reader_pcap_text(r, "truncated pcapng dump file; tried to "
                                                      "read %u bytes, only got %llu", n - 12,
                                                      (unsigned long long)(len - 12)),
                                "file ends inside the section header block at offset 0 (%llu of "
                                "its %u bytes)", (unsigned long long)len, n);
    }
    uint32_t major = mapi_rd16(region + 12, sw), minor = mapi_rd16(region + 14, sw);
    if (!(major == 1 && (minor == 0 || minor == 2))) {
        return mapi_reader_fail(r, MAPI_READER_EFORMAT, 12,
                                mapi_reader_pcap_text(r, "unsupported pcapng savefile version "
                                                      "%u.%u", major, minor),
                                "unsupported pcapng version %u.%u at offset 12 (1.0 and 1.2 are "
                                "known)", major, minor);
    }
    /* libpcap's open reads the SHB without checking its trailer */
    r->format = MAPI_FMT_PCAPNG;
    r->swapped = sw;
    r->nsec = 1;
    r->version_major = major;
    r->version_minor = minor;
    r->sections = 1;
    r->nifaces = 0;
    r->iface_base = 0;
    r->max_blocksize = INITIAL_MAX_BLOCKSIZE;
    r->records = 1;
    uint64_t pos = n;
    for (;;) {
        uint32_t type, tlen;
        int rc = frame_block(r, region, len, pos, pos, at_eof, sw, &type, &tlen);
        if (rc == MAPI_PARSE_END) {
            return mapi_reader_fail(r, MAPI_READER_EFORMAT, pos,
                                    mapi_reader_pcap_text(r, "the capture file has no Interface "
                                                          "Description Blocks"), "the file has no "
                                    "interface description block (it ends at offset %llu)",
                                    (unsigned long long)pos);
        }
        if (rc != MAPI_PARSE_OK) return rc;
        if (type == BT_IDB) {
            mapi_ng_iface f;
            rc = read_idb(r, region + pos + 8, tlen - 12, sw, pos, &f);
            if (rc != MAPI_PARSE_OK) return rc;
            add_iface(r, &f, pos);
            int32_t dlt = mapi_linktype_dlt(f.linktype);
            r->first_linktype = f.linktype;
            r->first_snaplen = f.snaplen;
            r->linktype = f.linktype;
            r->snaplen = f.snaplen;
            uint64_t most = 8 + 20 + (uint64_t)mapi_max_snaplen(dlt) + 131072 + 4;
            if (most > r->max_blocksize) r->max_blocksize = (uint32_t)most;
            r->records++;
            *consumed = pos + tlen;
            return MAPI_PARSE_OK;
        }
        if (type == BT_EPB || type == BT_SPB || type == BT_PB) {
            return mapi_reader_fail(r, MAPI_READER_EFORMAT, pos,
                                    mapi_reader_pcap_text(r, "the capture file has a packet "
                                                          "block before any Interface "
                                                          "Description Blocks"),
                                    "the %s at offset %llu comes before any interface description "
                                    "block", block_name(type), (unsigned long long)pos);
        }
        r->records++;
        pos += tlen;
    }
}

static inline int64_t ng_time(const mapi_ng_iface *f, uint64_t t)
{
    uint64_t sec, frac, ns;
    if (f->tsmode == MAPI_TS_BIN) {
        sec = t >> f->tsshift;
        frac = t & (f->tsresol - 1);
        ns = (uint64_t)(((unsigned __int128)frac * 1000000000u) >> f->tsshift);
    } else {
        sec = t / f->tsresol;
        frac = t % f->tsresol;
        ns = f->tsmode == MAPI_TS_MUL ? frac * f->tsscale : frac / f->tsscale;
    }
    /* unsigned arithmetic: absurd timestamps wrap instead of overflowing */
    return (int64_t)((sec + (uint64_t)f->tsoffset) * 1000000000u + ns);
}

/* A new section: its byte order (already known from the peek), version and interface list. */
static int read_shb(mapi_reader *r, const uint8_t *h, uint32_t tlen, int sw, uint64_t foff)
{
    if (tlen - 12 < 16) return too_short(r, BT_SHB, foff);
    uint32_t bom = mapi_rd32(h + 8, sw);
    if (bom != BYTE_ORDER_MAGIC) {
        if (bom == __builtin_bswap32(BYTE_ORDER_MAGIC)) {
            mapi_reader_fail(r, MAPI_READER_EFORMAT, foff,
                             mapi_reader_pcap_text(r, "the file has sections with different byte "
                                                   "orders"), "the section at offset %llu has the "
                             "other byte order", (unsigned long long)foff);
        } else {
            mapi_reader_fail(r, MAPI_READER_EFORMAT, foff + 8,
                             mapi_reader_pcap_text(r, "the file has a section with a bad byte "
                                                   "order magic field"), "the section header block "
                             "at offset %llu has no byte-order magic", (unsigned long long)foff);
        }
        return MAPI_PARSE_ERROR;
    }
    uint32_t major = mapi_rd16(h + 12, sw);
    if (major != 1) {
        return mapi_reader_fail(r, MAPI_READER_EFORMAT, foff + 12,
                                mapi_reader_pcap_text(r, "unknown pcapng savefile major version "
                                                      "number %u", major), "the section at offset "
                                "%llu has pcapng major version %u (1 is known)",
                                (unsigned long long)foff, major);
    }
    r->iface_base += r->nifaces;
    r->nifaces = 0;
    r->sections++;
    r->swapped = sw;
    return MAPI_PARSE_OK;
}

int mapi_pcapng_parse(mapi_reader *r, const uint8_t *region, uint64_t len, uint64_t file_offset,
                      int32_t at_eof, mapi_batch *b, uint64_t *consumed)
{
    uint64_t pos = 0;
    uint32_t n = 0;
    int rc = MAPI_PARSE_OK;
    const int compat = r->libpcap_compat;
    int32_t lt = -1;                     /* link type of this batch, once it has a packet */
    while (n < b->cap && pos < r->max_batch_bytes) {
        const uint64_t foff = file_offset + pos;
        int sw = r->swapped;
        if (!compat && len - pos >= 4 && mapi_rd32(region + pos, 0) == BT_SHB) {
            /* a new section may switch byte order: its magic says how to read its length.  A
             * region that ends before the magic waits for it: read in the old order, the
             * length would be wrong where the whole file reads it right. */
            if (len - pos < 12 && !at_eof) { r->need = 12; rc = MAPI_PARSE_NEED_MORE; break; }
            uint32_t bom = len - pos >= 12 ? mapi_rd32(region + pos + 8, 0) : 0;
            if (bom == BYTE_ORDER_MAGIC) sw = 0;
            else if (bom == __builtin_bswap32(BYTE_ORDER_MAGIC)) sw = 1;
            if (n && sw != r->swapped) break;    /* post-processing needs one order per batch */
        }
        uint32_t type, tlen;
        rc = frame_block(r, region, len, pos, foff, at_eof, sw, &type, &tlen);
        if (rc != MAPI_PARSE_OK) break;
        const uint8_t *h = region + pos;
        const uint32_t blen = tlen - 12;         /* body bytes */
        const uint8_t *body = h + 8;
        uint32_t iface, caplen, wirelen, datoff;
        uint64_t t;
        if (type == BT_EPB || type == BT_PB) {
            if (blen < 20) { rc = too_short(r, type, foff); break; }
            if (type == BT_EPB) {
                iface = mapi_rd32(body, sw);
            } else {
                iface = mapi_rd16(body, sw);
            }
            t = ((uint64_t)mapi_rd32(body + 4, sw) << 32) | mapi_rd32(body + 8, sw);
            caplen = mapi_rd32(body + 12, sw);
            wirelen = mapi_rd32(body + 16, sw);
            datoff = 20;
        } else if (type == BT_SPB) {
            if (blen < 4) { rc = too_short(r, type, foff); break; }
            iface = 0;
            wirelen = mapi_rd32(body, sw);
            t = 0;
            datoff = 4;
            caplen = 0;                          /* set below from interface 0's snaplen */
        } else if (type == BT_IDB) {
            mapi_ng_iface f;
            if (blen < 8) { rc = too_short(r, type, foff); break; }
            if (compat) {
                uint32_t idb_lt = mapi_rd16(body, sw), idb_snap = mapi_rd32(body + 4, sw);
                /* libpcap compares the first interface's DLT_ with this LINKTYPE_ */
                if ((uint32_t)mapi_linktype_dlt(r->first_linktype) != idb_lt) {
                    rc = mapi_reader_fail(r, MAPI_READER_EFORMAT, foff,
                                          mapi_reader_pcap_text(r, "an interface has a type %u "
                                                                "different from the type of the "
                                                                "first interface", idb_lt),
                                          "the interface at offset %llu has link type %u, the "
                                          "first one had %d", (unsigned long long)foff, idb_lt,
                                          r->first_linktype);
                    break;
                }
                if (mapi_adjust_snaplen(mapi_linktype_dlt(r->first_linktype), idb_snap)
                    != r->first_snaplen) {
                    rc = mapi_reader_fail(r, MAPI_READER_EFORMAT, foff,
                                          mapi_reader_pcap_text(r, "an interface has a snapshot "
                                                                "length %u different from the "
                                                                "snapshot length of the first "
                                                                "interface", idb_snap),
                                          "the interface at offset %llu has snapshot length %u, "
                                          "the first one had %u", (unsigned long long)foff,
                                          idb_snap, r->first_snaplen);
                    break;
                }
            }
            rc = read_idb(r, body, blen, sw, foff, &f);
            if (rc != MAPI_PARSE_OK) break;
            rc = add_iface(r, &f, foff);
            if (rc != MAPI_PARSE_OK) break;
            r->records++;
            pos += tlen;
            continue;
        } else if (type == BT_SHB) {
            if (n) break;                        /* a new section starts a new batch */
            rc = read_shb(r, h, tlen, sw, foff);
            if (rc != MAPI_PARSE_OK) break;
            r->records++;
            pos += tlen;
            continue;
        } else {
            r->records++;                        /* NRB, ISB, DSB, custom, unknown: skipped */
            pos += tlen;
            continue;
        }
        /* a packet block */
        if (iface >= r->nifaces) {
            rc = mapi_reader_fail(r, MAPI_READER_EFORMAT, foff,
                                  mapi_reader_pcap_text(r, "a packet arrived on interface %u, but "
                                                        "there's no Interface Description Block "
                                                        "for that interface", iface),
                                  "the %s at offset %llu names interface %u, but its section "
                                  "describes %u interface%s", block_name(type),
                                  (unsigned long long)foff, iface, r->nifaces,
                                  r->nifaces == 1 ? "" : "s");
            break;
        }
        const mapi_ng_iface *f = &r->ifaces[iface];
        /* libpcap holds every packet to the first interface's snapshot length */
        uint32_t snap = compat ? r->first_snaplen : f->snaplen;
        if (type == BT_SPB) {
            caplen = wirelen < snap ? wirelen : snap;
        } else if (caplen > snap) {
            rc = mapi_reader_fail(r, MAPI_READER_EFORMAT, foff,
                                  mapi_reader_pcap_text(r, "invalid packet capture length %u, "
                                                        "bigger than snaplen of %d", caplen,
                                                        (int)snap), "the %s at offset %llu has a "
                                  "captured length of %u, more than its interface's snapshot "
                                  "length %u", block_name(type), (unsigned long long)foff, caplen,
                                  snap);
            break;
        }
        if (blen - datoff < caplen) { rc = too_short(r, type, foff); break; }
        if (lt < 0) {
            lt = f->linktype;
            b->linktype = lt;
            r->linktype = lt;
            r->snaplen = f->snaplen;
        } else if (f->linktype != lt) {
            break;                               /* the next batch has the other link type */
        }
        b->off[n] = pos + 8 + datoff;
        b->caplen[n] = caplen;
        b->wirelen[n] = wirelen;
        b->ts[n] = ng_time(f, t);
        uint32_t gi = r->iface_base + iface;
        b->ifindex[n] = gi > 65535 ? 65535 : (uint16_t)gi;
        n++;
        r->records++;
        pos += tlen;
    }
    if (lt < 0) b->linktype = r->linktype;
    b->n = n;
    r->packets += n;
    *consumed = pos;
    mapi_reader_post_process(r, region, b);
    return rc;
}
