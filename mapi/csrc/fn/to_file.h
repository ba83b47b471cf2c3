/* TO_FILE: append the packets that reach it to a pcap or ERF file through a buffer.
 *
 * pcap: written as `tcpdump -r IN -w OUT` writes, i.e. libpcap's savefile: host byte order,
 * version 2.4, thiszone 0, sigfigs 0, the input's snaplen and link type, microsecond
 * timestamps (ns truncated), captured bytes cut to the snaplen.
 * ERF: one variable-length record per packet: Ethernet (type 2, 2 zero pad bytes, wlen counts
 * the 4-byte FCS as DAG cards and libtrace do), raw IPv4/IPv6 (types 22/23); flags = varlen
 * (0x04) | interface (ifindex & 3); 64-bit fixed-point little-endian timestamp.
 * Packets of another link type than the file's are skipped and counted.
 *
 * The counts are the file's: a record counts once it was written to the file.  When a write
 * fails (ENOSPC, EIO, EDQUOT...) the writer stops: a record the failed write cut in two is
 * truncated away (regular files), so the file ends at its last whole record and stays
 * readable; the records not in the file are counted as lost. */
#ifndef MAPI_FN_TO_FILE_H
#define MAPI_FN_TO_FILE_H
#include <stdint.h>
#include "../engine.h"

#define MAPI_TOFILE_PCAP 1
#define MAPI_TOFILE_ERF 2
#define MAPI_TOFILE_BUFSIZE 4194304          /* the default buffer: 4 MiB */
#define MAPI_TOFILE_MAX_BUFSIZE 268435456

typedef struct mapi_to_file mapi_to_file;

typedef struct mapi_to_file_stats {
    uint64_t packets;        /* records in the file */
    uint64_t bytes;          /* bytes written to the file, its header included */
    uint64_t start;          /* the file's size when opened (appending), else 0 */
    uint64_t buffered;       /* records accepted, not yet written */
    uint64_t lost;           /* records accepted that will never be in the file (an error) */
    uint64_t skipped;        /* packets of a link type the file cannot hold */
    uint64_t limit;          /* 0: no limit */
    uint64_t error_offset;   /* file offset of the write that failed (from the file's start) */
    int64_t last_ts;
    int32_t error;           /* errno of the first failed write, 0 if none */
    int32_t closed;          /* no more writing: the end, the limit, a close or an error */
} mapi_to_file_stats;

/* Open `path` and write the file header (into the buffer).  append: keep what the file holds
 * and write no header (the caller checked that the file ends at a whole record and that its
 * header matches); otherwise the file is created or truncated.  linktype: the packets'
 * LINKTYPE_*; header_linktype: the pcap header's network field (link type plus FCS bits).
 * bufsize: bytes buffered before a write (0: every record is written at once). */
mapi_to_file *mapi_to_file_open(const char *path, int32_t format, int32_t linktype,
                                uint32_t header_linktype, uint32_t snaplen, uint64_t limit,
                                uint32_t bufsize, int32_t append, char *err, uint32_t errlen);
/* The same on a descriptor its caller opened for writing (mapid: its client's), taken over
 * (closed by mapi_to_file_close, or here on failure); `name` is for messages.  Like open():
 * append sets O_APPEND, otherwise a regular file is truncated. */
mapi_to_file *mapi_to_file_open_fd(int fd, const char *name, int32_t format, int32_t linktype,
                                   uint32_t header_linktype, uint32_t snaplen, uint64_t limit,
                                   uint32_t bufsize, int32_t append, char *err, uint32_t errlen);
uint32_t mapi_to_file_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                             uint32_t nsel, uint32_t *out);
int mapi_to_file_flush(mapi_to_file *t);     /* 0, or the errno of a failed write */
int mapi_to_file_close(mapi_to_file *t);     /* flush and close; safe to call twice */
void mapi_to_file_free(mapi_to_file *t);
void mapi_to_file_get_stats(mapi_to_file *t, mapi_to_file_stats *st);
#endif
