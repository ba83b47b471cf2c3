"""The plugin's own C kernel, built against the engine's batch ABI (mapi.get_include())."""
import mapi
from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef("""
typedef struct len_range { uint32_t lo, hi; } len_range;
extern uint32_t (*len_range_kernel_ptr)(void *, const void *, const uint32_t *, uint32_t, uint32_t *);
""")
ffibuilder.set_source("scampi_example._kernel", r"""
#include "engine.h"
typedef struct len_range { uint32_t lo, hi; } len_range;

/* keep packets whose wire length is within [lo, hi] */
static uint32_t len_range_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                                 uint32_t nsel, uint32_t *out)
{
    const len_range *r = state;
    uint32_t n = 0;
    for (uint32_t j = 0; j < nsel; j++) {
        uint32_t w = b->wirelen[sel[j]];
        if (w >= r->lo && w <= r->hi) out[n++] = sel[j];
    }
    return n;
}
uint32_t (*len_range_kernel_ptr)(void *, const void *, const uint32_t *, uint32_t, uint32_t *) =
    (uint32_t (*)(void *, const void *, const uint32_t *, uint32_t, uint32_t *))len_range_kernel;
""", include_dirs=[mapi.get_include()])
