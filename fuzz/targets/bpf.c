/* libFuzzer target: classic BPF validation and interpretation, three ways.
 *
 * The engine's (mapi/csrc/bpf.c: mapi_bpf_validate, mapi_bpf_run), the libpcap drop-in's
 * (libpcap_shim/csrc/bpf.c: bpf_validate, bpf_filter) and the stock libpcap's (loaded with
 * dlmopen() in a namespace of its own) must accept the same programs and, on valid ones, return
 * the same value for the same packet.  Input: byte 0 = instruction count, byte 1 = extra wire
 * length, then the instructions (8 bytes each, host order), then the packet.  Scratch memory is
 * zeroed by a prefix of stores first, since libpcap leaves it undefined. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bpf.h"              /* the engine's */
#include "shim.h"             /* the drop-in's (pcap/bpf.h) */

#define PREFIX 17             /* ld #0; st M[0] .. st M[15] */
#define MAX_INSNS 256

static u_int (*real_filter)(const struct bpf_insn *, const u_char *, u_int, u_int);
static int (*real_validate)(const struct bpf_insn *, int);

static void load(void)
{
    void *h = dlmopen(LM_ID_NEWLM, "/usr/lib/x86_64-linux-gnu/libpcap.so.0.8", RTLD_NOW | RTLD_LOCAL);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); abort(); }
    real_filter = dlsym(h, "bpf_filter");
    real_validate = dlsym(h, "bpf_validate");
    if (!real_filter || !real_validate) abort();
}

/* The codes libpcap 1.10's bpf_filter() has a case for. */
static int libpcap_runs(uint16_t code)
{
    static const uint16_t codes[] = {
        0x06, 0x16, 0x20, 0x28, 0x30, 0x80, 0x81, 0x40, 0x48, 0x50, 0xb1, 0x00, 0x01, 0x60, 0x61,
        0x02, 0x03, 0x05, 0x25, 0x35, 0x15, 0x45, 0x2d, 0x3d, 0x1d, 0x4d, 0x0c, 0x1c, 0x2c, 0x3c,
        0x9c, 0x5c, 0x4c, 0xac, 0x6c, 0x7c, 0x04, 0x14, 0x24, 0x34, 0x94, 0x54, 0x44, 0xa4, 0x64,
        0x74, 0x84, 0x07, 0x87};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (codes[i] == code) return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!real_filter) load();
    if (size < 2) return 0;
    uint32_t n = data[0] % MAX_INSNS + 1, extra = data[1];
    data += 2;
    size -= 2;
    if (size < n * 8) n = (uint32_t)(size / 8);
    if (n == 0) return 0;
    struct bpf_insn *prog = malloc((PREFIX + n) * sizeof *prog);
    prog[0] = (struct bpf_insn){0x00, 0, 0, 0};
    for (int i = 0; i < 16; i++) prog[1 + i] = (struct bpf_insn){0x02, 0, 0, (bpf_u_int32)i};
    memcpy(prog + PREFIX, data, n * 8);
    data += n * 8;
    size -= n * 8;
    /* the validators, on the program as given */
    int v_engine = mapi_bpf_validate((const mapi_bpf_insn *)(prog + PREFIX), n);
    int v_shim = bpf_validate(prog + PREFIX, (int)n);
    int v_real = real_validate(prog + PREFIX, (int)n);
    if (v_engine != v_real || v_shim != v_real) {
        fprintf(stderr, "validate: engine %d shim %d libpcap %d\n", v_engine, v_shim, v_real);
        __builtin_trap();
    }
    /* a `ja` that wraps around jumps backwards (libpcap's protochain code): such a program may
     * loop for ever in every interpreter, so it is validated but not run */
    int backwards = 0;
    for (uint32_t i = 0; i < n; i++)
        backwards |= prog[PREFIX + i].code == 0x05 && i + 1 + prog[PREFIX + i].k < i + 1;
    if (v_real && !backwards) {
        /* the packet in an allocation of its own size: ASan sees any read past it */
        uint8_t *pkt = malloc(size ? size : 1);
        memcpy(pkt, data, size);
        u_int wire = (u_int)size + extra;
        uint32_t r_engine = mapi_bpf_run((const mapi_bpf_insn *)prog, pkt, wire, (uint32_t)size);
        u_int r_shim = bpf_filter(prog, pkt, wire, (u_int)size);
        /* libpcap's bpf_filter() abort()s on codes its bpf_validate() lets through (an upper
         * byte, `ret x`, ...): such programs are compared between the engine and the drop-in */
        int known = 1;
        for (uint32_t i = 0; i < n; i++) known &= libpcap_runs(prog[PREFIX + i].code);
        u_int r_real = known ? real_filter(prog, pkt, wire, (u_int)size) : r_shim;
        if (r_engine != r_real || r_shim != r_real) {
            fprintf(stderr, "run: engine %u shim %u libpcap %u\n", r_engine, r_shim, r_real);
            __builtin_trap();
        }
        free(pkt);
    }
    free(prog);
    return 0;
}
