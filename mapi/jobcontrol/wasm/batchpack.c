#include <string.h>
#include "mapi_plugin.h"
#include "batchpack.h"

/* wasmtime's C API, as far as the runner calls it (wasmtime.h).  Arguments and results travel in
 * 16-byte raw slots; handles stay opaque. */
typedef union { int32_t i32; int64_t i64; uint8_t v128[16]; void *ref; } wt_raw;
typedef void *(*wt_call_fn)(void *ctx, const void *func, wt_raw *args_results, size_t n,
                            void **trap);
typedef void *(*wt_fuel_fn)(void *ctx, uint64_t fuel);
typedef uint8_t *(*wt_data_fn)(const void *ctx, const void *memory);
typedef size_t (*wt_size_fn)(const void *ctx, const void *memory);

static inline uint32_t copied(const mapi_batch *b, uint32_t i, uint32_t snap)
{
    uint32_t c = b->caplen[i];
    return snap && c > snap ? snap : c;
}

static inline uint64_t room(uint32_t len) { return (len + 7u) & ~7u; }
static inline uint64_t align8(uint64_t x) { return (x + 7) & ~(uint64_t)7; }

static uint64_t fixed(uint32_t n)
{
    return SCAMPI_WASM_HDR + (uint64_t)n * (SCAMPI_WASM_REC + 4);
}

/* How many of the packets sel[0..n) fit into cap bytes (0 when not even the first does). */
static uint32_t fit(const mapi_batch *b, const uint32_t *sel, uint32_t n, uint32_t snap,
                    uint64_t cap)
{
    uint64_t size = SCAMPI_WASM_HDR;
    for (uint32_t j = 0; j < n; j++) {
        size += SCAMPI_WASM_REC + 4 + room(copied(b, sel[j], snap));
        if (size > cap)
            return j;
    }
    return n;
}

static inline void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }   /* wasm: little-endian */

/* len bytes, never one past them (the bytes after a packet belong to other packets, maybe of
 * other flows), in 16-byte moves the compiler inlines instead of a libc call per packet; the last
 * move ends at len and may overlap the one before, so there is no branch on the tail's size.
 * (Always as many moves as the snaplen needs, clamped to len, measured slower.) */
static inline void copy_bytes(uint8_t *d, const uint8_t *s, uint32_t len)
{
    if (len < 16) {
        if (len & 8) { memcpy(d, s, 8); d += 8, s += 8; }
        if (len & 4) { memcpy(d, s, 4); d += 4, s += 4; }
        if (len & 2) { memcpy(d, s, 2); d += 2, s += 2; }
        if (len & 1)
            *d = *s;
        return;
    }
    for (uint32_t o = 0; o + 16 < len; o += 16)
        memcpy(d + o, s + o, 16);
    memcpy(d + len - 16, s + len - 16, 16);
}

#define PREFETCH 8              /* packets ahead */

/* Version 1: write packets sel[0..n) at dst (cap bytes); returns the bytes written, 0 if they
 * do not fit. */
static uint64_t pack1(const mapi_batch *b, const uint32_t *sel, uint32_t n, uint32_t snap,
                      uint8_t *dst, uint64_t cap)
{
    uint64_t data = fixed(n);
    if (data > cap)
        return 0;
    /* the batch's arrays in locals: dst is bytes, which C lets alias them, so they would
     * otherwise be loaded again after every store */
    const uint8_t *base = b->base;
    const uint64_t *off = b->off;
    const uint32_t *caplen = b->caplen, *wirelen = b->wirelen;
    const int64_t *ts = b->ts;
    put32(dst, n);
    put32(dst + 4, (uint32_t)b->linktype);
    put32(dst + 8, snap);
    put32(dst + 12, (uint32_t)data);
    uint8_t *rec = dst + SCAMPI_WASM_HDR;
    for (uint32_t j = 0; j < n; j++, rec += SCAMPI_WASM_REC) {
        uint32_t i = sel[j], len = caplen[i];
        len = snap && len > snap ? snap : len;
        if (j + PREFETCH < n) {
            /* the packets are scattered over the batch's buffer: ask for the bytes of a later
             * one now, so that many cache misses are outstanding at once */
            const uint8_t *ahead = base + off[sel[j + PREFETCH]];
            __builtin_prefetch(ahead);
            __builtin_prefetch(ahead + 63);
        }
        if (data + room(len) > cap || data + room(len) > UINT32_MAX)
            return 0;
        copy_bytes(dst + data, base + off[i], len);
        put32(rec, (uint32_t)data);
        put32(rec + 4, len);
        put32(rec + 8, wirelen[i]);
        put32(rec + 12, i);
        memcpy(rec + 16, &ts[i], 8);
        data += room(len);
    }
    return data;
}

