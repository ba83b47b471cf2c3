/* FLOW_REPORT metering; see flow_meter.h. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "flow_meter.h"
#include "flow_export.h"
#include "hdr_parse.h"
#include "ipsum.h"
#include "htab.h"
#include "lru.h"
#include "outbatch.h"
#include "../flowrec.h"

#define OLDEST(m) ((flow *)(m)->lru.oldest)
#define FLOW(n) ((flow *)((char *)(n) - offsetof(flow, hn)))
#define F_FIN 0x01
#define F_RST 0x04
#define RECORDS_PER_BATCH 16384

typedef struct fkey {
    uint8_t src[16], dst[16];
    uint16_t sport, dport;
    uint32_t ifindex;
    uint8_t family, proto, tos, _pad;
} fkey;
_Static_assert(sizeof(fkey) == 44, "key_hash reads the key as 44 bytes");

typedef struct flow {
    mapi_lru_node lru;                    /* creation order, oldest first (first member) */
    mapi_hnode hn;                        /* hash chain */
    fkey k;
    uint8_t flags[2];                     /* TCP flags per direction (1: reverse of a biflow) */
    uint8_t ended;                        /* FIN or RST seen */
    uint8_t _pad;
    uint64_t packets[2], bytes[2];
    int64_t first, last;
} flow;

struct mapi_flowmeter {
    mapi_flowmeter_config cfg;
    mapi_flowmeter_stats st;
    mapi_outbatch out;
    mapi_htab tab;
    mapi_lru lru;
    int64_t now, next_sweep;
    uint64_t cur_seq;
};

/* The key's 44 bytes as five 64-bit words and one 32-bit word, mixed (a multiply per pair of
 * words, then a finalizer): inline, without the byte loop of mapi_hash_bytes. */
static uint32_t key_hash(const fkey *k)
{
    uint64_t w[5];
    uint32_t last;
    memcpy(w, k, sizeof w);
    memcpy(&last, (const uint8_t *)k + sizeof w, sizeof last);
    uint64_t h = (w[0] ^ (w[1] << 23 | w[1] >> 41)) * 0x9E3779B97F4A7C15ull;
    h ^= (w[2] ^ (w[3] << 29 | w[3] >> 35)) * 0xC2B2AE3D27D4EB4Full;
    h ^= (w[4] ^ (uint64_t)last << 32) * 0x165667B19E3779F9ull;
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 33;
    return (uint32_t)h;
}

/* Hand on (and export) the record of flow f. */
static void emit(mapi_flowmeter *m, flow *f, int reason)
{
    const mapi_flowmeter_config *cfg = &m->cfg;
    uint64_t bytes = f->bytes[0];
    mapi_flowrec *r = (mapi_flowrec *)mapi_outbatch_put(&m->out, sizeof *r,
                                                        bytes > UINT32_MAX ? UINT32_MAX : (uint32_t)bytes,
                                                        m->now, m->cur_seq, 0);
    if (!r) return;
    memset(r, 0, sizeof *r);
    r->first_ns = f->first;
    r->last_ns = f->last;
    r->export_ns = r->recv_ns = m->now;
    r->packets = f->packets[0];
    r->bytes = bytes;
    r->out_packets = f->packets[1];
    r->out_bytes = f->bytes[1];
    memcpy(r->src, f->k.src, 16);
    memcpy(r->dst, f->k.dst, 16);
    r->input = f->k.ifindex;
    r->domain = cfg->domain;
    r->sampling = cfg->sampling;
    r->sport = f->k.sport;
    r->dport = f->k.dport;
    r->family = f->k.family;
    r->proto = f->k.proto;
    r->tcp_flags = f->flags[0] | f->flags[1];
    r->tos = f->k.tos;
    r->version = cfg->version;
    r->direction = 255;
    if (f->k.proto == 1 || f->k.proto == 58) {
        r->icmp_type = f->k.dport >> 8;
        r->icmp_code = f->k.dport & 0xFF;
    }
    r->flags = MAPI_FLOWREC_HAS_TIMES | (cfg->biflow ? MAPI_FLOWREC_HAS_OUT : 0);
    m->st.records++;
    m->st.by_reason[reason]++;
    if (cfg->exporter) mapi_flowexp_add(cfg->exporter, r, reason, f->flags[0], f->flags[1]);
}

