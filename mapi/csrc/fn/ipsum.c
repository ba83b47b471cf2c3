/* Internet checksums; see ipsum.h. */
#include <string.h>
#include "ipsum.h"

uint64_t mapi_csum_add(uint64_t sum, const uint8_t *p, size_t n)
{
    /* 32-bit big-endian words into a 64-bit accumulator: no carry is lost before folding */
    while (n >= 4) {
        sum += (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        p += 4;
        n -= 4;
    }
    if (n >= 2) { sum += (uint32_t)p[0] << 8 | p[1]; p += 2; n -= 2; }
    if (n) sum += (uint32_t)p[0] << 8;
    return sum;
}

uint16_t mapi_csum_fold(uint64_t sum)
{
    while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
    return (uint16_t)~sum;
}

uint64_t mapi_csum_pseudo(const uint8_t *src, const uint8_t *dst, int alen, uint8_t proto,
                          uint32_t len)
{
    uint64_t sum = mapi_csum_add(0, src, alen);
    sum = mapi_csum_add(sum, dst, alen);
    return sum + proto + (len >> 16) + (len & 0xFFFF);
}

void mapi_csum_replace(uint8_t *field, const uint8_t *old, const uint8_t *new_, size_t n)
{
    /* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') */
    uint64_t sum = (uint16_t)~(field[0] << 8 | field[1]);
    for (size_t k = 0; k + 1 < n; k += 2) {
        sum += (uint16_t)~(old[k] << 8 | old[k + 1]);
        sum += (uint16_t)(new_[k] << 8 | new_[k + 1]);
    }
    uint16_t c = mapi_csum_fold(sum);
    field[0] = c >> 8;
    field[1] = c & 0xFF;
}

uint32_t mapi_ip_end(const uint8_t *p, uint32_t caplen, uint32_t l3, int version)
{
    const uint8_t *ip = p + l3;
    uint32_t end = version == 4 ? l3 + (uint32_t)(ip[2] << 8 | ip[3])
                                : l3 + 40 + (uint32_t)(ip[4] << 8 | ip[5]);
    /* PPPoE session: ethertype 0x8864, 6-byte header (length at +4), PPP protocol, then IP */
    if (l3 >= 10 && l3 <= caplen && (p[l3 - 10] << 8 | p[l3 - 9]) == 0x8864 &&
        ((p[l3 - 2] << 8 | p[l3 - 1]) == 0x0021 || (p[l3 - 2] << 8 | p[l3 - 1]) == 0x0057)) {
        uint32_t ppp_end = l3 - 2 + (uint32_t)(p[l3 - 4] << 8 | p[l3 - 3]);
        if (ppp_end < end) end = ppp_end;
    }
    return end;
}