/* Version 2: where the parts of a run of n packets go (offsets from its start). */
typedef struct { uint64_t caplen, wirelen, index, ts, keep, data, end; } layout2;

static layout2 lay_out2(uint32_t n, uint32_t fields, uint32_t stride)
{
    layout2 l;
    uint64_t o = SCAMPI_WASM2_HDR, col = 4 * (uint64_t)n;
    l.caplen = o, o += col;
    l.wirelen = fields & SCAMPI_WASM2_WIRELEN ? o : 0, o += l.wirelen ? col : 0;
    l.index = fields & SCAMPI_WASM2_INDEX ? o : 0, o += l.index ? col : 0;
    o = align8(o);
    l.ts = fields & SCAMPI_WASM2_TS ? o : 0, o += l.ts ? 2 * col : 0;
    l.keep = o, o += col;
    l.data = o = align8(o);
    l.end = o + (uint64_t)stride * n;
    return l;
}

/* How many of `left` packets a version 2 run fits into cap bytes. */
static uint32_t fit2(uint32_t left, uint32_t fields, uint32_t stride, uint64_t cap)
{
    uint64_t per = 8 + stride + (fields & SCAMPI_WASM2_WIRELEN ? 4 : 0) +
                   (fields & SCAMPI_WASM2_INDEX ? 4 : 0) + (fields & SCAMPI_WASM2_TS ? 8 : 0);
    uint64_t fits = cap > SCAMPI_WASM2_HDR + 16 ? (cap - SCAMPI_WASM2_HDR - 16) / per : 0;
    return fits < left ? (uint32_t)fits : left;    /* 16: the two alignments' most */
}

static void pack2(const mapi_batch *b, const uint32_t *sel, uint32_t n, uint32_t snap,
                  uint32_t fields, uint8_t *dst, const layout2 *l)
{
    const uint8_t *base = b->base;
    const uint64_t *off = b->off;
    const uint32_t *caplen = b->caplen;
    uint32_t stride = (uint32_t)room(snap);
    uint32_t head[10] = {n, (uint32_t)b->linktype, snap, stride, (uint32_t)l->caplen,
                         (uint32_t)l->wirelen, (uint32_t)l->index, (uint32_t)l->ts,
                         (uint32_t)l->keep, (uint32_t)l->data};
    memcpy(dst, head, sizeof head);
    uint8_t *cap = dst + l->caplen, *d = dst + l->data;
    for (uint32_t j = 0; j < n; j++, d += stride) {
        uint32_t i = sel[j], len = caplen[i];
        len = len > snap ? snap : len;
        if (j + PREFETCH < n) {
            const uint8_t *ahead = base + off[sel[j + PREFETCH]];
            __builtin_prefetch(ahead);
            __builtin_prefetch(ahead + 63);
        }
        copy_bytes(d, base + off[i], len);
        put32(cap + 4 * (uint64_t)j, len);
    }
    /* the columns the module asked for, each in its own pass (no branch per packet) */
    if (l->wirelen)
        for (uint32_t j = 0; j < n; j++)
            put32(dst + l->wirelen + 4 * (uint64_t)j, b->wirelen[sel[j]]);
    if (l->index)
        memcpy(dst + l->index, sel, 4 * (uint64_t)n);
    if (l->ts)
        for (uint32_t j = 0; j < n; j++)
            memcpy(dst + l->ts + 8 * (uint64_t)j, &b->ts[sel[j]], 8);
}

/* The module kept k positions (u32, ascending, < n) at keep: out[j] = sel[keep[j]]. */
static int keep_ok(const uint8_t *keep, uint32_t k, uint32_t n, const uint32_t *sel, uint32_t *out)
{
    int64_t last = -1;
    for (uint32_t j = 0; j < k; j++) {
        uint32_t pos;
        memcpy(&pos, keep + 4 * (uint64_t)j, 4);
        if (pos >= n || (int64_t)pos <= last)
            return 0;
        last = pos;
        out[j] = sel[pos];
    }
    return 1;
}

