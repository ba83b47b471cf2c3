/* STR_SEARCH: does any of a set of byte strings occur in a window of the captured frame?
 *
 * The window is [offset, offset + depth) of the captured bytes (depth 0: to the end); a pattern
 * matches only if it lies wholly inside it.  With Hyperscan (MAPI_HAVE_HYPERSCAN) the patterns
 * are one block-mode literal database (HS_FLAG_SINGLEMATCH) scanned once per packet with this
 * instance's own scratch; without it, each pattern is looked for with memmem().
 *
 * Stream mode (mapi_strsearch_streams, for COOKING's chunks): each chunk's stream bytes are
 * searched as the continuation of the earlier chunks of its connection direction (same
 * addresses and ports, and its seq where the last one ended), so a pattern split between two
 * chunks is found -- in the chunk where it ends.  With Hyperscan the chunks go through a
 * stream-mode database, one Hyperscan stream per direction; without it the last (longest
 * pattern - 1) bytes of each direction are kept and searched together with the next chunk's
 * first bytes.  A direction is forgotten after a chunk with FIN or RST; when max_streams are
 * followed, the least recently continued one is (counted).  A chunk whose seq does not continue
 * its direction (bytes never seen in between) starts it afresh (counted).  A packet that is not
 * such a chunk is searched on its own, as in block mode. */
#ifndef MAPI_FN_STR_SEARCH_H
#define MAPI_FN_STR_SEARCH_H
#include <stdint.h>
#include "../engine.h"

#define MAPI_STRSEARCH_AUTO 0        /* Hyperscan if built in and usable, else memmem */
#define MAPI_STRSEARCH_HYPERSCAN 1
#define MAPI_STRSEARCH_MEMMEM 2

typedef struct mapi_strsearch mapi_strsearch;

typedef struct mapi_strsearch_counts {
    uint64_t seen;          /* packets that reached STR_SEARCH */
    uint64_t matched;       /* packets passed on (at least one pattern found) */
    uint64_t scan_errors;   /* scans the engine failed (the packet is dropped) */
    int64_t last_ts;        /* time of the last matching packet */
    uint64_t streams;       /* stream mode: directions followed now */
    uint64_t streams_evicted;   /* forgotten to stay within max_streams */
    uint64_t stream_breaks; /* chunks that did not continue their direction */
} mapi_strsearch_counts;

/* Build a matcher for npat patterns (pats[i] of lens[i] >= 1 bytes).  per_pattern: also count,
 * for each pattern, the packets it occurs in (otherwise the scan stops at the first match).
 * Returns NULL with a message in err on failure. */
mapi_strsearch *mapi_strsearch_new(const uint8_t *const *pats, const uint32_t *lens, uint32_t npat,
                                   uint32_t offset, uint32_t depth, int engine, int per_pattern,
                                   char *err, uint32_t errlen);
void mapi_strsearch_free(mapi_strsearch *s);
/* Search chunks as streams (see above), following at most max_streams directions at once; 0 on
 * success, -1 with a message in err. */
int mapi_strsearch_streams(mapi_strsearch *s, uint32_t max_streams, char *err, uint32_t errlen);
uint32_t mapi_strsearch_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                               uint32_t nsel, uint32_t *out);
void mapi_strsearch_get_counts(mapi_strsearch *s, mapi_strsearch_counts *c);
/* Copy the per-pattern packet counts (npat entries); returns npat. */
uint32_t mapi_strsearch_pattern_counts(mapi_strsearch *s, uint64_t *out, uint32_t max);
int mapi_strsearch_engine(mapi_strsearch *s);   /* the MAPI_STRSEARCH_* engine in use */
void mapi_strsearch_reset(mapi_strsearch *s);
#endif
