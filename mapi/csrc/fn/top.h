/* TOP: packets and bytes (wire length) per key, in a hash table; a key is one header field or
 * several (a conversation, a 5-tuple...).  The top X keys come out sorted by packets, then bytes
 * (or bytes first with MAPI_TOP_BY_BYTES), descending, then by key, ascending. */
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
#define MAPI_TOP_CONV 12         /* the two addresses, smaller first: both directions */
#define MAPI_TOP_PORT_SRC 13     /* source port of any transport with ports (TCP, UDP...) */
#define MAPI_TOP_PORT_DST 14
#define MAPI_TOP_OPTIONAL 256    /* or-ed into a field: a packet without it gets zeros there */

#define MAPI_TOP_MAX_FIELDS 6
#define MAPI_TOP_KEY_BYTES 40    /* addresses take 16 bytes, a conversation 32, ports 2, proto 1 */
#define MAPI_TOP_BY_PACKETS 0
#define MAPI_TOP_BY_BYTES 1

typedef struct mapi_top_item {
    uint8_t key[40];             /* the fields one after the other at their widths: an address
                                    as 16 bytes (IPv4 in the first 4), numbers big-endian */
    uint8_t family;              /* 4 / 6 when the key holds addresses, 0 otherwise */
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

/* nfields fields (MAPI_TOP_*, maybe | MAPI_TOP_OPTIONAL), ranked by `by`; NULL if the fields
 * are unknown or too wide together. */
mapi_top *mapi_top_new(const int32_t *fields, uint32_t nfields, int32_t by, uint64_t max_values);
/* Bytes field `field` takes in a key (0: unknown). */
uint32_t mapi_top_field_width(int32_t field);
void mapi_top_free(mapi_top *t);
uint32_t mapi_top_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                         uint32_t *out);
/* The x best values, best first, into out[0..x); returns how many there are (<= x). */
uint32_t mapi_top_collect(mapi_top *t, uint32_t x, mapi_top_item *out);
void mapi_top_get_counts(mapi_top *t, mapi_top_counts *c);
void mapi_top_reset(mapi_top *t);
#endif
