/* A chained hash table of intrusive nodes that grows as entries come (so a small working set
 * stays in cache however large the configured limit), shared by COOKING, FLOW_REPORT and
 * DEFRAG.  Callers compare keys themselves while walking a bucket. */
#ifndef MAPI_FN_HTAB_H
#define MAPI_FN_HTAB_H
#include <stdint.h>

typedef struct mapi_hnode {
    struct mapi_hnode *next;
    uint32_t hash;
    uint32_t _pad;
} mapi_hnode;

typedef struct mapi_htab {
    mapi_hnode **b;
    uint32_t mask;               /* buckets - 1 */
    uint32_t max_buckets;
    uint64_t count;
} mapi_htab;

int mapi_htab_init(mapi_htab *t, uint32_t max_entries);
void mapi_htab_release(mapi_htab *t);
/* First node of the bucket of `hash` (walk with ->next; compare ->hash and the key). */
mapi_hnode *mapi_htab_bucket(const mapi_htab *t, uint32_t hash);
void mapi_htab_insert(mapi_htab *t, mapi_hnode *n, uint32_t hash);
void mapi_htab_remove(mapi_htab *t, mapi_hnode *n);
/* A 32-bit hash of n bytes (8 at a time). */
uint32_t mapi_hash_bytes(const void *p, uint32_t n, uint64_t seed);
#endif
