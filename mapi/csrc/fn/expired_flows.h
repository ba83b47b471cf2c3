/* EXPIRED_FLOWS: keep the flow records that reach it (mapi_flowrec batches from FLOW_REPORT or a
 * NetFlow collector) for the client, who takes them in order; a full queue drops and counts. */
#ifndef MAPI_FN_EXPIRED_FLOWS_H
#define MAPI_FN_EXPIRED_FLOWS_H
#include <stdint.h>
#include "../engine.h"

typedef struct mapi_expired mapi_expired;

mapi_expired *mapi_expired_new(uint32_t max_records);
void mapi_expired_free(mapi_expired *q);
uint32_t mapi_expired_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                             uint32_t nsel, uint32_t *out);
/* Move up to max records (mapi_flowrec) into out; returns how many. */
uint32_t mapi_expired_take(mapi_expired *q, void *out, uint32_t max);
/* records kept so far, records dropped for room, records waiting now */
void mapi_expired_counts(mapi_expired *q, uint64_t *kept, uint64_t *dropped, uint64_t *waiting);
#endif
