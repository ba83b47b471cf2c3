/* TOP: packets and bytes (wire length) per value of one header field, in a hash table; the
 * top X values come out sorted by packets, then bytes (descending), then value (ascending). */
#ifndef MAPI_FN_TOP_H
#define MAPI_FN_TOP_H
#include <stdint.h>
#include "../engine.h"

#define MAPI_TOP_IP_SRC 1        /* IPv4 source address */
#define MAPI_TOP_IP_DST 2
#define MAPI_TOP_IPV6_SRC 3
#define MAPI_TOP_IPV6_DST 4
#define MAPI_TOP_ADDR_SRC 5      /* source address of either family */
#define MAPI_TOP_ADDR_DST 6
#define MAPI_TOP_IP_PROTO 7      /* IPv4 protocol / IPv6 transport next header */
#define MAPI_TOP_TCP_SPORT 8
#define MAPI_TOP_TCP_DPORT 9
#define MAPI_TOP_UDP_SPORT 10
#define MAPI_TOP_UDP_DPORT 11

typedef struct mapi_top_item {
    uint8_t key[16];             /* address (4 or 16 bytes) or number, big-endian from byte 0 */
    uint8_t family;              /* 4 / 6 for addresses, 0 for numbers */
    uint8_t keylen;
    uint8_t _pad[6];
    uint64_t packets;
    uint64_t bytes;
} mapi_top_item;

typedef struct mapi_top_counts {
    uint64_t seen;               /* packets that reached TOP */
    uint64_t counted;            /* packets that had the field */
    uint64_t overflow;           /* packets whose value found no room (table full) */
    uint64_t distinct;           /* values in the table */
    int64_t last_ts;
} mapi_top_counts;

typedef struct mapi_top mapi_top;

mapi_top *mapi_top_new(int32_t field, uint64_t max_values);
void mapi_top_free(mapi_top *t);
uint32_t mapi_top_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                         uint32_t *out);
/* The x best values, best first, into out[0..x); returns how many there are (<= x). */
uint32_t mapi_top_collect(mapi_top *t, uint32_t x, mapi_top_item *out);
void mapi_top_get_counts(mapi_top *t, mapi_top_counts *c);
void mapi_top_reset(mapi_top *t);
#endif
