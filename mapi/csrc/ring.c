/* TO_BUFFER ring; see ring.h.  Positions are monotonic byte counts; records are 8-aligned; a
 * record that would not fit before the end of the buffer starts again at offset 0 (a zero
 * reclen header marks the jump when there is room for one). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "ring.h"

#define HDR ((uint64_t)sizeof(mapi_pkthdr))
#define ALIGN8(x) (((x) + 7) & ~(uint64_t)7)
#define WAIT_SLICE_MS 50   /* waits re-check state this often, so no wakeup can be lost */

struct mapi_ring {
    uint8_t *buf;
    uint64_t cap;
    int lossless;
    uint64_t head;               /* written by the writer */
    uint64_t tail;               /* written by the reader */
    uint64_t held;               /* bytes of the records the reader still holds */
    int data_fd;                 /* eventfd: reader wakeups and the selectable fd */
    int space_fd;                /* eventfd: writer wakeups (lossless) */
    int data_signaled;
    int writer_waiting;
    int ended;
    int detached;
    volatile int interrupted;
    uint64_t written, dropped, delivered;
};

static inline uint64_t load_acq(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void store_rel(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

mapi_ring *mapi_ring_new(uint64_t bytes, int lossless)
{
    if (bytes < (1u << 20)) bytes = 1u << 20;
    bytes = ALIGN8(bytes);
    mapi_ring *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->buf = malloc(bytes);
    r->data_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    r->space_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!r->buf || r->data_fd < 0 || r->space_fd < 0) { mapi_ring_free(r); return NULL; }
    r->cap = bytes;
    r->lossless = lossless;
    return r;
}

void mapi_ring_free(mapi_ring *r)
{
    if (!r) return;
    if (r->data_fd >= 0) close(r->data_fd);
    if (r->space_fd >= 0) close(r->space_fd);
    free(r->buf);
    free(r);
}

static void signal_fd(int fd)
{
    uint64_t one = 1;
    ssize_t rc = write(fd, &one, sizeof one);
    (void)rc;
}

static void drain_fd(int fd)
{
    uint64_t v;
    ssize_t rc = read(fd, &v, sizeof v);
    (void)rc;
}

static void wait_fd(int fd, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    poll(&p, 1, ms);
}

/* Room for `need` contiguous bytes at head (plus a possible jump to 0): returns the position
 * to write at, or UINT64_MAX if there is no room now. */
static uint64_t reserve(mapi_ring *r, uint64_t need)
{
    uint64_t head = r->head;
    uint64_t tail = load_acq(&r->tail);
    uint64_t phys = head % r->cap;
    uint64_t skip = 0;
    if (phys + need > r->cap) skip = r->cap - phys;
    if (head + skip + need - tail > r->cap) return UINT64_MAX;
    if (skip) {
        if (skip >= HDR) {
            mapi_pkthdr *h = (mapi_pkthdr *)(r->buf + phys);
            h->reclen = 0;
        }
        head += skip;
    }
    return head;
}

uint32_t mapi_ring_kernel(void *ring, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                          uint32_t *out)
{
    (void)out;
    mapi_ring *r = ring;
    for (uint32_t j = 0; j < nsel; j++) {
        uint32_t i = sel[j];
        uint32_t caplen = b->caplen[i];
        uint64_t need = ALIGN8(HDR + caplen);
        if (need > r->cap || __atomic_load_n(&r->detached, __ATOMIC_ACQUIRE)) {
            r->dropped++;
            continue;
        }
        uint64_t pos;
        while ((pos = reserve(r, need)) == UINT64_MAX) {
            if (!r->lossless || __atomic_load_n(&r->detached, __ATOMIC_ACQUIRE)) break;
            /* publish what we have, then sleep until the reader frees room */
            if (!__atomic_exchange_n(&r->data_signaled, 1, __ATOMIC_ACQ_REL))
                signal_fd(r->data_fd);
            __atomic_store_n(&r->writer_waiting, 1, __ATOMIC_SEQ_CST);
            if (reserve(r, need) != UINT64_MAX) { __atomic_store_n(&r->writer_waiting, 0, __ATOMIC_SEQ_CST); continue; }
            wait_fd(r->space_fd, WAIT_SLICE_MS);
            drain_fd(r->space_fd);
            __atomic_store_n(&r->writer_waiting, 0, __ATOMIC_SEQ_CST);
        }
        if (pos == UINT64_MAX) { r->dropped++; continue; }
        mapi_pkthdr *h = (mapi_pkthdr *)(r->buf + pos % r->cap);
        h->ts = b->ts[i];
        h->caplen = caplen;
        h->wirelen = b->wirelen[i];
        h->seq = b->seq ? b->seq[i] : b->first_seq + i;
        h->ifindex = b->ifindex[i];
        h->linktype = (int16_t)b->linktype;
        h->reclen = (uint32_t)need;
        memcpy((uint8_t *)h + HDR, b->base + b->off[i], caplen);
        store_rel(&r->head, pos + need);
        r->written++;
    }
    if (nsel && load_acq(&r->head) != load_acq(&r->tail) &&
        !__atomic_exchange_n(&r->data_signaled, 1, __ATOMIC_ACQ_REL))
        signal_fd(r->data_fd);
    return nsel;
}

/* Release what the reader held; wake a writer waiting for room. */
static void release_held(mapi_ring *r)
{
    if (!r->held) return;
    store_rel(&r->tail, r->tail + r->held);
    r->held = 0;
    if (__atomic_load_n(&r->writer_waiting, __ATOMIC_SEQ_CST)) signal_fd(r->space_fd);
}

/* The next record at the reader's tail (skipping a jump to 0), or NULL if empty. */
static mapi_pkthdr *peek(mapi_ring *r, uint64_t at, uint64_t *adv)
{
    uint64_t head = load_acq(&r->head);
    if (at >= head) return NULL;
    uint64_t phys = at % r->cap;
    uint64_t skip = 0;
    if (r->cap - phys < HDR || ((mapi_pkthdr *)(r->buf + phys))->reclen == 0) {
        skip = r->cap - phys;
        phys = 0;
        if (at + skip >= head) return NULL;
    }
    mapi_pkthdr *h = (mapi_pkthdr *)(r->buf + phys);
    *adv = skip + h->reclen;
    return h;
}

static int wait_data(mapi_ring *r, int timeout_ms)
{
    /* returns 1 if something may be there, MAPI_RING_EMPTY/END/BREAK otherwise */
    int waited = 0;
    for (;;) {
        if (r->interrupted) return MAPI_RING_BREAK;
        if (load_acq(&r->head) != r->tail + r->held) return 1;
        if (__atomic_load_n(&r->ended, __ATOMIC_ACQUIRE)) {
            if (load_acq(&r->head) != r->tail + r->held) return 1;
            return MAPI_RING_END;
        }
        __atomic_store_n(&r->data_signaled, 0, __ATOMIC_SEQ_CST);
        drain_fd(r->data_fd);
        if (load_acq(&r->head) != r->tail + r->held || r->interrupted ||
            __atomic_load_n(&r->ended, __ATOMIC_ACQUIRE))
            continue;
        if (timeout_ms == 0 || (timeout_ms > 0 && waited >= timeout_ms)) return MAPI_RING_EMPTY;
        int slice = WAIT_SLICE_MS;
        if (timeout_ms > 0 && timeout_ms - waited < slice) slice = timeout_ms - waited;
        wait_fd(r->data_fd, slice);
        waited += slice;
    }
}

int mapi_ring_next_many(mapi_ring *r, int timeout_ms, uint32_t max, const mapi_pkthdr **hdrs,
                        const uint8_t **datas)
{
    release_held(r);
    int w = wait_data(r, timeout_ms);
    if (w != 1) return w;
    uint32_t n = 0;
    uint64_t at = r->tail;
    while (n < max) {
        uint64_t adv;
        mapi_pkthdr *h = peek(r, at, &adv);
        if (!h) break;
        hdrs[n] = h;
        datas[n] = (const uint8_t *)h + HDR;
        n++;
        at += adv;
    }
    r->held = at - r->tail;
    r->delivered += n;
    return (int)n;
}

int mapi_ring_next(mapi_ring *r, int timeout_ms, const mapi_pkthdr **hdr, const uint8_t **data)
{
    return mapi_ring_next_many(r, timeout_ms, 1, hdr, data);
}

int64_t mapi_ring_drain(mapi_ring *r, int timeout_ms, uint64_t *packets, uint64_t *bytes)
{
    const mapi_pkthdr *hdrs[256];
    const uint8_t *datas[256];
    int64_t taken = 0;
    int rc = mapi_ring_next_many(r, timeout_ms, 256, hdrs, datas);
    while (rc > 0) {
        for (int i = 0; i < rc; i++) *bytes += hdrs[i]->caplen;
        *packets += (uint64_t)rc;
        taken += rc;
        rc = mapi_ring_next_many(r, 0, 256, hdrs, datas);
    }
    release_held(r);
    if (taken == 0 && rc < 0) return rc;
    return taken;
}

int mapi_ring_fd(mapi_ring *r) { return r->data_fd; }

void mapi_ring_interrupt(mapi_ring *r)
{
    r->interrupted = 1;
    signal_fd(r->data_fd);
}

void mapi_ring_clear_interrupt(mapi_ring *r) { r->interrupted = 0; }

void mapi_ring_end(mapi_ring *r)
{
    __atomic_store_n(&r->ended, 1, __ATOMIC_RELEASE);
    signal_fd(r->data_fd);
}

void mapi_ring_detach(mapi_ring *r)
{
    __atomic_store_n(&r->detached, 1, __ATOMIC_RELEASE);
    signal_fd(r->space_fd);
}

void mapi_ring_get_stats(mapi_ring *r, mapi_ring_stats *st)
{
    st->written = r->written;
    st->dropped = r->dropped;
    st->delivered = r->delivered;
}

uint64_t mapi_ring_pending(mapi_ring *r)
{
    return r->written - r->delivered;
}
