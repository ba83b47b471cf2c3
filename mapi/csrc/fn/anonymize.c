/* ANONYMIZE kernel; see anonymize.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "anonymize.h"
#include "hdr_parse.h"
#include "ipsum.h"
#include "outbatch.h"
#ifdef MAPI_HAVE_OPENSSL
#include <openssl/evp.h>
#endif

#define CACHE4 65536               /* direct-mapped caches of anonymised addresses */
#define CACHE6 16384

typedef struct slot4 { uint32_t used; uint8_t in[4], out[4]; } slot4;
typedef struct slot6 { uint32_t used; uint8_t in[16], out[16]; } slot6;

struct mapi_anon {
    int ip_mode, mac_mode;
    int32_t payload;
    uint8_t pad[16];               /* AES(key[16..31]) */
    mapi_anon_stats st;
    mapi_outbatch out;
    slot4 *c4;
    slot6 *c6;
#ifdef MAPI_HAVE_OPENSSL
    EVP_CIPHER_CTX *aes;
#endif
};

static int aes_blocks(mapi_anon *a, const uint8_t *in, uint8_t *out, int nblocks)
{
#ifdef MAPI_HAVE_OPENSSL
    int len = 0;
    return EVP_EncryptUpdate(a->aes, out, &len, in, nblocks * 16) == 1 ? 0 : -1;
#else
    (void)a; (void)in; (void)out; (void)nblocks;
    return -1;
#endif
}

/* Crypto-PAn: all alen*8 AES inputs depend on the original address only, so they are built
 * first and encrypted in one call. */
static void cryptopan(mapi_anon *a, const uint8_t *addr, int alen, uint8_t *res)
{
    int bits = alen * 8;
    uint8_t in[128 * 16], enc[128 * 16];
    for (int i = 0; i < bits; i++) {
        uint8_t *blk = in + i * 16;
        memcpy(blk, a->pad, 16);
        /* the first i bits come from the address, the rest from the pad */
        int whole = i / 8, rest = i % 8;
        memcpy(blk, addr, whole);
        if (rest) {
            uint8_t m = (uint8_t)(0xFF << (8 - rest));
            blk[whole] = (uint8_t)((addr[whole] & m) | (a->pad[whole] & ~m));
        }
    }
    aes_blocks(a, in, enc, bits);
    memcpy(res, addr, alen);
    for (int i = 0; i < bits; i++)
        if (enc[i * 16] & 0x80) res[i / 8] ^= (uint8_t)(0x80 >> (i % 8));
}

int mapi_anon_address(mapi_anon *a, const uint8_t *addr, int32_t alen, uint8_t *out)
{
    if (alen == 4) {
        uint32_t h = ((uint32_t)addr[0] << 24 | addr[1] << 16 | addr[2] << 8 | addr[3]) * 2654435761u;
        slot4 *s = &a->c4[h >> 16];
        if (s->used && !memcmp(s->in, addr, 4)) { a->st.cache_hits++; memcpy(out, s->out, 4); return 0; }
        a->st.cache_misses++;
        cryptopan(a, addr, 4, out);
        s->used = 1; memcpy(s->in, addr, 4); memcpy(s->out, out, 4);
        return 0;
    }
    if (alen == 16) {
        uint32_t h = 2166136261u;
        for (int i = 0; i < 16; i++) h = (h ^ addr[i]) * 16777619u;
        slot6 *s = &a->c6[h % CACHE6];
        if (s->used && !memcmp(s->in, addr, 16)) { a->st.cache_hits++; memcpy(out, s->out, 16); return 0; }
        a->st.cache_misses++;
        cryptopan(a, addr, 16, out);
        s->used = 1; memcpy(s->in, addr, 16); memcpy(s->out, out, 16);
        return 0;
    }
    return -1;
}

static void rewrite_mac(mapi_anon *a, uint8_t *mac)
{
    static const uint8_t bcast[6] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    if (a->mac_mode == MAPI_ANON_ZERO) { memset(mac, 0, 6); return; }
    if (a->mac_mode != MAPI_ANON_MAP || !memcmp(mac, bcast, 6)) return;
    uint8_t in[16] = {0}, enc[16];
    memcpy(in, mac, 6);
    in[15] = 0x4D;                                /* keeps MAC inputs apart from Crypto-PAn's */
    aes_blocks(a, in, enc, 1);
    uint8_t group = mac[0] & 1;
    memcpy(mac, enc, 6);
    mac[0] = (uint8_t)((mac[0] & ~1) | group);
}

/* Offset where the payload begins (after the transport header, or the IP header). */
static uint32_t payload_start(const uint8_t *p, uint32_t caplen, const mapi_hdr *h)
{
    uint32_t l4 = h->l4_off;
    if (!l4 || (h->flags & MAPI_HDR_LATER_FRAGMENT)) {
        if (h->ipver == 4) return h->l3_off + (uint32_t)(p[h->l3_off] & 0x0F) * 4;
        return h->l4_off ? h->l4_off : h->l3_off + 40;
    }
    if (h->proto == 6) return caplen >= l4 + 13 ? l4 + (uint32_t)(p[l4 + 12] >> 4) * 4 : l4 + 20;
    if (h->proto == 17 || h->proto == 1 || h->proto == 58) return l4 + 8;
    return l4;
}

