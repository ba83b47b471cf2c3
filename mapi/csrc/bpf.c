/* Classic BPF for BPF_FILTER.
 *
 * Compilation uses the system libpcap's own pcap_compile(), so programs are byte-identical to
 * tcpdump's.  It is loaded with dlmopen() into a fresh link namespace: inside a process where
 * our libpcap shim is preloaded, libpcap's internal calls would otherwise land in the shim. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bpf.h"

#define DEFAULT_LIBPCAP "/usr/lib/x86_64-linux-gnu/libpcap.so.0.8"

struct real_bpf_program { uint32_t bf_len; mapi_bpf_insn *bf_insns; };

static pthread_mutex_t compile_lock = PTHREAD_MUTEX_INITIALIZER;
static void *real_pcap;
static void *(*real_open_dead)(int, int);
static int (*real_compile)(void *, struct real_bpf_program *, const char *, int, uint32_t);
static char *(*real_geterr)(void *);
static void (*real_close)(void *);
static void (*real_freecode)(struct real_bpf_program *);
static void *(*real_fopen_offline)(FILE *, char *);
/* the private namespace's own fmemopen: its libc rejects a FILE made by ours */
static FILE *(*real_fmemopen)(void *, size_t, const char *);

static int load_real_pcap(const char *path, char *errbuf)
{
    if (real_pcap) return 0;
    if (!path || !*path) path = DEFAULT_LIBPCAP;
    void *h = dlmopen(LM_ID_NEWLM, path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(errbuf, 256, "cannot load libpcap's filter compiler from %s: %s", path, dlerror());
        return -1;
    }
    real_open_dead = (void *(*)(int, int))dlsym(h, "pcap_open_dead");
    real_compile = (int (*)(void *, struct real_bpf_program *, const char *, int, uint32_t))
        dlsym(h, "pcap_compile");
    real_geterr = (char *(*)(void *))dlsym(h, "pcap_geterr");
    real_close = (void (*)(void *))dlsym(h, "pcap_close");
    real_freecode = (void (*)(struct real_bpf_program *))dlsym(h, "pcap_freecode");
    real_fopen_offline = (void *(*)(FILE *, char *))dlsym(h, "pcap_fopen_offline");
    real_fmemopen = (FILE *(*)(void *, size_t, const char *))dlsym(h, "fmemopen");
    if (!real_open_dead || !real_compile || !real_geterr || !real_close || !real_freecode ||
        !real_fopen_offline || !real_fmemopen) {
        snprintf(errbuf, 256, "%s does not export the pcap_compile API", path);
        dlclose(h);
        return -1;
    }
    real_pcap = h;
    return 0;
}

static int compile_on(void *p, const char *expr, int optimize, uint32_t netmask,
                      mapi_bpf_insn **prog, uint32_t *len, char *errbuf);

/* Opens the handle to compile on (arguments in a[]); NULL with errbuf set when it cannot. */
typedef void *(*open_handle_fn)(const int *a, char *errbuf);

/* Under the lock (libpcap's compiler is not thread-safe): load libpcap, open, compile. */
static int compile_with(const char *libpcap_path, open_handle_fn open_handle, const int *a,
                        const char *expr, int optimize, uint32_t netmask, mapi_bpf_insn **prog,
                        uint32_t *len, char *errbuf)
{
    int rc = -1;
    pthread_mutex_lock(&compile_lock);
    if (load_real_pcap(libpcap_path, errbuf) == 0) {
        void *p = open_handle(a, errbuf);
        if (p) rc = compile_on(p, expr, optimize, netmask, prog, len, errbuf);
    }
    pthread_mutex_unlock(&compile_lock);
    return rc;
}

/* a = {dlt, snaplen} */
static void *dead_handle(const int *a, char *errbuf)
{
    void *p = real_open_dead(a[0], a[1]);
    if (!p) snprintf(errbuf, 256, "pcap_open_dead(%d) failed", a[0]);
    return p;
}

