/* Record parsers for savefiles; see reader.h.  Classic pcap lives here; pcapng and ERF in their
 * own files, dispatched through mapi_reader_parse(). */
#include <stdio.h>
#include <string.h>
#include "reader.h"

int mapi_parse_pcapng(mapi_reader *r, const uint8_t *region, uint64_t len, uint64_t file_offset,
                      mapi_batch *b, uint64_t *consumed);
int mapi_parse_erf(mapi_reader *r, const uint8_t *region, uint64_t len, uint64_t file_offset,
                   mapi_batch *b, uint64_t *consumed);

void mapi_reader_init(mapi_reader *r, int32_t format)
{
    memset(r, 0, sizeof *r);
    r->format = format;
    r->max_caplen = 262144;
    r->max_batch_bytes = 8u << 20;
}

static inline uint32_t rd32(const uint8_t *p, int swapped)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swapped ? __builtin_bswap32(v) : v;
}

static int parse_pcap(mapi_reader *r, const uint8_t *region, uint64_t len, uint64_t file_offset,
                      mapi_batch *b, uint64_t *consumed)
{
    uint64_t pos = 0;
    uint32_t n = 0;
    int rc = MAPI_PARSE_OK;
    const int sw = r->swapped;
    const int64_t frac_mul = r->nsec ? 1 : 1000;
    const uint32_t frac_max = r->nsec ? 1000000000u : 1000000u;
    b->base = region;
    b->linktype = r->linktype;
    b->first_seq = r->next_seq;
    for (;;) {
        if (n == b->cap || pos >= r->max_batch_bytes) break;
        if (len - pos < 16) { rc = MAPI_PARSE_NEED_MORE; break; }
        const uint8_t *h = region + pos;
        uint32_t sec = rd32(h, sw), frac = rd32(h + 4, sw);
        uint32_t caplen = rd32(h + 8, sw), wirelen = rd32(h + 12, sw);
        if (caplen > r->max_caplen) {
            r->err_offset = file_offset + pos;
            snprintf(r->err, sizeof r->err,
                     "record header at offset %llu gives a captured length of %u, more than the "
                     "maximum of %u (file corrupt or not pcap)",
                     (unsigned long long)(file_offset + pos), caplen, r->max_caplen);
            rc = MAPI_PARSE_ERROR;
            break;
        }
        if (len - pos - 16 < caplen) { rc = MAPI_PARSE_NEED_MORE; break; }
        (void)frac_max;
        b->off[n] = pos + 16;
        b->caplen[n] = caplen;
        b->wirelen[n] = wirelen;
        b->ts[n] = (int64_t)sec * 1000000000 + (int64_t)frac * frac_mul;
        b->ifindex[n] = 0;
        n++;
        pos += 16 + (uint64_t)caplen;
    }
    b->n = n;
    r->next_seq += n;
    r->records += n;
    *consumed = pos;
    return rc;
}

int mapi_reader_parse(mapi_reader *r, const uint8_t *region, uint64_t len, uint64_t file_offset,
                      mapi_batch *b, uint64_t *consumed)
{
    switch (r->format) {
    case MAPI_FMT_PCAP:
        return parse_pcap(r, region, len, file_offset, b, consumed);
    case MAPI_FMT_PCAPNG:
        return mapi_parse_pcapng(r, region, len, file_offset, b, consumed);
    case MAPI_FMT_ERF:
        return mapi_parse_erf(r, region, len, file_offset, b, consumed);
    default:
        snprintf(r->err, sizeof r->err, "unknown savefile format %d", r->format);
        b->n = 0;
        *consumed = 0;
        return MAPI_PARSE_ERROR;
    }
}
