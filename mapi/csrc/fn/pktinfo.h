/* PKTINFO: one field of the last packet that reached it (MAPI's PKT_TS / PKT_SIZE). */
#ifndef MAPI_FN_PKTINFO_H
#define MAPI_FN_PKTINFO_H
#include <stdint.h>
#include "../engine.h"

#define MAPI_PKTINFO_TS 1        /* timestamp, ns since the epoch */
#define MAPI_PKTINFO_SIZE 2      /* wire length */
#define MAPI_PKTINFO_CAPLEN 3    /* captured length */

typedef struct mapi_pktinfo_state {
    int32_t field;               /* MAPI_PKTINFO_* */
    uint32_t _pad;
    uint64_t value;
    uint64_t packets;            /* packets seen (0: no value yet) */
    int64_t last_ts;
} mapi_pktinfo_state;

uint32_t mapi_pktinfo_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                             uint32_t nsel, uint32_t *out);
#endif
