/* Synthetic trace generator: seeded, streaming, byte-identical for the same seed and arguments.
 *
 * A table of active two-way flows (TCP with handshake and teardown, DNS/NTP/other UDP, ICMP echo,
 * IPv4 and IPv6); each packet picks a kind by its packet share, then a flow of that kind with a skew
 * (so there are top talkers), and advances that flow's state.  Payload bytes come from two pools
 * (random bytes, ASCII text) built once, so the cost per packet is a memcpy plus the checksums.
 * Signatures are planted at a fixed rate per packet into the next packet with room for them, so
 * their frequency does not depend on the protocol mix; every planted string is counted in gt_stats.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ---- random numbers: xoshiro256** seeded through splitmix64 ---- */
static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

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

/* ---- payload pools ---- */
static const char *const WORDS[] = {
    "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do",
    "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna", "aliqua", "enim",
    "ad", "minim", "veniam", "quis", "nostrud", "exercitation", "ullamco", "laboris", "nisi",
    "aliquip", "ex", "ea", "commodo", "consequat", "duis", "aute", "irure", "in", "reprehenderit",
    "voluptate", "velit", "esse", "cillum", "eu", "fugiat", "nulla", "pariatur", "excepteur",
    "sint", "occaecat", "cupidatat", "non", "proident", "sunt", "culpa", "qui", "officia",
    "deserunt", "mollit", "anim", "id", "est", "laborum", "<p>", "</p>", "<div class=\"row\">",
    "</div>", "<li>", "</li>", "<a href=\"/page\">", "</a>", "<span>", "</span>",
};

static void build_pools(gt_gen *g)
{
    size_t i = 0;
    for (; i + 8 <= BIN_POOL + 2048; i += 8) {
        uint64_t r = rnd(g);
        memcpy(g->bin + i, &r, 8);
    }
    size_t n = 0, nw = sizeof(WORDS) / sizeof(WORDS[0]);
    while (n < TXT_POOL + 2048) {
        const char *w = WORDS[below(g, (uint32_t)nw)];
        size_t l = strlen(w);
        if (n + l + 2 > TXT_POOL + 2048)
            break;
        memcpy(g->txt + n, w, l);
        n += l;
        uint32_t r = below(g, 16);
        g->txt[n++] = r == 0 ? '\n' : r == 1 ? '.' : ' ';
    }
    while (n < TXT_POOL + 2048)
        g->txt[n++] = ' ';
}

static inline void fill_bin(gt_gen *g, uint8_t *p, uint32_t len)
{
    memcpy(p, g->bin + (below(g, BIN_POOL) & ~7u), len);
}

static inline void fill_txt(gt_gen *g, uint8_t *p, uint32_t len)
{
    memcpy(p, g->txt + below(g, TXT_POOL), len);
}

/* ---- flows ---- */
static void host_v4(uint8_t *ip, uint32_t net, uint32_t idx)
{
    be32(ip, net + idx);
}

static void mac_of(uint8_t *mac, uint32_t tag, uint32_t idx)
{
    mac[0] = 0x02; mac[1] = (uint8_t)tag;
    be32(mac + 2, idx * 2654435761u);
}

static uint32_t skewed(gt_gen *g, uint32_t n)
{
    double u = unif(g);
    uint32_t i = (uint32_t)(u * u * n);
    return i < n ? i : n - 1;
}

static uint32_t life(gt_gen *g)
{
    double u = unif(g);
    double l = -log(1.0 - u) * g->mean_life;
    return l < 1 ? 1 : l > 4e9 ? 4000000000u : (uint32_t)l;
}