int mapi_bpf_compile(const char *libpcap_path, int dlt, int snaplen, const char *expr,
                     int optimize, uint32_t netmask, mapi_bpf_insn **prog, uint32_t *len,
                     char *errbuf)
{
    const int a[2] = {dlt, snaplen};
    return compile_with(libpcap_path, dead_handle, a, expr, optimize, netmask, prog, len, errbuf);
}

static void put32(uint8_t *b, uint32_t v, int swapped)
{
    if (swapped) v = __builtin_bswap32(v);
    memcpy(b, &v, 4);
}

static void put16(uint8_t *b, uint16_t v, int swapped)
{
    if (swapped) v = __builtin_bswap16(v);
    memcpy(b, &v, 2);
}

/* a = {linktype, snaplen, swapped}: a savefile handle over a file header in memory */
static void *savefile_handle(const int *a, char *errbuf)
{
    static uint8_t hdr[24];                     /* (used under compile_lock) */
    int swapped = a[2];
    put32(hdr, 0xa1b2c3d4u, swapped);
    put16(hdr + 4, 2, swapped);
    put16(hdr + 6, 4, swapped);
    put32(hdr + 8, 0, swapped);
    put32(hdr + 12, 0, swapped);
    put32(hdr + 16, (uint32_t)a[1], swapped);
    put32(hdr + 20, (uint32_t)a[0], swapped);
    FILE *f = real_fmemopen(hdr, sizeof hdr, "rb");
    if (!f) {
        snprintf(errbuf, 256, "fmemopen failed");
        return NULL;
    }
    char perr[256] = "";
    void *p = real_fopen_offline(f, perr);      /* pcap_close() closes f */
    if (!p) snprintf(errbuf, 256, "%s", perr);
    return p;
}

int mapi_bpf_compile_savefile(const char *libpcap_path, int linktype, int snaplen, int swapped,
                              const char *expr, int optimize, uint32_t netmask,
                              mapi_bpf_insn **prog, uint32_t *len, char *errbuf)
{
    const int a[3] = {linktype, snaplen, swapped};
    return compile_with(libpcap_path, savefile_handle, a, expr, optimize, netmask, prog, len, errbuf);
}

/* Compile on an open handle and close it; called with compile_lock held. */
static int compile_on(void *p, const char *expr, int optimize, uint32_t netmask,
                      mapi_bpf_insn **prog, uint32_t *len, char *errbuf)
{
    int rc = -1;
    struct real_bpf_program bp = {0, NULL};
    if (real_compile(p, &bp, expr, optimize, netmask) < 0) {
        snprintf(errbuf, 256, "%s", real_geterr(p));
        real_close(p);
        return -1;
    }
    *prog = malloc((bp.bf_len ? bp.bf_len : 1) * sizeof(mapi_bpf_insn));
    if (!*prog) {
        snprintf(errbuf, 256, "out of memory");
    } else {
        memcpy(*prog, bp.bf_insns, bp.bf_len * sizeof(mapi_bpf_insn));
        *len = bp.bf_len;
        rc = 0;
    }
    real_freecode(&bp);
    real_close(p);
    return rc;
}

int mapi_linktype_to_dlt(int linktype)
{
    /* The few LINKTYPE_ values that differ from Linux's DLT_ values (pcap-common.c's table). */
    switch (linktype) {
    case 100: return 11;   /* ATM_RFC1483 */
    case 101: return 12;   /* RAW */
    case 102: return 15;   /* SLIP_BSDOS */
    case 103: return 16;   /* PPP_BSDOS */
    case 106: return 19;   /* ATM_CLIP */
    case 50:  return 50;   /* PPP_HDLC == DLT_PPP_SERIAL */
    case 51:  return 51;
    default:  return linktype;
    }
}

/* Opcode fields */
#define CLS(c)  ((c) & 0x07)
#define SIZE(c) ((c) & 0x18)
#define MODE(c) ((c) & 0xe0)
#define OP(c)   ((c) & 0xf0)
#define SRC(c)  ((c) & 0x08)
#define RVAL(c) ((c) & 0x18)
#define MISCOP(c) ((c) & 0xf8)

