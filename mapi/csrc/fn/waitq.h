/* Stream bytes waiting to be handed on (COOKING's in-order bytes of a direction), kept without a
 * copy while they are still in the input batch: a queue holds pieces (pointers into the batch)
 * behind bytes of its own (a buffer from a pool of size classes).  When the kernel call ends
 * the batch goes back to its source, so mapi_waitpool_end_call copies every piece into its
 * queue's buffer ("spills" it).  Taking the bytes out copies them once, to where they go, and
 * gives their Internet checksum sum (RFC 1071) without a second pass.  The bytes the buffers
 * hold are added to *held (and *peak follows its maximum). */
#ifndef MAPI_FN_WAITQ_H
#define MAPI_FN_WAITQ_H
#include <stdint.h>

#define MAPI_WAITQ_CLASSES 6          /* buffers of 2 KiB << class */
#define MAPI_WAITQ_POOLED 1024        /* spare buffers kept per class at most */

typedef struct mapi_waitq {
    uint8_t *buf;                     /* the bytes of its own (spilled), blen of bcap */
    uint32_t blen, bcap;
    uint64_t sum;                     /* their checksum sum */
    uint32_t plen;                    /* bytes in pieces, after the buffer's */
    uint32_t phead, ptail;            /* first and last piece (UINT32_MAX: none) */
    uint32_t dirty;                   /* 1 + its slot among the queues with pieces, or 0 */
} mapi_waitq;

typedef struct mapi_waitpool {
    struct mapi_waitpiece *pieces;    /* this call's pieces */
    uint32_t npieces, cap;            /* cap: room for pieces and for dirty queues */
    mapi_waitq **dirty;               /* the queues that have pieces (NULL: freed since) */
    uint32_t ndirty;
    uint8_t *spare[MAPI_WAITQ_CLASSES][MAPI_WAITQ_POOLED];
    uint32_t nspare[MAPI_WAITQ_CLASSES];
    uint64_t *held, *peak;
} mapi_waitpool;

int mapi_waitpool_init(mapi_waitpool *w, uint64_t *held, uint64_t *peak);
void mapi_waitpool_release(mapi_waitpool *w);
/* Room for n pieces this call (without it, bytes are copied as they come). */
void mapi_waitpool_reserve(mapi_waitpool *w, uint32_t n);
/* The call ends: every piece is copied into its queue.  Returns the bytes given up because
 * memory ran out (0 normally). */
uint64_t mapi_waitpool_end_call(mapi_waitpool *w);

void mapi_waitq_init(mapi_waitq *q);
/* Queue n bytes at p that stay valid until the call ends; -1 if memory ran out. */
int mapi_waitq_add_ref(mapi_waitpool *w, mapi_waitq *q, const uint8_t *p, uint32_t n);
/* Queue n bytes at p that the caller reuses at once (they are copied); -1 if memory ran out. */
int mapi_waitq_add_copy(mapi_waitpool *w, mapi_waitq *q, const uint8_t *p, uint32_t n);
/* Copy every queued byte to dst (blen + plen bytes) and empty the queue; returns their sum. */
uint64_t mapi_waitq_take(mapi_waitpool *w, mapi_waitq *q, uint8_t *dst);
/* Forget the queue (its bytes are dropped). */
void mapi_waitq_free(mapi_waitpool *w, mapi_waitq *q);
#endif
