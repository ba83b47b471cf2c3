/* The trace generator's private definitions, shared by generator.c (set-up, flows, the record
 * loop and the file formats) and packets.c (headers, payloads and the packet builders). */
#ifndef SCAMPI_GT_PRIVATE_H
#define SCAMPI_GT_PRIVATE_H
#include <string.h>

#include "gentrace.h"

#define BIN_POOL (1u << 20)
#define TXT_POOL (1u << 18)
#define MAX_FRAME 1514
#define PENDING_MAX 4096

typedef struct {
    uint8_t kind, app, stage, alive;
    uint8_t v6, pending_reply, http_head, rst;
    uint8_t unacked, last_c2s;        /* data sent since the peer's last ACK, and by whom */
    uint8_t ttl_c, ttl_s;
    uint16_t port_c, port_s;
    uint16_t ipid_c, ipid_s;
    uint16_t win_c, win_s;
    uint16_t icmp_id, icmp_seq;
    uint16_t dns_id, http_left;
    uint32_t seq_c, seq_s;
    uint32_t remaining;
    uint32_t flowlabel;
    uint32_t host_c, host_s;
    uint8_t ip_c[16], ip_s[16];
    uint8_t mac_c[6], mac_s[6];
} flow;

struct gt_gen {
    uint64_t s[4];
    gt_config cfg;
    flow *flows;
    uint32_t nslots[GT_NKINDS], base[GT_NKINDS];
    uint32_t kind_cut[GT_NKINDS];     /* cumulative thresholds out of 2^32 */
    uint64_t t_ns;
    double mean_gap_ns;
    double mean_life;
    uint8_t *bin, *txt;
    uint32_t nsig;
    uint8_t *sig_pat[GT_MAX_SIGS];
    uint32_t sig_len[GT_MAX_SIGS];
    double sig_ppm[GT_MAX_SIGS];
    double sig_cum[GT_MAX_SIGS];
    double sig_prob;                  /* per packet, all signatures together */
    uint16_t pending[PENDING_MAX];
    uint32_t pend_head, pend_n;
    gt_stats st;
};

/* ---- random numbers: xoshiro256** (seeded through splitmix64 in generator.c) ---- */
static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rnd(gt_gen *g)
{
    uint64_t *s = g->s;
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45);
    return r;
}

static inline double unif(gt_gen *g) { return (rnd(g) >> 11) * (1.0 / 9007199254740992.0); }
static inline uint32_t below(gt_gen *g, uint32_t n) { return (uint32_t)(((rnd(g) >> 32) * (uint64_t)n) >> 32); }
static inline uint32_t range(gt_gen *g, uint32_t lo, uint32_t hi) { return lo + below(g, hi - lo + 1); }
static inline int chance(gt_gen *g, double p) { return unif(g) < p; }

/* ---- byte helpers ---- */
static inline void be16(uint8_t *p, uint32_t v) { p[0] = v >> 8; p[1] = v; }
static inline void be32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static inline void le16(uint8_t *p, uint32_t v) { p[0] = v; p[1] = v >> 8; }
static inline void le32(uint8_t *p, uint32_t v) { p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24; }
static inline void le64(uint8_t *p, uint64_t v) { le32(p, (uint32_t)v); le32(p + 4, (uint32_t)(v >> 32)); }

/* Internet checksum in host byte order (RFC 1071: the sum is byte-order independent, so summing
 * native words and storing the result natively yields the right bytes). Regions must start at
 * even offsets of the checksummed stream. */
static inline uint64_t csum_add(uint64_t acc, const uint8_t *p, size_t n)
{
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        acc += (v & 0xffffffffu) + (v >> 32);
        p += 8; n -= 8;
    }
    while (n >= 2) {
        uint16_t w;
        memcpy(&w, p, 2);
        acc += w;
        p += 2; n -= 2;
    }
    if (n) {
        uint16_t w = 0;
        memcpy(&w, p, 1);
        acc += w;
    }
    return acc;
}

static inline uint16_t csum_fold(uint64_t acc)
{
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    return (uint16_t)~acc;
}

static inline void put_csum(uint8_t *p, uint16_t c) { memcpy(p, &c, 2); }

/* ---- payload pools (built by generator.c) ---- */
static inline void fill_bin(gt_gen *g, uint8_t *p, uint32_t len)
{
    memcpy(p, g->bin + (below(g, BIN_POOL) & ~7u), len);
}

static inline void fill_txt(gt_gen *g, uint8_t *p, uint32_t len)
{
    memcpy(p, g->txt + below(g, TXT_POOL), len);
}

/* a skewed pick below n (so there are top talkers) */
static inline uint32_t skewed(gt_gen *g, uint32_t n)
{
    double u = unif(g);
    uint32_t i = (uint32_t)(u * u * n);
    return i < n ? i : n - 1;
}

/* packet builders (packets.c): each returns the IP-level frame length (before padding) */
uint32_t gt_tcp_packet(gt_gen *g, flow *f, uint8_t *p);
uint32_t gt_udp_packet(gt_gen *g, flow *f, uint8_t *p);
uint32_t gt_icmp_packet(gt_gen *g, flow *f, uint8_t *p);

#endif
