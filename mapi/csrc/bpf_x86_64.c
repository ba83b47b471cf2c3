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
    int failed;
} emitter;

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

/* Keep the packet: out[kept++] = i, then the next one. */
static void accept(emitter *e)
{
    op_m(e, 0, 0x89, 1, IDX, OUT, KEPT, 4, 0);
    op_r(e, 0, 0xFF, 1, 0, KEPT);                    /* inc r13d */
    jump(e, -1, TO_NEXT);
}

static int32_t target(uint32_t n, int64_t t)
{
    return t >= 0 && t < n ? (int32_t)t : TO_NEXT;  /* off the program: reject, as before */
}

static void branch(emitter *e, int cc, uint32_t i, uint32_t n, uint8_t jt, uint8_t jf)
{
    int32_t tt = target(n, (int64_t)i + 1 + jt), tf = target(n, (int64_t)i + 1 + jf);
    if (jt == jf) {
        if (jt) jump(e, -1, tt);
    } else if (jt == 0) {
        jump(e, cc ^ 1, tf);                         /* x86 conditions pair up: cc ^ 1 negates */
    } else {
        jump(e, cc, tt);
        if (jf) jump(e, -1, tf);
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

/* A or X from the packet at [k] (absolute) or [X + k] (indirect): reject out of bounds */
static void packet_load(emitter *e, int dst, uint32_t size, int indirect, uint32_t k)
{
    if (!indirect) {
        uint64_t end = (uint64_t)k + size;
        if (end > 0xFFFFFFFFu) { jump(e, -1, TO_NEXT); return; }
        alu_imm(e, CMP, LEN, (uint32_t)end);        /* captured length < k + size */
        jump(e, CC_B, TO_NEXT);
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

static int insn(emitter *e, const mapi_bpf_insn *p, uint32_t i, uint32_t n)
{
    uint32_t k = p->k;
    int32_t mem = 4 * (int32_t)(k & 15);
    switch (p->code) {
    case 0x06: if (k) accept(e); else if (i + 1 < n) jump(e, -1, TO_NEXT); break;
    case 0x16: op_r(e, 0, 0x85, 1, A_, A_); jump(e, CC_E, TO_NEXT); accept(e); break;
    case 0x20: packet_load(e, A_, 4, 0, k); break;
    case 0x28: packet_load(e, A_, 2, 0, k); break;
    case 0x30: packet_load(e, A_, 1, 0, k); break;
    case 0x40: packet_load(e, A_, 4, 1, k); break;
    case 0x48: packet_load(e, A_, 2, 1, k); break;
    case 0x50: packet_load(e, A_, 1, 1, k); break;
    case 0xb1:                                       /* ldxb 4*([k]&0xf) */
        packet_load(e, X_, 1, 0, k);
        alu_imm(e, AND, X_, 15);
        op_r(e, 0, 0xC1, 1, 4, X_);
        b1(e, 2);
        break;
    case 0x80: case 0x81:                            /* ld/ldx #len */
        op_m(e, 1, 0x8B, 1, RDX, RSP, NOIDX, 1, WIRE_SLOT);
        op_m(e, 0, 0x8B, 1, p->code == 0x80 ? A_ : X_, RDX, IDX, 4, 0);
        break;
    case 0x00: mov_imm(e, A_, k); break;
    case 0x01: mov_imm(e, X_, k); break;
    case 0x60: op_m(e, 0, 0x8B, 1, A_, RSP, NOIDX, 1, mem); break;
    case 0x61: op_m(e, 0, 0x8B, 1, X_, RSP, NOIDX, 1, mem); break;
    case 0x02: op_m(e, 0, 0x89, 1, A_, RSP, NOIDX, 1, mem); break;
    case 0x03: op_m(e, 0, 0x89, 1, X_, RSP, NOIDX, 1, mem); break;
    case 0x05: {
        int64_t t = (int64_t)i + 1 + (int32_t)k;     /* signed, as libpcap */
        if (t != (int64_t)i + 1) jump(e, -1, target(n, t));
        break;
    }
    case 0x25: alu_imm(e, CMP, A_, k); branch(e, CC_A, i, n, p->jt, p->jf); break;
    case 0x35: alu_imm(e, CMP, A_, k); branch(e, CC_AE, i, n, p->jt, p->jf); break;
    case 0x15: alu_imm(e, CMP, A_, k); branch(e, CC_E, i, n, p->jt, p->jf); break;
    case 0x45:
        if (k <= 0xFF) { b1(e, 0xA8); b1(e, k); }   /* test al, imm8 */
        else { op_r(e, 0, 0xF7, 1, 0, A_); b4(e, k); }
        branch(e, CC_NE, i, n, p->jt, p->jf);
        break;
    case 0x2d: op_r(e, 0, 0x39, 1, X_, A_); branch(e, CC_A, i, n, p->jt, p->jf); break;
    case 0x3d: op_r(e, 0, 0x39, 1, X_, A_); branch(e, CC_AE, i, n, p->jt, p->jf); break;
    case 0x1d: op_r(e, 0, 0x39, 1, X_, A_); branch(e, CC_E, i, n, p->jt, p->jf); break;
    case 0x4d: op_r(e, 0, 0x85, 1, X_, A_); branch(e, CC_NE, i, n, p->jt, p->jf); break;
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

/* Scratch words a program may load before any store on some path (to be zeroed). */
static int uninitialised(const mapi_bpf_insn *p, uint32_t n, uint16_t *slots)
{
    uint16_t *in = malloc((size_t)n * sizeof *in);  /* words surely stored on entry to insn i */
    if (!in) return -1;
    for (uint32_t i = 0; i < n; i++) in[i] = 0xFFFF;
    in[0] = 0;
    for (uint32_t pass = 0, changed = 1; changed && pass <= n + 1; pass++) {
        changed = 0;
        for (uint32_t i = 0; i < n; i++) {
            uint16_t code = p[i].code, out = in[i];
            int64_t succ[2] = {(int64_t)i + 1, -1};
            if (code == 0x02 || code == 0x03) out |= 1u << (p[i].k & 15);
            if (code == 0x06 || code == 0x16) succ[0] = -1;
            else if (code == 0x05) succ[0] = (int64_t)i + 1 + (int32_t)p[i].k;
            else if ((code & 0x07) == 0x05) {
                succ[0] = (int64_t)i + 1 + p[i].jt;
                succ[1] = (int64_t)i + 1 + p[i].jf;
            }
            for (int s = 0; s < 2; s++)
                if (succ[s] >= 0 && succ[s] < n && (in[succ[s]] & out) != in[succ[s]]) {
                    in[succ[s]] &= out;
                    changed = 1;
                }
        }
    }
    *slots = 0;
    for (uint32_t i = 0; i < n; i++)
        if ((p[i].code == 0x60 || p[i].code == 0x61) && !(in[i] & (1u << (p[i].k & 15))))
            *slots |= 1u << (p[i].k & 15);
    free(in);
    return 0;
}

static void prologue(emitter *e)
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
    op_m(e, 1, 0x8B, 1, RAX, RDI, NOIDX, 1, offsetof(mapi_batch, wirelen));
    op_m(e, 1, 0x89, 1, RAX, RSP, NOIDX, 1, WIRE_SLOT);
    op_m(e, 1, 0x8B, 1, CAPS, RDI, NOIDX, 1, offsetof(mapi_batch, caplen));
    op_r(e, 0, 0x85, 1, RBP, RBP);                              /* no packet: done */
    jump(e, CC_E, TO_DONE);
}

/* Per packet: i = sel[j]; prefetch sel[j + 4]'s bytes; p, buflen; A = X = 0. */
static void packet_start(emitter *e, uint16_t zeroed)
{
    op_m(e, 0, 0x8B, 1, IDX, SEL, RBX, 4, 0);                   /* r10d = sel[j] */
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
    mov_imm(e, A_, 0);
    mov_imm(e, X_, 0);
    for (int w = 0; w < 16; w++)
        if (zeroed & (1u << w)) {                               /* mov dword [rsp + 4w], 0 */
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
    uint16_t zeroed;
    int rc = -1;
    e.cap = 256 + 48 * len;
    e.buf = malloc(e.cap);
    e.label = malloc((size_t)len * sizeof *e.label);
    if (!e.buf || !e.label || uninitialised(prog, len, &zeroed) < 0) {
        snprintf(err, errlen, "out of memory emitting native code");
        goto out;
    }
    prologue(&e);
    uint32_t loop = e.len;
    packet_start(&e, zeroed);
    for (uint32_t i = 0; i < len; i++) {
        e.label[i] = e.len;
        if (insn(&e, &prog[i], i, len) < 0) {
            snprintf(err, errlen, "instruction %u: opcode 0x%02x is not classic BPF", i,
                     prog[i].code);
            goto out;
        }
    }
    rc = finish(&e, loop, out, err, errlen);
out:
    free(e.buf);
    free(e.label);
    free(e.fix);
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
