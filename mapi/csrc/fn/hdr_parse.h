/* Header parsing shared by the kernels that look at IP/TCP/UDP fields (HASHSAMP, TOP, ...).
 *
 * Link types understood: Ethernet (802.1Q/802.1ad/QinQ tags, MPLS, PPPoE session, LLC/SNAP),
 * Linux cooked v1 and v2, raw IP (101, 228, 229, and the DLT values 12/14), null/loopback (0,
 * 108).  Only the outermost IP header is parsed; IPv6 extension headers are skipped up to the
 * transport header.  Non-first fragments carry no ports. */
#ifndef MAPI_FN_HDR_PARSE_H
#define MAPI_FN_HDR_PARSE_H
#include <stdint.h>

#define MAPI_HDR_HAS_PORTS 1      /* TCP or UDP header with both ports captured */
#define MAPI_HDR_HAS_TCP 2        /* TCP seq and flags captured */
#define MAPI_HDR_FRAGMENT 4       /* an IP fragment (any) */
#define MAPI_HDR_LATER_FRAGMENT 8 /* a fragment other than the first: no transport header */

typedef struct mapi_hdr {
    uint8_t src[16];              /* IPv4 addresses use the first 4 bytes (network order) */
    uint8_t dst[16];
    uint16_t sport;               /* host order; 0 unless MAPI_HDR_HAS_PORTS */
    uint16_t dport;
    uint8_t ipver;                /* 4, 6, or 0 when the packet carries no IP header we reach */
    uint8_t proto;                /* IPv4 protocol / IPv6 last next-header (transport) */
    uint8_t flags;                /* MAPI_HDR_* */
    uint8_t tcp_flags;
    uint32_t tcp_seq;
    uint32_t l3_off;              /* offset of the IP header in the frame */
    uint32_t l4_off;              /* offset of the transport header (0 if not reached) */
} mapi_hdr;

/* Fill *h from one frame; returns h->ipver (0: not IP or too short). */
int mapi_hdr_parse(int32_t linktype, const uint8_t *p, uint32_t caplen, mapi_hdr *h);
#endif
