/* Unaligned reads of packet and file fields, shared by the engine's parsers and by plugins'
 * C (collectors, card emulators): network order (mapi_be16/32, mapi_put_be16/32/64), or a
 * savefile's own order (mapi_rd16/32: `swapped` says it differs from ours). */
#ifndef MAPI_BYTEORDER_H
#define MAPI_BYTEORDER_H
#include <stdint.h>
#include <string.h>

static inline uint16_t mapi_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static inline uint32_t mapi_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t mapi_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;                            /* x86-64 and aarch64 Linux are little-endian */
}

static inline uint32_t mapi_rd32(const uint8_t *p, int swapped)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swapped ? __builtin_bswap32(v) : v;
}

static inline uint16_t mapi_rd16(const uint8_t *p, int swapped)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return swapped ? __builtin_bswap16(v) : v;
}
static inline void mapi_put_be16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void mapi_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void mapi_put_be64(uint8_t *p, uint64_t v)
{
    mapi_put_be32(p, (uint32_t)(v >> 32));
    mapi_put_be32(p + 4, (uint32_t)v);
}
#endif
