/* Server mode: what pcap_compile() compiled (program bytes -> expression), and where a program
 * the application sets runs.  A program mapid's BPF_FILTER would compile to the very same
 * instructions (libpcap's compiler on a savefile header of the device's link type, its snapshot
 * length and byte order, optimised, netmask unknown: mapi/bpf.py) runs in mapid; one that differs
 * only by the optimisation flag runs there too and is re-checked here; anything else (hand-made
 * programs, another netmask, savefile-specific code) runs here alone, in C.  The same rule as
 * the in-process drop-in's filters.py. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "shim.h"

#define MAX_PROGRAMS 64

struct program {
    struct program *next;
    uint32_t n;
    struct bpf_insn *code;
    char *expr;
    int optimize;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct program *programs;
static int count;

void shim_programs_remember(const struct bpf_insn *code, uint32_t n, const char *expr, int optimize)
{
    struct program *pr = calloc(1, sizeof *pr);
    if (!pr) return;
    pr->code = malloc((n ? n : 1) * sizeof *code);
    pr->expr = strdup(expr);
    if (!pr->code || !pr->expr) {
        free(pr->code);
        free(pr->expr);
        free(pr);
        return;
    }
    memcpy(pr->code, code, n * sizeof *code);
    pr->n = n;
    pr->optimize = optimize;
    pthread_mutex_lock(&lock);
    pr->next = programs;
    programs = pr;
    if (++count > MAX_PROGRAMS) {          /* the oldest goes: its program then runs here */
        struct program **at = &programs;
        while ((*at)->next) at = &(*at)->next;
        free((*at)->code);
        free((*at)->expr);
        free(*at);
        *at = NULL;
        count--;
    }
    pthread_mutex_unlock(&lock);
}

/* The expression and optimisation flag behind a program (a copy of the expression), or NULL. */
static char *lookup(const struct bpf_insn *code, uint32_t n, int *optimize)
{
    char *expr = NULL;
    pthread_mutex_lock(&lock);
    for (struct program *pr = programs; pr; pr = pr->next) {
        if (pr->n == n && memcmp(pr->code, code, n * sizeof *code) == 0) {
            expr = strdup(pr->expr);
            *optimize = pr->optimize;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    return expr;
}

/* A one-instruction `ret #k` with k > 0 (tcpdump's empty filter). */
static int accepts_all(const struct bpf_insn *code, uint32_t n)
{
    return n == 1 && code[0].code == (BPF_RET | BPF_K) && code[0].k != 0;
}

/* Does BPF_FILTER compile `expr` to exactly this program?  1 yes, 0 no, -1 it cannot compile it
 * (err says why). */
static int same_program(const char *expr, int optimize, int linktype, int snaplen, int swapped,
                        const struct bpf_insn *code, uint32_t n, char *err)
{
    uintptr_t insns = 0;
    uint32_t len = 0;
    if (shim_savefile_compile(linktype, snaplen, swapped, expr, optimize, PCAP_NETMASK_UNKNOWN,
                              &insns, &len, err) < 0)
        return -1;
    int same = len == n && memcmp((void *)insns, code, n * sizeof *code) == 0;
    free((void *)insns);
    return same;
}

int shim_programs_place(const struct bpf_insn *code, uint32_t n, int linktype, int snaplen,
                        int swapped, const char **where, const char **expr_out, char *note,
                        size_t notesize)
{
    static __thread char *expr_kept;
    *expr_out = NULL;
    note[0] = '\0';
    if (accepts_all(code, n)) {
        *where = "none";
        return 0;
    }
    int optimize = 1;
    char *expr = lookup(code, n, &optimize);
    if (!expr) {
        *where = "shim";
        snprintf(note, notesize, "program not compiled by pcap_compile; run in the shim");
        return 1;
    }
    char err[PCAP_ERRBUF_SIZE] = "";
    if (snaplen <= 0) snaplen = SHIM_MAX_SNAPLEN;
    int same = same_program(expr, 1, linktype, snaplen, swapped, code, n, err);
    if (same == 0 && optimize != 1)
        *where = same_program(expr, optimize, linktype, snaplen, swapped, code, n, err) == 1
                 ? "mapi+shim" : "shim";
    else
        *where = same == 1 ? "mapi" : "shim";
    if (strcmp(*where, "shim") == 0) {
        snprintf(note, notesize, "BPF_FILTER would not run this very program (%s); run in the shim",
                 err[0] ? err : "libpcap compiles it differently for this handle");
        free(expr);
        return 1;
    }
    free(expr_kept);                 /* the caller copies it before the next call */
    expr_kept = expr;
    *expr_out = expr;
    return strcmp(*where, "mapi") != 0;
}