static void forget(mapi_flowmeter *m, flow *f)
{
    mapi_htab_remove(&m->tab, &f->hn);
    mapi_lru_unlink(&m->lru, &f->lru);
    free(f);
    m->st.active--;
}

/* Why flow f is over at time now (0: it is not). */
static int expired(const mapi_flowmeter *m, const flow *f, int64_t now)
{
    if (f->ended && now - f->last >= m->cfg.tcp_end_ns) return MAPI_FLOWEND_END;
    if (now - f->last >= m->cfg.idle_ns) return MAPI_FLOWEND_IDLE;
    if (now - f->first >= m->cfg.active_ns) return MAPI_FLOWEND_ACTIVE;
    return 0;
}

static void expire(mapi_flowmeter *m, flow *f, int reason)
{
    if (f->packets[0] + f->packets[1])           /* nothing since an active-timeout report */
        emit(m, f, reason);
    forget(m, f);
}

/* Report flow f if it is over at time now: an active timeout restarts its counts (it goes
 * on), any other reason ends it.  Returns 1 when f is gone. */
static inline int settle(mapi_flowmeter *m, flow *f)
{
    int why = expired(m, f, m->now);
    if (why == MAPI_FLOWEND_ACTIVE) {
        if (f->packets[0] + f->packets[1]) emit(m, f, why);
        f->packets[0] = f->packets[1] = f->bytes[0] = f->bytes[1] = 0;
        f->flags[0] = f->flags[1] = 0;
        f->first = m->now;
        return 0;
    }
    if (why) expire(m, f, why);
    return why != 0;
}

static void sweep(mapi_flowmeter *m)
{
    int64_t step = m->cfg.idle_ns < m->cfg.active_ns ? m->cfg.idle_ns : m->cfg.active_ns;
    if (m->cfg.tcp_end_ns && m->cfg.tcp_end_ns < step) step = m->cfg.tcp_end_ns;
    if (step > 1000000000) step = 1000000000;
    m->next_sweep = m->now + (step > 1 ? step : 1);
    for (flow *f = OLDEST(m), *nx; f; f = nx) {
        nx = (flow *)f->lru.next;
        settle(m, f);
    }
}

/* Ethernet II and IPv4, not a fragment (most frames): the key straight from the frame, as the
 * general parser below gives it, without its walk; 0 when the frame is not that. */
static int classify_eth_ipv4(const mapi_flowmeter *m, const uint8_t *p, uint32_t caplen,
                             uint16_t ifindex, fkey *k, uint32_t *iplen, uint8_t *tcpflags)
{
    if (caplen < 34 || p[12] != 0x08 || p[13] != 0x00 || (p[14] & 0xF0) != 0x40 ||
        (p[14] & 0x0F) < 5 || ((p[20] << 8 | p[21]) & 0x3FFF))
        return 0;
    uint32_t key = m->cfg.key, l4 = 14 + (uint32_t)(p[14] & 0x0F) * 4;
    uint8_t proto = p[23], tf = 0;
    uint16_t sport = 0, dport = 0;
    memset(k, 0, sizeof *k);
    k->family = 4;
    if (key & MAPI_FLOWKEY_SRC) memcpy(k->src, p + 26, 4);
    if (key & MAPI_FLOWKEY_DST) memcpy(k->dst, p + 30, 4);
    if (key & MAPI_FLOWKEY_PROTO) k->proto = proto;
    if (key & MAPI_FLOWKEY_TOS) k->tos = p[15];
    if (key & MAPI_FLOWKEY_IFINDEX) k->ifindex = ifindex;
    if ((proto == 6 || proto == 17) && caplen >= l4 + 4) {
        sport = (uint16_t)(p[l4] << 8 | p[l4 + 1]);
        dport = (uint16_t)(p[l4 + 2] << 8 | p[l4 + 3]);
        if (proto == 6 && caplen >= l4 + 14) tf = p[l4 + 13];
    } else if (proto == 1 && caplen >= l4 + 2) {
        dport = (uint16_t)(p[l4] << 8 | p[l4 + 1]);       /* ICMP type and code */
    }
    if (key & MAPI_FLOWKEY_SPORT) k->sport = sport;
    if (key & MAPI_FLOWKEY_DPORT) k->dport = dport;
    *iplen = (uint32_t)(p[16] << 8 | p[17]);
    *tcpflags = tf;
    return 4;
}

