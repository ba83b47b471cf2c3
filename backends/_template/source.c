/* The template backend's packets and kernel; see source.h. */
#include <string.h>
#include "mapi_plugin.h"
#include "byteorder.h"
#include "source.h"

static void ipv4_checksum(uint8_t *ip)
{
    uint32_t sum = 0;
    mapi_put_be16(ip + 10, 0);
    for (int k = 0; k < 20; k += 2) sum += mapi_be16(ip + k);
    while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
    mapi_put_be16(ip + 10, ~sum & 0xFFFF);
}

static void frame(uint8_t *p, uint64_t seq, uint32_t size)
{
    static const uint8_t dst[6] = {0x02, 0, 0, 0, 0, 0x02}, src[6] = {0x02, 0, 0, 0, 0, 0x01};
    int tcp = seq % 4 == 3;
    memset(p, 0, size);
    memcpy(p, dst, 6);
    memcpy(p + 6, src, 6);
    mapi_put_be16(p + 12, 0x0800);
    uint8_t *ip = p + 14;
    uint32_t iplen = size - 14;
    ip[0] = 0x45;
    mapi_put_be16(ip + 2, iplen);
    mapi_put_be16(ip + 4, (uint32_t)seq);
    ip[8] = 64;
    ip[9] = tcp ? 6 : 17;
    mapi_put_be32(ip + 12, 0xC0000201);                     /* 192.0.2.1 */
    mapi_put_be32(ip + 16, 0xC6336400 | (uint32_t)(seq % 200 + 1));   /* 198.51.100.x */
    ipv4_checksum(ip);
    uint8_t *l4 = ip + 20;
    mapi_put_be16(l4, 10000 + (uint32_t)(seq % 1000));
    mapi_put_be16(l4 + 2, tcp ? 80 : 53);
    if (tcp) {
        mapi_put_be32(l4 + 4, (uint32_t)seq);
        l4[12] = 5 << 4;                                     /* header length */
        l4[13] = 0x18;                                       /* PSH ACK */
        mapi_put_be16(l4 + 14, 65535);
    } else {
        mapi_put_be16(l4 + 4, iplen - 20);
    }
}

uint32_t tpl_generate(mapi_batch *b, uint8_t *buf, uint64_t first, uint32_t n, uint32_t size,
                      int64_t t0_ns)
{
    if (n > b->cap) n = b->cap;
    b->base = buf;
    b->linktype = 1;                                         /* LINKTYPE_ETHERNET */
    for (uint32_t i = 0; i < n; i++) {
        frame(buf + (uint64_t)i * size, first + i, size);
        b->off[i] = (uint64_t)i * size;
        b->caplen[i] = b->wirelen[i] = size;
        b->ts[i] = t0_ns + (int64_t)(first + i) * TPL_GAP_NS;
        b->ifindex[i] = 0;
    }
    b->n = n;
    return n;
}

uint32_t tpl_udp_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                        uint32_t *out)
{
    tpl_udp_state *s = state;
    uint32_t n = 0;
    for (uint32_t j = 0; j < nsel; j++) {
        uint32_t i = sel[j];
        mapi_hdr h;
        if (mapi_api->hdr_parse(b->linktype, b->base + b->off[i], b->caplen[i], &h) && h.proto == 17) {
            out[n++] = i;
            s->bytes += b->wirelen[i];
            s->last_ts = b->ts[i];
        }
    }
    s->packets += n;
    return n;
}
