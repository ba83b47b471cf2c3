/* EXPIRED_FLOWS kernel; see expired_flows.h.  The engine thread appends, the client takes: a
 * mutex guards the ring (taken once per batch, not per record). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "expired_flows.h"
#include "../flowrec.h"

struct mapi_expired {
    pthread_mutex_t lock;
    mapi_flowrec *ring;
    uint32_t cap, head, len;
    uint64_t kept, dropped;
};

mapi_expired *mapi_expired_new(uint32_t max_records)
{
    mapi_expired *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->cap = max_records ? max_records : 1;
    q->ring = malloc((size_t)q->cap * sizeof *q->ring);
    if (!q->ring) { free(q); return NULL; }
    pthread_mutex_init(&q->lock, NULL);
    return q;
}

void mapi_expired_free(mapi_expired *q)
{
    if (!q) return;
    pthread_mutex_destroy(&q->lock);
    free(q->ring);
    free(q);
}

uint32_t mapi_expired_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                             uint32_t nsel, uint32_t *out)
{
    (void)out;
    mapi_expired *q = state;
    if (b->linktype != MAPI_LINKTYPE_FLOWREC) return nsel;
    pthread_mutex_lock(&q->lock);
    for (uint32_t j = 0; j < nsel; j++) {
        uint32_t i = sel[j];
        if (b->caplen[i] < sizeof(mapi_flowrec)) continue;
        if (q->len == q->cap) { q->dropped++; continue; }
        memcpy(&q->ring[(q->head + q->len) % q->cap], b->base + b->off[i], sizeof(mapi_flowrec));
        q->len++;
        q->kept++;
    }
    pthread_mutex_unlock(&q->lock);
    return nsel;
}

uint32_t mapi_expired_take(mapi_expired *q, void *out, uint32_t max)
{
    mapi_flowrec *o = out;
    pthread_mutex_lock(&q->lock);
    uint32_t n = q->len < max ? q->len : max;
    for (uint32_t k = 0; k < n; k++) o[k] = q->ring[(q->head + k) % q->cap];
    q->head = (q->head + n) % q->cap;
    q->len -= n;
    pthread_mutex_unlock(&q->lock);
    return n;
}

void mapi_expired_counts(mapi_expired *q, uint64_t *kept, uint64_t *dropped, uint64_t *waiting)
{
    pthread_mutex_lock(&q->lock);
    *kept = q->kept;
    *dropped = q->dropped;
    *waiting = q->len;
    pthread_mutex_unlock(&q->lock);
}
