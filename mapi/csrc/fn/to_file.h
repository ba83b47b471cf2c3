/* TO_FILE: append the packets that reach it to a pcap or ERF file through a large buffer.
 *
 * pcap: written as `tcpdump -r IN -w OUT` writes, i.e. libpcap's savefile: host byte order,
 * version 2.4, thiszone 0, sigfigs 0, the input's snaplen and link type, microsecond
 * timestamps (ns truncated), captured bytes cut to the snaplen.
 * ERF: one variable-length record per packet: Ethernet (type 2, 2 zero pad bytes, wlen counts
 * the 4-byte FCS as DAG cards and libtrace do), raw IPv4/IPv6 (types 22/23); flags = varlen
 * (0x04) | interface (ifindex & 3); 64-bit fixed-point little-endian timestamp.
 * Packets of another link type than the file's are skipped and counted. */
#ifndef MAPI_FN_TO_FILE_H
#define MAPI_FN_TO_FILE_H
#include <stdint.h>
#include "../engine.h"

#define MAPI_TOFILE_PCAP 1
#define MAPI_TOFILE_ERF 2
#define MAPI_TOFILE_BUFSIZE 4194304

typedef struct mapi_to_file mapi_to_file;

typedef struct mapi_to_file_stats {
    uint64_t packets;        /* records written (or buffered) */
    uint64_t bytes;          /* file bytes, headers included */
    uint64_t skipped;        /* packets of a link type the file cannot hold */
    uint64_t limit;          /* 0: no limit */
    int64_t last_ts;
    int32_t error;           /* errno of the first failed write, 0 if none */
    int32_t closed;
} mapi_to_file_stats;

/* Create/truncate `path` and write the file header.  linktype: the packets' LINKTYPE_*;
 * header_linktype: the pcap header's network field (link type plus FCS bits). */
mapi_to_file *mapi_to_file_open(const char *path, int32_t format, int32_t linktype,
                                uint32_t header_linktype, uint32_t snaplen, uint64_t limit,
                                char *err, uint32_t errlen);
uint32_t mapi_to_file_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                             uint32_t nsel, uint32_t *out);
int mapi_to_file_flush(mapi_to_file *t);     /* 0, or the errno of a failed write */
int mapi_to_file_close(mapi_to_file *t);     /* flush and close; safe to call twice */
void mapi_to_file_free(mapi_to_file *t);
void mapi_to_file_get_stats(mapi_to_file *t, mapi_to_file_stats *st);
#endif