/* The key, direction and IP length of one frame; 0 when it carries no IP. */
static int classify(const mapi_flowmeter *m, int32_t linktype, const uint8_t *p, uint32_t caplen,
                    uint16_t ifindex, fkey *k, uint32_t *iplen, uint8_t *tcpflags)
{
    if (linktype == 1) {
        int v = classify_eth_ipv4(m, p, caplen, ifindex, k, iplen, tcpflags);
        if (v) return v;
    }
    mapi_hdr h;
    int v = mapi_hdr_parse(linktype, p, caplen, &h);
    if (!v) return 0;
    uint32_t key = m->cfg.key;
    memset(k, 0, sizeof *k);
    k->family = (uint8_t)v;
    if (v == 4) {                               /* fixed sizes: the copies are inlined */
        if (key & MAPI_FLOWKEY_SRC) memcpy(k->src, h.src, 4);
        if (key & MAPI_FLOWKEY_DST) memcpy(k->dst, h.dst, 4);
    } else {
        if (key & MAPI_FLOWKEY_SRC) memcpy(k->src, h.src, 16);
        if (key & MAPI_FLOWKEY_DST) memcpy(k->dst, h.dst, 16);
    }
    if (key & MAPI_FLOWKEY_PROTO) k->proto = h.proto;
    const uint8_t *ip = p + h.l3_off;
    if (key & MAPI_FLOWKEY_TOS) k->tos = v == 4 ? ip[1] : (uint8_t)((ip[0] << 4) | (ip[1] >> 4));
    if (key & MAPI_FLOWKEY_IFINDEX) k->ifindex = ifindex;
    uint16_t sport = h.sport, dport = h.dport;
    if ((h.proto == 1 || h.proto == 58) && h.l4_off && !(h.flags & MAPI_HDR_LATER_FRAGMENT) &&
        caplen >= h.l4_off + 2) {
        sport = 0;
        dport = (uint16_t)(p[h.l4_off] << 8 | p[h.l4_off + 1]);
    }
    if (key & MAPI_FLOWKEY_SPORT) k->sport = sport;
    if (key & MAPI_FLOWKEY_DPORT) k->dport = dport;
    *iplen = mapi_ip_end(p, caplen, h.l3_off, v) - h.l3_off;
    *tcpflags = (h.flags & MAPI_HDR_HAS_TCP) ? h.tcp_flags : 0;
    return v;
}

static flow *lookup(mapi_flowmeter *m, const fkey *k, uint32_t hash)
{
    for (mapi_hnode *n = mapi_htab_bucket(&m->tab, hash); n; n = n->next)
        if (n->hash == hash && !memcmp(&FLOW(n)->k, k, sizeof *k)) return FLOW(n);
    return NULL;
}

static void reverse_key(const fkey *k, fkey *r)
{
    *r = *k;
    memcpy(r->src, k->dst, 16);
    memcpy(r->dst, k->src, 16);
    r->sport = k->dport;
    r->dport = k->sport;
}

