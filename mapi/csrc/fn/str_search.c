/* STR_SEARCH kernel; see str_search.h. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include "str_search.h"
#include "htab.h"
#include "lru.h"
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
    /* stream mode (after COOKING): one stream per connection direction */
    uint32_t max_streams;        /* 0: block mode */
    uint32_t max_len;            /* longest pattern */
    mapi_htab streams;
    mapi_lru lru;                /* least recently scanned first */
#ifdef MAPI_HAVE_HYPERSCAN
    hs_database_t *db;
    hs_database_t *sdb;          /* the same patterns for streams (every match reported) */
    hs_scratch_t *scratch;
#endif
};

#define F_FIN 0x01
#define F_RST 0x04
#define KEY_LEN 37               /* version, source and destination address, ports */

typedef struct stream {          /* one direction of a connection, as its chunks go by */
    mapi_lru_node lru;           /* first member */
    mapi_hnode hn;
    uint8_t key[KEY_LEN];
    uint32_t next_seq;           /* where the next chunk continues the stream */
#ifdef MAPI_HAVE_HYPERSCAN
    hs_stream_t *hs;
#endif
    uint32_t tail_len;           /* without Hyperscan: the stream's last bytes (max_len - 1) */
    uint8_t tail[];
} stream;

#define STREAM(n) ((stream *)((char *)(n) - offsetof(stream, hn)))

static void stream_drop(mapi_strsearch *s, stream *st)
{
    mapi_htab_remove(&s->streams, &st->hn);
    mapi_lru_unlink(&s->lru, &st->lru);
#ifdef MAPI_HAVE_HYPERSCAN
    if (st->hs) hs_close_stream(st->hs, s->scratch, NULL, NULL);   /* literals: nothing at EOD */
#endif
    free(st);
    s->c.streams--;
}

void mapi_strsearch_free(mapi_strsearch *s)
{
    if (!s) return;
    while (s->lru.oldest) stream_drop(s, (stream *)s->lru.oldest);
    mapi_htab_release(&s->streams);
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
    if (s->sdb) hs_free_database(s->sdb);
#endif
    free(s);
}

#ifdef MAPI_HAVE_HYPERSCAN
/* The patterns as one literal database: block mode (one report per pattern and scan) or
 * stream mode (every match, so each chunk learns what ends in it). */
static int compile_literals(mapi_strsearch *s, unsigned mode, hs_database_t **db, char *err,
                            uint32_t errlen)
{
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
        flags[i] = mode == HS_MODE_BLOCK ? HS_FLAG_SINGLEMATCH : 0;
        ids[i] = i;
        lens[i] = s->lens[i];
    }
    hs_compile_error_t *cerr = NULL;
    if (hs_compile_lit_multi(exprs, flags, ids, lens, s->npat, mode, NULL, db, &cerr) != HS_SUCCESS) {
        snprintf(err, errlen, "Hyperscan rejected pattern %d: %s",
                 cerr ? cerr->expression : -1, cerr && cerr->message ? cerr->message : "?");
        if (cerr) hs_free_compile_error(cerr);
        goto out;
    }
    if (hs_alloc_scratch(*db, &s->scratch) != HS_SUCCESS) {
        snprintf(err, errlen, "Hyperscan could not allocate scratch space");
        goto out;
    }
    rc = 0;
out:
    free(exprs); free(flags); free(ids); free(lens);
    return rc;
}

static int build_hyperscan(mapi_strsearch *s, char *err, uint32_t errlen)
{
    if (hs_valid_platform() != HS_SUCCESS) {
        snprintf(err, errlen, "Hyperscan does not support this CPU");
        return -1;
    }
    return compile_literals(s, HS_MODE_BLOCK, &s->db, err, errlen);
}
#endif

static int build_buckets(mapi_strsearch *s)
{
    s->bg_start = calloc(65537, sizeof *s->bg_start);
    s->bg_ids = malloc(s->npat * sizeof *s->bg_ids);
    s->bg_any = calloc(65536, 1);
    if (!s->bg_start || !s->bg_ids || !s->bg_any) return -1;
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
    s->last_hit = calloc(npat, sizeof *s->last_hit);
    if (!s->pats || !s->lens || !s->pat_counts || !s->last_hit) goto oom;
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
        if (lens[i] > s->max_len) s->max_len = lens[i];
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
    mapi_strsearch *s;
    int found;
    int stop;                /* block mode without per-pattern counts: one match decides */
} scan_ctx;