static void new_flow(gt_gen *g, flow *f, uint8_t kind)
{
    memset(f, 0, sizeof *f);
    f->kind = kind;
    f->alive = 1;
    f->v6 = kind == GT_KIND_TCP6 || kind == GT_KIND_UDP6;
    uint32_t r = below(g, 1000);
    if (kind == GT_KIND_TCP4 || kind == GT_KIND_TCP6) {
        f->app = r < 430 ? GT_APP_HTTP : r < 750 ? GT_APP_HTTPS : r < 830 ? GT_APP_SSH : GT_APP_TCP_OTHER;
        f->rst = chance(g, 0.05);
    } else if (kind == GT_KIND_ICMP4) {
        f->app = GT_APP_ICMP_ECHO;
    } else {
        f->app = r < 400 ? GT_APP_DNS : r < 500 ? GT_APP_NTP : GT_APP_UDP_OTHER;
    }
    /* clients: 10.0.0.0/8 (v4) or 2001:db8:1::/48; servers by service */
    f->host_c = skewed(g, 3000);
    switch (f->app) {
    case GT_APP_HTTP: case GT_APP_HTTPS: f->host_s = skewed(g, 400); break;
    case GT_APP_SSH: f->host_s = 1000 + below(g, 20); break;
    case GT_APP_DNS: f->host_s = 2000 + below(g, 4); break;
    case GT_APP_NTP: f->host_s = 2100 + below(g, 4); break;
    default: f->host_s = 3000 + below(g, 60000); break;
    }
    if (f->v6) {
        static const uint8_t pc[8] = {0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00};
        static const uint8_t ps[8] = {0x20, 0x01, 0x0d, 0xb8, 0x0a, 0x00, 0x00, 0x00};
        memcpy(f->ip_c, pc, 8); be32(f->ip_c + 12, f->host_c + 0x100);
        memcpy(f->ip_s, ps, 8); be32(f->ip_s + 12, f->host_s + 0x100);
        f->flowlabel = below(g, 1u << 20);
    } else {
        host_v4(f->ip_c, 0x0a000000u, (f->host_c / 200) * 256 + f->host_c % 200 + 10);
        uint32_t hs = f->host_s;
        if (hs < 1000) host_v4(f->ip_s, 0xc6120000u, hs + 1);            /* 198.18.0.0/15 */
        else if (hs < 2000) host_v4(f->ip_s, 0xc6330000u, hs - 1000 + 22); /* 198.51.0.0 */
        else if (hs < 2100) host_v4(f->ip_s, 0xc0000200u, hs - 2000 + 53); /* 192.0.2.53.. */
        else if (hs < 3000) host_v4(f->ip_s, 0xc0000200u, hs - 2100 + 123);
        else host_v4(f->ip_s, 0xcb000000u + ((hs * 2654435761u) & 0x00ffffff), 0); /* 203.x.y.z */
    }
    mac_of(f->mac_c, 0xc1, f->host_c);
    mac_of(f->mac_s, 0x5e, f->host_s);
    f->port_c = (uint16_t)range(g, 32768, 60999);
    switch (f->app) {
    case GT_APP_HTTP: f->port_s = 80; break;
    case GT_APP_HTTPS: f->port_s = 443; break;
    case GT_APP_SSH: f->port_s = 22; break;
    case GT_APP_DNS: f->port_s = 53; break;
    case GT_APP_NTP: f->port_s = 123; if (chance(g, 0.5)) f->port_c = 123; break;
    default:
        do f->port_s = (uint16_t)range(g, 1024, 65535); while (f->port_s == 2049 || f->port_s == 4789);
        break;
    }
    f->ttl_c = 64;
    f->ttl_s = (uint8_t)range(g, 40, 60);
    f->ipid_c = (uint16_t)rnd(g);
    f->ipid_s = (uint16_t)rnd(g);
    f->seq_c = (uint32_t)rnd(g);
    f->seq_s = (uint32_t)rnd(g);
    f->win_c = chance(g, 0.5) ? 64240 : 65535;
    f->win_s = chance(g, 0.5) ? 65160 : 29200;
    f->icmp_id = (uint16_t)rnd(g);
    f->remaining = life(g);
    g->st.flows++;
}

/* ---- headers ---- */
/* Writes Ethernet + IP headers for an L4 payload of l4len bytes; returns the L4 offset. */
static uint32_t put_l2l3(uint8_t *p, flow *f, int c2s, uint8_t proto, uint32_t l4len)
{
    memcpy(p, c2s ? f->mac_s : f->mac_c, 6);
    memcpy(p + 6, c2s ? f->mac_c : f->mac_s, 6);
    if (f->v6) {
        be16(p + 12, 0x86dd);
        uint8_t *ip = p + 14;
        be32(ip, 0x60000000u | f->flowlabel);
        be16(ip + 4, l4len);
        ip[6] = proto;
        ip[7] = c2s ? f->ttl_c : f->ttl_s;
        memcpy(ip + 8, c2s ? f->ip_c : f->ip_s, 16);
        memcpy(ip + 24, c2s ? f->ip_s : f->ip_c, 16);
        return 54;
    }
    be16(p + 12, 0x0800);
    uint8_t *ip = p + 14;
    ip[0] = 0x45; ip[1] = 0;
    be16(ip + 2, 20 + l4len);
    be16(ip + 4, c2s ? f->ipid_c++ : f->ipid_s++);
    be16(ip + 6, proto == 6 ? 0x4000 : 0);
    ip[8] = c2s ? f->ttl_c : f->ttl_s;
    ip[9] = proto;
    ip[10] = ip[11] = 0;
    memcpy(ip + 12, c2s ? f->ip_c : f->ip_s, 4);
    memcpy(ip + 16, c2s ? f->ip_s : f->ip_c, 4);
    put_csum(ip + 10, csum_fold(csum_add(0, ip, 20)));
    return 34;
}

