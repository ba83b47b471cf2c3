/* ANONYMIZE: modified copies of the packets that reach it; a producer (engine.h) whose batch
 * has the input's link type.
 *
 * Addresses: prefix-preserving Crypto-PAn (Xu, Fan, Ammar, Moon, ICNP 2002) over IPv4 and IPv6
 * source and destination addresses of the outermost IP header, with a 32-byte key: AES-128 key
 * (bytes 0-15) and pad (AES of bytes 16-31); bit i of the result is bit i of the address XOR
 * the first bit of AES(first i bits of the address, then the pad's bits).  Results are cached
 * per address.  MAC (Ethernet frames): kept, zeroed, or mapped (AES of the address; the
 * group bit and the broadcast address kept).  Payload: kept, removed (-1 keeps, 0 removes, N
 * keeps N bytes) after the transport header (TCP, UDP, ICMP, ICMPv6) or the IP header
 * otherwise: the captured length shrinks, the wire length and the IP lengths stay, as with a
 * snapshot length.  Checksums (IPv4 header, TCP, UDP, ICMPv6) are updated for the new
 * addresses (RFC 1624): one that was right for the whole packet stays right, one the capture
 * had wrong (checksum offload) stays wrong.  Not rewritten: addresses inside ICMP error
 * quotes, ARP, tunnels' inner headers. */
#ifndef MAPI_FN_ANONYMIZE_H
#define MAPI_FN_ANONYMIZE_H
#include <stdint.h>
#include "../engine.h"

#define MAPI_ANON_KEEP 0
#define MAPI_ANON_ZERO 1
#define MAPI_ANON_MAP 2              /* MAC: keyed mapping */
#define MAPI_ANON_CRYPTOPAN 2        /* IP: Crypto-PAn */

typedef struct mapi_anon mapi_anon;

typedef struct mapi_anon_stats {
    uint64_t packets;
    uint64_t ipv4, ipv6;             /* packets whose addresses were rewritten */
    uint64_t not_ip;                 /* passed with only the MAC rule applied */
    uint64_t truncated;              /* packets whose payload was cut */
    uint64_t cache_hits, cache_misses;
} mapi_anon_stats;

/* NULL with a message in err when AES is not available or the key is not 32 bytes. */
mapi_anon *mapi_anon_new(const uint8_t *key, uint32_t keylen, int32_t ip_mode, int32_t mac_mode,
                         int32_t payload, char *err, uint32_t errlen);
void mapi_anon_free(mapi_anon *a);
uint32_t mapi_anon_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                          uint32_t *out);
mapi_batch *mapi_anon_batch(mapi_anon *a);
void mapi_anon_get_stats(mapi_anon *a, mapi_anon_stats *st);
/* Crypto-PAn of one address (alen 4 or 16) into out (for tests and tools). */
int mapi_anon_address(mapi_anon *a, const uint8_t *addr, int32_t alen, uint8_t *out);
#endif
