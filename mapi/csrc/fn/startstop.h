/* STARTSTOP: pass the packets whose time t satisfies start <= t < stop (packet time).
 *
 * Either bound may be absolute (ns since the epoch) or relative to the reference time: the
 * timestamp of the first packet of the first batch this instance saw (the device's first
 * packet for a flow connected before the replay started). */
#ifndef MAPI_FN_STARTSTOP_H
#define MAPI_FN_STARTSTOP_H
#include <stdint.h>
#include "../engine.h"

#define MAPI_STARTSTOP_NONE 0       /* no bound on this side */
#define MAPI_STARTSTOP_ABS 1
#define MAPI_STARTSTOP_REL 2

typedef struct mapi_startstop_state {
    int32_t start_kind;           /* MAPI_STARTSTOP_* */
    int32_t stop_kind;
    int64_t start;                /* ns: absolute time or offset from the reference */
    int64_t stop;
    int32_t have_ref;
    int32_t _pad;
    int64_t ref;                  /* reference time for relative bounds */
    uint64_t seen;
    uint64_t passed;
    int64_t last_ts;
} mapi_startstop_state;

/* Set the reference time if it is not set yet (the kernel does it from its first batch). */
void mapi_startstop_set_ref(mapi_startstop_state *s, int64_t ts);
uint32_t mapi_startstop_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                               uint32_t nsel, uint32_t *out);
#endif
