#include <string.h>
#include "mapi_plugin.h"
#include "batchpack.h"

static uint32_t copied(const mapi_batch *b, uint32_t i, uint32_t snap)
{
    uint32_t c = b->caplen[i];
    return snap && c > snap ? snap : c;
}

static uint64_t fixed(uint32_t n)
{
    return SCAMPI_WASM_HDR + (uint64_t)n * (SCAMPI_WASM_REC + 4);
}

uint64_t scampi_wasm_size(const mapi_batch *b, const uint32_t *sel, uint32_t n, uint32_t snap)
{
    uint64_t size = fixed(n);
    for (uint32_t j = 0; j < n; j++)
        size += (copied(b, sel[j], snap) + 7u) & ~7u;
    return size;
}

uint32_t scampi_wasm_fit(const mapi_batch *b, const uint32_t *sel, uint32_t n, uint32_t snap,
                         uint64_t cap)
{
    uint64_t size = SCAMPI_WASM_HDR;
    for (uint32_t j = 0; j < n; j++) {
        size += SCAMPI_WASM_REC + 4 + ((copied(b, sel[j], snap) + 7u) & ~7u);
        if (size > cap)
            return j;
    }
    return n;
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }   /* wasm is little-endian */

uint64_t scampi_wasm_pack(const mapi_batch *b, const uint32_t *sel, uint32_t n, uint32_t snap,
                          uint8_t *dst, uint64_t cap)
{
    uint64_t data = fixed(n);
    if (data > cap)
        return 0;
    put32(dst, n);
    put32(dst + 4, (uint32_t)b->linktype);
    put32(dst + 8, snap);
    put32(dst + 12, (uint32_t)data);
    uint8_t *rec = dst + SCAMPI_WASM_HDR;
    for (uint32_t j = 0; j < n; j++, rec += SCAMPI_WASM_REC) {
        uint32_t i = sel[j], len = copied(b, i, snap);
        uint64_t room = (len + 7u) & ~7u;
        if (data + room > cap || data + room > UINT32_MAX)
            return 0;
        memcpy(dst + data, b->base + b->off[i], len);
        put32(rec, (uint32_t)data);
        put32(rec + 4, len);
        put32(rec + 8, b->wirelen[i]);
        put32(rec + 12, i);
        memcpy(rec + 16, &b->ts[i], 8);
        data += room;
    }
    return data;
}

int64_t scampi_wasm_keep(const uint8_t *keep, int64_t k, uint32_t n, const uint32_t *sel,
                         uint32_t *out)
{
    if (k < 0 || k > n)
        return -1;
    int64_t last = -1;
    for (int64_t j = 0; j < k; j++) {
        uint32_t pos;
        memcpy(&pos, keep + 4 * j, 4);
        if (pos >= n || (int64_t)pos <= last)
            return -1;
        last = pos;
        out[j] = sel[pos];
    }
    return k;
}
