/* Classic BPF to x86-64 machine code, without a compiler (BPF_FILTER's native path).
 *
 * A program becomes one batch kernel (mapi_bpf_native_fn): the loop over the selection
 * vector with the filter inlined, as the interpreter kernel runs it, so the result is the
 * interpreter's (and libpcap's bpf_filter) packet for packet: loads out of the captured bytes,
 * division by zero and running off the end reject; shifts by X of 32 or more give 0, by a
 * constant take it modulo 32; ja's offset is signed (ip6 protochain jumps back).  Scratch
 * memory a program may read before storing is zeroed per packet (libpcap leaves it undefined;
 * its compiler never does so).  The code is written into a private mapping that is then made
 * read + execute: it is never writable and executable at once.
 *
 * Registers: A eax, X ecx (shifts by X take cl), edx scratch (div's high half), ebx the index
 * into sel, ebp nsel, rsi sel, rdi b->caplen, r8 the packet, r9 its captured length, r10 its
 * batch index, r11 scratch, r12 out, r13 packets kept, r14 b->base, r15 b->off; the scratch
 * memory M[0..15] at [rsp], b->wirelen at [rsp + 64].
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bpf_flow.h"
#include "bpf_x86_64.h"

#if defined(__x86_64__)
#include <sys/mman.h>
#include <unistd.h>

enum { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };
enum { A_ = RAX, X_ = RCX, SEL = RSI, CAPS = RDI, PKT = R8, LEN = R9, IDX = R10, OUT = R12,
       KEPT = R13, BASE = R14, OFFS = R15 };
enum { CC_B = 2, CC_AE = 3, CC_E = 4, CC_NE = 5, CC_BE = 6, CC_A = 7 };
enum { ADD = 0, OR = 1, AND = 4, SUB = 5, XOR = 6, CMP = 7 };     /* group-1 /digit */
#define NOIDX (-1)
#define WIRE_SLOT 64
#define FRAME 72
#define TO_NEXT (-1)       /* the next packet (reject) */
#define TO_DONE (-2)       /* the end of the batch */

typedef struct { uint32_t at; int32_t target; } fixup;

typedef struct {
    uint8_t *buf;
    uint32_t len, cap;
    fixup *fix;
    uint32_t nfix, capfix;
    uint32_t *label;       /* code offset of each BPF instruction */
    const mapi_bpf_insn *prog;
    uint32_t n;
    int32_t nxt;           /* the instruction emitted after this one (TO_NEXT: none) */
    int wire;              /* register holding b->wirelen, or RSP: at [rsp + WIRE_SLOT] */
    int failed;
} emitter;
typedef mapi_bpf_flow analysis;
enum { LIVE_A = MAPI_BPF_LIVE_A, LIVE_X = MAPI_BPF_LIVE_X };

static void b1(emitter *e, uint32_t v)
{
    if (e->len < e->cap) e->buf[e->len++] = (uint8_t)v;
    else e->failed = 1;
}

static void b4(emitter *e, uint32_t v)
{
    for (int i = 0; i < 4; i++) b1(e, v >> (8 * i));
}

static void opcode(emitter *e, uint32_t op, int nop)
{
    for (int i = nop - 1; i >= 0; i--) b1(e, op >> (8 * i));
}

static void rex(emitter *e, int w, int reg, int index, int base)
{
    uint32_t r = 0x40 | (w ? 8 : 0) | (reg & 8 ? 4 : 0) | (index >= 0 && index & 8 ? 2 : 0) |
                 (base & 8 ? 1 : 0);
    if (r != 0x40) b1(e, r);
}

/* op reg, [base + index*scale + disp] */
static void op_m(emitter *e, int w, uint32_t op, int nop, int reg, int base, int index, int scale,
                 int32_t disp)
{
    rex(e, w, reg, index, base);
    opcode(e, op, nop);
    int mod = (disp == 0 && (base & 7) != RBP) ? 0 : (disp >= -128 && disp <= 127) ? 1 : 2;
    if (index < 0 && (base & 7) != RSP) {
        b1(e, mod << 6 | (reg & 7) << 3 | (base & 7));
    } else {
        int ss = scale == 8 ? 3 : scale == 4 ? 2 : scale == 2 ? 1 : 0;
        b1(e, mod << 6 | (reg & 7) << 3 | RSP);
        b1(e, ss << 6 | (index < 0 ? RSP : index & 7) << 3 | (base & 7));
    }
    if (mod == 1) b1(e, (uint32_t)disp);
    else if (mod == 2) b4(e, (uint32_t)disp);
}

