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

#include "gt_private.h"

/* ---- random numbers: xoshiro256** seeded through splitmix64 ---- */
static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

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
        if (kind == GT_KIND_ICMP4) len = gt_icmp_packet(g, f, p);
        else if (kind == GT_KIND_UDP4 || kind == GT_KIND_UDP6) len = gt_udp_packet(g, f, p);
        else len = gt_tcp_packet(g, f, p);
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
