/* RECORD_STORE; see record_store.h.  The files are written by TO_FILE's pcap writer. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "record_store.h"
#include "to_file.h"

struct mapi_rstore {
    char dir[MAPI_RSTORE_PATH_MAX - 256];
    char prefix[72];
    char cur[MAPI_RSTORE_PATH_MAX];      /* the file being written, with ".current" */
    char final[MAPI_RSTORE_PATH_MAX];    /* its name once complete */
    char err[512];
    int64_t period;
    int64_t file_end;                    /* the current file holds records before this time */
    uint32_t bufsize;
    mapi_to_file *tf;
    uint64_t written_before;             /* records of the files already closed */
    mapi_rstore_stats st;
};

mapi_rstore *mapi_rstore_new(const char *dir, const char *prefix, int64_t period_ns,
                             uint32_t bufsize)
{
    mapi_rstore *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    snprintf(s->prefix, sizeof s->prefix, "%s", prefix);
    s->period = period_ns > 0 ? period_ns : 0;
    s->bufsize = bufsize;
    return s;
}

static void fail(mapi_rstore *s, int e, const char *what)
{
    if (!s->st.error) {
        s->st.error = e ? e : EIO;
        snprintf(s->err, sizeof s->err, "%.400s: %s", what, strerror(s->st.error));
    }
}

int mapi_rstore_close(mapi_rstore *s)
{
    if (!s->tf) return 0;
    int e = mapi_to_file_close(s->tf);
    mapi_to_file_stats st;
    mapi_to_file_get_stats(s->tf, &st);
    s->written_before += st.packets;
    s->st.lost += st.lost;
    mapi_to_file_free(s->tf);
    s->tf = NULL;
    if (e) fail(s, e, s->cur);
    if (rename(s->cur, s->final) < 0) fail(s, errno, s->final);
    s->cur[0] = 0;
    return e;
}

/* A name no file has yet: PREFIX.START.pcap, else PREFIX.START-N.pcap */
static void pick_name(mapi_rstore *s, int64_t start_ns)
{
    char stamp[32];
    time_t t = (time_t)(start_ns / 1000000000LL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", &tm);
    for (int n = 0; n < 10000; n++) {
        if (n) snprintf(s->final, sizeof s->final, "%s/%s.%.14s-%d.pcap", s->dir, s->prefix, stamp, n);
        else snprintf(s->final, sizeof s->final, "%s/%s.%.14s.pcap", s->dir, s->prefix, stamp);
        snprintf(s->cur, sizeof s->cur, "%.4000s.current", s->final);
        if (access(s->final, F_OK) < 0 && access(s->cur, F_OK) < 0) return;
    }
}

static int open_for(mapi_rstore *s, int64_t ts)
{
    int64_t start = ts;
    if (s->period) {
        start = ts - (ts % s->period + s->period) % s->period;
        s->file_end = start + s->period;
    } else {
        s->file_end = INT64_MAX;
    }
    pick_name(s, start);
    char err[256] = "";
    s->tf = mapi_to_file_open(s->cur, MAPI_TOFILE_PCAP, MAPI_LINKTYPE_FLOWREC, MAPI_LINKTYPE_FLOWREC,
                              (uint32_t)sizeof(mapi_flowrec) + MAPI_FLOWREC_MAX_EXTRA, 0,
                              s->bufsize, 0, err, sizeof err);
    if (!s->tf) {
        if (!s->st.error) {
            s->st.error = EIO;
            snprintf(s->err, sizeof s->err, "%s", err);
        }
        return -1;
    }
    s->st.files++;
    return 0;
}

uint32_t mapi_rstore_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                            uint32_t *out)
{
    mapi_rstore *s = state;
    if (b->linktype != MAPI_LINKTYPE_FLOWREC) {
        s->st.skipped += nsel;
        return nsel;
    }
    uint32_t j = 0;
    while (j < nsel) {
        int64_t ts = b->ts[sel[j]];
        if (!s->tf || ts >= s->file_end || (s->period && ts < s->file_end - s->period)) {
            mapi_rstore_close(s);
            if (open_for(s, ts) < 0) {
                s->st.lost += nsel - j;
                return nsel;
            }
        }
        uint32_t k = j;                 /* the run of records that belong to this file */
        while (k < nsel && b->ts[sel[k]] < s->file_end &&
               (!s->period || b->ts[sel[k]] >= s->file_end - s->period))
            k++;
        mapi_to_file_kernel(s->tf, b, sel + j, k - j, out);
        j = k;
    }
    return nsel;
}

int mapi_rstore_flush(mapi_rstore *s)
{
    int e = s->tf ? mapi_to_file_flush(s->tf) : 0;
    if (e) fail(s, e, s->cur);
    return e;
}

void mapi_rstore_free(mapi_rstore *s)
{
    if (!s) return;
    mapi_rstore_close(s);
    free(s);
}

void mapi_rstore_get_stats(mapi_rstore *s, mapi_rstore_stats *st)
{
    *st = s->st;
    st->records = s->written_before;
    if (s->tf) {
        mapi_to_file_stats t;
        mapi_to_file_get_stats(s->tf, &t);
        st->records += t.packets + t.buffered;
        st->lost += t.lost;
    }
}

const char *mapi_rstore_current(mapi_rstore *s) { return s->tf ? s->cur : ""; }
const char *mapi_rstore_error(mapi_rstore *s) { return s->err; }
