/* pcap_compile() for savefile handles.
 *
 * libpcap's code generator looks at the handle, not only at the link type: on a savefile it
 * matches every platform's AF_INET6 value for DLT_NULL/DLT_ENC and reads the link-layer word in
 * the file's byte order.  The engine's compiler uses a pcap_open_dead() handle, so for savefile
 * handles we compile against a real savefile handle instead: the system libpcap, loaded with
 * dlmopen() into a namespace of its own (its internal calls must not land in this shim), opens
 * a header-only savefile built in memory with the application's link type, snapshot length and
 * byte order. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "shim.h"

#define SYSTEM_LIBPCAP "/usr/lib/x86_64-linux-gnu/libpcap.so.0.8"

struct real_program { u_int bf_len; struct bpf_insn *bf_insns; };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *ns;
static FILE *(*ns_fmemopen)(void *, size_t, const char *);
static void *(*ns_fopen_offline)(FILE *, char *);
static void *(*ns_open_dead)(int, int);
static int (*ns_compile)(void *, struct real_program *, const char *, int, bpf_u_int32);
static char *(*ns_geterr)(void *);
static void (*ns_close)(void *);
static void (*ns_freecode)(struct real_program *);

static int load(char *errbuf)
{
    if (ns) return 0;
    void *h = dlmopen(LM_ID_NEWLM, SYSTEM_LIBPCAP, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "cannot load libpcap's filter compiler: %s", dlerror());
        return -1;
    }
    /* fmemopen of that namespace's own libc: its FILEs are the ones its libpcap can read */
    ns_fmemopen = (FILE * (*)(void *, size_t, const char *))dlsym(h, "fmemopen");
    ns_fopen_offline = (void *(*)(FILE *, char *))dlsym(h, "pcap_fopen_offline");
    ns_open_dead = (void *(*)(int, int))dlsym(h, "pcap_open_dead");
    ns_compile = (int (*)(void *, struct real_program *, const char *, int, bpf_u_int32))
        dlsym(h, "pcap_compile");
    ns_geterr = (char *(*)(void *))dlsym(h, "pcap_geterr");
    ns_close = (void (*)(void *))dlsym(h, "pcap_close");
    ns_freecode = (void (*)(struct real_program *))dlsym(h, "pcap_freecode");
    if (!ns_fmemopen || !ns_fopen_offline || !ns_open_dead || !ns_compile || !ns_geterr || !ns_close || !ns_freecode) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s lacks the functions the compiler needs", SYSTEM_LIBPCAP);
        dlclose(h);
        return -1;
    }
    ns = h;
    return 0;
}

static uint32_t order32(uint32_t v, int swapped) { return swapped ? __builtin_bswap32(v) : v; }
static uint16_t order16(uint16_t v, int swapped) { return swapped ? __builtin_bswap16(v) : v; }

/* Compile on a handle of the private libpcap and close it (lock held).  0 or -1. */
static int compile_on(void *p, const char *expr, int optimize, uint32_t netmask, uintptr_t *insns,
                      uint32_t *len, char *errbuf)
{
    int rc = -1;
    struct real_program prog = {0, NULL};
    if (ns_compile(p, &prog, expr, optimize, netmask) < 0) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", ns_geterr(p));
        ns_close(p);
        return -1;
    }
    struct bpf_insn *copy = malloc((prog.bf_len ? prog.bf_len : 1) * sizeof *copy);
    if (copy) {
        memcpy(copy, prog.bf_insns, prog.bf_len * sizeof *copy);
        *insns = (uintptr_t)copy;
        *len = prog.bf_len;
        rc = 0;
    } else {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "out of memory");
    }
    ns_freecode(&prog);
    ns_close(p);
    return rc;
}

/* Compile `expr` as libpcap does for a savefile of this link type (LINKTYPE_ value with its
 * extension bits), snapshot length and byte order.  On success the program is malloc'd here
 * and owned by the caller (pcap_freecode frees it). */
SHIM_EXPORT int shim_savefile_compile(int linktype, int snaplen, int swapped, const char *expr, int optimize,
                          uint32_t netmask, uintptr_t *insns, uint32_t *len, char *errbuf)
{
    int rc = -1;
    pthread_mutex_lock(&lock);
    if (load(errbuf) < 0) goto out;
    uint8_t header[24];
    uint32_t magic = order32(0xa1b2c3d4u, swapped), zero = 0;
    uint16_t major = order16(2, swapped), minor = order16(4, swapped);
    uint32_t snap = order32((uint32_t)snaplen, swapped), lt = order32((uint32_t)linktype, swapped);
    memcpy(header, &magic, 4);
    memcpy(header + 4, &major, 2);
    memcpy(header + 6, &minor, 2);
    memcpy(header + 8, &zero, 4);
    memcpy(header + 12, &zero, 4);
    memcpy(header + 16, &snap, 4);
    memcpy(header + 20, &lt, 4);
    FILE *f = ns_fmemopen(header, sizeof header, "rb");
    if (!f) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "fmemopen failed");
        goto out;
    }
    char err[PCAP_ERRBUF_SIZE];
    void *p = ns_fopen_offline(f, err);       /* pcap_close() closes f */
    if (!p) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", err);
        goto out;
    }
    rc = compile_on(p, expr, optimize, netmask, insns, len, errbuf);
out:
    pthread_mutex_unlock(&lock);
    return rc;
}

/* Compile `expr` as libpcap does for a capture handle of DLT `dlt` (a pcap_open_dead() handle:
 * live and dead handles).  Same ownership as shim_savefile_compile. */
int shim_dead_compile(int dlt, int snaplen, const char *expr, int optimize, uint32_t netmask,
                      uintptr_t *insns, uint32_t *len, char *errbuf)
{
    int rc = -1;
    pthread_mutex_lock(&lock);
    if (load(errbuf) == 0) {
        void *p = ns_open_dead(dlt, snaplen > 0 ? snaplen : SHIM_MAX_SNAPLEN);
        if (p) rc = compile_on(p, expr, optimize, netmask, insns, len, errbuf);
        else snprintf(errbuf, PCAP_ERRBUF_SIZE, "pcap_open_dead(%d) failed", dlt);
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

/* A copy the application owns (pcap_freecode frees it) of a program compiled by the Python half. */
SHIM_EXPORT uintptr_t shim_copy_program(const char *insns, uint32_t n)
{
    struct bpf_insn *copy = malloc((n ? n : 1) * sizeof *copy);
    if (copy) memcpy(copy, insns, n * sizeof *copy);
    return (uintptr_t)copy;
}