/* op reg, rm (both registers) */
static void op_r(emitter *e, int w, uint32_t op, int nop, int reg, int rm)
{
    rex(e, w, reg, NOIDX, rm);
    opcode(e, op, nop);
    b1(e, 0xC0 | (reg & 7) << 3 | (rm & 7));
}

static void mov32(emitter *e, int dst, int src) { op_r(e, 0, 0x89, 1, src, dst); }

static void mov_imm(emitter *e, int r, uint32_t k)
{
    if (k == 0) {
        op_r(e, 0, 0x31, 1, r, r);                   /* xor r, r */
    } else {
        rex(e, 0, 0, NOIDX, r);
        b1(e, 0xB8 + (r & 7));
        b4(e, k);
    }
}

static void alu_imm(emitter *e, int digit, int r, uint32_t k)
{
    int32_t s = (int32_t)k;
    if (s >= -128 && s <= 127) {
        op_r(e, 0, 0x83, 1, digit, r);
        b1(e, (uint32_t)s);
    } else {
        op_r(e, 0, 0x81, 1, digit, r);
        b4(e, k);
    }
}

static void jump(emitter *e, int cc, int32_t target)      /* cc < 0: jmp */
{
    if (cc < 0) {
        b1(e, 0xE9);
    } else {
        b1(e, 0x0F);
        b1(e, 0x80 + cc);
    }
    if (e->nfix == e->capfix) {
        uint32_t cap = e->capfix ? 2 * e->capfix : 64;
        fixup *f = realloc(e->fix, cap * sizeof *f);
        if (!f) { e->failed = 1; return; }
        e->fix = f;
        e->capfix = cap;
    }
    e->fix[e->nfix++] = (fixup){e->len, target};
    b4(e, 0);
}

/* A = the big-endian word/half-word/byte at [base + index + disp] */
static void load(emitter *e, int dst, uint32_t size, int base, int index, int32_t disp)
{
    if (size == 4) {
        op_m(e, 0, 0x8B, 1, dst, base, index, 1, disp);
        rex(e, 0, 0, NOIDX, dst);
        b1(e, 0x0F);
        b1(e, 0xC8 + (dst & 7));                     /* bswap */
    } else if (size == 2) {
        op_m(e, 0, 0x0FB7, 2, dst, base, index, 1, disp);
        b1(e, 0x66);                                 /* rol dst16, 8 */
        op_r(e, 0, 0xC1, 1, 0, dst);
        b1(e, 8);
    } else {
        op_m(e, 0, 0x0FB6, 2, dst, base, index, 1, disp);
    }
}

/* Where control goes for instruction t: off the program rejects (as before), and a jump to
 * "ret #0" goes straight to the next packet. */
static int32_t target(const emitter *e, int64_t t)
{
    if (t < 0 || t >= e->n) return TO_NEXT;
    return e->prog[t].code == 0x06 && e->prog[t].k == 0 ? TO_NEXT : (int32_t)t;
}

/* Continue at t: a jump unless t is emitted next. */
static void go(emitter *e, int32_t t)
{
    if (t != e->nxt) jump(e, -1, t);
}

/* Keep the packet: out[kept++] = i, then the next one. */
static void accept(emitter *e)
{
    op_m(e, 0, 0x89, 1, IDX, OUT, KEPT, 4, 0);
    op_r(e, 0, 0xFF, 1, 0, KEPT);                    /* inc r13d */
    go(e, TO_NEXT);
}

static void branch(emitter *e, int cc, uint32_t i, uint8_t jt, uint8_t jf)
{
    int32_t tt = target(e, (int64_t)i + 1 + jt), tf = target(e, (int64_t)i + 1 + jf);
    if (tt == tf) {
        go(e, tt);
    } else if (tt == e->nxt) {
        jump(e, cc ^ 1, tf);                         /* x86 conditions pair up: cc ^ 1 negates */
    } else {
        jump(e, cc, tt);
        go(e, tf);
    }
}

static int log2_exact(uint32_t k)
{
    return k && !(k & (k - 1)) ? __builtin_ctz(k) : -1;
}

