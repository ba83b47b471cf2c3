/* libFuzzer target: the NetFlow v5 / v9 / IPFIX decoder and its template cache
 * (mapi_nf_*, backends/netflow/; fuzz/run.py names its sources in one place).
 *
 * Input: export packets, each as [exporter byte][length, 2 bytes big-endian][payload].  The
 * exporter byte picks one of four exporters (two IPv4, two IPv6), so templates announced by one
 * exporter are used, withdrawn and replaced across packets, and data sets wait for templates
 * that come later.  Small limits make every limit path reachable.  Every record taken out must
 * be a whole mapi_flowrec inside the output buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "collector.h"

#define ROOM 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mapi_nf *c = mapi_nf_new(3, 8, 4096, 1000, 256);
    if (!c) return 0;
    static mapi_flowrec buf[ROOM];
    static uint64_t off[ROOM];
    static uint32_t caplen[ROOM], wirelen[ROOM];
    static int64_t ts[ROOM];
    static uint16_t ifindex[ROOM];
    mapi_batch b = {.off = off, .caplen = caplen, .wirelen = wirelen, .ts = ts,
                    .ifindex = ifindex, .cap = ROOM};
    int64_t now = 1700000000LL * 1000000000LL;
    while (size >= 3) {
        uint8_t who = data[0];
        uint32_t len = (uint32_t)data[1] << 8 | data[2];
        data += 3;
        size -= 3;
        if (len > size) len = (uint32_t)size;
        uint8_t addr[16] = {0};
        int family = who & 2 ? 6 : 4;
        addr[0] = family == 6 ? 0x20 : 192;
        addr[3] = who & 1;
        /* the packet in an allocation of its own size: ASan sees any read past it */
        uint8_t *pkt = malloc(len ? len : 1);
        memcpy(pkt, data, len);
        mapi_nf_decode(c, pkt, len, addr, family, now);
        free(pkt);
        data += len;
        size -= len;
        now += (int64_t)(who >> 2) * 100000000LL;   /* up to 6.3 s between packets: expiry */
        if (who & 0x80) {
            uint32_t n = mapi_nf_take(c, &b, buf, ROOM);
            if (n > ROOM || b.n != n) __builtin_trap();
        }
    }
    mapi_nf_flush_pending(c);
    uint32_t n;
    while ((n = mapi_nf_take(c, &b, buf, ROOM)) > 0)
        if (n > ROOM) __builtin_trap();
    mapi_nf_stats st;
    mapi_nf_get_stats(c, &st);
    for (uint32_t i = 0; i < st.exporters; i++) {
        uint8_t a[16];
        int32_t fam, ver;
        uint32_t dom, tpl;
        uint64_t pk, rec;
        mapi_nf_exporter(c, i, a, &fam, &ver, &dom, &pk, &rec, &tpl);
    }
    mapi_nf_free(c);
    return 0;
}
