/* Classic BPF: libpcap's compiler (loaded privately) and an interpreter kernel. */
#ifndef MAPI_BPF_H
#define MAPI_BPF_H
#include <stdint.h>
#include "engine.h"

typedef struct mapi_bpf_insn {
    uint16_t code;
    uint8_t jt;
    uint8_t jf;
    uint32_t k;
} mapi_bpf_insn;

/* Compile `expr` with the system libpcap's pcap_compile for DLT `dlt`.  On success returns 0 and
 * a malloc'd program in *prog (free with free()); on failure -1 and libpcap's message in errbuf
 * (at least 256 bytes).  Thread-safe.  `libpcap_path` NULL means the default path. */
int mapi_bpf_compile(const char *libpcap_path, int dlt, int snaplen, const char *expr,
                     int optimize, uint32_t netmask, mapi_bpf_insn **prog, uint32_t *len,
                     char *errbuf);
/* The same, compiled the way tcpdump -r compiles it: against a savefile whose header has this
 * LINKTYPE_* value and snaplen, in this byte order (libpcap's code for DLT_NULL/LOOP tests
 * address-family values in the file's byte order).  Preferred for every offline device. */
int mapi_bpf_compile_savefile(const char *libpcap_path, int linktype, int snaplen, int swapped,
                              const char *expr, int optimize, uint32_t netmask,
                              mapi_bpf_insn **prog, uint32_t *len, char *errbuf);
/* LINKTYPE_* (file header value) to the DLT_* value libpcap's API uses. */
int mapi_linktype_to_dlt(int linktype);

/* Run a program over one packet exactly as libpcap's bpf_filter() does: returns the accepted
 * length (0 = reject).  Out-of-bounds loads and division by zero reject the packet. */
uint32_t mapi_bpf_run(const mapi_bpf_insn *pc, const uint8_t *p, uint32_t wirelen,
                      uint32_t caplen);
/* Check a program the way libpcap's bpf_validate() does: 1 valid, 0 invalid. */
int mapi_bpf_validate(const mapi_bpf_insn *f, uint32_t len);

/* A program compiled to native code (mapi/bpf_jit.py): the whole batch loop. */
typedef uint32_t (*mapi_bpf_native_fn)(const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                                       uint32_t *out);

/* BPF_FILTER's kernel state: one program per link type seen so far. */
#define MAPI_BPF_MAX_LINKTYPES 8
typedef struct mapi_bpf_state {
    int32_t linktype[MAPI_BPF_MAX_LINKTYPES];
    mapi_bpf_insn *prog[MAPI_BPF_MAX_LINKTYPES];   /* NULL: this link type matches nothing */
    mapi_bpf_native_fn native[MAPI_BPF_MAX_LINKTYPES]; /* set once compiled; NULL: interpret */
    uint32_t nprog;
    uint32_t missing_linktype;                       /* set when a batch had an unknown type */
} mapi_bpf_state;

uint32_t mapi_bpf_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                         uint32_t *out);
#endif
