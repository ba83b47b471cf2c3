/* pcap_file()'s FILE * as the read cursor, as in libpcap (which reads every record through it).
 *
 * MAPI reads the file through a descriptor of its own, so the FILE * would otherwise stay where
 * the header ended.  Once an application may look at the stream (it called pcap_file(), or it
 * handed the FILE * in with pcap_fopen_offline()), the shim walks the record headers through
 * that FILE * in step with the packets it delivers: ftell() inside a callback or after
 * pcap_next_ex() gives the offset of the next record, and the file size at the end.  Packets
 * carry their device-wide index (seq), so records MAPI filtered out are walked over as libpcap
 * would have read them.  When the application moves the stream (fseek to an offset it got from
 * ftell), the next read restarts the MAPI device and delivers from the record at that offset.
 * Applications that never ask for the FILE * pay nothing. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include "shim.h"

#define PCAPNG_SHB 0x0a0d0d0au
#define PCAPNG_BOM 0x1a2b3c4du

static uint32_t rd32(const uint8_t *b, int swapped)
{
    uint32_t v;
    memcpy(&v, b, 4);
    return swapped ? __builtin_bswap32(v) : v;
}

/* Read and drop n bytes (fread, not fseek: a seek costs a system call per record). */
static int skip(FILE *fp, uint64_t n)
{
    static __thread uint8_t scratch[65536];
    while (n) {
        size_t want = n < sizeof scratch ? (size_t)n : sizeof scratch;
        if (fread(scratch, 1, want, fp) != want) return -1;
        n -= want;
    }
    return 0;
}

/* One record (pcap) or block (pcapng) through the FILE *.  1: a packet was passed over,
 * 0: a block that is no packet, -1: end of file or a cut record. */
static int walk_one(pcap_t *p)
{
    uint8_t h[24];
    FILE *fp = p->rfile;
    if (!p->is_pcapng) {
        size_t hs = p->rec_hdrsize;
        if (fread(h, 1, hs, fp) != hs) return -1;
        uint32_t cap = rd32(h + 8, p->swapped), len = rd32(h + 12, p->swapped);
        /* libpcap's swapped length fields: before 2.3 (and 543.0) always, in 2.3 when needed */
        int vmaj = p->version_major, vmin = p->version_minor;
        if (vmaj < 2 || (vmaj == 2 && vmin < 3) || (vmaj == 543 && vmin == 0) ||
            (vmaj == 2 && vmin == 3 && cap > len))
            cap = len;
        return skip(fp, cap) < 0 ? -1 : 1;
    }
    if (fread(h, 1, 8, fp) != 8) return -1;
    uint32_t type = rd32(h, p->swapped), total = rd32(h + 4, p->swapped);
    if (type == PCAPNG_SHB) {                 /* a new section may change the byte order */
        if (fread(h + 8, 1, 4, fp) != 4) return -1;
        if (rd32(h + 8, 0) != PCAPNG_BOM) p->swapped = !p->swapped;
        total = rd32(h + 4, p->swapped);
        if (total < 12 || skip(fp, total - 12) < 0) return -1;
        return 0;
    }
    if (total < 12 || skip(fp, total - 8) < 0) return -1;
    return type == 6 || type == 3 || type == 2;   /* enhanced, simple, obsolete packet block */
}

void shim_cursor_enable(pcap_t *p)
{
    if (p->cursor || p->kind != SHIM_OFFLINE || p->pump || !p->rfile) return;
    off_t at = ftello(p->rfile);
    if (at < 0) return;
    p->cursor = 1;
    p->cursor_start = at;                     /* where the first record begins */
    p->cursor_pos = at;
    p->cursor_seq = 0;
    p->cursor_swapped = p->swapped;
}

/* Walk on until the record after packet `seq` (or to the end of the file: seq = UINT64_MAX). */
void shim_cursor_advance(pcap_t *p, uint64_t seq)
{
    while (p->cursor_seq <= seq) {
        int rc = walk_one(p);
        if (rc < 0) break;
        p->cursor_seq += (uint64_t)rc;
    }
    p->cursor_pos = ftello(p->rfile);
}

/* Before a read: did the application move the stream?  Then find the record index at the new
 * offset and restart the flow so that the next packet delivered is that record.  0 or -1. */
int shim_cursor_check(pcap_t *p)
{
    off_t want = ftello(p->rfile);
    if (want == p->cursor_pos || want < 0) return 0;
    clearerr(p->rfile);
    int swapped = p->swapped;
    p->swapped = p->cursor_swapped;
    if (fseeko(p->rfile, p->cursor_start, SEEK_SET) < 0) {
        shim_errno_msg(p->errbuf, errno, "pcap_file(): cannot seek");
        return -1;
    }
    uint64_t k = 0;
    off_t at = p->cursor_start;
    while (at < want) {
        int rc = walk_one(p);
        if (rc < 0) break;
        k += (uint64_t)rc;
        at = ftello(p->rfile);
    }
    if (at != want) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "pcap_file() was moved to offset %lld, which is "
                 "not where a record of the file starts", (long long)want);
        fseeko(p->rfile, want, SEEK_SET);
        p->swapped = swapped;
        return -1;
    }
    uintptr_t ring = 0;
    p->errbuf[0] = '\0';
    if (OPS(p, restart, &ring, p->errbuf) != 1 || !ring) {
        if (!p->errbuf[0]) snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "MAPI: cannot reread the file");
        return -1;
    }
    __atomic_store_n(&p->ring, (mapi_ring *)ring, __ATOMIC_RELEASE);
    p->batch_n = p->batch_pos = 0;
    p->at_end = 0;
    p->skip_below = k;                        /* the new flow starts at the file's first record */
    p->cursor_seq = k;
    p->cursor_pos = want;
    if (p->break_loop) shim_engine.ring_interrupt(p->ring);
    return 0;
}
