/* STR_SEARCH kernel; see str_search.h. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "str_search.h"
#ifdef MAPI_HAVE_HYPERSCAN
#include <hs/hs.h>
#endif

struct mapi_strsearch {
    uint32_t npat;
    uint32_t offset, depth;
    uint32_t min_len;            /* shortest pattern: shorter windows cannot match */
    int engine;
    int per_pattern;
    uint8_t **pats;
    uint32_t *lens;
    uint64_t *pat_counts;
    mapi_strsearch_counts c;
    /* fallback for several patterns: patterns bucketed by their first two bytes, so one pass
     * over the window checks only the patterns whose first two bytes are there */
    uint32_t *bg_start;          /* 65537 entries: bucket b is bg_ids[bg_start[b]..bg_start[b+1]) */
    uint32_t *bg_ids;
    uint8_t *bg_any;             /* 65536 flags: some pattern starts with this pair */
    uint8_t one_byte[256];       /* 1 where some 1-byte pattern has this value */
    uint64_t *last_hit;          /* per pattern: 1 + the packet number it was last counted in */
    uint64_t npkts;
#ifdef MAPI_HAVE_HYPERSCAN
    hs_database_t *db;
    hs_scratch_t *scratch;
#endif
};

void mapi_strsearch_free(mapi_strsearch *s)
{
    if (!s) return;
    if (s->pats)
        for (uint32_t i = 0; i < s->npat; i++) free(s->pats[i]);
    free(s->pats);
    free(s->lens);
    free(s->pat_counts);
    free(s->bg_start);
    free(s->bg_ids);
    free(s->bg_any);
    free(s->last_hit);
#ifdef MAPI_HAVE_HYPERSCAN
    if (s->scratch) hs_free_scratch(s->scratch);
    if (s->db) hs_free_database(s->db);
#endif
    free(s);
}

#ifdef MAPI_HAVE_HYPERSCAN
static int build_hyperscan(mapi_strsearch *s, char *err, uint32_t errlen)
{
    if (hs_valid_platform() != HS_SUCCESS) {
        snprintf(err, errlen, "Hyperscan does not support this CPU");
        return -1;
    }
    const char **exprs = malloc(s->npat * sizeof *exprs);
    unsigned *flags = malloc(s->npat * sizeof *flags);
    unsigned *ids = malloc(s->npat * sizeof *ids);
    size_t *lens = malloc(s->npat * sizeof *lens);
    int rc = -1;
    if (!exprs || !flags || !ids || !lens) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < s->npat; i++) {
        exprs[i] = (const char *)s->pats[i];
        flags[i] = HS_FLAG_SINGLEMATCH;
        ids[i] = i;
        lens[i] = s->lens[i];
    }
    hs_compile_error_t *cerr = NULL;
    if (hs_compile_lit_multi(exprs, flags, ids, lens, s->npat, HS_MODE_BLOCK, NULL, &s->db,
                             &cerr) != HS_SUCCESS) {
        snprintf(err, errlen, "Hyperscan rejected pattern %d: %s",
                 cerr ? cerr->expression : -1, cerr && cerr->message ? cerr->message : "?");
        if (cerr) hs_free_compile_error(cerr);
        goto out;
    }
    if (hs_alloc_scratch(s->db, &s->scratch) != HS_SUCCESS) {
        snprintf(err, errlen, "Hyperscan could not allocate scratch space");
        goto out;
    }
    rc = 0;
out:
    free(exprs); free(flags); free(ids); free(lens);
    return rc;
}
#endif

static int build_buckets(mapi_strsearch *s)
{
    s->bg_start = calloc(65537, sizeof *s->bg_start);
    s->bg_ids = malloc(s->npat * sizeof *s->bg_ids);
    s->bg_any = calloc(65536, 1);
    s->last_hit = calloc(s->npat, sizeof *s->last_hit);
    if (!s->bg_start || !s->bg_ids || !s->bg_any || !s->last_hit) return -1;
    for (uint32_t k = 0; k < s->npat; k++) {
        if (s->lens[k] == 1) {
            s->one_byte[s->pats[k][0]] = 1;
            continue;
        }
        s->bg_start[(s->pats[k][0] << 8 | s->pats[k][1]) + 1]++;
    }
    for (uint32_t b = 0; b < 65536; b++) s->bg_start[b + 1] += s->bg_start[b];
    uint32_t *fill = calloc(65536, sizeof *fill);
    if (!fill) return -1;
    for (uint32_t k = 0; k < s->npat; k++) {
        if (s->lens[k] == 1) continue;
        uint32_t b = s->pats[k][0] << 8 | s->pats[k][1];
        s->bg_ids[s->bg_start[b] + fill[b]++] = k;
        s->bg_any[b] = 1;
    }
    free(fill);
    return 0;
}

