/* RECORD_FILTER; see record_filter.h. */
#include <string.h>
#include "record_filter.h"

static int prefix_match(const uint8_t *a, const uint8_t *net, uint32_t plen)
{
    uint32_t full = plen / 8, rest = plen % 8;
    if (memcmp(a, net, full)) return 0;
    if (!rest) return 1;
    uint8_t mask = (uint8_t)(0xFF << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

static int cmp_one(const mapi_rf_insn *in, const mapi_flowrec *r)
{
    if (in->cmp == MAPI_RF_IN) {
        int32_t fam;
        const uint8_t *a = mapi_rf_addr(r, in->field, &fam);
        return a && fam == in->family && prefix_match(a, in->addr, in->plen);
    }
    uint64_t v = mapi_rf_value(r, in->field), k = in->value;
    switch (in->cmp) {
    case MAPI_RF_EQ: return v == k;
    case MAPI_RF_NE: return v != k;
    case MAPI_RF_LT: return v < k;
    case MAPI_RF_LE: return v <= k;
    case MAPI_RF_GT: return v > k;
    case MAPI_RF_GE: return v >= k;
    case MAPI_RF_ANY: return (v & k) != 0;
    }
    return 0;
}

int mapi_rf_eval(const mapi_rf_state *st, const void *record)
{
    const mapi_flowrec *r = record;
    uint8_t stack[MAPI_RF_MAX_STACK];
    int sp = 0;
    for (uint32_t i = 0; i < st->n; i++) {
        const mapi_rf_insn *in = &st->prog[i];
        switch (in->op) {
        case MAPI_RF_CMP:
            if (sp >= MAPI_RF_MAX_STACK) return 0;
            stack[sp++] = (uint8_t)cmp_one(in, r);
            break;
        case MAPI_RF_TRUE:
            if (sp >= MAPI_RF_MAX_STACK) return 0;
            stack[sp++] = 1;
            break;
        case MAPI_RF_NOT:
            if (sp < 1) return 0;
            stack[sp - 1] = !stack[sp - 1];
            break;
        case MAPI_RF_AND:
            if (sp < 2) return 0;
            sp--;
            stack[sp - 1] = stack[sp - 1] && stack[sp];
            break;
        case MAPI_RF_OR:
            if (sp < 2) return 0;
            sp--;
            stack[sp - 1] = stack[sp - 1] || stack[sp];
            break;
        default:
            return 0;
        }
    }
    return sp == 1 && stack[0];
}

uint32_t mapi_rf_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                        uint32_t *out)
{
    mapi_rf_state *st = state;
    if (b->linktype != MAPI_LINKTYPE_FLOWREC) {
        st->other_linktype += nsel;
        return 0;
    }
    uint32_t n = 0;
    for (uint32_t j = 0; j < nsel; j++)
        if (b->caplen[sel[j]] >= sizeof(mapi_flowrec) && mapi_rf_eval(st, (const mapi_flowrec *)(b->base + b->off[sel[j]])))
            out[n++] = sel[j];
    return n;
}
