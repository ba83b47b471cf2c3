/* Classic BPF to x86-64 machine code, without a compiler: BPF_FILTER's native path. */
#ifndef MAPI_BPF_X86_64_H
#define MAPI_BPF_X86_64_H
#include <stdint.h>
#include "bpf.h"

/* A program's batch kernel in an executable mapping of its own (written, then made read +
 * execute: never writable and executable at once). */
typedef struct mapi_bpf_code {
    mapi_bpf_native_fn fn;   /* the kernel: accepts exactly what mapi_bpf_run accepts */
    void *map;
    uint64_t map_size;
    uint32_t code_size;      /* bytes of machine code */
    uint32_t _pad;
} mapi_bpf_code;

/* 1 when this build can emit native code (x86-64), 0 otherwise. */
int mapi_bpf_emit_supported(void);
/* Emit the batch kernel of a program.  0 on success; -1 when the program is left to the
 * interpreter (an opcode outside classic BPF, another architecture, no memory), with the
 * reason in err. */
int mapi_bpf_emit(const mapi_bpf_insn *prog, uint32_t len, mapi_bpf_code *out, char *err,
                  uint32_t errlen);
/* Unmap the code (no kernel may be running it). */
void mapi_bpf_code_free(mapi_bpf_code *code);
#endif
