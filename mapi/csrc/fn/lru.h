/* An intrusive least-recently-used list, shared by the kernels that keep per-connection,
 * per-flow or per-datagram state (COOKING, FLOW_REPORT, DEFRAG): the entry struct starts with a
 * mapi_lru_node, touching moves it to the newest end, timeouts and limits work from the oldest. */
#ifndef MAPI_FN_LRU_H
#define MAPI_FN_LRU_H

typedef struct mapi_lru_node {
    struct mapi_lru_node *prev, *next;
} mapi_lru_node;

typedef struct mapi_lru {
    mapi_lru_node *oldest, *newest;
} mapi_lru;

void mapi_lru_unlink(mapi_lru *l, mapi_lru_node *n);
/* Make n the newest (inserting it if it is not in the list). */
void mapi_lru_touch(mapi_lru *l, mapi_lru_node *n);
#endif