static void divide(emitter *e, uint16_t code, uint32_t k)
{
    int by_x = code & 0x08, mod = (code & 0xf0) == 0x90;
    if (!by_x) {
        int sh = log2_exact(k);
        if (k == 0) { jump(e, -1, TO_NEXT); return; }
        if (sh >= 0) {                               /* unsigned: exact as a shift / a mask */
            if (mod) alu_imm(e, AND, A_, k - 1);
            else if (sh) { op_r(e, 0, 0xC1, 1, 5, A_); b1(e, sh); }
            return;
        }
        mov_imm(e, R11, k);
    } else {
        op_r(e, 0, 0x85, 1, X_, X_);                 /* test ecx, ecx */
        jump(e, CC_E, TO_NEXT);
    }
    mov_imm(e, RDX, 0);
    op_r(e, 0, 0xF7, 1, 6, by_x ? X_ : R11);         /* div */
    if (mod) mov32(e, A_, RDX);
}

static void shift_x(emitter *e, int digit)           /* A = X < 32 ? A shifted by X : 0 */
{
    mov_imm(e, RDX, 0);
    op_r(e, 0, 0xD3, 1, digit, A_);                  /* shl/shr eax, cl */
    alu_imm(e, CMP, X_, 31);
    op_r(e, 0, 0x0F47, 2, A_, RDX);                  /* cmova eax, edx */
}

/* Reject the packet unless `need` bytes were captured (unless every path checked already). */
static void bounds(emitter *e, const analysis *an, uint32_t i, uint32_t need)
{
    if (need <= an->known[i]) return;
    alu_imm(e, CMP, LEN, need);
    jump(e, CC_B, TO_NEXT);
}

/* A or X from the packet at [k] (absolute) or [X + k] (indirect): reject out of bounds */
static void packet_load(emitter *e, int dst, uint32_t size, int indirect, uint32_t k,
                        const analysis *an, uint32_t i)
{
    if (!indirect) {
        uint64_t end = (uint64_t)k + size;
        if (end > 0xFFFFFFFFu) { jump(e, -1, TO_NEXT); return; }
        bounds(e, an, i, (uint32_t)end);            /* captured length < k + size: reject */
        if (k <= 0x7FFFFFFF) {
            load(e, dst, size, PKT, NOIDX, (int32_t)k);
        } else {
            mov_imm(e, RDX, k);
            load(e, dst, size, PKT, RDX, 0);
        }
        return;
    }
    uint64_t end = (uint64_t)k + size;               /* X + k + size > captured length: reject */
    if (end <= 0x7FFFFFFF) {
        op_m(e, 1, 0x8D, 1, RDX, X_, NOIDX, 1, (int32_t)end);   /* lea rdx, [rcx + k + size] */
        op_r(e, 1, 0x39, 1, LEN, RDX);                           /* cmp rdx, r9 */
        jump(e, CC_A, TO_NEXT);
        load(e, dst, size, PKT, X_, (int32_t)k);
    } else {
        mov_imm(e, RDX, k);
        op_r(e, 1, 0x01, 1, X_, RDX);                            /* add rdx, rcx */
        op_m(e, 1, 0x8D, 1, R11, RDX, NOIDX, 1, (int32_t)size);  /* lea r11, [rdx + size] */
        op_r(e, 1, 0x39, 1, LEN, R11);
        jump(e, CC_A, TO_NEXT);
        load(e, dst, size, PKT, RDX, 0);
    }
}

static uint32_t swapped(uint32_t v, uint32_t size)
{
    return size == 4 ? __builtin_bswap32(v) : size == 2 ? __builtin_bswap16((uint16_t)v) : v;
}

/* "ld[hb] [k] (or [x + k]); jeq/jset #c" where nothing reads A afterwards and no jump lands
 * on the test: compare the packet's bytes with c byte-swapped (no load into A, no swap).
 * Returns 1 when it emitted both instructions. */
