/* Internet checksums; see ipsum.h. */
#include <string.h>
#include "ipsum.h"

/* Sum of n bytes in host order: 32-bit halves of 64-bit words into two accumulators (no carry
 * can be lost below 2^32 words). */
static uint64_t host_sum_words(const uint8_t *p, size_t n)
{
    uint64_t lo = 0, hi = 0;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        lo += (uint32_t)w;
        hi += w >> 32;
    }
    uint64_t acc = lo + hi;
    if (n >= 4) { uint32_t w; memcpy(&w, p, 4); acc += w; p += 4; n -= 4; }
    if (n >= 2) { uint16_t w; memcpy(&w, p, 2); acc += w; p += 2; n -= 2; }
    if (n) { uint16_t w = 0; memcpy(&w, p, 1); acc += w; }
    return acc;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* The same sum, 16-bit words widened into 32-bit lanes (the folded sum does not depend on how
 * the words are grouped); lanes are emptied every 4096 blocks, before they could overflow. */
#define VECTOR_SUM(NAME, ATTR, VEC, LOAD, ZERO, ADD32, LO16, HI16, LO32, HI32, ADD64, STORE)   \
    ATTR static uint64_t NAME(const uint8_t *p, size_t n)                                 \
    {                                                                                      \
        uint64_t acc = 0;                                                                  \
        const VEC zero = ZERO();                                                           \
        while (n >= sizeof(VEC)) {                                                         \
            size_t blocks = n / sizeof(VEC);                                               \
            if (blocks > 4096) blocks = 4096;                                              \
            VEC a = zero, b = zero;                                                        \
            for (size_t i = 0; i < blocks; i++, p += sizeof(VEC)) {                       \
                VEC v = LOAD((const VEC *)p);                                              \
                a = ADD32(a, LO16(v, zero));                                               \
                b = ADD32(b, HI16(v, zero));                                               \
            }                                                                              \
            n -= blocks * sizeof(VEC);                                                     \
            VEC s = ADD32(a, b);                                                           \
            VEC w = ADD64(LO32(s, zero), HI32(s, zero));                                   \
            uint64_t t[sizeof(VEC) / 8];                                                   \
            STORE((VEC *)t, w);                                                            \
            for (size_t k = 0; k < sizeof(VEC) / 8; k++) acc += t[k];                     \
        }                                                                                  \
        return acc + host_sum_words(p, n);                                                 \
    }
VECTOR_SUM(host_sum_sse2, , __m128i, _mm_loadu_si128, _mm_setzero_si128, _mm_add_epi32,
           _mm_unpacklo_epi16, _mm_unpackhi_epi16, _mm_unpacklo_epi32, _mm_unpackhi_epi32,
           _mm_add_epi64, _mm_storeu_si128)
VECTOR_SUM(host_sum_avx2, __attribute__((target("avx2"))), __m256i, _mm256_loadu_si256,
           _mm256_setzero_si256, _mm256_add_epi32, _mm256_unpacklo_epi16, _mm256_unpackhi_epi16,
           _mm256_unpacklo_epi32, _mm256_unpackhi_epi32, _mm256_add_epi64, _mm256_storeu_si256)

static uint64_t host_sum(const uint8_t *p, size_t n)
{
    static int avx2 = -1;                  /* a benign race: every thread finds the same */
    if (n < 64) return host_sum_words(p, n);
    if (avx2 < 0) avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
    return avx2 ? host_sum_avx2(p, n) : host_sum_sse2(p, n);
}
#else
#define host_sum host_sum_words
#endif

/* RFC 1071: the one's complement sum does not depend on byte order: fold the host-order sum
 * to 16 bits and swap it once. */
static uint64_t to_network(uint64_t acc)
{
    while (acc >> 16) acc = (acc & 0xFFFF) + (acc >> 16);
    uint16_t v = (uint16_t)acc;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = (uint16_t)(v << 8 | v >> 8);
#endif
    return v;
}

uint64_t mapi_csum_add(uint64_t sum, const uint8_t *p, size_t n)
{
    return sum + to_network(host_sum(p, n));
}

uint64_t mapi_csum_copy(uint8_t *dst, const uint8_t *src, size_t n)
{
    memcpy(dst, src, n);                  /* libc's copy, then the sum over bytes in cache */
    return to_network(host_sum(dst, n));
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
