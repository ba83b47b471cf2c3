/* TO_BUFFER ring; see ring.h.  Positions are monotonic byte counts; records are 8-aligned; a
 * record that would not fit before the end of the buffer starts again at offset 0 (a zero
 * reclen header marks the jump when there is room for one).  The control block and the data
 * live in one sealed memfd so that a reader in another process can map them. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "ring.h"

#define HDR ((uint64_t)sizeof(mapi_pkthdr))
#define ALIGN8(x) (((x) + 7) & ~(uint64_t)7)
#define SPAN_PREFETCH 4096   /* bytes ahead of the walk in next_span */
#define WAIT_SLICE_MS 50   /* waits re-check state this often, so no wakeup can be lost */

_Static_assert(sizeof(mapi_pkthdr) == 32, "mapi_pkthdr is part of the wire layout");
_Static_assert(offsetof(mapi_ring_shm, head) == 64, "control block layout");
_Static_assert(offsetof(mapi_ring_shm, tail) == 128, "control block layout");
_Static_assert(offsetof(mapi_ring_shm, data_signaled) == 192, "control block layout");
_Static_assert(sizeof(mapi_ring_shm) == 256, "control block layout");

struct mapi_ring {
    mapi_ring_shm *shm;          /* shared control block */
    uint8_t *buf;                /* shared data */
    size_t map_len;
    uint64_t cap;                /* private copy: never re-read from shared memory */
    int writer;                  /* 1: this process writes (made the ring), 0: attached reader */
    int lossless;                /* the writer's mode */
    int shm_fd;
    int data_fd;                 /* eventfd: reader wakeups and the selectable fd */
    int space_fd;                /* eventfd: writer wakeups (lossless) */
    uint64_t head;               /* writer: private head, published to shm->head */
    uint64_t written, dropped, written_bytes;   /* writer: private counters, published */
    uint64_t tail;               /* reader: private tail, published to shm->tail */
    uint64_t held;               /* reader: bytes of the records it still holds */
    uint64_t delivered;          /* reader */
    int corrupt;                 /* reader: a record broke the ring's bounds */
    volatile int interrupted;
    struct ring_warm *warm;      /* writer: the thread faulting the data in, if any */
};

/* Shared by a ring and its warming thread; the last of the two to let go frees it.  The thread
 * holds `mu` while it touches the ring's mapping, so once mapi_ring_free has set `cancel`
 * under it nothing touches the mapping any more. */
struct ring_warm {
    pthread_mutex_t mu;
    int cancel;
    int refs;
    uint8_t *base;
    uint64_t len;
};

#define WARM_CHUNK (1u << 20)
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23   /* Linux 5.14; older kernels say EINVAL and nothing is warmed */
#endif

static inline uint64_t load_acq(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void store_rel(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint32_t load32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void store32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }

static void *map_memory(size_t len, int *fd_out)
{
    int fd = memfd_create("mapi-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    void *mem;
    if (fd >= 0) {
        /* sealed against shrinking: a reader that truncates it cannot make the writer fault */
        if (ftruncate(fd, (off_t)len) < 0 ||
            fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
            close(fd);
            return NULL;
        }
        mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    } else {                      /* no memfd: an anonymous mapping nobody else can attach */
        mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    }
    if (mem == MAP_FAILED) {
        if (fd >= 0) close(fd);
        return NULL;
    }
    *fd_out = fd;
    return mem;
}

static void warm_release(struct ring_warm *w, int cancel)
{
    pthread_mutex_lock(&w->mu);
    if (cancel) w->cancel = 1;
    int last = --w->refs == 0;
    pthread_mutex_unlock(&w->mu);
    if (last) {
        pthread_mutex_destroy(&w->mu);
        free(w);
    }
}

static void *warm_thread(void *arg)
{
    struct ring_warm *w = arg;
    /* threads inherit their creator's nice value: a control thread's raised priority is not
     * for this work, which the capture would otherwise do itself */
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 0);
    for (uint64_t off = 0; off < w->len; off += WARM_CHUNK) {
        uint64_t n = w->len - off < WARM_CHUNK ? w->len - off : WARM_CHUNK;
        pthread_mutex_lock(&w->mu);
        int stop = w->cancel || madvise(w->base + off, n, MADV_POPULATE_WRITE) != 0;
        pthread_mutex_unlock(&w->mu);
        if (stop) break;
    }
    warm_release(w, 0);
    return NULL;
}

int mapi_ring_warm(mapi_ring *r, uint64_t max_bytes)
{
    if (!r->writer || r->warm) return -1;
    struct ring_warm *w = calloc(1, sizeof *w);
    if (!w) return -1;
    pthread_mutex_init(&w->mu, NULL);
    w->refs = 2;
    /* page-aligned: the data starts MAPI_RING_DATA_OFFSET into the mapping */
    w->base = r->buf;
    w->len = max_bytes < r->cap ? max_bytes : r->cap;
    w->len &= ~(uint64_t)4095;
    pthread_attr_t attr;
    pthread_t t;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, warm_thread, w);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        pthread_mutex_destroy(&w->mu);
        free(w);
        return -1;
    }
    r->warm = w;
    return 0;
}

