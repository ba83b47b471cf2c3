/* Waiting stream bytes; see waitq.h. */
#include <stdlib.h>
#include <string.h>
#include "waitq.h"
#include "ipsum.h"

#define NONE UINT32_MAX
#define SMALLEST 2048u
#define SPARE_BYTES (4u << 20)       /* spare buffers kept per class at most, in bytes */

struct mapi_waitpiece {
    const uint8_t *p;
    uint32_t len;
    uint32_t next;                   /* next piece of the same queue, NONE at the end */
};

static void held_add(mapi_waitpool *w, int64_t n)
{
    *w->held += n;
    if (*w->held > *w->peak) *w->peak = *w->held;
}

/* ---- buffers -------------------------------------------------------------------------------- */

static uint32_t class_of(uint32_t cap)
{
    uint32_t k = 0;
    while ((SMALLEST << k) < cap && k + 1 < MAPI_WAITQ_CLASSES) k++;
    return k;
}

static void buf_drop(mapi_waitpool *w, mapi_waitq *q)
{
    if (!q->buf) return;
    uint32_t k = class_of(q->bcap);
    held_add(w, -(int64_t)q->bcap);
    if (w->nspare[k] < MAPI_WAITQ_POOLED && w->nspare[k] * (SMALLEST << k) < SPARE_BYTES)
        w->spare[k][w->nspare[k]++] = q->buf;
    else
        free(q->buf);
    q->buf = NULL;
    q->bcap = 0;
}

/* Room for `need` bytes of its own. */
static int buf_reserve(mapi_waitpool *w, mapi_waitq *q, uint32_t need)
{
    if (need <= q->bcap) return 0;
    uint32_t k = class_of(need);
    if ((SMALLEST << k) < need) return -1;           /* more than the largest class */
    uint8_t *b = w->nspare[k] ? w->spare[k][--w->nspare[k]] : malloc(SMALLEST << k);
    if (!b) return -1;
    if (q->blen) memcpy(b, q->buf, q->blen);
    buf_drop(w, q);
    q->buf = b;
    q->bcap = SMALLEST << k;
    held_add(w, q->bcap);
    return 0;
}

/* Copy n bytes to `at`, which is position `pos` of a run of bytes summed together, and return
 * their sum: a piece starting at an odd position adds its 16-bit sum byte-swapped (RFC 1071). */
static uint64_t copy_sum(uint8_t *at, const uint8_t *p, uint32_t n, uint32_t pos)
{
    uint16_t s = (uint16_t)~mapi_csum_fold(mapi_csum_copy(at, p, n));
    if (pos & 1) s = (uint16_t)(s << 8 | s >> 8);
    return s;
}

static void clear_pieces(mapi_waitq *q)
{
    q->plen = 0;
    q->phead = q->ptail = NONE;
}

static int spill(mapi_waitpool *w, mapi_waitq *q)
{
    if (!q->plen) return 0;
    if (buf_reserve(w, q, q->blen + q->plen) < 0) return -1;
    for (uint32_t i = q->phead; i != NONE; i = w->pieces[i].next) {
        q->sum += copy_sum(q->buf + q->blen, w->pieces[i].p, w->pieces[i].len, q->blen);
        q->blen += w->pieces[i].len;
    }
    clear_pieces(q);
    return 0;
}

/* ---- the pool ------------------------------------------------------------------------------- */

int mapi_waitpool_init(mapi_waitpool *w, uint64_t *held, uint64_t *peak)
{
    memset(w, 0, sizeof *w);
    w->held = held;
    w->peak = peak;
    mapi_waitpool_reserve(w, 4096);
    return w->cap ? 0 : -1;
}

void mapi_waitpool_release(mapi_waitpool *w)
{
    for (uint32_t k = 0; k < MAPI_WAITQ_CLASSES; k++)
        while (w->nspare[k]) free(w->spare[k][--w->nspare[k]]);
    free(w->pieces);
    free(w->dirty);
    w->pieces = NULL;
    w->dirty = NULL;
    w->cap = 0;
}

void mapi_waitpool_reserve(mapi_waitpool *w, uint32_t n)
{
    if (n + 2 <= w->cap || n > UINT32_MAX / 4) return;
    uint32_t cap = (n + 2) * 2;
    struct mapi_waitpiece *p = realloc(w->pieces, cap * sizeof *p);
    if (!p) return;
    w->pieces = p;
    mapi_waitq **d = realloc(w->dirty, cap * sizeof *d);
    if (!d) return;
    w->dirty = d;
    w->cap = cap;
}

uint64_t mapi_waitpool_end_call(mapi_waitpool *w)
{
    uint64_t lost = 0;
    for (uint32_t i = 0; i < w->ndirty; i++) {
        mapi_waitq *q = w->dirty[i];
        if (!q) continue;
        q->dirty = 0;
        if (spill(w, q) < 0) {
            lost += q->plen;
            clear_pieces(q);
        }
    }
    w->ndirty = 0;
    w->npieces = 0;
    return lost;
}

/* ---- queues --------------------------------------------------------------------------------- */

void mapi_waitq_init(mapi_waitq *q)
{
    memset(q, 0, sizeof *q);
    clear_pieces(q);
}

int mapi_waitq_add_copy(mapi_waitpool *w, mapi_waitq *q, const uint8_t *p, uint32_t n)
{
    if (spill(w, q) < 0 || buf_reserve(w, q, q->blen + n) < 0) return -1;
    q->sum += copy_sum(q->buf + q->blen, p, n, q->blen);
    q->blen += n;
    return 0;
}

int mapi_waitq_add_ref(mapi_waitpool *w, mapi_waitq *q, const uint8_t *p, uint32_t n)
{
    if (w->npieces >= w->cap || (!q->dirty && w->ndirty >= w->cap))
        return mapi_waitq_add_copy(w, q, p, n);      /* no room to note it: copy it now */
    struct mapi_waitpiece *pc = &w->pieces[w->npieces];
    pc->p = p;
    pc->len = n;
    pc->next = NONE;
    if (q->ptail != NONE) w->pieces[q->ptail].next = w->npieces; else q->phead = w->npieces;
    q->ptail = w->npieces++;
    q->plen += n;
    if (!q->dirty) {
        w->dirty[w->ndirty] = q;
        q->dirty = ++w->ndirty;
    }
    return 0;
}

uint64_t mapi_waitq_take(mapi_waitpool *w, mapi_waitq *q, uint8_t *dst)
{
    uint64_t sum = q->sum;
    if (q->blen) memcpy(dst, q->buf, q->blen);
    uint32_t at = q->blen;
    for (uint32_t i = q->phead; i != NONE; i = w->pieces[i].next) {
        sum += copy_sum(dst + at, w->pieces[i].p, w->pieces[i].len, at);
        at += w->pieces[i].len;
    }
    q->blen = 0;
    q->sum = 0;
    clear_pieces(q);
    buf_drop(w, q);
    return sum;
}

void mapi_waitq_free(mapi_waitpool *w, mapi_waitq *q)
{
    buf_drop(w, q);
    if (q->dirty) w->dirty[q->dirty - 1] = NULL;     /* its pieces go with it */
    q->dirty = 0;
    q->blen = 0;
    clear_pieces(q);
}
