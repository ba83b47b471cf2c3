/* Least-recently-used lists; see lru.h. */
#include <stddef.h>
#include "lru.h"

void mapi_lru_unlink(mapi_lru *l, mapi_lru_node *n)
{
    if (n->prev) n->prev->next = n->next; else if (l->oldest == n) l->oldest = n->next;
    if (n->next) n->next->prev = n->prev; else if (l->newest == n) l->newest = n->prev;
    n->prev = n->next = NULL;
}

void mapi_lru_touch(mapi_lru *l, mapi_lru_node *n)
{
    if (l->newest == n) return;
    mapi_lru_unlink(l, n);
    n->prev = l->newest;
    if (l->newest) l->newest->next = n; else l->oldest = n;
    l->newest = n;
}