/* Transport checksum over the pseudo-header and the segment at p + l4 (checksum field zeroed). */
static uint16_t l4_csum(const uint8_t *p, flow *f, uint32_t l4, uint8_t proto, uint32_t l4len)
{
    uint8_t ph[40];
    uint64_t acc;
    if (f->v6) {
        memcpy(ph, p + 22, 32);
        be32(ph + 32, l4len);
        ph[36] = ph[37] = ph[38] = 0;
        ph[39] = proto;
        acc = csum_add(0, ph, 40);
    } else {
        memcpy(ph, p + 26, 8);
        ph[8] = 0; ph[9] = proto;
        be16(ph + 10, l4len);
        acc = csum_add(0, ph, 12);
    }
    return csum_fold(csum_add(acc, p + l4, l4len));
}

/* ---- payload contents ---- */
static const char *const UA[] = {
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "curl/7.88.1",
    "Wget/1.21.3",
};

static uint32_t http_request(gt_gen *g, flow *f, uint8_t *p, uint32_t cap, int *has_index, int *has_ua)
{
    char path[64];
    const char *method = "GET";
    uint32_t r = below(g, 100);
    if (r < 50) strcpy(path, "/index.html");
    else if (r < 70) snprintf(path, sizeof path, "/images/logo%u.png", below(g, 50));
    else if (r < 85) snprintf(path, sizeof path, "/api/v1/items?id=%u", below(g, 100000));
    else if (r < 95) strcpy(path, "/css/site.css");
    else { method = "POST"; strcpy(path, "/login"); }
    *has_index = r < 50;
    *has_ua = below(g, 10) != 0;
    int n = snprintf((char *)p, cap, "%s %s HTTP/1.1\r\nHost: www.example%u.com\r\n", method, path, f->host_s);
    if (*has_ua)
        n += snprintf((char *)p + n, cap - n, "User-Agent: %s\r\n", UA[below(g, 4)]);
    n += snprintf((char *)p + n, cap - n, "Accept: text/html,application/xhtml+xml,*/*;q=0.8\r\n"
                  "Accept-Language: en-US,en;q=0.5\r\nConnection: keep-alive\r\n");
    if (method[0] == 'P')
        n += snprintf((char *)p + n, cap - n, "Content-Type: application/x-www-form-urlencoded\r\n"
                      "Content-Length: 27\r\n\r\nuser=alice&pass=secret%05u", below(g, 100000));
    else
        n += snprintf((char *)p + n, cap - n, "\r\n");
    return (uint32_t)n;
}

static uint32_t http_response_head(gt_gen *g, uint8_t *p, uint32_t len)
{
    char h[256];
    int n = snprintf(h, sizeof h, "HTTP/1.1 200 OK\r\nServer: Apache/2.4.%u (Debian)\r\n"
                     "Content-Type: text/html; charset=UTF-8\r\nContent-Length: %u\r\n\r\n",
                     below(g, 60), range(g, 1000, 200000));
    if ((uint32_t)n > len)
        n = (int)len;
    memcpy(p, h, n);
    fill_txt(g, p + n, len - n);
    return (uint32_t)n;
}

/* payload sizes of bulk TCP data (pure ACKs excluded) */
static uint32_t bulk_len(gt_gen *g, uint32_t mss)
{
    return chance(g, 0.45) ? mss : range(g, 1, mss - 1);
}