static inline uint32_t ld32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint32_t ld16(const uint8_t *p) { return ((uint32_t)p[0] << 8) | p[1]; }

uint32_t mapi_bpf_run(const mapi_bpf_insn *pc, const uint8_t *p, uint32_t wirelen,
                      uint32_t buflen)
{
    uint32_t A = 0, X = 0, k;
    uint32_t mem[16] = {0};        /* libpcap leaves it undefined; zero is deterministic */
    if (!pc) return (uint32_t)-1;
    for (;; pc++) {
        switch (pc->code) {
        case 0x06: return pc->k;                          /* ret #k */
        case 0x16: return A;                              /* ret a */
        case 0x20:                                        /* ld [k] */
            k = pc->k;
            if (k > buflen || 4 > buflen - k) return 0;
            A = ld32(p + k); continue;
        case 0x28:                                        /* ldh [k] */
            k = pc->k;
            if (k > buflen || 2 > buflen - k) return 0;
            A = ld16(p + k); continue;
        case 0x30:                                        /* ldb [k] */
            k = pc->k;
            if (k >= buflen) return 0;
            A = p[k]; continue;
        case 0x80: A = wirelen; continue;                 /* ld #len */
        case 0x81: X = wirelen; continue;                 /* ldx #len */
        case 0x40:                                        /* ld [x+k] */
            k = X + pc->k;
            if (pc->k > buflen || X > buflen - pc->k || 4 > buflen - k) return 0;
            A = ld32(p + k); continue;
        case 0x48:                                        /* ldh [x+k] */
            k = X + pc->k;
            if (X > buflen || pc->k > buflen - X || 2 > buflen - k) return 0;
            A = ld16(p + k); continue;
        case 0x50:                                        /* ldb [x+k] */
            k = X + pc->k;
            if (pc->k >= buflen || X >= buflen - pc->k) return 0;
            A = p[k]; continue;
        case 0xb1:                                        /* ldxb 4*([k]&0xf) */
            k = pc->k;
            if (k >= buflen) return 0;
            X = (p[k] & 0xf) << 2; continue;
        case 0x00: A = pc->k; continue;                   /* ld #k */
        case 0x01: X = pc->k; continue;                   /* ldx #k */
        case 0x60: A = mem[pc->k & 15]; continue;         /* ld M[k] */
        case 0x61: X = mem[pc->k & 15]; continue;         /* ldx M[k] */
        case 0x02: mem[pc->k & 15] = A; continue;         /* st M[k] */
        case 0x03: mem[pc->k & 15] = X; continue;         /* stx M[k] */
        case 0x05: pc += (int32_t)pc->k; continue;        /* ja: signed, as libpcap (protochain loops) */
        case 0x25: pc += (A > pc->k) ? pc->jt : pc->jf; continue;
        case 0x35: pc += (A >= pc->k) ? pc->jt : pc->jf; continue;
        case 0x15: pc += (A == pc->k) ? pc->jt : pc->jf; continue;
        case 0x45: pc += (A & pc->k) ? pc->jt : pc->jf; continue;
        case 0x2d: pc += (A > X) ? pc->jt : pc->jf; continue;
        case 0x3d: pc += (A >= X) ? pc->jt : pc->jf; continue;
        case 0x1d: pc += (A == X) ? pc->jt : pc->jf; continue;
        case 0x4d: pc += (A & X) ? pc->jt : pc->jf; continue;
        case 0x0c: A += X; continue;
        case 0x1c: A -= X; continue;
        case 0x2c: A *= X; continue;
        case 0x3c: if (X == 0) return 0; A /= X; continue;
        case 0x9c: if (X == 0) return 0; A %= X; continue;
        case 0x5c: A &= X; continue;
        case 0x4c: A |= X; continue;
        case 0xac: A ^= X; continue;
        case 0x6c: A = X < 32 ? A << X : 0; continue;
        case 0x7c: A = X < 32 ? A >> X : 0; continue;
        case 0x04: A += pc->k; continue;
        case 0x14: A -= pc->k; continue;
        case 0x24: A *= pc->k; continue;
        case 0x34: if (pc->k == 0) return 0; A /= pc->k; continue;
        case 0x94: if (pc->k == 0) return 0; A %= pc->k; continue;
        case 0x54: A &= pc->k; continue;
        case 0x44: A |= pc->k; continue;
        case 0xa4: A ^= pc->k; continue;
        /* by a constant: libpcap shifts by the raw amount, which x86 takes modulo 32 */
        case 0x64: A <<= (pc->k & 31); continue;
        case 0x74: A >>= (pc->k & 31); continue;
        case 0x84: A = -A; continue;
        case 0x07: X = A; continue;                       /* tax */
        case 0x87: A = X; continue;                       /* txa */
        default: return 0;
        }
    }
}

