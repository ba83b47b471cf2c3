/* REGEXP: keep the packets whose captured bytes match a PCRE2 pattern (JIT-compiled when the
 * library supports it).  The subject is the whole captured frame, as bytes (no UTF mode). */
#ifndef MAPI_FN_REGEXP_H
#define MAPI_FN_REGEXP_H
#include <stdint.h>
#include "../engine.h"

typedef struct mapi_regexp mapi_regexp;

typedef struct mapi_regexp_counts {
    uint64_t seen;
    uint64_t matched;
    uint64_t match_errors;   /* match/backtracking limits hit: the packet is dropped */
    int64_t last_ts;
    int32_t jit;             /* 1 when the JIT compiled the pattern */
    int32_t _pad;
} mapi_regexp_counts;

/* Compile `len` bytes of pattern.  On failure returns NULL, with PCRE2's message in err and the
 * byte offset of the problem in *erroffset (-1 when it is not about a position). */
mapi_regexp *mapi_regexp_new(const uint8_t *pattern, uint32_t len, uint32_t options, char *err,
                             uint32_t errlen, int64_t *erroffset);
void mapi_regexp_free(mapi_regexp *r);
uint32_t mapi_regexp_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                            uint32_t *out);
void mapi_regexp_get_counts(mapi_regexp *r, mapi_regexp_counts *c);
void mapi_regexp_reset(mapi_regexp *r);
/* 1 if this engine was built with PCRE2 */
int mapi_regexp_available(void);
#endif
