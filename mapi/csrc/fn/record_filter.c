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

static int cmp_bytes(const mapi_rf_insn *in, const mapi_rf_rec *rec)
{
    int32_t fam;
    uint32_t len;
    const uint8_t *a = mapi_rf_bytes(rec, in->field, in->ie, &fam, &len);
    if (!a) return 0;
    switch (in->cmp) {
    case MAPI_RF_PRESENT: return 1;
    case MAPI_RF_BYTES_EQ: return len >= in->blen && !memcmp(a, in->addr, in->blen);
    case MAPI_RF_IN:
        if (!fam) fam = len == 4 ? 4 : len == 16 ? 6 : 0;    /* an address element */
        return fam == in->family && prefix_match(a, in->addr, in->plen);
    }
    return 0;
}

static int cmp_one(const mapi_rf_insn *in, const mapi_rf_rec *rec)
{
    if (in->cmp >= MAPI_RF_IN && in->cmp != MAPI_RF_ALL) return cmp_bytes(in, rec);
    uint64_t v = mapi_rf_value(rec, in->field, in->ie), k = in->value;
    switch (in->cmp) {
    case MAPI_RF_EQ: return v == k;
    case MAPI_RF_NE: return v != k;
    case MAPI_RF_LT: return v < k;
    case MAPI_RF_LE: return v <= k;
    case MAPI_RF_GT: return v > k;
    case MAPI_RF_GE: return v >= k;
    case MAPI_RF_ANY: return (v & k) != 0;
    case MAPI_RF_ALL: return (v & k) == k;
    }
    return 0;
}

int mapi_rf_eval_len(const mapi_rf_state *st, const void *record, uint32_t caplen)
{
    mapi_rf_rec rec = {record, caplen};
    uint8_t stack[MAPI_RF_MAX_STACK];
    int sp = 0;
    for (uint32_t i = 0; i < st->n; i++) {
        const mapi_rf_insn *in = &st->prog[i];
        switch (in->op) {
        case MAPI_RF_CMP:
        case MAPI_RF_TRUE:
            if (sp >= MAPI_RF_MAX_STACK) return 0;
            stack[sp++] = in->op == MAPI_RF_TRUE ? 1 : (uint8_t)cmp_one(in, &rec);
            break;
        case MAPI_RF_NOT:
            if (sp < 1) return 0;
            stack[sp - 1] = !stack[sp - 1];
            break;
        case MAPI_RF_AND:
        case MAPI_RF_OR:
            if (sp < 2) return 0;
            sp--;
            stack[sp - 1] = in->op == MAPI_RF_AND ? stack[sp - 1] && stack[sp]
                                                  : stack[sp - 1] || stack[sp];
            break;
        default:
            return 0;
        }
    }
    return sp == 1 && stack[0];
}

int mapi_rf_eval(const mapi_rf_state *st, const void *record)
{
    return mapi_rf_eval_len(st, record, sizeof(mapi_flowrec));
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
    for (uint32_t j = 0; j < nsel; j++) {
        uint32_t i = sel[j];
        if (b->caplen[i] >= sizeof(mapi_flowrec) &&
            mapi_rf_eval_len(st, b->base + b->off[i], b->caplen[i]))
            out[n++] = i;
    }
    return n;
}