/* Plants the oldest pending signature into payload [p, p+len) if it fits. */
static void plant(gt_gen *g, uint8_t *p, uint32_t len)
{
    if (!g->pend_n)
        return;
    uint16_t id = g->pending[g->pend_head];
    uint32_t l = g->sig_len[id];
    if (len < l + 8)
        return;
    g->pend_head = (g->pend_head + 1) % PENDING_MAX;
    g->pend_n--;
    memcpy(p + below(g, len - l + 1), g->sig_pat[id], l);
    g->st.sig[id]++;
    g->st.sig_packets++;
}

/* ---- packet builders: each returns the IP-level frame length (before padding) ---- */
static uint32_t tcp_packet(gt_gen *g, flow *f, uint8_t *p)
{
    int c2s = 1, flags = 0x10, opt = 0;
    uint32_t plen = 0, mss = f->v6 ? 1440 : 1460;
    int payload_kind = 0;   /* 0 random bytes, 1 text, 2 HTTP request, 3 HTTP response head */
    switch (f->stage) {
    case 0: flags = 0x02; opt = 4; break;
    case 1: c2s = 0; flags = 0x12; opt = 4; break;
    case 2: break;
    case 3:
        if (f->app == GT_APP_HTTP) {
            if (f->http_left == 0) {
                payload_kind = 2;
                f->http_left = (uint16_t)range(g, 1, 12);
                f->http_head = 1;
                flags = 0x18;
            } else if (f->unacked && !f->last_c2s && chance(g, 0.64)) {
                /* the client's ACK of the response data */
            } else {
                c2s = 0; flags = 0x18;
                plen = f->http_left == 1 ? range(g, 1, mss) : mss;
                payload_kind = f->http_head ? 3 : 1;
                f->http_head = 0;
                f->http_left--;
            }
        } else {
            if (f->unacked && chance(g, 0.54)) {
                c2s = !f->last_c2s;      /* a pure ACK goes against the data */
            } else {
                c2s = chance(g, 0.4);
                plen = bulk_len(g, mss);
                flags = 0x18;
            }
        }
        if (f->remaining)
            f->remaining--;
        break;
    case 4:
        if (f->rst) { c2s = 0; flags = 0x14; }
        else flags = 0x11;
        break;
    case 5: c2s = 0; flags = 0x11; break;
    default: break;   /* 6: the last ACK */
    }
    uint8_t *l4 = p + (f->v6 ? 54 : 34);
    uint32_t hl = 20 + opt;
    uint8_t *pl = l4 + hl;
    int has_index = 0, has_ua = 0;
    if (payload_kind == 2)
        plen = http_request(g, f, pl, mss, &has_index, &has_ua);
    else if (payload_kind == 3)
        http_response_head(g, pl, plen);
    else if (payload_kind == 1)
        fill_txt(g, pl, plen);
    else if (plen)
        fill_bin(g, pl, plen);
    if (plen && payload_kind != 2 && payload_kind != 3)
        plant(g, pl, plen);
    else if (payload_kind == 3 && plen > 160)
        plant(g, pl + 160, plen - 160);
    g->st.get_index += has_index;
    g->st.user_agent += has_ua;

    uint32_t l4len = hl + plen;
    uint32_t off = put_l2l3(p, f, c2s, 6, l4len);
    be16(l4, c2s ? f->port_c : f->port_s);
    be16(l4 + 2, c2s ? f->port_s : f->port_c);
    uint32_t seq = c2s ? f->seq_c : f->seq_s, ack = c2s ? f->seq_s : f->seq_c;
    be32(l4 + 4, seq);
    be32(l4 + 8, (flags & 0x10) ? ack : 0);
    l4[12] = (uint8_t)((hl / 4) << 4);
    l4[13] = (uint8_t)flags;
    be16(l4 + 14, (flags & 0x04) ? 0 : c2s ? f->win_c : f->win_s);
    l4[16] = l4[17] = l4[18] = l4[19] = 0;
    if (opt) { l4[20] = 2; l4[21] = 4; be16(l4 + 22, mss); }
    put_csum(l4 + 16, l4_csum(p, f, off, 6, l4len));
    if (plen) { f->unacked = 1; f->last_c2s = (uint8_t)c2s; }
    else if (c2s != f->last_c2s) f->unacked = 0;
    uint32_t adv = plen + ((flags & 0x03) ? 1 : 0);
    if (c2s) f->seq_c += adv; else f->seq_s += adv;

    if (flags & 0x02) g->st.tcp_syn++;
    if (flags & 0x01) g->st.tcp_fin++;
    if (flags & 0x04) g->st.tcp_rst++;
    if (f->stage < 3 || (f->stage == 3 && f->remaining == 0 && !(f->app == GT_APP_HTTP && f->http_left)))
        f->stage++;
    else if (f->stage == 4 && f->rst)
        f->alive = 0;
    else if (f->stage > 3) {
        if (++f->stage == 7) f->alive = 0;
    }
    return off + l4len;
}