static mapi_ring *ring_alloc(void)
{
    mapi_ring *r = calloc(1, sizeof *r);
    if (r) r->shm_fd = r->data_fd = r->space_fd = -1;
    return r;
}

mapi_ring *mapi_ring_new(uint64_t bytes, int lossless)
{
    if (bytes < (1u << 20)) bytes = 1u << 20;
    bytes = ALIGN8(bytes);
    mapi_ring *r = ring_alloc();
    if (!r) return NULL;
    r->writer = 1;
    r->map_len = MAPI_RING_DATA_OFFSET + bytes;
    r->shm = map_memory(r->map_len, &r->shm_fd);
    r->data_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    r->space_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!r->shm || r->data_fd < 0 || r->space_fd < 0) { mapi_ring_free(r); return NULL; }
    r->buf = (uint8_t *)r->shm + MAPI_RING_DATA_OFFSET;
    r->cap = bytes;
    r->lossless = lossless;
    r->shm->magic = MAPI_RING_MAGIC;
    r->shm->version = MAPI_RING_VERSION;
    r->shm->cap = bytes;
    r->shm->data_offset = MAPI_RING_DATA_OFFSET;
    r->shm->hdr_size = (uint32_t)HDR;
    r->shm->lossless = (uint32_t)lossless;
    return r;
}

mapi_ring *mapi_ring_attach(int shm_fd, int data_fd, int space_fd)
{
    mapi_ring *r = ring_alloc();
    struct stat st;
    if (!r) return NULL;
    r->shm_fd = shm_fd;
    r->data_fd = data_fd;
    r->space_fd = space_fd;
    if (fstat(shm_fd, &st) < 0 || st.st_size < MAPI_RING_DATA_OFFSET + 8) goto bad;
    r->map_len = (size_t)st.st_size;
    void *mem = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd, 0);
    if (mem == MAP_FAILED) goto bad;
    r->shm = mem;
    uint64_t cap = r->shm->cap;
    if (r->shm->magic != MAPI_RING_MAGIC || r->shm->version != MAPI_RING_VERSION ||
        r->shm->hdr_size != HDR || r->shm->data_offset != MAPI_RING_DATA_OFFSET ||
        cap < HDR || cap % 8 || cap > r->map_len - MAPI_RING_DATA_OFFSET)
        goto bad;
    r->cap = cap;
    r->buf = (uint8_t *)mem + MAPI_RING_DATA_OFFSET;
    r->lossless = (int)r->shm->lossless;
    r->tail = load_acq(&r->shm->tail);
    r->delivered = r->shm->delivered;
    return r;
bad:
    mapi_ring_free(r);
    return NULL;
}