/* The transport checksum field to update for an address change, or NULL. */
static uint8_t *l4_checksum(uint8_t *p, uint32_t caplen, const mapi_hdr *h)
{
    uint32_t l4 = h->l4_off;
    if (!l4 || (h->flags & MAPI_HDR_LATER_FRAGMENT)) return NULL;
    uint32_t at = h->proto == 6 ? 16 : (h->proto == 17 || h->proto == 58) ? (h->proto == 17 ? 6 : 2) : 0;
    if (!at || caplen < l4 + at + 2) return NULL;
    uint8_t *c = p + l4 + at;
    if (h->proto == 17 && h->ipver == 4 && c[0] == 0 && c[1] == 0) return NULL;   /* no checksum */
    return c;
}

static void anonymize(mapi_anon *a, int32_t linktype, uint8_t *p, uint32_t *caplen)
{
    if (linktype == 1 && *caplen >= 12 && a->mac_mode != MAPI_ANON_KEEP) {
        rewrite_mac(a, p);
        rewrite_mac(a, p + 6);
    }
    mapi_hdr h;
    int v = mapi_hdr_parse(linktype, p, *caplen, &h);
    if (!v) { a->st.not_ip++; return; }
    int alen = v == 6 ? 16 : 4;
    uint8_t *ip = p + h.l3_off;
    uint8_t *src = v == 6 ? ip + 8 : ip + 12, *dst = src + alen;
    if (a->ip_mode != MAPI_ANON_KEEP) {
        uint8_t ns[16] = {0}, nd[16] = {0};
        if (a->ip_mode == MAPI_ANON_CRYPTOPAN) {
            mapi_anon_address(a, src, alen, ns);
            mapi_anon_address(a, dst, alen, nd);
        }
        uint8_t *ck = l4_checksum(p, *caplen, &h);
        for (int k = 0; k < 2; k++) {
            uint8_t *from = k ? dst : src, *to = k ? nd : ns;
            if (ck) mapi_csum_replace(ck, from, to, alen);
            if (v == 4) mapi_csum_replace(ip + 10, from, to, alen);
            memcpy(from, to, alen);
        }
        if (v == 4) a->st.ipv4++; else a->st.ipv6++;
    }
    if (a->payload >= 0) {
        uint32_t keep = payload_start(p, *caplen, &h) + (uint32_t)a->payload;
        uint32_t end = mapi_ip_end(p, *caplen, h.l3_off, v);     /* link padding is no payload */
        if (end < keep) keep = end;
        if (keep < *caplen) { *caplen = keep; a->st.truncated++; }
    }
}

uint32_t mapi_anon_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                          uint32_t *out)
{
    (void)out;
    mapi_anon *a = state;
    mapi_outbatch_begin(&a->out, NULL);
    a->out.b.linktype = b->linktype;
    a->out.b.clock_ns = b->clock_ns;             /* producers after it see time pass too */
    for (uint32_t j = 0; j < nsel; j++) {
        uint32_t i = sel[j];
        uint32_t caplen = b->caplen[i];
        uint8_t *p = mapi_outbatch_add(&a->out, caplen, b->wirelen[i], b->ts[i],
                                       mapi_batch_seq(b, i), b->ifindex[i]);
        if (!p) break;                           /* out of memory: the rest is not handed on */
        memcpy(p, b->base + b->off[i], caplen);
        anonymize(a, b->linktype, p, &caplen);
        mapi_outbatch_trim(&a->out, caplen);
        a->st.packets++;
    }
    return mapi_outbatch_finish(&a->out);
}

mapi_anon *mapi_anon_new(const uint8_t *key, uint32_t keylen, int32_t ip_mode, int32_t mac_mode,
                         int32_t payload, char *err, uint32_t errlen)
{
#ifndef MAPI_HAVE_OPENSSL
    if (ip_mode == MAPI_ANON_CRYPTOPAN || mac_mode == MAPI_ANON_MAP) {
        snprintf(err, errlen, "built without OpenSSL's libcrypto: no AES for Crypto-PAn");
        return NULL;
    }
#endif
    if (keylen != 32) {
        snprintf(err, errlen, "the key must be 32 bytes (AES key and pad), got %u", keylen);
        return NULL;
    }
    mapi_anon *a = calloc(1, sizeof *a);
    if (!a) { snprintf(err, errlen, "out of memory"); return NULL; }
    a->ip_mode = ip_mode;
    a->mac_mode = mac_mode;
    a->payload = payload;
    a->c4 = calloc(CACHE4, sizeof *a->c4);
    a->c6 = calloc(CACHE6, sizeof *a->c6);
    if (!a->c4 || !a->c6 || mapi_outbatch_init(&a->out, 65536, 4 << 20, 1) < 0) {
        mapi_anon_free(a);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
#ifdef MAPI_HAVE_OPENSSL
    a->aes = EVP_CIPHER_CTX_new();
    if (!a->aes || EVP_EncryptInit_ex(a->aes, EVP_aes_128_ecb(), NULL, key, NULL) != 1) {
        mapi_anon_free(a);
        snprintf(err, errlen, "AES-128 is not available in libcrypto");
        return NULL;
    }
    EVP_CIPHER_CTX_set_padding(a->aes, 0);
    aes_blocks(a, key + 16, a->pad, 1);
#endif
    return a;
}

void mapi_anon_free(mapi_anon *a)
{
    if (!a) return;
#ifdef MAPI_HAVE_OPENSSL
    if (a->aes) EVP_CIPHER_CTX_free(a->aes);
#endif
    free(a->c4);
    free(a->c6);
    mapi_outbatch_release(&a->out);
    free(a);
}

mapi_batch *mapi_anon_batch(mapi_anon *a) { return &a->out.b; }

void mapi_anon_get_stats(mapi_anon *a, mapi_anon_stats *st) { *st = a->st; }