mapi_strsearch *mapi_strsearch_new(const uint8_t *const *pats, const uint32_t *lens, uint32_t npat,
                                   uint32_t offset, uint32_t depth, int engine, int per_pattern,
                                   char *err, uint32_t errlen)
{
    if (npat == 0) {
        snprintf(err, errlen, "no pattern");
        return NULL;
    }
    mapi_strsearch *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->npat = npat;
    s->offset = offset;
    s->depth = depth;
    s->per_pattern = per_pattern;
    s->pats = calloc(npat, sizeof *s->pats);
    s->lens = calloc(npat, sizeof *s->lens);
    s->pat_counts = calloc(npat, sizeof *s->pat_counts);
    if (!s->pats || !s->lens || !s->pat_counts) goto oom;
    s->min_len = UINT32_MAX;
    for (uint32_t i = 0; i < npat; i++) {
        if (lens[i] == 0) {
            snprintf(err, errlen, "pattern %u is empty", i);
            mapi_strsearch_free(s);
            return NULL;
        }
        s->pats[i] = malloc(lens[i]);
        if (!s->pats[i]) goto oom;
        memcpy(s->pats[i], pats[i], lens[i]);
        s->lens[i] = lens[i];
        if (lens[i] < s->min_len) s->min_len = lens[i];
    }
#ifdef MAPI_HAVE_HYPERSCAN
    if (engine != MAPI_STRSEARCH_MEMMEM) {
        if (build_hyperscan(s, err, errlen) == 0) {
            s->engine = MAPI_STRSEARCH_HYPERSCAN;
            return s;
        }
        if (engine == MAPI_STRSEARCH_HYPERSCAN) { mapi_strsearch_free(s); return NULL; }
    }
#else
    if (engine == MAPI_STRSEARCH_HYPERSCAN) {
        snprintf(err, errlen, "this engine was built without Hyperscan");
        mapi_strsearch_free(s);
        return NULL;
    }
#endif
    s->engine = MAPI_STRSEARCH_MEMMEM;
    if (npat > 1 && build_buckets(s) < 0) goto oom;
    return s;
oom:
    snprintf(err, errlen, "out of memory");
    mapi_strsearch_free(s);
    return NULL;
}

#ifdef MAPI_HAVE_HYPERSCAN
typedef struct scan_ctx {
    uint64_t *counts;        /* NULL: stop at the first match */
    int found;
} scan_ctx;

static int on_match(unsigned int id, unsigned long long from, unsigned long long to,
                    unsigned int flags, void *ctx)
{
    (void)from; (void)to; (void)flags;
    scan_ctx *sc = ctx;
    sc->found = 1;
    if (!sc->counts) return 1;             /* halt: one match decides the packet */
    sc->counts[id]++;
    return 0;
}
#endif

/* Record that pattern k occurs in the current packet; returns 1 to stop the scan. */
static inline int hit(mapi_strsearch *s, uint32_t k)
{
    if (!s->per_pattern) return 1;
    if (s->last_hit[k] != s->npkts) {
        s->last_hit[k] = s->npkts;
        s->pat_counts[k]++;
    }
    return 0;
}

static int search_plain(mapi_strsearch *s, const uint8_t *p, uint32_t len)
{
    if (s->npat == 1) {
        if (!memmem(p, len, s->pats[0], s->lens[0])) return 0;
        s->pat_counts[0]++;
        return 1;
    }
    s->npkts++;
    int found = 0;
    for (uint32_t pos = 0; pos < len; pos++) {
        uint32_t k1 = s->one_byte[p[pos]];
        if (k1) {
            /* 1-byte patterns: find each by value (several may share a value) */
            for (uint32_t k = 0; k < s->npat; k++)
                if (s->lens[k] == 1 && s->pats[k][0] == p[pos]) {
                    found = 1;
                    if (hit(s, k)) return 1;
                }
        }
        if (pos + 1 >= len) break;
        uint32_t b = p[pos] << 8 | p[pos + 1];
        if (!s->bg_any[b]) continue;
        for (uint32_t j = s->bg_start[b]; j < s->bg_start[b + 1]; j++) {
            uint32_t k = s->bg_ids[j];
            if (s->lens[k] <= len - pos && memcmp(p + pos, s->pats[k], s->lens[k]) == 0) {
                found = 1;
                if (hit(s, k)) return 1;
            }
        }
    }
    return found;
}

uint32_t mapi_strsearch_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                               uint32_t nsel, uint32_t *out)
{
    mapi_strsearch *s = state;
    uint32_t n = 0;
#ifdef MAPI_HAVE_HYPERSCAN
    scan_ctx sc = { s->per_pattern ? s->pat_counts : NULL, 0 };
#endif
    for (uint32_t j = 0; j < nsel; j++) {
        uint32_t i = sel[j];
        uint32_t caplen = b->caplen[i];
        if (caplen <= s->offset) continue;
        uint32_t len = caplen - s->offset;
        if (s->depth && len > s->depth) len = s->depth;
        if (len < s->min_len) continue;
        const uint8_t *p = b->base + b->off[i] + s->offset;
        int found;
#ifdef MAPI_HAVE_HYPERSCAN
        if (s->engine == MAPI_STRSEARCH_HYPERSCAN) {
            sc.found = 0;
            hs_error_t rc = hs_scan(s->db, (const char *)p, len, 0, s->scratch, on_match, &sc);
            if (rc != HS_SUCCESS && rc != HS_SCAN_TERMINATED) { s->c.scan_errors++; continue; }
            found = sc.found;
        } else
#endif
            found = search_plain(s, p, len);
        if (found) out[n++] = i;
    }
    s->c.seen += nsel;
    s->c.matched += n;
    if (n) s->c.last_ts = b->ts[out[n - 1]];
    return n;
}

void mapi_strsearch_get_counts(mapi_strsearch *s, mapi_strsearch_counts *c) { *c = s->c; }

uint32_t mapi_strsearch_pattern_counts(mapi_strsearch *s, uint64_t *out, uint32_t max)
{
    uint32_t n = s->npat < max ? s->npat : max;
    memcpy(out, s->pat_counts, n * sizeof *out);
    return s->npat;
}

int mapi_strsearch_engine(mapi_strsearch *s) { return s->engine; }

void mapi_strsearch_reset(mapi_strsearch *s)
{
    memset(&s->c, 0, sizeof s->c);
    memset(s->pat_counts, 0, s->npat * sizeof *s->pat_counts);
}
