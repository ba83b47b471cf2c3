/* Classic BPF for applications: compiling (libpcap's own compiler, run by the MAPI engine in a
 * private link namespace), validating, running and printing programs. */
#include <stdlib.h>
#include <string.h>
#include "shim.h"

/* ---- running: the engine's interpreter and validator (mapi/csrc/bpf.c, compiled in) ------ */

SHIM_EXPORT u_int bpf_filter(const struct bpf_insn *pc, const u_char *p, u_int wirelen, u_int buflen)
{
    return shim_bpf_run(pc, p, wirelen, buflen);
}

SHIM_EXPORT int pcap_offline_filter(const struct bpf_program *fp, const struct pcap_pkthdr *h,
                                    const u_char *pkt)
{
    if (fp->bf_insns == NULL) return 0;
    return (int)shim_bpf_run(fp->bf_insns, pkt, h->len, h->caplen);
}

/* libpcap's bpf_validate(): 1 if the program is safe to run. */
SHIM_EXPORT int bpf_validate(const struct bpf_insn *f, int len)
{
    return len >= 1 && mapi_bpf_validate((const mapi_bpf_insn *)f, (uint32_t)len);
}

/* ---- printing (tcpdump -d / -dd / -ddd) ------------------------------------------------- */

SHIM_EXPORT char *bpf_image(const struct bpf_insn *p, int n)
{
    static __thread char image[256];
    char operand[64];
    const char *op;
    const char *fmt = "";
    int v = (int)p->k;
    switch (p->code) {
    case BPF_RET | BPF_K: op = "ret"; fmt = "#%d"; break;
    case BPF_RET | BPF_A: op = "ret"; break;
    case BPF_LD | BPF_W | BPF_ABS: op = "ld"; fmt = "[%d]"; break;
    case BPF_LD | BPF_H | BPF_ABS: op = "ldh"; fmt = "[%d]"; break;
    case BPF_LD | BPF_B | BPF_ABS: op = "ldb"; fmt = "[%d]"; break;
    case BPF_LD | BPF_W | BPF_LEN: op = "ld"; fmt = "#pktlen"; break;
    case BPF_LD | BPF_W | BPF_IND: op = "ld"; fmt = "[x + %d]"; break;
    case BPF_LD | BPF_H | BPF_IND: op = "ldh"; fmt = "[x + %d]"; break;
    case BPF_LD | BPF_B | BPF_IND: op = "ldb"; fmt = "[x + %d]"; break;
    case BPF_LD | BPF_IMM: op = "ld"; fmt = "#0x%x"; break;
    case BPF_LDX | BPF_IMM: op = "ldx"; fmt = "#0x%x"; break;
    case BPF_LDX | BPF_MSH | BPF_B: op = "ldxb"; fmt = "4*([%d]&0xf)"; break;
    case BPF_LD | BPF_MEM: op = "ld"; fmt = "M[%d]"; break;
    case BPF_LDX | BPF_MEM: op = "ldx"; fmt = "M[%d]"; break;
    case BPF_ST: op = "st"; fmt = "M[%d]"; break;
    case BPF_STX: op = "stx"; fmt = "M[%d]"; break;
    case BPF_JMP | BPF_JA: op = "ja"; fmt = "%d"; v = n + 1 + (int)p->k; break;
    case BPF_JMP | BPF_JGT | BPF_K: op = "jgt"; fmt = "#0x%x"; break;
    case BPF_JMP | BPF_JGE | BPF_K: op = "jge"; fmt = "#0x%x"; break;
    case BPF_JMP | BPF_JEQ | BPF_K: op = "jeq"; fmt = "#0x%x"; break;
    case BPF_JMP | BPF_JSET | BPF_K: op = "jset"; fmt = "#0x%x"; break;
    case BPF_JMP | BPF_JGT | BPF_X: op = "jgt"; fmt = "x"; break;
    case BPF_JMP | BPF_JGE | BPF_X: op = "jge"; fmt = "x"; break;
    case BPF_JMP | BPF_JEQ | BPF_X: op = "jeq"; fmt = "x"; break;
    case BPF_JMP | BPF_JSET | BPF_X: op = "jset"; fmt = "x"; break;
    case BPF_ALU | BPF_ADD | BPF_X: op = "add"; fmt = "x"; break;
    case BPF_ALU | BPF_SUB | BPF_X: op = "sub"; fmt = "x"; break;
    case BPF_ALU | BPF_MUL | BPF_X: op = "mul"; fmt = "x"; break;
    case BPF_ALU | BPF_DIV | BPF_X: op = "div"; fmt = "x"; break;
    case BPF_ALU | BPF_MOD | BPF_X: op = "mod"; fmt = "x"; break;
    case BPF_ALU | BPF_AND | BPF_X: op = "and"; fmt = "x"; break;
    case BPF_ALU | BPF_OR | BPF_X: op = "or"; fmt = "x"; break;
    case BPF_ALU | BPF_XOR | BPF_X: op = "xor"; fmt = "x"; break;
    case BPF_ALU | BPF_LSH | BPF_X: op = "lsh"; fmt = "x"; break;
    case BPF_ALU | BPF_RSH | BPF_X: op = "rsh"; fmt = "x"; break;
    case BPF_ALU | BPF_ADD | BPF_K: op = "add"; fmt = "#%d"; break;
    case BPF_ALU | BPF_SUB | BPF_K: op = "sub"; fmt = "#%d"; break;
    case BPF_ALU | BPF_MUL | BPF_K: op = "mul"; fmt = "#%d"; break;
    case BPF_ALU | BPF_DIV | BPF_K: op = "div"; fmt = "#%d"; break;
    case BPF_ALU | BPF_MOD | BPF_K: op = "mod"; fmt = "#%d"; break;
    case BPF_ALU | BPF_AND | BPF_K: op = "and"; fmt = "#0x%x"; break;
    case BPF_ALU | BPF_OR | BPF_K: op = "or"; fmt = "#0x%x"; break;
    case BPF_ALU | BPF_XOR | BPF_K: op = "xor"; fmt = "#0x%x"; break;
    case BPF_ALU | BPF_LSH | BPF_K: op = "lsh"; fmt = "#%d"; break;
    case BPF_ALU | BPF_RSH | BPF_K: op = "rsh"; fmt = "#%d"; break;
    case BPF_ALU | BPF_NEG: op = "neg"; break;
    case BPF_MISC | BPF_TAX: op = "tax"; break;
    case BPF_MISC | BPF_TXA: op = "txa"; break;
    default: op = "unimp"; fmt = "0x%x"; v = p->code; break;
    }
    snprintf(operand, sizeof operand, fmt, v);
    if (BPF_CLASS(p->code) == BPF_JMP && BPF_OP(p->code) != BPF_JA)
        snprintf(image, sizeof image, "(%03d) %-8s %-16s jt %d\tjf %d", n, op, operand,
                 n + 1 + p->jt, n + 1 + p->jf);
    else
        snprintf(image, sizeof image, "(%03d) %-8s %s", n, op, operand);
    return image;
}

