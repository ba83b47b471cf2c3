/* The per-packet paths: packets come out of the flow's TO_BUFFER ring, in C, a batch of ring
 * records at a time; nothing here takes the Python GIL except at the start and end of a stream. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "shim.h"

enum { REC_ERROR = -1, REC_TIMEOUT = 0, REC_PACKET = 1, REC_EOF = 2, REC_BREAK = 3 };

static inline void to_pkthdr(const pcap_t *p, const mapi_pkthdr *h, struct pcap_pkthdr *out)
{
    if (p->raw_ts) {
        /* classic pcap: the record's 32-bit fields as libpcap hands them out, unnormalised */
        int32_t sec = (int32_t)(uint32_t)((uint64_t)h->ts >> 32);
        long frac = (int32_t)(uint32_t)(uint64_t)h->ts;
        if (p->file_nsec && p->tstamp_precision == PCAP_TSTAMP_PRECISION_MICRO) frac /= 1000;
        else if (!p->file_nsec && p->tstamp_precision == PCAP_TSTAMP_PRECISION_NANO) frac *= 1000;
        out->ts.tv_sec = sec;
        out->ts.tv_usec = frac;
    } else {
        int64_t sec = h->ts / 1000000000, frac = h->ts % 1000000000;
        if (frac < 0) { frac += 1000000000; sec--; }
        out->ts.tv_sec = (time_t)sec;
        out->ts.tv_usec = (suseconds_t)(p->tstamp_precision == PCAP_TSTAMP_PRECISION_NANO
                                        ? frac : frac / 1000);
    }
    out->caplen = h->caplen;
    out->len = h->wirelen;
}

/* Connect the handle's flow and start its device (once, at the first read). */
int shim_start(pcap_t *p)
{
    if (p->started) return 0;
    if (p->kind == SHIM_DEAD) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "Packets aren't available from a pcap_open_dead pcap_t");
        return PCAP_ERROR;
    }
    if (!p->activated) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "This handle hasn't been activated yet");
        return PCAP_ERROR_NOT_ACTIVATED;
    }
    uintptr_t ring = 0;
    if (OPS(p, start, &ring, p->errbuf) != 1 || ring == 0) {
        if (!p->errbuf[0]) snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "MAPI: the flow did not start");
        return PCAP_ERROR;
    }
    __atomic_store_n(&p->ring, (mapi_ring *)ring, __ATOMIC_RELEASE);
    p->started = 1;
    /* the descriptor handed out at activation becomes the ring's eventfd */
    if (p->kind == SHIM_LIVE) dup3(shim_engine.ring_fd(p->ring), p->selectable_fd, O_CLOEXEC);
    /* a breakloop that came before the ring existed */
    if (p->break_loop) shim_engine.ring_interrupt(p->ring);
    return 0;
}

#define REC_GONE (-100)
#define GONE_CHECK_MS 200        /* how often a reader waiting on a ring asks if mapid is there */

/* A batch of ring records, waiting up to timeout_ms (<0: for ever).  When the flow lives in
 * mapid the wait is cut in slices, and between two the control socket says whether mapid is
 * still there (a ring says nothing when its writer dies): REC_GONE if it is not. */
static int wait_records(pcap_t *p, int timeout_ms)
{
    if (!p->ops->gone)
        return shim_engine.ring_next_many(p->ring, timeout_ms, SHIM_BATCH, p->hdrs, p->datas);
    for (;;) {
        int slice = timeout_ms < 0 || timeout_ms > GONE_CHECK_MS ? GONE_CHECK_MS : timeout_ms;
        int n = shim_engine.ring_next_many(p->ring, slice, SHIM_BATCH, p->hdrs, p->datas);
        if (n != MAPI_RING_EMPTY) return n;
        if (p->ops->gone()) return REC_GONE;
        if (timeout_ms >= 0 && (timeout_ms -= slice) <= 0) return MAPI_RING_EMPTY;
    }
}

/* The next record of the stream. */
static int next_record(pcap_t *p, int timeout_ms, const mapi_pkthdr **h, const uint8_t **d)
{
    if (p->batch_pos == p->batch_n) {
        if (p->at_end) return REC_EOF;
        int saved = errno;       /* the ring's eventfd reads are none of the application's business */
        int n = wait_records(p, timeout_ms);
        errno = saved;
        if (n == REC_GONE) {
            snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "the MAPI server went away");
            return REC_ERROR;
        }
        if (n == MAPI_RING_BREAK) {
            shim_engine.ring_clear_interrupt(p->ring);
            return REC_BREAK;
        }
        if (n == MAPI_RING_END) {
            p->at_end = 1;
            /* the file may have ended on an error: libpcap reports it after the last packet */
            if (OPS(p, end_status, p->errbuf) != 1) return REC_ERROR;
            return REC_EOF;
        }
        if (n <= 0) return REC_TIMEOUT;
        p->batch_n = (uint32_t)n;
        p->batch_pos = 0;
    }
    *h = p->hdrs[p->batch_pos];
    *d = p->datas[p->batch_pos];
    p->batch_pos++;
    return REC_PACKET;
}

