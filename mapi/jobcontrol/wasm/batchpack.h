/*
 * The host side of the sandboxed-code ABI (docs/jobcontrol.md): a run of selected packets of an
 * engine batch written into a WebAssembly module's linear memory, and the kept selection read
 * back.  The module is not trusted: what it returns is checked before the engine sees it.
 */
#ifndef SCAMPI_BATCHPACK_H
#define SCAMPI_BATCHPACK_H
#include <stdint.h>

#define SCAMPI_WASM_HDR 16      /* n, linktype, snap, data_off */
#define SCAMPI_WASM_REC 24      /* off, caplen, wirelen, index, ts */

/* Bytes a run of n selected packets takes (headers, records, keep area, bytes). */
uint64_t scampi_wasm_size(const mapi_batch *b, const uint32_t *sel, uint32_t n, uint32_t snap);
/* How many of the packets sel[0..n) fit into cap bytes (at least 1 when any fits). */
uint32_t scampi_wasm_fit(const mapi_batch *b, const uint32_t *sel, uint32_t n, uint32_t snap,
                         uint64_t cap);
/* Write packets sel[0..n) at dst (cap bytes); returns the bytes written, 0 if they do not fit. */
uint64_t scampi_wasm_pack(const mapi_batch *b, const uint32_t *sel, uint32_t n, uint32_t snap,
                          uint8_t *dst, uint64_t cap);
/* The module kept k positions (u32, ascending, < n) at keep: out[j] = sel[keep[j]].  Returns k,
 * or -1 when the module's answer is not a valid selection. */
int64_t scampi_wasm_keep(const uint8_t *keep, int64_t k, uint32_t n, const uint32_t *sel,
                         uint32_t *out);

#endif