static uint32_t dns_name(uint8_t *p, uint32_t host)
{
    char label[24];
    int n = snprintf(label, sizeof label, "example%u", host);
    uint32_t o = 0;
    p[o++] = 3; memcpy(p + o, "www", 3); o += 3;
    p[o++] = (uint8_t)n; memcpy(p + o, label, n); o += n;
    p[o++] = 3; memcpy(p + o, "com", 3); o += 3;
    p[o++] = 0;
    return o;
}

static uint32_t udp_packet(gt_gen *g, flow *f, uint8_t *p)
{
    int c2s = 1;
    uint32_t plen;
    uint8_t *l4 = p + (f->v6 ? 54 : 34);
    uint8_t *pl = l4 + 8;
    uint32_t maxpl = f->v6 ? 1452 : 1472;
    if (f->app == GT_APP_DNS) {
        c2s = !f->pending_reply;
        if (c2s) f->dns_id = (uint16_t)rnd(g);
        uint32_t host = skewed(g, 5000);
        be16(pl, f->dns_id);
        be16(pl + 2, c2s ? 0x0100 : 0x8180);
        be16(pl + 4, 1); be16(pl + 6, c2s ? 0 : 1); be16(pl + 8, 0); be16(pl + 10, 0);
        plen = 12 + dns_name(pl + 12, host);
        uint32_t qtype = f->v6 ? 28 : 1;
        be16(pl + plen, qtype); be16(pl + plen + 2, 1); plen += 4;
        if (!c2s) {
            uint8_t *a = pl + plen;
            be16(a, 0xc00c); be16(a + 2, qtype); be16(a + 4, 1); be32(a + 6, range(g, 60, 86400));
            if (qtype == 1) { be16(a + 10, 4); be32(a + 12, 0xc6120000u + host % 1000 + 1); plen += 16; }
            else { be16(a + 10, 16); memset(a + 12, 0, 16); be32(a + 12, 0x20010db8); be32(a + 24, host); plen += 28; }
        }
        f->pending_reply = (uint8_t)c2s;
    } else if (f->app == GT_APP_NTP) {
        c2s = !f->pending_reply;
        plen = 48;
        memset(pl, 0, 48);
        pl[0] = c2s ? 0x23 : 0x24;
        pl[1] = c2s ? 0 : 2;
        pl[2] = 6; pl[3] = 0xe9;
        uint32_t secs = (uint32_t)(g->t_ns / 1000000000ull + 2208988800ull);
        be32(pl + 40, secs); be32(pl + 44, (uint32_t)rnd(g));
        if (!c2s) { be32(pl + 12, 0xc0000201); be32(pl + 32, secs); be32(pl + 24, secs); }
        f->pending_reply = (uint8_t)c2s;
    } else {
        c2s = chance(g, 0.5);
        plen = chance(g, 0.35) ? range(g, 0, 64) : range(g, 64, maxpl);
        fill_bin(g, pl, plen);
        plant(g, pl, plen);
    }
    if (!f->pending_reply) {
        if (f->remaining) f->remaining--;
        if (!f->remaining) f->alive = 0;
    }
    uint32_t l4len = 8 + plen;
    uint32_t off = put_l2l3(p, f, c2s, 17, l4len);
    be16(l4, c2s ? f->port_c : f->port_s);
    be16(l4 + 2, c2s ? f->port_s : f->port_c);
    be16(l4 + 4, l4len);
    l4[6] = l4[7] = 0;
    uint16_t c = l4_csum(p, f, off, 17, l4len);
    put_csum(l4 + 6, c ? c : 0xffff);
    return off + l4len;
}