void mapi_ring_free(mapi_ring *r)
{
    if (r && r->warm) warm_release(r->warm, 1);
    if (!r) return;
    if (r->shm) munmap(r->shm, r->map_len);
    if (r->shm_fd >= 0) close(r->shm_fd);
    if (r->data_fd >= 0) close(r->data_fd);
    if (r->space_fd >= 0) close(r->space_fd);
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
 * to write at, or UINT64_MAX if there is no room now (also when the reader's tail is not
 * between head - cap and head: a reader cannot make the writer write out of bounds). */
static uint64_t reserve(mapi_ring *r, uint64_t need)
{
    uint64_t head = r->head;
    uint64_t phys = head % r->cap;
    uint64_t skip = 0;
    if (phys + need > r->cap) skip = r->cap - phys;
    uint64_t tail = load_acq(&r->shm->tail);
    if (tail > head) return UINT64_MAX;
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

static void publish_counts(mapi_ring *r)
{
    __atomic_store_n(&r->shm->written, r->written, __ATOMIC_RELAXED);
    __atomic_store_n(&r->shm->dropped, r->dropped, __ATOMIC_RELAXED);
    __atomic_store_n(&r->shm->written_bytes, r->written_bytes, __ATOMIC_RELAXED);
}

static int detached(mapi_ring *r) { return load32(&r->shm->detached) != 0; }

uint32_t mapi_ring_kernel(void *ring, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                          uint32_t *out)
{
    (void)out;
    mapi_ring *r = ring;
    for (uint32_t j = 0; j < nsel; j++) {
        uint32_t i = sel[j];
        uint32_t caplen = b->caplen[i];
        uint64_t need = ALIGN8(HDR + caplen);
        if (need > r->cap || detached(r)) {
            r->dropped++;
            continue;
        }
        uint64_t pos;
        while ((pos = reserve(r, need)) == UINT64_MAX) {
            if (!r->lossless || detached(r)) break;
            /* publish what we have, then sleep until the reader frees room */
            if (!__atomic_exchange_n(&r->shm->data_signaled, 1, __ATOMIC_ACQ_REL))
                signal_fd(r->data_fd);
            store32(&r->shm->writer_waiting, 1);
            if (reserve(r, need) != UINT64_MAX) { store32(&r->shm->writer_waiting, 0); continue; }
            wait_fd(r->space_fd, WAIT_SLICE_MS);
            drain_fd(r->space_fd);
            store32(&r->shm->writer_waiting, 0);
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
        r->head = pos + need;
        store_rel(&r->shm->head, r->head);
        r->written++;
        r->written_bytes += caplen;
    }
    publish_counts(r);
    if (nsel && r->head != load_acq(&r->shm->tail) &&
        !__atomic_exchange_n(&r->shm->data_signaled, 1, __ATOMIC_ACQ_REL))
        signal_fd(r->data_fd);
    return nsel;
}

/* Release what the reader held; wake a writer waiting for room. */
static void release_held(mapi_ring *r)
{
    if (!r->held) return;
    r->tail += r->held;
    r->held = 0;
    store_rel(&r->shm->tail, r->tail);
    if (load32(&r->shm->writer_waiting)) signal_fd(r->space_fd);
}

/* The next record at `at` (skipping a jump to 0), or NULL if there is none or it breaks the
 * ring's bounds (then the ring is marked corrupt and reads as ended).  `head` is the writer's
 * head as loaded once per batch of records (the writer stores to that cache line per packet;
 * a load per record has the two cores trade it). */
static mapi_pkthdr *peek(mapi_ring *r, uint64_t at, uint64_t head, uint64_t *adv)
{
    if (at >= head || r->corrupt) return NULL;
    if (head - at > r->cap) { r->corrupt = 1; return NULL; }
    uint64_t phys = at % r->cap;
    uint64_t skip = 0;
    if (r->cap - phys < HDR || ((mapi_pkthdr *)(r->buf + phys))->reclen == 0) {
        skip = r->cap - phys;
        phys = 0;
        if (at + skip >= head) return NULL;
    }
    mapi_pkthdr *h = (mapi_pkthdr *)(r->buf + phys);
    uint64_t reclen = h->reclen;
    if (reclen < HDR || reclen % 8 || reclen > r->cap - phys || h->caplen > reclen - HDR ||
        at + skip + reclen > head) {
        r->corrupt = 1;
        return NULL;
    }
    *adv = skip + reclen;
    return h;
}

static int ended(mapi_ring *r) { return load32(&r->shm->ended) != 0 || r->corrupt; }

static int wait_data(mapi_ring *r, int timeout_ms)
{
    /* returns 1 if something may be there, MAPI_RING_EMPTY/END/BREAK otherwise */
    int waited = 0;
    for (;;) {
        if (r->interrupted) return MAPI_RING_BREAK;
        if (load_acq(&r->shm->head) != r->tail + r->held && !r->corrupt) return 1;
        if (ended(r)) {
            if (load_acq(&r->shm->head) != r->tail + r->held && !r->corrupt) return 1;
            return MAPI_RING_END;
        }
        store32(&r->shm->data_signaled, 0);
        drain_fd(r->data_fd);
        if (load_acq(&r->shm->head) != r->tail + r->held || r->interrupted || ended(r))
            continue;
        if (timeout_ms == 0 || (timeout_ms > 0 && waited >= timeout_ms)) return MAPI_RING_EMPTY;
        int slice = WAIT_SLICE_MS;
        if (timeout_ms > 0 && timeout_ms - waited < slice) slice = timeout_ms - waited;
        wait_fd(r->data_fd, slice);
        waited += slice;
    }
}

/* The n records read up to `at` are held until the next read (the reader uses them in place),
 * counted as delivered; a corrupt ring with nothing left reads as ended. */
static int hold_read(mapi_ring *r, uint64_t at, uint32_t n)
{
    if (n == 0 && r->corrupt) return MAPI_RING_END;
    r->held = at - r->tail;
    r->delivered += n;
    __atomic_store_n(&r->shm->delivered, r->delivered, __ATOMIC_RELAXED);
    return (int)n;
}

int mapi_ring_next_many(mapi_ring *r, int timeout_ms, uint32_t max, const mapi_pkthdr **hdrs,
                        const uint8_t **datas)
{
    release_held(r);
    int w = wait_data(r, timeout_ms);
    if (w != 1) return w;
    uint32_t n = 0;
    uint64_t at = r->tail;
    uint64_t head = load_acq(&r->shm->head);
    while (n < max) {
        uint64_t adv;
        mapi_pkthdr *h = peek(r, at, head, &adv);
        if (!h) break;
        hdrs[n] = h;
        datas[n] = (const uint8_t *)h + HDR;
        n++;
        at += adv;
    }
    return hold_read(r, at, n);
}

int mapi_ring_next_span(mapi_ring *r, int timeout_ms, uint32_t max, uint64_t max_bytes,
                        mapi_ring_span *out)
{
    release_held(r);
    int w = wait_data(r, timeout_ms);
    if (w != 1) return w;
    uint32_t n = 0;
    uint64_t at = r->tail, span = 0, caplen = 0;
    const uint8_t *start = NULL;
    int64_t last_ts = 0;
    uint64_t head = load_acq(&r->shm->head);
    while (n < max) {
        uint64_t adv;
        mapi_pkthdr *h = peek(r, at, head, &adv);
        if (!h) break;
        if (n > 0 && ((const uint8_t *)h != start + span || span + h->reclen > max_bytes))
            break;                      /* the ring wrapped, or the span is full */
        if (n == 0) start = (const uint8_t *)h;
        /* the walk's loads depend on each other (reclen): a header the writer left far
         * behind would be a cache miss each; fetching ahead turns them into one stream
         * that the caller's copy of the span then finds in cache too */
        for (uint64_t pf = 0; pf < h->reclen; pf += 64)
            __builtin_prefetch((const uint8_t *)h + SPAN_PREFETCH + pf);
        span += h->reclen;
        caplen += h->caplen;
        last_ts = h->ts;
        n++;
        at += adv;
    }
    int got = hold_read(r, at, n);
    if (got == MAPI_RING_END) return got;
    out->start = start;
    out->span = span;
    out->caplen_sum = caplen;
    out->last_ts = last_ts;
    return got;
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
int mapi_ring_shm_fd(mapi_ring *r) { return r->shm_fd; }
int mapi_ring_space_fd(mapi_ring *r) { return r->space_fd; }
uint64_t mapi_ring_capacity(mapi_ring *r) { return r->cap; }

void mapi_ring_set_lossless(mapi_ring *r, int lossless)
{
    r->lossless = lossless;
    r->shm->lossless = (uint32_t)lossless;
}

void mapi_ring_interrupt(mapi_ring *r)
{
    r->interrupted = 1;
    signal_fd(r->data_fd);
}

void mapi_ring_clear_interrupt(mapi_ring *r) { r->interrupted = 0; }

void mapi_ring_end(mapi_ring *r)
{
    store32(&r->shm->ended, 1);
    signal_fd(r->data_fd);
}

void mapi_ring_detach(mapi_ring *r)
{
    store32(&r->shm->detached, 1);
    signal_fd(r->space_fd);
}

void mapi_ring_get_stats(mapi_ring *r, mapi_ring_stats *st)
{
    if (r->writer) {              /* own counters; the reader's count from shared memory */
        st->written = r->written;
        st->dropped = r->dropped;
        st->bytes = r->written_bytes;
        st->delivered = __atomic_load_n(&r->shm->delivered, __ATOMIC_RELAXED);
    } else {
        st->written = __atomic_load_n(&r->shm->written, __ATOMIC_RELAXED);
        st->dropped = __atomic_load_n(&r->shm->dropped, __ATOMIC_RELAXED);
        st->bytes = __atomic_load_n(&r->shm->written_bytes, __ATOMIC_RELAXED);
        st->delivered = r->delivered;
    }
}

uint64_t mapi_ring_pending(mapi_ring *r)
{
    mapi_ring_stats st;
    mapi_ring_get_stats(r, &st);
    return st.written > st.delivered ? st.written - st.delivered : 0;
}