int scampi_wasm_process(scampi_wasm_run *r, const mapi_batch *b, const uint32_t *sel, uint32_t n,
                        uint32_t *out)
{
    wt_call_fn call = (wt_call_fn)r->call_unchecked;
    wt_fuel_fn set_fuel = (wt_fuel_fn)r->set_fuel;
    wt_data_fn data = (wt_data_fn)r->memory_data;
    wt_size_fn size = (wt_size_fn)r->memory_size;
    uint64_t cap = r->region < r->part_bytes ? r->region : r->part_bytes;
    while (r->done < n) {
        const uint32_t *s = sel + r->done;
        uint32_t left = n - r->done, part;
        layout2 l2 = {0};
        if (r->abi == 2) {
            part = fit2(left, r->fields, (uint32_t)room(r->snap), cap);
        } else if (r->snap) {   /* every packet takes at most a fixed size: no pass to measure */
            uint64_t per = SCAMPI_WASM_REC + 4 + room(r->snap);
            uint64_t fits = cap > SCAMPI_WASM_HDR ? (cap - SCAMPI_WASM_HDR) / per : 0;
            part = fits < left ? (uint32_t)fits : left;
        } else {
            part = fit(b, s, left, 0, cap);
        }
        if (part == 0) {
            uint64_t one = r->abi == 2 ? lay_out2(1, r->fields, (uint32_t)room(r->snap)).end :
                SCAMPI_WASM_HDR + SCAMPI_WASM_REC + 4 + room(copied(b, s[0], r->snap));
            if (one <= r->region) {          /* the buffer holds it; the part size did not */
                part = 1;
            } else {
                r->need = one > r->part_bytes ? one : r->part_bytes;
                return SCAMPI_WASM_NEED_REGION;
            }
        }
        /* the module may have grown (moved) its memory in its last call */
        uint64_t mem_size = size(r->ctx, r->memory);
        if (r->at > mem_size || r->region > mem_size - r->at)
            return SCAMPI_WASM_BAD_REGION;
        uint8_t *mem = data(r->ctx, r->memory);
        uint64_t keep_at;
        if (r->abi == 2) {
            l2 = lay_out2(part, r->fields, (uint32_t)room(r->snap));
            if (l2.end > r->region)
                return SCAMPI_WASM_BAD_REGION;    /* cannot happen: part was sized to fit */
            pack2(b, s, part, r->snap, r->fields, mem + r->at, &l2);
            keep_at = r->at + l2.keep;
        } else {
            if (pack1(b, s, part, r->snap, mem + r->at, r->region) == 0)
                return SCAMPI_WASM_BAD_REGION;    /* cannot happen: part was sized to fit */
            keep_at = r->at + SCAMPI_WASM_HDR + (uint64_t)SCAMPI_WASM_REC * part;
        }
        r->part = part;
        void *err = set_fuel(r->ctx, r->fuel_base + r->fuel_per_packet * part);
        if (err) {
            r->error = err;
            return SCAMPI_WASM_FAILED;
        }
        wt_raw args[2];
        memset(args, 0, sizeof args);
        args[0].i32 = (int32_t)r->at;
        args[1].i32 = (int32_t)part;
        void *trap = NULL;
        err = call(r->ctx, r->func, args, 2, &trap);
        if (err || trap) {
            r->error = err;
            r->trap = trap;
            return SCAMPI_WASM_FAILED;
        }
        if (r->filters) {
            int32_t k = args[0].i32;
            uint64_t keep = keep_at;
            mem_size = size(r->ctx, r->memory);
            if (k < 0 || (uint32_t)k > part || keep + 4 * (uint64_t)part > mem_size) {
                r->answer = k;
                return SCAMPI_WASM_BAD_COUNT;
            }
            if (!keep_ok(data(r->ctx, r->memory) + keep, (uint32_t)k, part, s, out + r->kept))
                return SCAMPI_WASM_BAD_KEEP;
            r->kept += (uint32_t)k;
        }
        r->done += part;
    }
    if (r->result_func) {
        void *err = set_fuel(r->ctx, r->fuel_base);
        if (err) {
            r->error = err;
            return SCAMPI_WASM_FAILED;
        }
        wt_raw ret[1];
        memset(ret, 0, sizeof ret);
        void *trap = NULL;
        err = call(r->ctx, r->result_func, ret, 1, &trap);
        if (err || trap) {
            r->error = err;
            r->trap = trap;
            return SCAMPI_WASM_FAILED;
        }
        r->result = ret[0].i64;
    }
    return SCAMPI_WASM_DONE;
}