static uint32_t icmp_packet(gt_gen *g, flow *f, uint8_t *p)
{
    int c2s = !f->pending_reply;
    uint8_t *l4 = p + 34;
    if (c2s) f->icmp_seq++;
    l4[0] = c2s ? 8 : 0; l4[1] = 0; l4[2] = l4[3] = 0;
    be16(l4 + 4, f->icmp_id);
    be16(l4 + 6, f->icmp_seq);
    le64(l4 + 8, g->t_ns / 1000);
    for (int i = 16; i < 64; i++) l4[i] = (uint8_t)i;
    put_csum(l4 + 2, csum_fold(csum_add(0, l4, 64)));
    f->pending_reply = (uint8_t)c2s;
    if (!f->pending_reply) {
        if (f->remaining) f->remaining--;
        if (!f->remaining) f->alive = 0;
    }
    return put_l2l3(p, f, c2s, 1, 64) + 64;
}

/* ---- the generator ---- */
gt_gen *gt_new(const gt_config *cfg)
{
    gt_gen *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->cfg = *cfg;
    uint64_t x = cfg->seed ^ 0x5ca3b1d00dull;
    for (int i = 0; i < 4; i++) g->s[i] = splitmix(&x);
    g->bin = malloc(BIN_POOL + 2048);
    g->txt = malloc(TXT_POOL + 2048);
    if (!g->bin || !g->txt) { gt_free(g); return NULL; }
    build_pools(g);

    uint64_t planned = cfg->planned_packets ? cfg->planned_packets : 1000000;
    uint32_t active = cfg->active_flows;
    if (!active) {
        uint64_t a = planned / 250;
        active = a < 64 ? 64 : a > 4000 ? 4000 : (uint32_t)a;
    }
    g->mean_life = (double)planned / active;
    if (g->mean_life < 250) g->mean_life = 250;     /* short traces keep the long-trace packet mix */

    uint32_t total = 0, cum = 0, permille = 0;
    for (int k = 0; k < GT_NKINDS; k++) permille += cfg->kind_permille[k];
    if (permille == 0) { gt_free(g); return NULL; }
    for (int k = 0; k < GT_NKINDS; k++) {
        uint32_t n = (uint32_t)((uint64_t)active * cfg->kind_permille[k] / permille);
        g->nslots[k] = cfg->kind_permille[k] ? (n < 4 ? 4 : n) : 0;
        g->base[k] = total;
        total += g->nslots[k];
        cum += cfg->kind_permille[k];
        g->kind_cut[k] = (uint32_t)(((uint64_t)cum << 32) / permille - (cum == permille));
    }
    g->flows = calloc(total, sizeof(flow));
    if (!g->flows) { gt_free(g); return NULL; }
    g->t_ns = cfg->start_ns;
    g->mean_gap_ns = 1e9 / (cfg->rate_pps > 0 ? cfg->rate_pps : 1e6);
    return g;
}

void gt_free(gt_gen *g)
{
    if (!g) return;
    for (uint32_t i = 0; i < g->nsig; i++) free(g->sig_pat[i]);
    free(g->flows); free(g->bin); free(g->txt);
    free(g);
}

int gt_add_signature(gt_gen *g, const uint8_t *pattern, uint32_t len, double ppm)
{
    if (g->nsig >= GT_MAX_SIGS || len == 0 || len > 200 || ppm < 0)
        return -1;
    uint32_t i = g->nsig++;
    g->sig_pat[i] = malloc(len);
    memcpy(g->sig_pat[i], pattern, len);
    g->sig_len[i] = len;
    g->sig_ppm[i] = ppm;
    g->sig_prob += ppm / 1e6;
    g->sig_cum[i] = g->sig_prob;
    return (int)i;
}

size_t gt_file_header(gt_gen *g, uint8_t *out)
{
    size_t n = 0;
    switch (g->cfg.format) {
    case GT_FMT_PCAP_US:
    case GT_FMT_PCAP_NS:
        le32(out, g->cfg.format == GT_FMT_PCAP_NS ? 0xa1b23c4du : 0xa1b2c3d4u);
        le16(out + 4, 2); le16(out + 6, 4);
        le32(out + 8, 0); le32(out + 12, 0);
        le32(out + 16, 262144); le32(out + 20, 1);
        n = 24;
        break;
    case GT_FMT_PCAPNG:
        /* SHB, then one Ethernet IDB with default (microsecond) resolution */
        le32(out, 0x0a0d0d0a); le32(out + 4, 28); le32(out + 8, 0x1a2b3c4d);
        le16(out + 12, 1); le16(out + 14, 0);
        le64(out + 16, ~0ull); le32(out + 24, 28);
        le32(out + 28, 1); le32(out + 32, 20); le16(out + 36, 1); le16(out + 38, 0);
        le32(out + 40, 262144); le32(out + 44, 20);
        n = 48;
        break;
    default:
        n = 0;      /* ERF has no file header */
    }
    g->st.file_bytes += n;
    return n;
}

