/* pcapy-ng's packet records into a batch; see records.h. */
#include "records.h"

uint64_t pcapb_fill(mapi_batch *b, const uint8_t *base, const uint32_t *records, uint32_t n,
                    uint32_t fields, int32_t linktype)
{
    uint64_t bytes = 0;
    if (n > b->cap) n = b->cap;
    b->base = base;
    b->linktype = linktype;
    for (uint32_t i = 0; i < n; i++) {
        const uint32_t *r = records + (uint64_t)i * fields;
        uint32_t wire = fields >= PCAPB_FIELDS_WIRE ? r[4] : r[3];
        b->off[i] = r[2];
        b->caplen[i] = r[3];
        b->wirelen[i] = wire;
        b->ts[i] = (int64_t)r[0] * 1000000000LL + (int64_t)r[1] * 1000;
        b->ifindex[i] = 0;
        bytes += wire;
    }
    b->n = n;
    return bytes;
}
