/* The template backend's C (copy backends/_template/ to start a backend; docs/plugins.md):
 * a synthetic packet stream written straight into batch memory, and the kernel of the function
 * the backend brings (TEMPLATE_UDP).  Built as this package's own cffi module against the
 * engine's headers (mapi.cbuild); it reaches engine code only through the engine API table
 * (mapi_api, see mapi_plugin.h), bound by the package's Python at import.
 *
 * This header is compiled in and read for the cffi declarations: declarations and integer
 * #defines only. */
#ifndef SCAMPI_TEMPLATE_SOURCE_H
#define SCAMPI_TEMPLATE_SOURCE_H
#include <stdint.h>
#include "engine.h"

#define TPL_MIN_SIZE 60          /* Ethernet + IPv4 + TCP headers, padded */
#define TPL_MAX_SIZE 9000
#define TPL_GAP_NS 1000          /* packet i is stamped t0 + i microseconds */

/* Write packets [first, first + n) of the stream (Ethernet/IPv4: every 4th a TCP segment, the
 * others UDP datagrams; all `size` bytes on the wire) into buf (n * size bytes) and describe
 * them in b (n <= b->cap).  Returns n. */
uint32_t tpl_generate(mapi_batch *b, uint8_t *buf, uint64_t first, uint32_t n, uint32_t size,
                      int64_t t0_ns);

/* TEMPLATE_UDP: keeps the UDP packets (found with the engine's header parser) and counts them. */
typedef struct tpl_udp_state {
    uint64_t packets;
    uint64_t bytes;
    int64_t last_ts;
} tpl_udp_state;
uint32_t tpl_udp_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                        uint32_t *out);
#endif
