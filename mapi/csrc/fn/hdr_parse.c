/* Link, IP and transport header parsing; see hdr_parse.h. */
#include <string.h>
#include "hdr_parse.h"
#include "../byteorder.h"
#include "../flowrec.h"

#define ETH_IPV4 0x0800
#define ETH_IPV6 0x86DD
#define MAX_TAGS 8          /* VLAN tags / MPLS labels / IPv6 extension headers we walk */


/* The IP version (4/6) of what follows an ethertype at `off`, or 0; *l3 = where it starts. */
static int after_ethertype(const uint8_t *p, uint32_t caplen, uint16_t type, uint32_t off,
                           uint32_t *l3)
{
    for (int hops = 0; hops < MAX_TAGS; hops++) {
        switch (type) {
        case ETH_IPV4: *l3 = off; return 4;
        case ETH_IPV6: *l3 = off; return 6;
        case 0x8100: case 0x88A8: case 0x9100: case 0x9200:   /* VLAN tags */
            if (caplen < off + 4) return 0;
            type = mapi_be16(p + off + 2);
            off += 4;
            break;
        case 0x8847: case 0x8848:                               /* MPLS: guess IP after BoS */
            for (int l = 0; l < MAX_TAGS; l++) {
                if (caplen < off + 4) return 0;
                int bottom = p[off + 2] & 1;
                off += 4;
                if (bottom) {
                    if (caplen <= off) return 0;
                    int v = p[off] >> 4;
                    if (v == 4 || v == 6) { *l3 = off; return v; }
                    return 0;
                }
            }
            return 0;
        case 0x8864:                                            /* PPPoE session + PPP */
            if (caplen < off + 8) return 0;
            {
                uint16_t ppp = mapi_be16(p + off + 6);
                off += 8;
                if (ppp == 0x0021) { *l3 = off; return 4; }
                if (ppp == 0x0057) { *l3 = off; return 6; }
            }
            return 0;
        default:
            return 0;
        }
    }
    return 0;
}

static int link_layer(int32_t linktype, const uint8_t *p, uint32_t caplen, uint32_t *l3)
{
    switch (linktype) {
    case 1: {                                                   /* Ethernet */
        if (caplen < 14) return 0;
        uint16_t type = mapi_be16(p + 12);
        if (type < 0x0600) {                                    /* 802.3 length: LLC/SNAP? */
            if (caplen < 22 || p[14] != 0xAA || p[15] != 0xAA || p[16] != 0x03) return 0;
            return after_ethertype(p, caplen, mapi_be16(p + 20), 22, l3);
        }
        return after_ethertype(p, caplen, type, 14, l3);
    }
    case 113:                                                   /* Linux cooked v1 */
        if (caplen < 16) return 0;
        return after_ethertype(p, caplen, mapi_be16(p + 14), 16, l3);
    case 276:                                                   /* Linux cooked v2 */
        if (caplen < 20) return 0;
        return after_ethertype(p, caplen, mapi_be16(p), 20, l3);
    case 101: case 12: case 14:                                 /* raw IP, version in the header */
        if (caplen < 1) return 0;
        *l3 = 0;
        return (p[0] >> 4 == 4 || p[0] >> 4 == 6) ? p[0] >> 4 : 0;
    case 228: *l3 = 0; return 4;
    case 229: *l3 = 0; return 6;
    case 0: case 108: {                                         /* BSD null / OpenBSD loop */
        if (caplen < 4) return 0;
        uint32_t be = mapi_be32(p);
        uint32_t le = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        uint32_t af = linktype == 108 ? be : (le < 256 ? le : be);   /* null: writer's order */
        *l3 = 4;
        if (af == 2) return 4;
        if (af == 10 || af == 24 || af == 28 || af == 30) return 6;
        return 0;
    }
    default:
        return 0;
    }
}