static int on_match(unsigned int id, unsigned long long from, unsigned long long to,
                    unsigned int flags, void *ctx)
{
    (void)from; (void)to; (void)flags;
    scan_ctx *sc = ctx;
    mapi_strsearch *s = sc->s;
    sc->found = 1;
    if (sc->stop) return 1;
    if (s->last_hit[id] != s->npkts) {   /* a stream may report a pattern often: count once */
        s->last_hit[id] = s->npkts;
        s->pat_counts[id]++;
    }
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

/* Without Hyperscan: the patterns that occur in p[0..len) and end after byte `min_end`. */
static int search_plain(mapi_strsearch *s, const uint8_t *p, uint32_t len, uint32_t min_end)
{
    if (s->npat == 1) {
        uint32_t from = min_end >= s->lens[0] ? min_end - s->lens[0] + 1 : 0;
        if (from >= len || !memmem(p + from, len - from, s->pats[0], s->lens[0])) return 0;
        return hit(s, 0) || 1;
    }
    int found = 0;
    for (uint32_t pos = min_end >= s->max_len ? min_end - s->max_len + 1 : 0; pos < len; pos++) {
        uint32_t k1 = s->one_byte[p[pos]];
        if (k1 && pos + 1 > min_end) {
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
            if (s->lens[k] <= len - pos && pos + s->lens[k] > min_end &&
                memcmp(p + pos, s->pats[k], s->lens[k]) == 0) {
                found = 1;
                if (hit(s, k)) return 1;
            }
        }
    }
    return found;
}

/* Does the packet's window hold a pattern (block mode)? -1: the scan failed. */
static int search_block(mapi_strsearch *s, const uint8_t *p, uint32_t len)
{
#ifdef MAPI_HAVE_HYPERSCAN
    if (s->engine == MAPI_STRSEARCH_HYPERSCAN) {
        scan_ctx sc = { s, 0, !s->per_pattern };
        hs_error_t rc = hs_scan(s->db, (const char *)p, len, 0, s->scratch, on_match, &sc);
        return rc != HS_SUCCESS && rc != HS_SCAN_TERMINATED ? -1 : sc.found;
    }
#endif
    return search_plain(s, p, len, 0);
}

/* ---- stream mode ---------------------------------------------------------------------------- */

int mapi_strsearch_streams(mapi_strsearch *s, uint32_t max_streams, char *err, uint32_t errlen)
{
    if (!max_streams || s->max_streams) return 0;
#ifdef MAPI_HAVE_HYPERSCAN
    if (s->engine == MAPI_STRSEARCH_HYPERSCAN &&
        compile_literals(s, HS_MODE_STREAM, &s->sdb, err, errlen) < 0)
        return -1;
#endif
    if (mapi_htab_init(&s->streams, max_streams) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->max_streams = max_streams;
    return 0;
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The stream a chunk continues, or a new (or restarted) one; NULL without memory. */
static stream *stream_of(mapi_strsearch *s, const uint8_t *key, uint32_t seq)
{
    uint32_t h = mapi_hash_bytes(key, KEY_LEN, 0);
    stream *st = NULL;
    for (mapi_hnode *n = mapi_htab_bucket(&s->streams, h); n; n = n->next)
        if (n->hash == h && !memcmp(STREAM(n)->key, key, KEY_LEN)) {
            st = STREAM(n);
            break;
        }
    if (st && st->next_seq != seq) {          /* bytes never seen between: start afresh */
        s->c.stream_breaks++;
#ifdef MAPI_HAVE_HYPERSCAN
        if (st->hs) hs_reset_stream(st->hs, 0, s->scratch, NULL, NULL);
#endif
        st->tail_len = 0;
    }
    if (!st) {
        if (s->c.streams >= s->max_streams) {
            s->c.streams_evicted++;
            stream_drop(s, (stream *)s->lru.oldest);
        }
        uint32_t tail = s->engine == MAPI_STRSEARCH_HYPERSCAN ? 0 : s->max_len - 1;
        st = calloc(1, sizeof *st + tail);
        if (!st) return NULL;
#ifdef MAPI_HAVE_HYPERSCAN
        if (s->sdb && hs_open_stream(s->sdb, 0, &st->hs) != HS_SUCCESS) {
            free(st);
            return NULL;
        }
#endif
        memcpy(st->key, key, KEY_LEN);
        mapi_htab_insert(&s->streams, &st->hn, h);
        s->c.streams++;
    }
    mapi_lru_touch(&s->lru, &st->lru);
    return st;
}

/* Without Hyperscan: patterns that straddle the stream's last bytes and this chunk, then the
 * chunk itself; the last max_len - 1 bytes are kept for the next chunk. */
static int search_plain_stream(mapi_strsearch *s, stream *st, const uint8_t *p, uint32_t len)
{
    uint32_t keep = s->max_len - 1, found = 0;
    if (st->tail_len && len) {
        uint8_t joint[2 * 255];
        uint8_t *j = keep <= 255 ? joint : malloc(2 * (size_t)keep);
        if (j) {
            uint32_t head = len < keep ? len : keep;
            memcpy(j, st->tail, st->tail_len);
            memcpy(j + st->tail_len, p, head);
            found = search_plain(s, j, st->tail_len + head, st->tail_len);
            if (j != joint) free(j);
        }
    }
    if (!found || s->per_pattern) found |= search_plain(s, p, len, 0);
    if (len >= keep) {
        memcpy(st->tail, p + len - keep, keep);
        st->tail_len = keep;
    } else {
        uint32_t old = st->tail_len + len > keep ? keep - len : st->tail_len;
        memmove(st->tail, st->tail + st->tail_len - old, old);
        memcpy(st->tail + old, p, len);
        st->tail_len = old + len;
    }
    return found;
}

/* A chunk of COOKING (an IP and a TCP header from the sending side, then stream bytes): does
 * a pattern end in its bytes, the stream so far considered?  -1: not a chunk, or the scan failed. */
static int search_chunk(mapi_strsearch *s, const uint8_t *p, uint32_t caplen)
{
    uint8_t key[KEY_LEN] = { 0 };
    uint32_t hl;
    if (caplen >= 40 && p[0] == 0x45 && p[9] == 6) {
        hl = 20;
        memcpy(key + 1, p + 12, 4);
        memcpy(key + 17, p + 16, 4);
    } else if (caplen >= 60 && p[0] >> 4 == 6 && p[6] == 6) {
        hl = 40;
        key[0] = 6;
        memcpy(key + 1, p + 8, 32);
    } else {
        return -1;
    }
    const uint8_t *t = p + hl;
    uint32_t thl = (uint32_t)(t[12] >> 4) * 4;
    if (thl < 20 || caplen < hl + thl) return -1;
    memcpy(key + 33, t, 4);                    /* ports */
    uint32_t seq = rd32(t + 4), len = caplen - hl - thl;
    const uint8_t *data = t + thl;
    stream *st = stream_of(s, key, seq);
    if (!st) return -1;
    int found;
#ifdef MAPI_HAVE_HYPERSCAN
    if (st->hs) {
        scan_ctx sc = { s, 0, 0 };
        found = hs_scan_stream(st->hs, (const char *)data, len, 0, s->scratch, on_match, &sc)
                == HS_SUCCESS ? sc.found : -1;
    } else
#endif
        found = search_plain_stream(s, st, data, len);
    st->next_seq = seq + len;
    if (t[13] & (F_FIN | F_RST)) stream_drop(s, st);   /* the direction ended */
    return found;
}

uint32_t mapi_strsearch_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                               uint32_t nsel, uint32_t *out)
{
    mapi_strsearch *s = state;
    uint32_t n = 0;
    for (uint32_t j = 0; j < nsel; j++) {
        uint32_t i = sel[j];
        const uint8_t *p = b->base + b->off[i];
        uint32_t caplen = b->caplen[i];
        int found = -1;
        s->npkts++;
        if (s->max_streams) {
            found = search_chunk(s, p, caplen);
            if (found >= 0) goto done;
        }
        if (caplen <= s->offset) continue;
        uint32_t len = caplen - s->offset;
        if (s->depth && len > s->depth) len = s->depth;
        if (len < s->min_len) continue;
        found = search_block(s, p + s->offset, len);
done:
        if (found < 0) { s->c.scan_errors++; continue; }
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
    uint64_t streams = s->c.streams;
    memset(&s->c, 0, sizeof s->c);
    s->c.streams = streams;
    memset(s->pat_counts, 0, s->npat * sizeof *s->pat_counts);
}
