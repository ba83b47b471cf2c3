/* Dataflow and block order of a classic BPF program, for the native code emitter. */
#include <stdlib.h>
#include <string.h>
#include "bpf_flow.h"

enum { LIVE_A = MAPI_BPF_LIVE_A, LIVE_X = MAPI_BPF_LIVE_X };

uint32_t mapi_bpf_load_size(uint16_t code)
{
    switch (code) {
    case 0x20: case 0x40: return 4;
    case 0x28: case 0x48: return 2;
    case 0x30: case 0x50: case 0xb1: return 1;
    default: return 0;
    }
}

static int is_jump(uint16_t code) { return (code & 0x07) == 0x05; }
static int is_ret(uint16_t code) { return code == 0x06 || code == 0x16; }

/* Where control may go after instruction i (-1: nowhere; off the program: reject). */
static void successors(const mapi_bpf_insn *p, uint32_t i, int64_t succ[2])
{
    uint16_t code = p[i].code;
    succ[0] = (int64_t)i + 1;
    succ[1] = -1;
    if (is_ret(code)) succ[0] = -1;
    else if (code == 0x05) succ[0] = (int64_t)i + 1 + (int32_t)p[i].k;   /* signed, as libpcap */
    else if (is_jump(code)) {
        succ[0] = (int64_t)i + 1 + p[i].jt;
        succ[1] = (int64_t)i + 1 + p[i].jf;
    }
}

/* A/X an instruction reads (use) and writes (def). */
static void uses(uint16_t code, uint8_t *use, uint8_t *def)
{
    *use = *def = 0;
    switch (code) {
    case 0x16: case 0x02: *use = LIVE_A; break;
    case 0x03: *use = LIVE_X; break;
    case 0x20: case 0x28: case 0x30: case 0x80: case 0x00: case 0x60: *def = LIVE_A; break;
    case 0x40: case 0x48: case 0x50: *use = LIVE_X; *def = LIVE_A; break;
    case 0xb1: case 0x81: case 0x01: case 0x61: *def = LIVE_X; break;
    case 0x07: *use = LIVE_A; *def = LIVE_X; break;
    case 0x87: *use = LIVE_X; *def = LIVE_A; break;
    case 0x06: case 0x05: break;
    default:
        if (is_jump(code)) *use = LIVE_A | (code & 0x08 ? LIVE_X : 0);
        else if ((code & 0x07) == 0x04) { *use = LIVE_A | (code & 0x08 ? LIVE_X : 0); *def = LIVE_A; }
    }
}

/* Forward (scratch words stored, lengths checked: meet = intersection / minimum) and backward
 * (A/X liveness: meet = union) to a fixed point. */
static void dataflow(const mapi_bpf_insn *p, uint32_t n, mapi_bpf_flow *f, uint16_t *stored)
{
    for (uint32_t pass = 0, changed = 1; changed && pass <= n + 1; pass++) {
        changed = 0;
        for (uint32_t i = 0; i < n; i++) {
            int64_t succ[2];
            uint16_t out = stored[i] | (p[i].code == 0x02 || p[i].code == 0x03 ? 1u << (p[i].k & 15) : 0);
            uint32_t size = mapi_bpf_load_size(p[i].code);
            uint64_t need = (uint64_t)p[i].k + size;          /* [X + k] too: X >= 0 */
            uint32_t known = size && need > f->known[i] && need <= 0xFFFFFFFF ? (uint32_t)need
                                                                            : f->known[i];
            successors(p, i, succ);
            for (int s = 0; s < 2; s++) {
                if (succ[s] < 0 || succ[s] >= n) continue;
                if ((stored[succ[s]] & out) != stored[succ[s]]) {
                    stored[succ[s]] &= out;
                    changed = 1;
                }
                if (known < f->known[succ[s]]) {
                    f->known[succ[s]] = known;
                    changed = 1;
                }
            }
        }
        for (uint32_t i = n; i-- > 0;) {
            int64_t succ[2];
            uint8_t out = 0, use, def;
            successors(p, i, succ);
            for (int s = 0; s < 2; s++)
                if (succ[s] >= 0 && succ[s] < n) {
                    uses(p[succ[s]].code, &use, &def);
                    out |= use | (f->live_out[succ[s]] & ~def);
                }
            if (out != f->live_out[i]) { f->live_out[i] = out; changed = 1; }
        }
    }
}

