/* Internet checksums (RFC 1071) and their incremental update (RFC 1624), and the end of an IP
 * packet in its frame: shared by the kernels that read or write whole IP packets (COOKING,
 * DEFRAG, FLOW_REPORT, ANONYMIZE). */
#ifndef MAPI_FN_IPSUM_H
#define MAPI_FN_IPSUM_H
#include <stdint.h>
#include <stddef.h>

/* Add n bytes (big-endian 16-bit words; an odd last byte is padded) to a running sum. */
uint64_t mapi_csum_add(uint64_t sum, const uint8_t *p, size_t n);
/* Copy n bytes and return their sum (as mapi_csum_add(0, src, n) would): one pass. */
uint64_t mapi_csum_copy(uint8_t *dst, const uint8_t *src, size_t n);
/* Fold a running sum into the 16-bit one's complement checksum (host order). */
uint16_t mapi_csum_fold(uint64_t sum);
/* Sum of the TCP/UDP pseudo-header: IPv4 (alen 4) or IPv6 (alen 16) addresses, protocol and
 * transport length. */
uint64_t mapi_csum_pseudo(const uint8_t *src, const uint8_t *dst, int alen, uint8_t proto,
                          uint32_t len);
/* Checksum field (big-endian at p) updated for bytes `old` replaced by `new` (n even). */
void mapi_csum_replace(uint8_t *field, const uint8_t *old, const uint8_t *new_, size_t n);
/* Offset in the frame just past the IP packet whose header is at l3 (version 4 or 6): its
 * length field, bounded by a PPPoE session header's length when one is right before it (as
 * tshark bounds it; some senders pad inside IP); may exceed caplen when the frame was cut. */
uint32_t mapi_ip_end(const uint8_t *p, uint32_t caplen, uint32_t l3, int version);
#endif
