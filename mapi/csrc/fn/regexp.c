/* REGEXP kernel; see regexp.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "regexp.h"
#ifdef MAPI_HAVE_PCRE2
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif

struct mapi_regexp {
    mapi_regexp_counts c;
#ifdef MAPI_HAVE_PCRE2
    pcre2_code *code;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *stack;
#endif
};

int mapi_regexp_available(void)
{
#ifdef MAPI_HAVE_PCRE2
    return 1;
#else
    return 0;
#endif
}

void mapi_regexp_free(mapi_regexp *r)
{
    if (!r) return;
#ifdef MAPI_HAVE_PCRE2
    if (r->md) pcre2_match_data_free(r->md);
    if (r->mctx) pcre2_match_context_free(r->mctx);
    if (r->stack) pcre2_jit_stack_free(r->stack);
    if (r->code) pcre2_code_free(r->code);
#endif
    free(r);
}

mapi_regexp *mapi_regexp_new(const uint8_t *pattern, uint32_t len, uint32_t options, char *err,
                             uint32_t errlen, int64_t *erroffset)
{
    *erroffset = -1;
#ifndef MAPI_HAVE_PCRE2
    (void)pattern; (void)len; (void)options;
    snprintf(err, errlen, "this engine was built without PCRE2 (install libpcre2-dev and rebuild)");
    return NULL;
#else
    mapi_regexp *r = calloc(1, sizeof *r);
    if (!r) { snprintf(err, errlen, "out of memory"); return NULL; }
    int code;
    PCRE2_SIZE off;
    r->code = pcre2_compile(pattern, len, options, &code, &off, NULL);
    if (!r->code) {
        pcre2_get_error_message(code, (PCRE2_UCHAR *)err, errlen);
        *erroffset = (int64_t)off;
        mapi_regexp_free(r);
        return NULL;
    }
    r->c.jit = pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE) == 0;
    r->md = pcre2_match_data_create(1, NULL);
    r->mctx = pcre2_match_context_create(NULL);
    if (!r->md || !r->mctx) {
        snprintf(err, errlen, "out of memory");
        mapi_regexp_free(r);
        return NULL;
    }
    /* bounded effort per packet: a pathological pattern drops packets, it does not stall */
    pcre2_set_match_limit(r->mctx, 1000000);
    if (r->c.jit) {
        r->stack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
        if (r->stack) pcre2_jit_stack_assign(r->mctx, NULL, r->stack);
    }
    return r;
#endif
}

uint32_t mapi_regexp_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                            uint32_t *out)
{
    mapi_regexp *r = state;
    uint32_t n = 0;
#ifdef MAPI_HAVE_PCRE2
    for (uint32_t j = 0; j < nsel; j++) {
        uint32_t i = sel[j];
        const uint8_t *p = b->base + b->off[i];
        int rc = r->c.jit ? pcre2_jit_match(r->code, p, b->caplen[i], 0, 0, r->md, r->mctx)
                          : pcre2_match(r->code, p, b->caplen[i], 0, 0, r->md, r->mctx);
        if (rc >= 0) out[n++] = i;
        else if (rc != PCRE2_ERROR_NOMATCH) r->c.match_errors++;
    }
#else
    (void)sel;
#endif
    r->c.seen += nsel;
    r->c.matched += n;
    if (n) r->c.last_ts = b->ts[out[n - 1]];
    return n;
}

void mapi_regexp_get_counts(mapi_regexp *r, mapi_regexp_counts *c) { *c = r->c; }

void mapi_regexp_reset(mapi_regexp *r)
{
    int jit = r->c.jit;
    memset(&r->c, 0, sizeof r->c);
    r->c.jit = jit;
}
