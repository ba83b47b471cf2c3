/*
 * The host side of the sandboxed-code ABI (docs/jobcontrol.md): a run of selected packets of an
 * engine batch written into a WebAssembly module's linear memory, the module called on it, and
 * the kept selection read back -- part after part, all in C: a Python call per batch, not per
 * part.  The module is not trusted: what it returns is checked before the engine sees it.
 */
#ifndef SCAMPI_BATCHPACK_H
#define SCAMPI_BATCHPACK_H
#include <stdint.h>

/* ABI version 1: a header, a record per packet, the keep area, the bytes packed one after the
 * other */
#define SCAMPI_WASM_HDR 16      /* n, linktype, snap, data_off */
#define SCAMPI_WASM_REC 24      /* off, caplen, wirelen, index, ts */

/* ABI version 2 (modules with a snaplen): a header (n, linktype, snap, stride, then the offsets
 * of the caplen, wirelen, index and ts columns (0: not written), of the keep area and of the
 * data), the columns, the keep area, then a slot of `stride` bytes per packet -- the module
 * finds packet j at data_off + j * stride and the server writes only the columns it asked for. */
#define SCAMPI_WASM2_HDR 40     /* bytes */
#define SCAMPI_WASM2_WIRELEN 1  /* scampi_fields() bits: the columns besides caplen */
#define SCAMPI_WASM2_INDEX 2
#define SCAMPI_WASM2_TS 4

/* Why scampi_wasm_process stopped before the end of the selection. */
#define SCAMPI_WASM_DONE 0
#define SCAMPI_WASM_NEED_REGION 1   /* the next packet needs `need` bytes: ask the module again */
#define SCAMPI_WASM_FAILED 2        /* wasmtime's error or trap (error, trap) */
#define SCAMPI_WASM_BAD_REGION 3    /* the module's buffer is no longer inside its memory */
#define SCAMPI_WASM_BAD_COUNT 4     /* it returned `answer` kept packets of `part` */
#define SCAMPI_WASM_BAD_KEEP 5      /* its kept positions are not ascending and below `part` */

/* One applied function.  The wasmtime entries are the addresses of the C API functions of the
 * library the wasmtime package loaded (so the versions agree): wasmtime_func_call_unchecked,
 * wasmtime_context_set_fuel, wasmtime_memory_data, wasmtime_memory_data_size.  ctx, func and
 * memory are the store's context and the exports' and memory's wasmtime handles; the runner
 * checked the exports' types ((i32, i32) -> i32, () -> i64) before it set them. */
typedef struct scampi_wasm_run {
    void *call_unchecked, *set_fuel, *memory_data, *memory_size;
    void *ctx;
    void *func;
    void *result_func;              /* the export NAME's result comes from (() -> i64), or NULL */
    void *memory;
    uint64_t at, region;            /* the buffer the module gave: offset, bytes */
    uint64_t part_bytes;            /* at most this much of the buffer per call (cache-sized) */
    uint64_t fuel_base, fuel_per_packet;
    uint32_t snap;                  /* bytes copied of each packet (0: all) */
    uint32_t abi;                   /* the module's ABI version: 1 or 2 (which needs a snap) */
    uint32_t fields;                /* version 2: the columns it asked for (SCAMPI_WASM2_*) */
    uint32_t filters;               /* 1: the module keeps a selection; 0: it sees everything */
    /* progress through the selection (the runner zeroes them per batch) */
    uint32_t done;                  /* packets handed over */
    uint32_t kept;                  /* positions written to out */
    int64_t result;                 /* what result_func returned after the last part */
    /* why it stopped */
    uint32_t part;
    int64_t answer;
    uint64_t need;
    void *error, *trap;             /* wasmtime_error_t *, wasm_trap_t *: the runner owns them */
} scampi_wasm_run;

/* Hand sel[r->done .. n) to the module in parts; kept positions go to out[r->kept ..].  Returns
 * SCAMPI_WASM_DONE or why it stopped (r says where and what). */
int scampi_wasm_process(scampi_wasm_run *r, const mapi_batch *b, const uint32_t *sel, uint32_t n,
                        uint32_t *out);

#endif