static int fused(emitter *e, const mapi_bpf_insn *prog, uint32_t i, uint32_t n,
                 const analysis *an, int32_t after)
{
    const mapi_bpf_insn *p = &prog[i], *t = &prog[i + 1];
    uint32_t size = p->code == 0xb1 ? 0 : mapi_bpf_load_size(p->code);
    int index = p->code & 0x40 ? X_ : NOIDX;         /* BPF_IND */
    if (!size || i + 1 >= n || an->target[i + 1] || (an->live_out[i + 1] & LIVE_A) ||
        (t->code != 0x15 && t->code != 0x45) || p->k > 0x7FFFFFFF - 4)
        return 0;
    uint32_t c = t->k, mask = size == 4 ? 0xFFFFFFFF : size == 2 ? 0xFFFF : 0xFF;
    if (t->code == 0x15 && c > mask) return 0;       /* never equal: the plain path says so */
    if (t->code == 0x45 && !(c & mask)) return 0;
    if (index == NOIDX) {
        bounds(e, an, i, p->k + size);
    } else {                                         /* X + k + size > captured length */
        op_m(e, 1, 0x8D, 1, RDX, X_, NOIDX, 1, (int32_t)(p->k + size));
        op_r(e, 1, 0x39, 1, LEN, RDX);
        jump(e, CC_A, TO_NEXT);
    }
    uint32_t v = swapped(t->code == 0x45 ? c & mask : c, size);
    int eq = t->code == 0x15, k = (int32_t)p->k;
    if (size == 2) {            /* via edx: a 16-bit immediate would stall the decoder (LCP) */
        op_m(e, 0, 0x0FB7, 2, RDX, PKT, index, 1, k);
        if (eq) alu_imm(e, CMP, RDX, v);
        else { op_r(e, 0, 0xF7, 1, 0, RDX); b4(e, v); }
    } else if (size == 1) {
        op_m(e, 0, eq ? 0x80 : 0xF6, 1, eq ? CMP : 0, PKT, index, 1, k);
        b1(e, v);
    } else if (eq && (int32_t)v >= -128 && (int32_t)v <= 127) {
        op_m(e, 0, 0x83, 1, CMP, PKT, index, 1, k);
        b1(e, v);
    } else {
        op_m(e, 0, eq ? 0x81 : 0xF7, 1, eq ? CMP : 0, PKT, index, 1, k);
        b4(e, v);
    }
    e->label[i + 1] = e->len;                        /* no jump lands there */
    e->nxt = after;
    branch(e, t->code == 0x15 ? CC_E : CC_NE, i + 1, t->jt, t->jf);
    return 1;
}