SHIM_EXPORT void bpf_dump(const struct bpf_program *p, int option)
{
    const struct bpf_insn *insn = p->bf_insns;
    int n = (int)p->bf_len;
    if (option > 2) {
        printf("%d\n", n);
        for (int i = 0; i < n; i++)
            printf("%u %u %u %u\n", insn[i].code, insn[i].jt, insn[i].jf, insn[i].k);
        return;
    }
    if (option > 1) {
        for (int i = 0; i < n; i++)
            printf("{ 0x%x, %d, %d, 0x%08x },\n", insn[i].code, insn[i].jt, insn[i].jf, insn[i].k);
        return;
    }
    for (int i = 0; i < n; i++) puts(bpf_image(&insn[i], i));
}

/* ---- compiling -------------------------------------------------------------------------- */

SHIM_EXPORT int pcap_compile(pcap_t *p, struct bpf_program *program, const char *buf, int optimize,
                             bpf_u_int32 mask)
{
    if (!p->activated) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "not-yet-activated pcap_t passed to pcap_compile");
        return PCAP_ERROR;
    }
    const struct shim_ops *ops = p->ops ? p->ops : KEEP_ERRNO(shim_ops_start(p->errbuf));
    if (!ops) return PCAP_ERROR;
    uintptr_t insns = 0;
    uint32_t len = 0;
    p->errbuf[0] = '\0';
    if (KEEP_ERRNO(ops->compile(p, buf ? buf : "", optimize, mask, &insns, &len, p->errbuf)) != 1) {
        if (!p->errbuf[0]) snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "MAPI: filter compilation failed");
        return PCAP_ERROR;
    }
    program->bf_len = len;
    program->bf_insns = (struct bpf_insn *)insns;
    return 0;
}

SHIM_EXPORT int pcap_compile_nopcap(int snaplen, int linktype, struct bpf_program *program,
                                    const char *buf, int optimize, bpf_u_int32 mask)
{
    pcap_t *p = pcap_open_dead(linktype, snaplen);
    if (p == NULL) return PCAP_ERROR;
    int rc = pcap_compile(p, program, buf, optimize, mask);
    pcap_close(p);
    return rc;
}

SHIM_EXPORT void pcap_freecode(struct bpf_program *program)
{
    program->bf_len = 0;
    free(program->bf_insns);
    program->bf_insns = NULL;
}