static uint32_t record_overhead(uint32_t fmt, uint32_t len)
{
    if (fmt == GT_FMT_PCAPNG) return 32 + ((4 - (len & 3)) & 3);
    if (fmt == GT_FMT_ERF) return 18;
    return 16;
}

size_t gt_fill(gt_gen *g, uint8_t *out, size_t cap, uint64_t max_packets, uint64_t max_file_bytes)
{
    size_t n = 0;
    uint32_t fmt = g->cfg.format;
    uint32_t frame_off = fmt == GT_FMT_PCAPNG ? 28 : fmt == GT_FMT_ERF ? 18 : 16;
    while (g->st.packets < max_packets && n + MAX_FRAME + 64 <= cap) {
        /* stop one record early rather than generate a packet that would not fit the size limit */
        if (max_file_bytes && g->st.file_bytes + MAX_FRAME + 64 > max_file_bytes)
            break;
        uint8_t *rec = out + n;
        uint8_t *p = rec + frame_off;

        double u = unif(g);
        uint64_t gap = (uint64_t)(-log(1.0 - u) * g->mean_gap_ns + 0.5);
        uint64_t t = g->t_ns + gap;
        if (g->pend_n < PENDING_MAX && chance(g, g->sig_prob)) {
            double v = unif(g) * g->sig_prob;
            uint32_t id = 0;
            while (id + 1 < g->nsig && g->sig_cum[id] <= v) id++;
            g->pending[(g->pend_head + g->pend_n) % PENDING_MAX] = (uint16_t)id;
            g->pend_n++;
        }
        uint32_t r32 = (uint32_t)(rnd(g) >> 32), kind = 0;
        while (kind + 1 < GT_NKINDS && (r32 > g->kind_cut[kind] || !g->nslots[kind])) kind++;
        flow *f = &g->flows[g->base[kind] + skewed(g, g->nslots[kind])];
        if (!f->alive)
            new_flow(g, f, (uint8_t)kind);
        g->t_ns = t;
        uint32_t len;
        if (kind == GT_KIND_ICMP4) len = icmp_packet(g, f, p);
        else if (kind == GT_KIND_UDP4 || kind == GT_KIND_UDP6) len = udp_packet(g, f, p);
        else len = tcp_packet(g, f, p);
        g->st.app[f->app]++;
        g->st.kind[kind]++;
        if (len < 60) { memset(p + len, 0, 60 - len); len = 60; }

        uint32_t reclen = len + record_overhead(fmt, len);
        uint64_t sec = t / 1000000000ull, ns = t % 1000000000ull;
        if (fmt == GT_FMT_PCAP_US || fmt == GT_FMT_PCAP_NS) {
            le32(rec, (uint32_t)sec);
            le32(rec + 4, (uint32_t)(fmt == GT_FMT_PCAP_US ? ns / 1000 : ns));
            le32(rec + 8, len); le32(rec + 12, len);
        } else if (fmt == GT_FMT_PCAPNG) {
            uint64_t us = t / 1000;
            le32(rec, 6); le32(rec + 4, reclen); le32(rec + 8, 0);
            le32(rec + 12, (uint32_t)(us >> 32)); le32(rec + 16, (uint32_t)us);
            le32(rec + 20, len); le32(rec + 24, len);
            memset(p + len, 0, reclen - 32 - len);
            le32(rec + reclen - 4, reclen);
        } else {
            /* ERF type 2 (Ethernet): fixed-point ts, big-endian lengths, wlen counts the FCS as DAG cards do */
            le64(rec, (sec << 32) | ((ns << 32) / 1000000000ull));
            rec[8] = 2; rec[9] = 0x04;
            be16(rec + 10, reclen); be16(rec + 12, 0); be16(rec + 14, len + 4);
            rec[16] = rec[17] = 0;
        }
        n += reclen;
        g->st.packets++;
        g->st.frame_bytes += len;
        g->st.file_bytes += reclen;
        g->st.last_ts_ns = t;
    }
    return n;
}

void gt_get_stats(gt_gen *g, gt_stats *out)
{
    *out = g->st;
}