static int insn(emitter *e, const mapi_bpf_insn *p, uint32_t i, const analysis *an)
{
    uint32_t k = p->k;
    int32_t mem = 4 * (int32_t)(k & 15);
    switch (p->code) {
    case 0x06: if (k) accept(e); else go(e, TO_NEXT); break;
    case 0x16: op_r(e, 0, 0x85, 1, A_, A_); jump(e, CC_E, TO_NEXT); accept(e); break;
    case 0x20: packet_load(e, A_, 4, 0, k, an, i); break;
    case 0x28: packet_load(e, A_, 2, 0, k, an, i); break;
    case 0x30: packet_load(e, A_, 1, 0, k, an, i); break;
    case 0x40: packet_load(e, A_, 4, 1, k, an, i); break;
    case 0x48: packet_load(e, A_, 2, 1, k, an, i); break;
    case 0x50: packet_load(e, A_, 1, 1, k, an, i); break;
    case 0xb1:                                       /* ldxb 4*([k]&0xf) */
        packet_load(e, X_, 1, 0, k, an, i);
        alu_imm(e, AND, X_, 15);
        op_r(e, 0, 0xC1, 1, 4, X_);
        b1(e, 2);
        break;
    case 0x80: case 0x81:                            /* ld/ldx #len */
        if (e->wire == RSP) op_m(e, 1, 0x8B, 1, RDX, RSP, NOIDX, 1, WIRE_SLOT);
        op_m(e, 0, 0x8B, 1, p->code == 0x80 ? A_ : X_, e->wire == RSP ? RDX : e->wire, IDX, 4, 0);
        break;
    case 0x00: mov_imm(e, A_, k); break;
    case 0x01: mov_imm(e, X_, k); break;
    case 0x60: op_m(e, 0, 0x8B, 1, A_, RSP, NOIDX, 1, mem); break;
    case 0x61: op_m(e, 0, 0x8B, 1, X_, RSP, NOIDX, 1, mem); break;
    case 0x02: op_m(e, 0, 0x89, 1, A_, RSP, NOIDX, 1, mem); break;
    case 0x03: op_m(e, 0, 0x89, 1, X_, RSP, NOIDX, 1, mem); break;
    case 0x05: go(e, target(e, (int64_t)i + 1 + (int32_t)k)); break;   /* signed, as libpcap */
    case 0x25: alu_imm(e, CMP, A_, k); branch(e, CC_A, i, p->jt, p->jf); break;
    case 0x35: alu_imm(e, CMP, A_, k); branch(e, CC_AE, i, p->jt, p->jf); break;
    case 0x15: alu_imm(e, CMP, A_, k); branch(e, CC_E, i, p->jt, p->jf); break;
    case 0x45:
        if (k <= 0xFF) { b1(e, 0xA8); b1(e, k); }   /* test al, imm8 */
        else { op_r(e, 0, 0xF7, 1, 0, A_); b4(e, k); }
        branch(e, CC_NE, i, p->jt, p->jf);
        break;
    case 0x2d: op_r(e, 0, 0x39, 1, X_, A_); branch(e, CC_A, i, p->jt, p->jf); break;
    case 0x3d: op_r(e, 0, 0x39, 1, X_, A_); branch(e, CC_AE, i, p->jt, p->jf); break;
    case 0x1d: op_r(e, 0, 0x39, 1, X_, A_); branch(e, CC_E, i, p->jt, p->jf); break;
    case 0x4d: op_r(e, 0, 0x85, 1, X_, A_); branch(e, CC_NE, i, p->jt, p->jf); break;
    case 0x04: if (k) alu_imm(e, ADD, A_, k); break;
    case 0x14: if (k) alu_imm(e, SUB, A_, k); break;
    case 0x54: alu_imm(e, AND, A_, k); break;
    case 0x44: if (k) alu_imm(e, OR, A_, k); break;
    case 0xa4: if (k) alu_imm(e, XOR, A_, k); break;
    case 0x24: op_r(e, 0, 0x69, 1, A_, A_); b4(e, k); break;        /* imul eax, eax, k */
    case 0x34: case 0x94: case 0x3c: case 0x9c: divide(e, p->code, k); break;
    case 0x64: if (k & 31) { op_r(e, 0, 0xC1, 1, 4, A_); b1(e, k & 31); } break;
    case 0x74: if (k & 31) { op_r(e, 0, 0xC1, 1, 5, A_); b1(e, k & 31); } break;
    case 0x0c: op_r(e, 0, 0x01, 1, X_, A_); break;
    case 0x1c: op_r(e, 0, 0x29, 1, X_, A_); break;
    case 0x5c: op_r(e, 0, 0x21, 1, X_, A_); break;
    case 0x4c: op_r(e, 0, 0x09, 1, X_, A_); break;
    case 0xac: op_r(e, 0, 0x31, 1, X_, A_); break;
    case 0x2c: op_r(e, 0, 0x0FAF, 2, A_, X_); break;                 /* imul eax, ecx */
    case 0x6c: shift_x(e, 4); break;
    case 0x7c: shift_x(e, 5); break;
    case 0x84: op_r(e, 0, 0xF7, 1, 3, A_); break;                   /* neg */
    case 0x07: mov32(e, X_, A_); break;                             /* tax */
    case 0x87: mov32(e, A_, X_); break;                             /* txa */
    default:
        return -1;
    }
    return 0;
}

static void prologue(emitter *e, const analysis *an)
{
    b1(e, 0x53); b1(e, 0x55);                                   /* push rbx, rbp */
    b1(e, 0x41); b1(e, 0x54); b1(e, 0x41); b1(e, 0x55);        /* push r12, r13 */
    b1(e, 0x41); b1(e, 0x56); b1(e, 0x41); b1(e, 0x57);        /* push r14, r15 */
    op_r(e, 1, 0x83, 1, SUB, RSP); b1(e, FRAME);
    op_r(e, 1, 0x89, 1, RCX, OUT);                              /* mov r12, rcx: out */
    mov32(e, RBP, RDX);                                         /* ebp = nsel */
    mov_imm(e, KEPT, 0);
    mov_imm(e, RBX, 0);
    op_m(e, 1, 0x8B, 1, BASE, RDI, NOIDX, 1, offsetof(mapi_batch, base));
    op_m(e, 1, 0x8B, 1, OFFS, RDI, NOIDX, 1, offsetof(mapi_batch, off));
    if (an->packet) {                               /* rdi: caplen; wirelen on the stack */
        e->wire = RSP;
        op_m(e, 1, 0x8B, 1, RAX, RDI, NOIDX, 1, offsetof(mapi_batch, wirelen));
        op_m(e, 1, 0x89, 1, RAX, RSP, NOIDX, 1, WIRE_SLOT);
        op_m(e, 1, 0x8B, 1, CAPS, RDI, NOIDX, 1, offsetof(mapi_batch, caplen));
    } else {                                        /* no packet bytes read: rdi is wirelen */
        e->wire = RDI;
        op_m(e, 1, 0x8B, 1, RDI, RDI, NOIDX, 1, offsetof(mapi_batch, wirelen));
    }
    op_r(e, 0, 0x85, 1, RBP, RBP);                              /* no packet: done */
    jump(e, CC_E, TO_DONE);
}