/* libpcap's read loop: at most cnt packets (cnt <= 0: no limit) that pass the filter.
 * Returns the number delivered, -1 on error, -2 after pcap_breakloop() with none delivered. */
static int read_packets(pcap_t *p, int cnt, pcap_handler cb, u_char *user)
{
    int rc = shim_start(p);
    if (rc < 0) return rc;
    if (p->cursor && shim_cursor_check(p) < 0) return PCAP_ERROR;
    const int live = p->kind == SHIM_LIVE;
    const int timeout = live ? (p->nonblock ? 0 : (p->timeout_ms > 0 ? p->timeout_ms : -1)) : -1;
    if (cnt <= 0) cnt = INT_MAX;
    int n = 0;
    /* the header lives in the handle: some applications (p0f) keep a pointer to its time stamp
     * and read it after the callback returned */
    struct pcap_pkthdr *hdr = &p->cb_hdr;
    for (;;) {
        if (p->break_loop) {
            if (n == 0) {
                p->break_loop = 0;
                shim_engine.ring_clear_interrupt(p->ring);
                return PCAP_ERROR_BREAK;
            }
            return n;
        }
        const mapi_pkthdr *h;
        const uint8_t *d;
        rc = next_record(p, n && live ? 0 : timeout, &h, &d);
        if (rc == REC_BREAK) continue;
        if (rc == REC_ERROR) return PCAP_ERROR;
        if (rc == REC_EOF || rc == REC_TIMEOUT) {
            if (rc == REC_EOF && p->cursor) shim_cursor_advance(p, UINT64_MAX);
            break;
        }
        if (h->seq < p->skip_below) continue;     /* before where pcap_file() was moved to */
        p->seen++;
        if (p->filter_here && p->fcode && !shim_bpf_run(p->fcode, d, h->wirelen, h->caplen))
            continue;
        to_pkthdr(p, h, hdr);
        p->delivered++;
        if (p->cursor) shim_cursor_advance(p, h->seq);
        cb(user, hdr, d);
        if (++n >= cnt) break;
        if (p->cursor && shim_cursor_check(p) < 0) return PCAP_ERROR;
    }
    return n;
}

SHIM_EXPORT int pcap_dispatch(pcap_t *p, int cnt, pcap_handler cb, u_char *user)
{
    return read_packets(p, cnt, cb, user);
}

SHIM_EXPORT int pcap_loop(pcap_t *p, int cnt, pcap_handler cb, u_char *user)
{
    for (;;) {
        int n;
        if (p->kind == SHIM_LIVE) {
            do {
                n = read_packets(p, cnt, cb, user);
            } while (n == 0);
        } else {
            n = read_packets(p, cnt, cb, user);   /* 0 means end of file */
        }
        if (n <= 0) return n;
        if (cnt > 0) {
            cnt -= n;
            if (cnt <= 0) return 0;
        }
    }
}

struct oneshot { pcap_t *p; struct pcap_pkthdr *hdr; const u_char **pkt; };

static void oneshot_cb(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
    struct oneshot *s = (struct oneshot *)user;
    *s->hdr = *h;
    *s->pkt = bytes;
}

SHIM_EXPORT const u_char *pcap_next(pcap_t *p, struct pcap_pkthdr *h)
{
    const u_char *pkt = NULL;
    struct oneshot s = {p, h, &pkt};
    if (pcap_dispatch(p, 1, oneshot_cb, (u_char *)&s) <= 0) return NULL;
    return pkt;
}

SHIM_EXPORT int pcap_next_ex(pcap_t *p, struct pcap_pkthdr **hdr, const u_char **data)
{
    struct oneshot s = {p, &p->next_hdr, data};
    *hdr = &p->next_hdr;
    int rc = read_packets(p, 1, oneshot_cb, (u_char *)&s);
    if (p->kind != SHIM_LIVE && rc == 0) return PCAP_ERROR_BREAK;   /* end of file */
    return rc;
}

SHIM_EXPORT void pcap_breakloop(pcap_t *p)
{
    /* async-signal-safe: a flag and an eventfd write */
    p->break_loop = 1;
    mapi_ring *r = __atomic_load_n(&p->ring, __ATOMIC_ACQUIRE);
    if (r) shim_engine.ring_interrupt(r);
}

/* ---- filters ---------------------------------------------------------------------------- */