int mapi_bpf_validate(const mapi_bpf_insn *f, uint32_t len)
{
    if (len < 1) return 0;
    for (uint32_t i = 0; i < len; i++) {
        const mapi_bpf_insn *p = &f[i];
        switch (CLS(p->code)) {
        case 0x00: case 0x01:                             /* LD, LDX */
            switch (MODE(p->code)) {
            case 0x00: case 0x20: case 0x40: case 0xa0: case 0x80:   /* imm abs ind msh len */
                break;
            case 0x60:                                    /* mem */
                if (p->k >= 16) return 0;
                break;
            default:
                return 0;
            }
            break;
        case 0x02: case 0x03:                             /* ST, STX */
            if (p->k >= 16) return 0;
            break;
        case 0x04:                                        /* ALU */
            switch (OP(p->code)) {
            case 0x00: case 0x10: case 0x20: case 0x40: case 0x50: case 0xa0: case 0x60:
            case 0x70: case 0x80:                         /* add sub mul or and xor lsh rsh neg */
                break;
            case 0x30: case 0x90:                         /* div mod */
                if (SRC(p->code) == 0 && p->k == 0) return 0;
                break;
            default:
                return 0;
            }
            break;
        case 0x05: {                                      /* JMP */
            /* libpcap's arithmetic: a `ja` may wrap around to jump backwards (protochain) */
            uint32_t from = i + 1;
            switch (OP(p->code)) {
            case 0x00:
                if (from + p->k >= len) return 0;
                break;
            case 0x10: case 0x20: case 0x30: case 0x40:  /* jeq jgt jge jset */
                if (from + p->jt >= len || from + p->jf >= len) return 0;
                break;
            default:
                return 0;
            }
            break;
        }
        default:                                          /* RET, MISC */
            break;
        }
    }
    return CLS(f[len - 1].code) == 0x06;
}

uint32_t mapi_bpf_kernel(void *state, const mapi_batch *b, const uint32_t *sel, uint32_t nsel,
                         uint32_t *out)
{
    mapi_bpf_state *st = state;
    const mapi_bpf_insn *prog = NULL;
    mapi_bpf_native_fn native = NULL;
    int found = 0;
    for (uint32_t i = 0; i < st->nprog; i++)
        if (st->linktype[i] == b->linktype) {
            prog = st->prog[i];
            native = __atomic_load_n(&st->native[i], __ATOMIC_ACQUIRE);
            found = 1;
            break;
        }
    if (!found) { st->missing_linktype = 1; return 0; }
    if (!prog) return 0;
    if (native) return native(b, sel, nsel, out);
    uint32_t n = 0;
    const uint8_t *base = b->base;
    for (uint32_t j = 0; j < nsel; j++) {
        uint32_t i = sel[j];
        if (j + 4 < nsel) __builtin_prefetch(base + b->off[sel[j + 4]]);
        if (mapi_bpf_run(prog, base + b->off[i], b->wirelen[i], b->caplen[i]))
            out[n++] = i;
    }
    return n;
}