static void packet_pointer(emitter *e)
{
    op_m(e, 0, 0x8D, 1, RDX, RBX, NOIDX, 1, 4);                 /* edx = j + 4 */
    op_r(e, 0, 0x39, 1, RBP, RDX);
    b1(e, 0x73);                                                /* jae +skip (rel8) */
    uint32_t at = e->len;
    b1(e, 0);
    op_m(e, 0, 0x8B, 1, RDX, SEL, RDX, 4, 0);                   /* edx = sel[j + 4] */
    op_m(e, 1, 0x8B, 1, RDX, OFFS, RDX, 8, 0);                  /* rdx = off[edx] */
    op_m(e, 0, 0x0F18, 2, 1, BASE, RDX, 1, 0);                  /* prefetcht0 [base + rdx] */
    if (at < e->cap) e->buf[at] = (uint8_t)(e->len - at - 1);
    op_m(e, 1, 0x8B, 1, PKT, OFFS, IDX, 8, 0);                  /* r8 = off[i] */
    op_r(e, 1, 0x01, 1, BASE, PKT);                             /* r8 += base */
    op_m(e, 0, 0x8B, 1, LEN, CAPS, IDX, 4, 0);                  /* r9d = caplen[i] */
}

/* Per packet: i = sel[j]; if bytes are read, prefetch sel[j + 4]'s, p, buflen; A = X = 0
 * where read before written; scratch words read before stored = 0. */
static void packet_start(emitter *e, const analysis *an)
{
    op_m(e, 0, 0x8B, 1, IDX, SEL, RBX, 4, 0);                   /* r10d = sel[j] */
    if (an->packet)
        packet_pointer(e);
    if (an->entry_live & LIVE_A) mov_imm(e, A_, 0);
    if (an->entry_live & LIVE_X) mov_imm(e, X_, 0);
    for (int w = 0; w < 16; w++)
        if (an->zeroed & (1u << w)) {                           /* mov dword [rsp + 4w], 0 */
            op_m(e, 0, 0xC7, 1, 0, RSP, NOIDX, 1, 4 * w);
            b4(e, 0);
        }
}


static int finish(emitter *e, uint32_t loop, mapi_bpf_code *out, char *err, uint32_t errlen)
{
    uint32_t next = e->len;
    op_r(e, 0, 0xFF, 1, 0, RBX);                                /* inc ebx */
    op_r(e, 0, 0x39, 1, RBP, RBX);                              /* cmp ebx, ebp */
    b1(e, 0x0F); b1(e, 0x80 + CC_B); b4(e, loop - (e->len + 4));   /* jb loop */
    uint32_t done = e->len;
    mov32(e, RAX, KEPT);
    op_r(e, 1, 0x83, 1, ADD, RSP); b1(e, FRAME);
    b1(e, 0x41); b1(e, 0x5F); b1(e, 0x41); b1(e, 0x5E);        /* pop r15, r14 */
    b1(e, 0x41); b1(e, 0x5D); b1(e, 0x41); b1(e, 0x5C);        /* pop r13, r12 */
    b1(e, 0x5D); b1(e, 0x5B); b1(e, 0xC3);                      /* pop rbp, rbx; ret */
    if (e->failed) {
        snprintf(err, errlen, "out of memory emitting native code");
        return -1;
    }
    for (uint32_t f = 0; f < e->nfix; f++) {
        int32_t t = e->fix[f].target;
        uint32_t to = t == TO_NEXT ? next : t == TO_DONE ? done : e->label[t];
        uint32_t rel = to - (e->fix[f].at + 4);
        memcpy(e->buf + e->fix[f].at, &rel, 4);
        if (rel == 0) {                                         /* a jump to what follows */
            static const uint8_t nop6[6] = {0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00};
            int jcc = e->buf[e->fix[f].at - 1] != 0xE9;
            memcpy(e->buf + e->fix[f].at - 1 - jcc, nop6 + 1 - jcc, 5 + jcc);
        }
    }
    long page = sysconf(_SC_PAGESIZE);
    size_t size = ((size_t)e->len + page - 1) / page * page;
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        snprintf(err, errlen, "cannot map %zu bytes for native code", size);
        return -1;
    }
    memset(m, 0xCC, size);                                      /* int3 past the code */
    memcpy(m, e->buf, e->len);
    if (mprotect(m, size, PROT_READ | PROT_EXEC) < 0) {
        snprintf(err, errlen, "cannot make native code executable (mprotect refused)");
        munmap(m, size);
        return -1;
    }
    out->map = m;
    out->map_size = size;
    out->code_size = e->len;
    out->fn = (mapi_bpf_native_fn)m;
    return 0;
}

