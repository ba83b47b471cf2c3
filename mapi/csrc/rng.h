/* SAMPLE's random draws (splitmix64), inline for the engine's kernel and for plugins' C that
 * must draw exactly as SAMPLE does (a card's sampler unit).  Not declared to cffi. */
#ifndef MAPI_RNG_H
#define MAPI_RNG_H
#include <stdint.h>

static inline uint64_t mapi_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
#endif
