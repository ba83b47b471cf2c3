/* RECORD_STORE: flow records into rotating files in a directory, as `mapi collect` keeps them
 * (docs/records.md): pcap files of link type MAPI_LINKTYPE_FLOWREC, one record (fixed struct
 * and extra elements) per packet, named PREFIX.YYYYmmddHHMMSS.pcap after the UTC start of their
 * interval; the file being written carries ".current" until it is complete.  Files rotate on the
 * records' timestamps (arrival times of the exports), on interval boundaries aligned to UTC. */
#ifndef MAPI_FN_RECORD_STORE_H
#define MAPI_FN_RECORD_STORE_H
#include <stdint.h>
#include "../engine.h"
#include "../flowrec.h"

#define MAPI_RSTORE_PATH_MAX 4096

typedef struct mapi_rstore mapi_rstore;
typedef struct mapi_rstore_stats {
    uint64_t records;        /* records in closed and current files */
    uint64_t files;          /* files opened */
    uint64_t skipped;        /* packets that were not flow records */
    uint64_t lost;           /* records a failed write or open kept out of the files */
    int32_t error;           /* errno of the first failure, 0 if none */
    int32_t _pad;
} mapi_rstore_stats;

/* dir: an existing directory; period_ns: rotation interval (0: one file); bufsize: bytes
 * buffered before a write.  NULL when out of memory. */
mapi_rstore *mapi_rstore_new(const char *dir, const char *prefix, int64_t period_ns,
                             uint32_t bufsize);
uint32_t mapi_rstore_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                            uint32_t *out);
int mapi_rstore_flush(mapi_rstore *s);          /* 0, or the errno of a failed write */
/* Close the current file (it loses ".current"); the next record opens a new one. */
int mapi_rstore_close(mapi_rstore *s);
void mapi_rstore_free(mapi_rstore *s);
void mapi_rstore_get_stats(mapi_rstore *s, mapi_rstore_stats *st);
/* The path of the file being written ("" if none), and the text of the first failure. */
const char *mapi_rstore_current(mapi_rstore *s);
const char *mapi_rstore_error(mapi_rstore *s);
#endif