/* The program's blocks in the order the analysis chose; each instruction knows which one
 * follows it in the code, so jumps there are left out. */
static int body(emitter *e, const analysis *an, char *err, uint32_t errlen)
{
    for (uint32_t b = 0; b < an->nblocks; b++) {
        uint32_t start = an->order[b], end = start;
        if (b && target(e, start) == TO_NEXT) continue;  /* "ret #0": every jump goes past it */
        while (end + 1 < e->n && !an->leader[end + 1]) end++;
        int32_t after = TO_NEXT;
        for (uint32_t c = b + 1; c < an->nblocks && after == TO_NEXT; c++)
            after = target(e, an->order[c]);
        for (uint32_t i = start; i <= end; i++) {
            const mapi_bpf_insn *p = &e->prog[i];
            e->label[i] = e->len;
            e->nxt = i < end ? (int32_t)i + 1 : after;
            if (i < end && fused(e, e->prog, i, e->n, an, i + 1 < end ? (int32_t)i + 2 : after)) {
                i++;
                continue;
            }
            if (insn(e, p, i, an) < 0) {
                snprintf(err, errlen, "instruction %u: opcode 0x%02x is not classic BPF", i, p->code);
                return -1;
            }
            if (i == end && (p->code & 0x07) != 0x05 && p->code != 0x06 && p->code != 0x16)
                go(e, target(e, (int64_t)i + 1));    /* falls through to a block placed elsewhere */
        }
    }
    return 0;
}

int mapi_bpf_emit_supported(void) { return 1; }

int mapi_bpf_emit(const mapi_bpf_insn *prog, uint32_t len, mapi_bpf_code *out, char *err,
                  uint32_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!prog || len == 0) {
        snprintf(err, errlen, "empty program");
        return -1;
    }
    emitter e = {0};
    analysis an = {0};
    int rc = -1;
    e.prog = prog;
    e.n = len;
    e.cap = 256 + 48 * len;
    e.buf = malloc(e.cap);
    e.label = malloc((size_t)len * sizeof *e.label);
    if (!e.buf || !e.label || mapi_bpf_flow_analyse(prog, len, &an) < 0) {
        snprintf(err, errlen, "out of memory emitting native code");
        goto out;
    }
    prologue(&e, &an);
    while (e.len % 32) b1(&e, 0x90);                /* the loop starts on a fetch boundary */
    uint32_t loop = e.len;
    packet_start(&e, &an);
    if (body(&e, &an, err, errlen) == 0)
        rc = finish(&e, loop, out, err, errlen);
out:
    free(e.buf);
    free(e.label);
    free(e.fix);
    mapi_bpf_flow_free(&an);
    return rc;
}

void mapi_bpf_code_free(mapi_bpf_code *code)
{
    if (code && code->map) munmap(code->map, code->map_size);
    if (code) memset(code, 0, sizeof *code);
}

#else   /* not x86-64: the interpreter runs every program */

int mapi_bpf_emit_supported(void) { return 0; }

int mapi_bpf_emit(const mapi_bpf_insn *prog, uint32_t len, mapi_bpf_code *out, char *err,
                  uint32_t errlen)
{
    (void)prog; (void)len;
    memset(out, 0, sizeof *out);
    snprintf(err, errlen, "no native code emitter for this architecture");
    return -1;
}

void mapi_bpf_code_free(mapi_bpf_code *code) { (void)code; }
#endif