SHIM_EXPORT int pcap_setfilter(pcap_t *p, struct bpf_program *fp)
{
    if (p->kind == SHIM_DEAD) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "A filter cannot be set on a pcap_open_dead pcap_t");
        return PCAP_ERROR;
    }
    if (!p->activated) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "This handle hasn't been activated yet");
        return PCAP_ERROR_NOT_ACTIVATED;
    }
    if (fp == NULL) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "setfilter: No filter specified");
        return PCAP_ERROR;
    }
    if (!bpf_validate(fp->bf_insns, (int)fp->bf_len)) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "BPF program is not valid");
        return PCAP_ERROR;
    }
    struct bpf_insn *copy = malloc(fp->bf_len * sizeof *copy);
    if (!copy) {
        shim_errno_msg(p->errbuf, errno, "malloc");
        return PCAP_ERROR;
    }
    memcpy(copy, fp->bf_insns, fp->bf_len * sizeof *copy);
    int here = 1;
    uintptr_t ring = 0;
    p->errbuf[0] = '\0';
    if (OPS(p, setfilter, copy, fp->bf_len, &here, &ring, p->errbuf) != 1) {
        free(copy);
        if (!p->errbuf[0]) snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "MAPI: cannot set the filter");
        return PCAP_ERROR;
    }
    free(p->fcode);
    p->fcode = copy;
    p->fcode_len = fp->bf_len;
    p->filter_here = here;
    if (ring) {
        /* a live flow replaced: what the old ring held went with it (libpcap flushes too) */
        __atomic_store_n(&p->ring, (mapi_ring *)ring, __ATOMIC_RELEASE);
        p->batch_n = p->batch_pos = 0;
        dup3(shim_engine.ring_fd(p->ring), p->selectable_fd, O_CLOEXEC);
    } else if (p->kind == SHIM_LIVE && !p->started) {
        /* a live capture runs from here on, so a poll() on its descriptor sees packets */
        if (shim_start(p) < 0) return PCAP_ERROR;
    }
    return 0;
}

SHIM_EXPORT int pcap_setdirection(pcap_t *p, pcap_direction_t d)
{
    if (d != PCAP_D_IN && d != PCAP_D_OUT && d != PCAP_D_INOUT) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "Invalid direction");
        return -1;
    }
    if (p->kind == SHIM_DEAD) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE,
                 "The packet direction cannot be set on a pcap_open_dead pcap_t");
        return -1;
    }
    if (p->kind == SHIM_OFFLINE) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "Setting direction is not supported on savefiles");
        return -1;
    }
    if (!p->activated) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "This handle hasn't been activated yet");
        return PCAP_ERROR_NOT_ACTIVATED;
    }
    if (p->direction != (int)d) {
        if (p->started) {
            snprintf(p->errbuf, PCAP_ERRBUF_SIZE,
                     "MAPI sets the direction when it opens the device: call pcap_setdirection "
                     "before reading or polling");
            return -1;
        }
        p->errbuf[0] = '\0';
        if (OPS(p, setdirection, (int)d, p->errbuf) != 1) return -1;
    }
    p->direction = d;
    return 0;
}

/* ---- blocking mode, statistics, sending ------------------------------------------------- */

SHIM_EXPORT int pcap_setnonblock(pcap_t *p, int nonblock, char *errbuf)
{
    if (p->kind == SHIM_DEAD || p->kind == SHIM_OFFLINE) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "%s",
                 p->kind == SHIM_DEAD ? "A pcap_open_dead pcap_t does not have a non-blocking mode setting"
                                      : "Savefiles cannot be put into non-blocking mode");
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", p->errbuf);
        return -1;
    }
    p->nonblock = nonblock != 0;
    return 0;
}

SHIM_EXPORT int pcap_getnonblock(pcap_t *p, char *errbuf)
{
    if (p->kind == SHIM_DEAD) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE,
                 "A pcap_open_dead pcap_t does not have a non-blocking mode setting");
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", p->errbuf);
        return -1;
    }
    return p->kind == SHIM_OFFLINE ? 0 : p->nonblock;
}

SHIM_EXPORT int pcap_stats(pcap_t *p, struct pcap_stat *ps)
{
    if (p->kind == SHIM_DEAD) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "Statistics aren't available from a pcap_open_dead pcap_t");
        return -1;
    }
    if (p->kind == SHIM_OFFLINE) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "Statistics aren't available from savefiles");
        return -1;
    }
    if (!p->activated) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "This handle hasn't been activated yet");
        return PCAP_ERROR_NOT_ACTIVATED;
    }
    uint32_t recv = 0, drop = 0, ifdrop = 0;
    if (OPS(p, stats, &recv, &drop, &ifdrop, p->errbuf) != 1) return -1;
    ps->ps_recv = recv;
    ps->ps_drop = drop;
    ps->ps_ifdrop = ifdrop;
    return 0;
}

SHIM_EXPORT int pcap_inject(pcap_t *p, const void *buf, size_t size)
{
    (void)buf;
    (void)size;
    if (p->kind == SHIM_DEAD)
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "Packets can't be sent on a pcap_open_dead pcap_t");
    else if (p->kind == SHIM_OFFLINE)
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "Sending packets isn't supported on savefiles");
    else if (!p->activated) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "This handle hasn't been activated yet");
        return PCAP_ERROR_NOT_ACTIVATED;
    } else
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "Sending packets isn't supported by MAPI devices");
    return PCAP_ERROR;
}

SHIM_EXPORT int pcap_sendpacket(pcap_t *p, const u_char *buf, int size)
{
    if (size <= 0) {
        shim_errno_msg(p->errbuf, errno, "The number of bytes to be sent must be positive");
        return PCAP_ERROR;
    }
    if (pcap_inject(p, buf, (size_t)size) == -1) return -1;
    return 0;
}
