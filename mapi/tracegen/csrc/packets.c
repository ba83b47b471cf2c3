/* The trace generator's packets: Ethernet/IPv4/IPv6 headers with their checksums, HTTP, DNS and
 * bulk payloads with signatures planted in them, and one builder per kind of flow that advances
 * the flow's state by one packet (generator.c picks the flow and writes the record around it). */
#include <stdio.h>
#include <string.h>

#include "gt_private.h"

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
uint32_t gt_tcp_packet(gt_gen *g, flow *f, uint8_t *p)
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

uint32_t gt_udp_packet(gt_gen *g, flow *f, uint8_t *p)
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

uint32_t gt_icmp_packet(gt_gen *g, flow *f, uint8_t *p)
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
