/* THRESHOLD kernel: counters only grow, so within one (sub)batch the watched value rises
 * monotonically from `before` to `after`; a crossing is possible only when the threshold lies
 * in between, and then one search finds the packet. */
#include <stdint.h>
#include "../engine.h"
#include "threshold.h"

static void emit(mapi_threshold *t, const mapi_batch *b, uint32_t i, int64_t value)
{
    if (t->remaining == 0) return;
    if (t->remaining != UINT64_MAX) t->remaining--;
    if (t->nevents >= MAPI_THRESHOLD_EVENTS) { t->dropped++; return; }
    mapi_threshold_event *e = &t->events[t->nevents++];
    e->ts = b->ts[i];
    e->value = value;
    e->seq = b->seq ? b->seq[i] : b->first_seq + i;
}

uint32_t mapi_threshold_kernel(void *state, const mapi_batch *b, const uint32_t *sel,
                               uint32_t nsel, uint32_t *out)
{
    (void)out;
    mapi_threshold *t = state;
    uint64_t total = nsel;
    if (t->step == MAPI_STEP_WIRELEN) {
        total = 0;
        for (uint32_t j = 0; j < nsel; j++) total += b->wirelen[sel[j]];
    }
    int64_t before = (int64_t)(t->value - t->base);
    t->value += total;
    int64_t after = (int64_t)(t->value - t->base);
    int64_t thr = t->threshold;
    if (t->remaining == 0) return nsel;

    /* GREATER fires on the first value > thr, EQUAL on the first value >= thr if it is == thr */
    int64_t target;
    if (t->kind == MAPI_THRESHOLD_GREATER) {
        if (!(before <= thr && after > thr)) return nsel;
        target = thr + 1;
    } else if (t->kind == MAPI_THRESHOLD_EQUAL) {
        if (!(before < thr && after >= thr)) return nsel;
        target = thr;
    } else {
        return nsel;
    }
    if (t->step == MAPI_STEP_PACKETS) {
        uint32_t j = (uint32_t)(target - before - 1);     /* value after packet j: before + j + 1 */
        emit(t, b, sel[j], target);
        return nsel;
    }
    int64_t v = before;
    for (uint32_t j = 0; j < nsel; j++) {
        v += b->wirelen[sel[j]];
        if (v >= target) {
            if (t->kind == MAPI_THRESHOLD_GREATER || v == thr) emit(t, b, sel[j], v);
            break;
        }
    }
    return nsel;
}
