/* TEMPLATE_BAND: the template of a standard function with a C kernel (copy it with
 * plugins/stdfuncs/_template.py; docs/plugins.md walks through it).  It keeps the packets whose
 * wire length lies in [lo, hi] and counts them and their bytes.
 *
 * This header is compiled into the engine and read for its cffi declarations
 * (mapi/_build_engine.py takes every header in fn/): write declarations only, no inline code, and
 * integer #defines only. */
#ifndef MAPI_FN_TEMPLATE_BAND_H
#define MAPI_FN_TEMPLATE_BAND_H
#include <stdint.h>
#include "../engine.h"

/* The function instance's state: allocated by Python (ffi.new), read by result(). */
typedef struct mapi_template_band {
    uint32_t lo, hi;             /* the band, inclusive */
    uint64_t packets;            /* packets kept */
    uint64_t bytes;              /* their wire bytes */
    uint64_t seen;               /* packets that reached the kernel */
    int64_t last_ts;             /* time of the last packet kept (ns) */
} mapi_template_band;

/* The kernel (engine.h's mapi_kernel_fn): sel holds nsel ascending packet indices; a filter
 * writes the indices it keeps to out (never aliasing sel) and returns how many. */
uint32_t mapi_template_band_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                                   uint32_t nsel, uint32_t *out);
#endif