/* Which successor of block-ending instruction l (at end) should follow it in the code: the
 * one that goes on filtering rather than one that returns; between two such, "not equal" and
 * "no bit set" (the usual outcome of a protocol test), else source order. */
static void preferred(const mapi_bpf_insn *p, uint32_t n, uint32_t end, int64_t cand[2])
{
    const mapi_bpf_insn *l = &p[end];
    cand[0] = cand[1] = -1;
    if (l->code == 0x05) {
        cand[0] = (int64_t)end + 1 + (int32_t)l->k;
    } else if (is_jump(l->code)) {
        int64_t tt = (int64_t)end + 1 + l->jt, tf = (int64_t)end + 1 + l->jf;
        int ret_t = tt >= n || is_ret(p[tt].code), ret_f = tf >= n || is_ret(p[tf].code);
        int op = l->code & 0xf0;
        int false_first = ret_t != ret_f ? ret_t : (op == 0x10 || op == 0x40 || tf == end + 1);
        cand[0] = false_first ? tf : tt;
        cand[1] = false_first ? tt : tf;
    } else if (!is_ret(l->code)) {
        cand[0] = (int64_t)end + 1;
    }
}

static void layout(const mapi_bpf_insn *p, uint32_t n, mapi_bpf_flow *f, uint8_t *placed)
{
    uint32_t scan = 0;
    int64_t cur = 0;
    f->nblocks = 0;
    while (cur >= 0) {
        placed[cur] = 1;
        f->order[f->nblocks++] = (uint32_t)cur;
        uint32_t end = (uint32_t)cur;
        while (end + 1 < n && !f->leader[end + 1]) end++;
        int64_t cand[2];
        preferred(p, n, end, cand);
        cur = -1;
        for (int c = 0; c < 2 && cur < 0; c++)
            if (cand[c] >= 0 && cand[c] < n && !placed[cand[c]]) cur = cand[c];
        while (cur < 0 && scan < n) {
            if (f->leader[scan] && !placed[scan]) cur = scan;
            scan++;
        }
    }
}

int mapi_bpf_flow_analyse(const mapi_bpf_insn *p, uint32_t n, mapi_bpf_flow *f)
{
    memset(f, 0, sizeof *f);
    uint16_t *stored = malloc((size_t)n * sizeof *stored);  /* words surely stored on entry */
    uint8_t *placed = calloc(n, 1);
    f->live_out = calloc(n, 1);
    f->target = calloc(n, 1);
    f->leader = calloc(n, 1);
    f->known = malloc((size_t)n * sizeof *f->known);
    f->order = malloc((size_t)n * sizeof *f->order);
    if (!stored || !placed || !f->live_out || !f->target || !f->leader || !f->known || !f->order) {
        free(stored);
        free(placed);
        mapi_bpf_flow_free(f);
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        int64_t succ[2];
        stored[i] = 0xFFFF;
        f->known[i] = 0xFFFFFFFF;
        if (mapi_bpf_load_size(p[i].code)) f->packet = 1;
        successors(p, i, succ);
        for (int s = 0; s < 2; s++)
            if (succ[s] >= 0 && succ[s] < n && (succ[s] != (int64_t)i + 1 || is_jump(p[i].code)))
                f->target[succ[s]] = 1;
        if ((is_jump(p[i].code) || is_ret(p[i].code)) && i + 1 < n) f->leader[i + 1] = 1;
    }
    stored[0] = 0;
    f->known[0] = 0;
    f->leader[0] = 1;
    for (uint32_t i = 0; i < n; i++)
        if (f->target[i]) f->leader[i] = 1;
    dataflow(p, n, f, stored);
    uint8_t use, def;
    uses(p[0].code, &use, &def);
    f->entry_live = use | (f->live_out[0] & ~def);
    for (uint32_t i = 0; i < n; i++)
        if ((p[i].code == 0x60 || p[i].code == 0x61) && !(stored[i] & (1u << (p[i].k & 15))))
            f->zeroed |= 1u << (p[i].k & 15);
    layout(p, n, f, placed);
    free(stored);
    free(placed);
    return 0;
}

void mapi_bpf_flow_free(mapi_bpf_flow *f)
{
    free(f->live_out);
    free(f->target);
    free(f->known);
    free(f->leader);
    free(f->order);
    memset(f, 0, sizeof *f);
}