static void transport(const uint8_t *p, uint32_t caplen, uint32_t off, mapi_hdr *h)
{
    h->l4_off = off;
    if (h->proto != 6 && h->proto != 17) return;
    if (caplen < off + 4) return;
    h->sport = mapi_be16(p + off);
    h->dport = mapi_be16(p + off + 2);
    h->flags |= MAPI_HDR_HAS_PORTS;
    if (h->proto == 6 && caplen >= off + 14) {
        h->tcp_seq = mapi_be32(p + off + 4);
        h->tcp_flags = p[off + 13];
        h->flags |= MAPI_HDR_HAS_TCP;
    }
}

int mapi_hdr_parse(int32_t linktype, const uint8_t *p, uint32_t caplen, mapi_hdr *h)
{
    memset(h, 0, sizeof *h);
    if (linktype == MAPI_LINKTYPE_FLOWREC) {
        /* a NetFlow/IPFIX collector's flow record: its key fields are the header */
        mapi_flowrec r;
        if (caplen < sizeof r) return 0;
        memcpy(&r, p, sizeof r);
        if (r.family != 4 && r.family != 6) return 0;
        h->ipver = r.family;
        h->proto = r.proto;
        h->tcp_flags = r.tcp_flags;
        memcpy(h->src, r.src, 16);
        memcpy(h->dst, r.dst, 16);
        if (r.proto == 6 || r.proto == 17 || r.proto == 132) {
            h->sport = r.sport;
            h->dport = r.dport;
            h->flags |= MAPI_HDR_HAS_PORTS;
        }
        return h->ipver;
    }
    uint32_t l3 = 0;
    int v = link_layer(linktype, p, caplen, &l3);
    if (v == 4) {
        if (caplen < l3 + 20 || p[l3] >> 4 != 4) return 0;
        uint32_t ihl = (uint32_t)(p[l3] & 0x0F) * 4;
        if (ihl < 20) return 0;
        h->ipver = 4;
        h->l3_off = l3;
        h->proto = p[l3 + 9];
        memcpy(h->src, p + l3 + 12, 4);
        memcpy(h->dst, p + l3 + 16, 4);
        uint16_t frag = mapi_be16(p + l3 + 6);
        if (frag & 0x3FFF) h->flags |= MAPI_HDR_FRAGMENT;           /* MF or an offset */
        if (frag & 0x1FFF) { h->flags |= MAPI_HDR_LATER_FRAGMENT; return 4; }
        transport(p, caplen, l3 + ihl, h);
        return 4;
    }
    if (v == 6) {
        if (caplen < l3 + 40 || p[l3] >> 4 != 6) return 0;
        h->ipver = 6;
        h->l3_off = l3;
        memcpy(h->src, p + l3 + 8, 16);
        memcpy(h->dst, p + l3 + 24, 16);
        uint8_t nh = p[l3 + 6];
        uint32_t off = l3 + 40;
        /* every extension header moves at least 8 bytes on: the walk ends within caplen */
        for (;;) {
            if (nh == 0 || nh == 43 || nh == 60) {              /* hop-by-hop, routing, dstopts */
                if (caplen < off + 2) { h->proto = nh; return 6; }
                nh = p[off];
                off += ((uint32_t)p[off + 1] + 1) * 8;
            } else if (nh == 44) {                               /* fragment */
                if (caplen < off + 8) { h->proto = nh; return 6; }
                h->flags |= MAPI_HDR_FRAGMENT;
                uint16_t fo = mapi_be16(p + off + 2) & 0xFFF8;
                nh = p[off];
                off += 8;
                if (fo) { h->proto = nh; h->flags |= MAPI_HDR_LATER_FRAGMENT; return 6; }
            } else if (nh == 51) {                               /* AH */
                if (caplen < off + 2) { h->proto = nh; return 6; }
                nh = p[off];
                off += ((uint32_t)p[off + 1] + 2) * 4;
            } else {
                break;
            }
        }
        h->proto = nh;
        transport(p, caplen, off, h);
        return 6;
    }
    return 0;
}
