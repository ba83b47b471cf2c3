/* STR_SEARCH: does any of a set of byte strings occur in a window of the captured frame?
 *
 * The window is [offset, offset + depth) of the captured bytes (depth 0: to the end); a pattern
 * matches only if it lies wholly inside it.  With Hyperscan (MAPI_HAVE_HYPERSCAN) the patterns
 * are one block-mode literal database (HS_FLAG_SINGLEMATCH) scanned once per packet with this
 * instance's own scratch; without it, each pattern is looked for with memmem(). */
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
} mapi_strsearch_counts;

/* Build a matcher for npat patterns (pats[i] of lens[i] >= 1 bytes).  per_pattern: also count,
 * for each pattern, the packets it occurs in (otherwise the scan stops at the first match).
 * Returns NULL with a message in err on failure. */
mapi_strsearch *mapi_strsearch_new(const uint8_t *const *pats, const uint32_t *lens, uint32_t npat,
                                   uint32_t offset, uint32_t depth, int engine, int per_pattern,
                                   char *err, uint32_t errlen);
void mapi_strsearch_free(mapi_strsearch *s);
uint32_t mapi_strsearch_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                               uint32_t nsel, uint32_t *out);
void mapi_strsearch_get_counts(mapi_strsearch *s, mapi_strsearch_counts *c);
/* Copy the per-pattern packet counts (npat entries); returns npat. */
uint32_t mapi_strsearch_pattern_counts(mapi_strsearch *s, uint64_t *out, uint32_t max);
int mapi_strsearch_engine(mapi_strsearch *s);   /* the MAPI_STRSEARCH_* engine in use */
void mapi_strsearch_reset(mapi_strsearch *s);
#endif