static void packet(mapi_flowmeter *m, int32_t linktype, const uint8_t *p, uint32_t caplen,
                   uint32_t wirelen, uint16_t ifindex)
{
    fkey k, rk;
    uint32_t iplen;
    uint8_t tf;
    if (!classify(m, linktype, p, caplen, ifindex, &k, &iplen, &tf)) {
        m->st.ignored++;
        m->st.ignored_bytes += wirelen;
        return;
    }
    uint32_t hash = key_hash(&k);
    int dir = 0;
    flow *f = lookup(m, &k, hash);
    if (!f && m->cfg.biflow) {
        reverse_key(&k, &rk);
        uint32_t rh = key_hash(&rk);
        f = lookup(m, &rk, rh);
        if (f) dir = 1;
    }
    if (f && settle(m, f)) {
        f = NULL;
        dir = 0;
    }
    if (!f) {
        if (m->st.active >= m->cfg.max_flows && OLDEST(m))
            expire(m, OLDEST(m), MAPI_FLOWEND_RESOURCES);
        f = calloc(1, sizeof *f);
        if (!f) return;
        f->k = k;
        f->first = m->now;
        mapi_htab_insert(&m->tab, &f->hn, hash);
        mapi_lru_touch(&m->lru, &f->lru);           /* creation order: oldest first */
        m->st.flows++;
        m->st.active++;
    }
    f->packets[dir]++;
    f->bytes[dir] += iplen;
    f->flags[dir] |= tf;
    if (tf & (F_FIN | F_RST)) f->ended = 1;
    f->last = m->now;
}

uint32_t mapi_flowmeter_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                               uint32_t nsel, uint32_t *out)
{
    (void)out;
    mapi_flowmeter *m = state;
    mapi_outbatch_begin(&m->out, NULL);
    m->out.b.clock_ns = b->clock_ns;          /* the records' readers see time pass too */
    for (uint32_t j = 0; j < nsel; j++) {
        uint32_t i = sel[j];
        m->now = b->ts[i];
        m->cur_seq = b->seq ? b->seq[i] : b->first_seq + i;
        if (m->now >= m->next_sweep) sweep(m);
        packet(m, b->linktype, b->base + b->off[i], b->caplen[i], b->wirelen[i], b->ifindex[i]);
    }
    m->st.packets += nsel;
    if (b->n) {                     /* time passes for packets that did not reach us too */
        m->now = b->ts[b->n - 1];
        m->cur_seq = mapi_batch_seq(b, b->n - 1);
    } else if (b->clock_ns > m->now) {   /* a live device's clock: time passes without packets */
        m->now = b->clock_ns;
    }
    if (m->now >= m->next_sweep) sweep(m);
    if (m->cfg.exporter) {
        mapi_flowexp_set_ignored(m->cfg.exporter, m->st.ignored);
        mapi_flowexp_flush(m->cfg.exporter, m->now);
    }
    return mapi_outbatch_finish(&m->out);
}

uint32_t mapi_flowmeter_drain(void *state)
{
    mapi_flowmeter *m = state;
    mapi_outbatch_begin(&m->out, NULL);
    while (OLDEST(m) && !m->out.backlog && !mapi_outbatch_full(&m->out))
        expire(m, OLDEST(m), MAPI_FLOWEND_FORCED);
    if (m->cfg.exporter) {
        if (!OLDEST(m)) mapi_flowexp_finish(m->cfg.exporter, m->now);
        mapi_flowexp_flush(m->cfg.exporter, m->now);
    }
    return mapi_outbatch_finish(&m->out);
}

mapi_flowmeter *mapi_flowmeter_new(const mapi_flowmeter_config *cfg)
{
    mapi_flowmeter *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cfg = *cfg;
    if (mapi_htab_init(&m->tab, m->cfg.max_flows) < 0 || mapi_outbatch_init(&m->out, RECORDS_PER_BATCH,
                                        (size_t)RECORDS_PER_BATCH * sizeof(mapi_flowrec),
                                        MAPI_LINKTYPE_FLOWREC) < 0) {
        mapi_flowmeter_free(m);
        return NULL;
    }
    m->next_sweep = INT64_MIN;
    return m;
}

void mapi_flowmeter_free(mapi_flowmeter *m)
{
    if (!m) return;
    while (OLDEST(m)) {
        flow *f = OLDEST(m);
        mapi_lru_unlink(&m->lru, &f->lru);
        free(f);
    }
    mapi_htab_release(&m->tab);
    mapi_outbatch_release(&m->out);
    free(m);
}

mapi_batch *mapi_flowmeter_batch(mapi_flowmeter *m) { return &m->out.b; }

void mapi_flowmeter_get_stats(mapi_flowmeter *m, mapi_flowmeter_stats *st) { *st = m->st; }
