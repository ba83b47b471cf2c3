/* A libpcap API probe: calls the API the way applications do and prints every result, so that
 * one run against the stock libpcap and one with the shim preloaded can be compared line by
 * line (tests/test_shim_api.py).  Output must not depend on addresses, descriptors or time.
 *
 *   api_probe files FILE...      open, properties, every read style, breakloop, filters, dump
 *   api_probe dead               pcap_open_dead handles, compile errors, dump_open link types
 *   api_probe names              name tables and status texts
 *   api_probe linktypes DIR      LINKTYPE_ -> DLT_ mapping through generated savefiles in DIR
 *   api_probe bpf                bpf_filter/bpf_validate on tricky programs
 *   api_probe errors             bad file names, devices and handles
 *   api_probe stdin              a savefile read from standard input ("-")
 *   api_probe dumpfile IN OUT    pcap_dump_fopen into a stream with application writes around
 *   api_probe signal FILE        pcap_breakloop from a SIGALRM handler during pcap_loop
 *   api_probe thread FILE        pcap_breakloop from another thread during pcap_loop
 *   api_probe fork FILE          the handle opened by the parent, read by a forked child
 */
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <errno.h>
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint32_t crc(const u_char *d, u_int n)
{
    uint32_t h = 2166136261u;
    for (u_int i = 0; i < n; i++) h = (h ^ d[i]) * 16777619u;
    return h;
}

static void pkt(const char *tag, const struct pcap_pkthdr *h, const u_char *d)
{
    printf("%s %ld.%09ld %u %u %08x\n", tag, (long)h->ts.tv_sec, (long)h->ts.tv_usec, h->caplen,
           h->len, crc(d, h->caplen));
}

static void props(pcap_t *p)
{
    int *list;
    printf("datalink %d ext %#x snapshot %d swapped %d version %d.%d fileno %d selectable %s "
           "file %s precision %d\n", pcap_datalink(p), pcap_datalink_ext(p), pcap_snapshot(p),
           pcap_is_swapped(p), pcap_major_version(p), pcap_minor_version(p), pcap_fileno(p),
           pcap_get_selectable_fd(p) >= 0 ? "yes" : "no", pcap_file(p) ? "yes" : "no",
           pcap_get_tstamp_precision(p));
    if (pcap_file(p)) printf("file position %ld\n", ftell(pcap_file(p)));
    int n = pcap_list_datalinks(p, &list);
    printf("list_datalinks %d", n);
    for (int i = 0; i < n; i++) printf(" %d", list[i]);
    printf("\n");
    if (n > 0) pcap_free_datalinks(list);
    n = pcap_list_tstamp_types(p, &list);
    printf("list_tstamp_types %d", n);
    for (int i = 0; i < n; i++) printf(" %d", list[i]);
    printf("\n");
    if (n > 0) pcap_free_tstamp_types(list);
    char eb[PCAP_ERRBUF_SIZE] = "";
    printf("set_datalink same %d\n", pcap_set_datalink(p, pcap_datalink(p)));
    printf("set_datalink 147 %d %s\n", pcap_set_datalink(p, 147), pcap_geterr(p));
    printf("set_datalink 5000 %d %s\n", pcap_set_datalink(p, 5000), pcap_geterr(p));
    printf("setnonblock %d %s | %s\n", pcap_setnonblock(p, 1, eb), eb, pcap_geterr(p));
    eb[0] = 0;
    printf("getnonblock %d %s\n", pcap_getnonblock(p, eb), eb);
    struct pcap_stat st;
    printf("stats %d %s\n", pcap_stats(p, &st), pcap_geterr(p));
    printf("inject %d %s\n", pcap_inject(p, "x", 1), pcap_geterr(p));
    errno = 0;     /* libpcap formats this one with whatever errno holds */
    printf("sendpacket0 %d %s\n", pcap_sendpacket(p, (const u_char *)"x", 0), pcap_geterr(p));
    printf("sendpacket %d %s\n", pcap_sendpacket(p, (const u_char *)"x", 1), pcap_geterr(p));
    printf("setdirection %d %s\n", pcap_setdirection(p, PCAP_D_IN), pcap_geterr(p));
    printf("setdirection bad %d %s\n", pcap_setdirection(p, 7), pcap_geterr(p));
    printf("can_set_rfmon %d\n", pcap_can_set_rfmon(p));
    printf("set_snaplen %d %s\n", pcap_set_snaplen(p, 100), pcap_geterr(p));
    printf("set_promisc %d set_timeout %d set_buffer_size %d set_immediate %d set_tstamp_type %d "
           "set_tstamp_precision %d set_rfmon %d activate %d\n", pcap_set_promisc(p, 1),
           pcap_set_timeout(p, 1), pcap_set_buffer_size(p, 1), pcap_set_immediate_mode(p, 1),
           pcap_set_tstamp_type(p, 0), pcap_set_tstamp_precision(p, 1), pcap_set_rfmon(p, 1),
           pcap_activate(p));
}

static int count_cb_n;
static void count_cb(u_char *user, const struct pcap_pkthdr *h, const u_char *d)
{
    count_cb_n++;
    if (user) pkt((const char *)user, h, d);
}

static pcap_t *break_p;
static int break_after;
static void break_cb(u_char *user, const struct pcap_pkthdr *h, const u_char *d)
{
    (void)user;
    pkt("b", h, d);
    if (--break_after == 0) pcap_breakloop(break_p);
}

static pcap_t *open_file(const char *f, u_int prec)
{
    char eb[PCAP_ERRBUF_SIZE] = "";
    pcap_t *p = pcap_open_offline_with_tstamp_precision(f, prec, eb);
    if (!p) printf("open %s failed: %s\n", f, eb);
    return p;
}

static void read_next_ex(pcap_t *p)
{
    struct pcap_pkthdr *h;
    const u_char *d;
    int rc, n = 0;
    while ((rc = pcap_next_ex(p, &h, &d)) == 1) {
        pkt("x", h, d);
        n++;
    }
    printf("next_ex end %d after %d: %s\n", rc, n, rc == -1 ? pcap_geterr(p) : "");
    /* after an error libpcap goes on parsing from wherever the bad record left it: only the
     * end of the file is compared again */
    if (rc == -2) printf("next_ex again %d\n", pcap_next_ex(p, &h, &d));
}

static void one_file(const char *f)
{
    printf("== %s\n", f);
    pcap_t *p = open_file(f, PCAP_TSTAMP_PRECISION_MICRO);
    if (!p) return;
    props(p);
    read_next_ex(p);
    pcap_close(p);

    /* nanosecond view, pcap_next */
    if (!(p = open_file(f, PCAP_TSTAMP_PRECISION_NANO))) return;
    struct pcap_pkthdr h;
    const u_char *d;
    int n = 0;
    while ((d = pcap_next(p, &h)) != NULL) {
        if (n++ < 3) pkt("n", &h, d);
    }
    printf("next end after %d: %s\n", n, pcap_geterr(p));
    pcap_close(p);

    /* dispatch in small steps, loop with counts */
    if (!(p = open_file(f, PCAP_TSTAMP_PRECISION_MICRO))) return;
    int rc, steps = 0;
    count_cb_n = 0;
    while ((rc = pcap_dispatch(p, 3, count_cb, NULL)) > 0) steps++;
    printf("dispatch(3) steps %d last %d total %d\n", steps, rc, count_cb_n);
    pcap_close(p);
    if (!(p = open_file(f, PCAP_TSTAMP_PRECISION_MICRO))) return;
    count_cb_n = 0;
    rc = pcap_loop(p, 2, count_cb, NULL);
    printf("loop(2) %d", rc);
    if (rc >= 0) printf(" loop(0) %d", rc = pcap_loop(p, 0, count_cb, NULL));
    if (rc >= 0) printf(" loop(-1) %d", rc = pcap_loop(p, -1, count_cb, NULL));
    printf(" total %d\n", count_cb_n);
    pcap_close(p);
    if (rc < 0) return;     /* a damaged file: the read styles above met its error */

    /* breakloop from the callback, and before any read */
    if (!(p = open_file(f, PCAP_TSTAMP_PRECISION_MICRO))) return;
    break_p = p;
    break_after = 2;
    rc = pcap_loop(p, -1, break_cb, NULL);
    printf("loop after breakloop %d\n", rc);
    count_cb_n = 0;
    rc = pcap_loop(p, 1, count_cb, NULL);
    printf("loop again %d n %d\n", rc, count_cb_n);
    pcap_breakloop(p);
    count_cb_n = 0;
    rc = pcap_dispatch(p, -1, count_cb, NULL);
    printf("dispatch after breakloop %d n %d\n", rc, count_cb_n);
    rc = pcap_dispatch(p, -1, count_cb, NULL);
    printf("dispatch then %d n %d\n", rc, count_cb_n);
    pcap_close(p);

    /* filters: setfilter, pcap_offline_filter and bpf_filter with the same program */
    const char *exprs[] = {"tcp", "udp or arp", "len > 100", "ip6 or vlan", "", "nonsense ("};
    for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
        if (!(p = open_file(f, PCAP_TSTAMP_PRECISION_MICRO))) return;
        struct bpf_program fp;
        if (pcap_compile(p, &fp, exprs[i], 1, PCAP_NETMASK_UNKNOWN) < 0) {
            printf("compile '%s': %s\n", exprs[i], pcap_geterr(p));
            pcap_close(p);
            continue;
        }
        struct bpf_program all;
        pcap_compile(p, &all, "", 1, PCAP_NETMASK_UNKNOWN);
        pcap_setfilter(p, &all);
        struct pcap_pkthdr *hh;
        int offline = 0, bpf = 0, total = 0;
        while ((rc = pcap_next_ex(p, &hh, &d)) == 1) {
            total++;
            if (pcap_offline_filter(&fp, hh, d)) offline++;
            if (bpf_filter(fp.bf_insns, d, hh->len, hh->caplen)) bpf++;
        }
        pcap_close(p);
        if (!(p = open_file(f, PCAP_TSTAMP_PRECISION_MICRO))) return;
        printf("setfilter '%s' %d", exprs[i], pcap_setfilter(p, &fp));
        count_cb_n = 0;
        rc = pcap_loop(p, -1, count_cb, NULL);
        printf(" loop %d kept %d offline_filter %d bpf_filter %d of %d insns %u\n", rc, count_cb_n,
               offline, bpf, total, fp.bf_len);
        pcap_freecode(&fp);
        pcap_freecode(&all);
        printf("freecode %u %s\n", fp.bf_len, fp.bf_insns ? "set" : "null");
        pcap_close(p);
    }
}

static void dead(void)
{
    int dlts[] = {DLT_EN10MB, DLT_RAW, DLT_NULL, DLT_LINUX_SLL, DLT_IEEE802_11_RADIO, 13, 14, 17,
                  18, 106, 147, 162, 263, 290, 291, 5000, -1};
    for (int i = 0; dlts[i] != -1; i++) {
        pcap_t *p = pcap_open_dead(dlts[i], 65535);
        printf("== dead %d\n", dlts[i]);
        props(p);
        struct bpf_program fp;
        int rc = pcap_compile(p, &fp, "ip and tcp", 1, 0);
        printf("compile %d %s\n", rc, rc < 0 ? pcap_geterr(p) : "");
        if (rc == 0) {
            printf("setfilter %d %s\n", pcap_setfilter(p, &fp), pcap_geterr(p));
            bpf_dump(&fp, 1);
            bpf_dump(&fp, 2);
            bpf_dump(&fp, 3);
            pcap_freecode(&fp);
        }
        count_cb_n = 0;
        printf("loop %d %s\n", pcap_loop(p, 1, count_cb, NULL), pcap_geterr(p));
        pcap_dumper_t *dp = pcap_dump_open(p, "/dev/null");
        printf("dump_open %s %s\n", dp ? "ok" : "failed", dp ? "" : pcap_geterr(p));
        if (dp) pcap_dump_close(dp);
        FILE *f = tmpfile();
        dp = pcap_dump_fopen(p, f);
        if (dp) {
            pcap_dump_flush(dp);
            printf("dump_fopen ftell %ld\n", pcap_dump_ftell(dp));
            rewind(f);
            unsigned char hdr[24];
            size_t got = fread(hdr, 1, 24, f);
            printf("header");
            for (size_t j = 0; j < got; j++) printf(" %02x", hdr[j]);
            printf("\n");
            pcap_dump_close(dp);
        } else {
            printf("dump_fopen failed %s\n", pcap_geterr(p));
            fclose(f);
        }
        pcap_close(p);
    }
    pcap_t *p = pcap_open_dead_with_tstamp_precision(DLT_EN10MB, 262144, PCAP_TSTAMP_PRECISION_NANO);
    printf("nano dead precision %d\n", pcap_get_tstamp_precision(p));
    const char *bad[] = {"tcp port", "host nonsense.invalid", "ether proto 99999999", "ip6 protochain 6",
                         "inbound", "ip broadcast", "vlan 5000", "portrange 5-1", "len > ", NULL};
    for (int i = 0; bad[i]; i++) {
        struct bpf_program fp;
        int rc = pcap_compile(p, &fp, bad[i], 1, 0xffffff00);
        printf("compile '%s' %d %s insns %u\n", bad[i], rc, rc < 0 ? pcap_geterr(p) : "",
               rc == 0 ? fp.bf_len : 0);
        if (rc == 0) pcap_freecode(&fp);
    }
    struct bpf_program fp;
    printf("nopcap %d", pcap_compile_nopcap(96, DLT_EN10MB, &fp, "udp", 0, 0));
    printf(" %u\n", fp.bf_len);
    pcap_freecode(&fp);
    pcap_close(p);
}

static void names(void)
{
    for (int v = -2; v < 300; v++) {
        const char *n = pcap_datalink_val_to_name(v);
        const char *d = pcap_datalink_val_to_description(v);
        if (n || d) printf("dlt %d %s | %s | %d\n", v, n ? n : "-", d ? d : "-",
                           n ? pcap_datalink_name_to_val(n) : -9);
        if (v < 3 || v == 5000) printf("or_dlt %d %s\n", v, pcap_datalink_val_to_description_or_dlt(v));
    }
    printf("or_dlt 5000 %s\n", pcap_datalink_val_to_description_or_dlt(5000));
    const char *dn[] = {"en10mb", "EN10MB", "DLT_EN10MB", "raw", "Linux_SLL", "", "x", NULL};
    for (int i = 0; dn[i]; i++) printf("name_to_val %s %d\n", dn[i], pcap_datalink_name_to_val(dn[i]));
    for (int v = -1; v < 8; v++) {
        const char *n = pcap_tstamp_type_val_to_name(v), *d = pcap_tstamp_type_val_to_description(v);
        printf("tstamp %d %s | %s | %d\n", v, n ? n : "-", d ? d : "-",
               n ? pcap_tstamp_type_name_to_val(n) : -9);
    }
    printf("tstamp host %d HOST %d x %d\n", pcap_tstamp_type_name_to_val("host"),
           pcap_tstamp_type_name_to_val("HOST"), pcap_tstamp_type_name_to_val("x"));
    for (int s = -14; s < 5; s++) printf("status %d %s\n", s, pcap_statustostr(s));
    printf("strerror %s | %s\n", pcap_strerror(ENOENT), pcap_strerror(EPERM));
    printf("version %s\n", pcap_lib_version());
}

static void linktypes(const char *dir)
{
    for (int lt = 0; lt < 300; lt++) {
        char path[512];
        snprintf(path, sizeof path, "%s/lt%d.pcap", dir, lt);
        FILE *f = fopen(path, "wb");
        uint32_t hdr[6] = {0xa1b2c3d4u, 2u | (4u << 16), 0, 0, 0, (uint32_t)lt};
        hdr[4] = lt == 7 ? 0 : 1u << 20;     /* unset and oversized snapshot lengths too */
        fwrite(hdr, sizeof hdr, 1, f);
        fclose(f);
        char eb[PCAP_ERRBUF_SIZE];
        pcap_t *p = pcap_open_offline(path, eb);
        if (!p) {
            printf("lt %d: %s\n", lt, eb);
            continue;
        }
        printf("lt %d -> dlt %d snapshot %d", lt, pcap_datalink(p), pcap_snapshot(p));
        pcap_dumper_t *dp = pcap_dump_open(p, "/dev/null");
        printf(" dump %s\n", dp ? "ok" : pcap_geterr(p));
        if (dp) pcap_dump_close(dp);
        pcap_close(p);
        unlink(path);
    }
}

static void bpf(void)
{
    static const u_char pkt1[] = {0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0,
                                  10, 0, 0, 1, 10, 0, 0, 2, 0x1f, 0x90, 0, 80};
    struct bpf_insn progs[][6] = {
        {BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 20), BPF_STMT(BPF_RET | BPF_A, 0)},
        {BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 21), BPF_STMT(BPF_RET | BPF_K, 7)},
        {BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 23), BPF_STMT(BPF_RET | BPF_A, 0)},
        {BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0), BPF_STMT(BPF_RET | BPF_A, 0)},
        {BPF_STMT(BPF_LDX | BPF_MSH | BPF_B, 0), BPF_STMT(BPF_LD | BPF_H | BPF_IND, 2),
         BPF_STMT(BPF_RET | BPF_A, 0)},
        {BPF_STMT(BPF_LDX | BPF_IMM, 0), BPF_STMT(BPF_LD | BPF_IMM, 5),
         BPF_STMT(BPF_ALU | BPF_DIV | BPF_X, 0), BPF_STMT(BPF_RET | BPF_K, 9)},
        {BPF_STMT(BPF_LD | BPF_IMM, 0xf0f0f0f0), BPF_STMT(BPF_ALU | BPF_XOR | BPF_K, 0xffffffff),
         BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, 1000), BPF_STMT(BPF_RET | BPF_A, 0)},
        {BPF_STMT(BPF_LD | BPF_IMM, 3), BPF_STMT(BPF_ALU | BPF_NEG, 0),
         BPF_STMT(BPF_MISC | BPF_TAX, 0), BPF_STMT(BPF_MISC | BPF_TXA, 0),
         BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 4), BPF_STMT(BPF_RET | BPF_A, 0)},
        {BPF_STMT(BPF_LD | BPF_IMM, 1), BPF_STMT(BPF_ST, 3), BPF_STMT(BPF_LDX | BPF_MEM, 3),
         BPF_JUMP(BPF_JMP | BPF_JGT | BPF_X, 0, 0, 1), BPF_STMT(BPF_RET | BPF_K, 1),
         BPF_STMT(BPF_RET | BPF_K, 2)},
        {BPF_STMT(BPF_LD | BPF_B | BPF_IND, 30), BPF_STMT(BPF_RET | BPF_K, 1)},
        {BPF_STMT(BPF_LD | BPF_MEM, 16), BPF_STMT(BPF_RET | BPF_K, 1)},
        {BPF_JUMP(BPF_JMP | BPF_JA, 5, 0, 0), BPF_STMT(BPF_RET | BPF_K, 1)},
        {BPF_STMT(BPF_ALU | BPF_DIV | BPF_K, 0), BPF_STMT(BPF_RET | BPF_K, 1)},
        {BPF_STMT(BPF_LD | BPF_IMM, 1)},
    };
    int lens[] = {2, 2, 2, 2, 3, 4, 4, 6, 6, 2, 2, 2, 2, 1};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        int valid = bpf_validate(progs[i], lens[i]);
        printf("prog %zu valid %d", i, valid);
        if (valid) printf(" result %u %u", bpf_filter(progs[i], pkt1, 40, sizeof pkt1),
                          bpf_filter(progs[i], pkt1, 40, 10));
        for (int j = 0; j < lens[i]; j++) printf(" | %s", bpf_image(&progs[i][j], j));
        printf("\n");
    }
    printf("null program %u\n", bpf_filter(NULL, pkt1, 40, 24));
}

static void errors(void)
{
    char eb[PCAP_ERRBUF_SIZE];
    const char *files[] = {"/nonexistent/file.pcap", "/", "/dev/null", "/etc/hostname", NULL};
    for (int i = 0; files[i]; i++) {
        eb[0] = 0;
        pcap_t *p = pcap_open_offline(files[i], eb);
        printf("open %s: %s %s\n", files[i], p ? "ok" : "failed", eb);
        if (p) pcap_close(p);
    }
    eb[0] = 0;
    printf("open NULL: %s %s\n", pcap_open_offline(NULL, eb) ? "ok" : "failed", eb);
    eb[0] = 0;
    printf("fopen NULL: %s %s\n", pcap_fopen_offline(NULL, eb) ? "ok" : "failed", eb);
    eb[0] = 0;
    printf("open bad precision: %s %s\n",
           pcap_open_offline_with_tstamp_precision("/etc/hostname", 7, eb) ? "ok" : "failed", eb);
    eb[0] = 0;
    pcap_t *p = pcap_open_live("nosuchdev0", 100, 0, 10, eb);
    printf("open_live nosuchdev0: %s %s\n", p ? "ok" : "failed", eb);
    p = pcap_create("nosuchdev0", eb);
    printf("create %s", p ? "ok" : "failed");
    printf(" datalink %d snapshot %d", pcap_datalink(p), pcap_snapshot(p));
    struct bpf_program fp;
    printf(" compile %d %s", pcap_compile(p, &fp, "tcp", 1, 0), pcap_geterr(p));
    printf(" stats %d", pcap_stats(p, &(struct pcap_stat){0}));
    printf(" set_snaplen %d set_buffer_size %d %d set_tstamp_type %d %d set_precision %d\n",
           pcap_set_snaplen(p, 64), pcap_set_buffer_size(p, 0), pcap_set_buffer_size(p, 1 << 20),
           pcap_set_tstamp_type(p, PCAP_TSTAMP_HOST), pcap_set_tstamp_type(p, 3),
           pcap_set_tstamp_precision(p, 5));
    int rc = pcap_activate(p);
    printf("activate %d %s\n", rc, pcap_geterr(p));
    pcap_close(p);
    pcap_if_t *all;
    if (pcap_findalldevs(&all, eb) == 0) {
        int any = 0, lo = 0;
        for (pcap_if_t *d = all; d; d = d->next) {
            if (strcmp(d->name, "any") == 0) {
                any = 1;
                printf("any: %s flags %#x\n", d->description, d->flags);
            }
            if (strcmp(d->name, "lo") == 0) {
                lo = 1;
                int v4 = 0;
                for (pcap_addr_t *a = d->addresses; a; a = a->next)
                    if (a->addr && a->addr->sa_family == 2) v4++;
                printf("lo: flags %#x ipv4 %d\n", d->flags, v4);
            }
        }
        printf("findalldevs any %d lo %d\n", any, lo);
        pcap_freealldevs(all);
    }
    bpf_u_int32 net, mask;
    printf("lookupnet any %d %u %u\n", pcap_lookupnet("any", &net, &mask, eb), net, mask);
    printf("lookupnet lo %d %08x %08x\n", pcap_lookupnet("lo", &net, &mask, eb), net, mask);
    eb[0] = 0;
    printf("lookupnet nosuchdev0 %d %s\n", pcap_lookupnet("nosuchdev0", &net, &mask, eb), eb);
}

static void from_stdin(void)
{
    char eb[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline("-", eb);
    if (!p) {
        printf("stdin: %s\n", eb);
        return;
    }
    props(p);
    read_next_ex(p);
    printf("file is stdin %d\n", pcap_file(p) == stdin);
    pcap_close(p);
}

static void dumpfile(const char *in, const char *out)
{
    pcap_t *p = open_file(in, PCAP_TSTAMP_PRECISION_MICRO);
    if (!p) return;
    FILE *f = fopen(out, "wb");
    fputs("APPLICATION PREFIX\n", f);
    pcap_dumper_t *dp = pcap_dump_fopen(p, f);
    printf("dump_file same %d\n", pcap_dump_file(dp) == f);
    struct pcap_pkthdr *h;
    const u_char *d;
    while (pcap_next_ex(p, &h, &d) == 1) {
        pcap_dump((u_char *)dp, h, d);
        printf("ftell %ld %lld\n", pcap_dump_ftell(dp), (long long)pcap_dump_ftell64(dp));
    }
    printf("flush %d\n", pcap_dump_flush(dp));
    fputs("APPLICATION SUFFIX\n", f);
    pcap_dump_close(dp);
    pcap_close(p);
    /* append to it: the prefix makes it "not a pcap file", then a proper file */
    p = open_file(in, PCAP_TSTAMP_PRECISION_MICRO);
    dp = pcap_dump_open_append(p, out);
    printf("append to prefixed: %s %s\n", dp ? "ok" : "failed", dp ? "" : pcap_geterr(p));
    if (dp) pcap_dump_close(dp);
    unlink(out);
    dp = pcap_dump_open_append(p, out);
    printf("append new: %s\n", dp ? "ok" : "failed");
    if (dp) pcap_dump_close(dp);
    dp = pcap_dump_open_append(p, out);
    printf("append again: %s\n", dp ? "ok" : "failed");
    while (dp && pcap_next_ex(p, &h, &d) == 1) pcap_dump((u_char *)dp, h, d);
    if (dp) pcap_dump_close(dp);
    pcap_close(p);
    p = pcap_open_dead(DLT_RAW, 100);
    dp = pcap_dump_open_append(p, out);
    printf("append other linktype: %s %s\n", dp ? "ok" : "failed", dp ? "" : pcap_geterr(p));
    pcap_close(p);
}

static int count_packets(const char *f)
{
    pcap_t *p = open_file(f, PCAP_TSTAMP_PRECISION_MICRO);
    struct pcap_pkthdr *h;
    const u_char *d;
    int n = 0;
    while (p && pcap_next_ex(p, &h, &d) == 1) n++;
    if (p) pcap_close(p);
    return n;
}

static pcap_t *async_p;
static volatile int slow_n;
static void (*arm_break)(void);   /* started by the first callback: the loop is busy by then */
static void slow_cb(u_char *user, const struct pcap_pkthdr *h, const u_char *d)
{
    (void)user, (void)h, (void)d;
    if (slow_n++ == 0 && arm_break) arm_break();
    usleep(3000);
}

static void on_alarm(int sig)
{
    (void)sig;
    pcap_breakloop(async_p);
}

static void *break_later(void *arg)
{
    (void)arg;
    usleep(50000);
    pcap_breakloop(async_p);
    return NULL;
}

static pthread_t break_thread;
static void arm_thread(void)
{
    pthread_create(&break_thread, NULL, break_later, NULL);
}

static void arm_timer(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 0}, {0, 50000}};
    setitimer(ITIMER_REAL, &it, NULL);
}

/* Interrupt a slow pcap_loop from a signal handler or a thread: it returns -2 early, and the
 * packets left are all still there for the next pcap_loop. */
static void interrupted(const char *f, int use_thread)
{
    int total = count_packets(f);
    async_p = open_file(f, PCAP_TSTAMP_PRECISION_MICRO);
    if (!async_p) return;
    slow_n = 0;
    arm_break = use_thread ? arm_thread : arm_timer;
    int rc = pcap_loop(async_p, -1, slow_cb, NULL);
    arm_break = NULL;
    if (use_thread) pthread_join(break_thread, NULL);
    printf("%s: loop %d early %d\n", use_thread ? "thread" : "signal", rc, slow_n > 0 && slow_n < total);
    count_cb_n = 0;
    rc = pcap_loop(async_p, -1, count_cb, NULL);
    printf("rest: loop %d all there %d\n", rc, slow_n + count_cb_n == total);
    pcap_close(async_p);
}

static void forked(const char *f)
{
    pcap_t *p = open_file(f, PCAP_TSTAMP_PRECISION_MICRO);
    if (!p) return;
    struct bpf_program fp;
    pcap_compile(p, &fp, "tcp", 1, PCAP_NETMASK_UNKNOWN);
    pcap_setfilter(p, &fp);
    pid_t pid = fork();
    if (pid == 0) {
        count_cb_n = 0;
        int rc = pcap_loop(p, -1, count_cb, NULL);
        printf("child: loop %d packets %d\n", rc, count_cb_n);
        pcap_close(p);
        exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("parent: child exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    pcap_freecode(&fp);
    pcap_close(p);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) return 2;
    if (strcmp(argv[1], "files") == 0)
        for (int i = 2; i < argc; i++) one_file(argv[i]);
    else if (strcmp(argv[1], "dead") == 0) dead();
    else if (strcmp(argv[1], "names") == 0) names();
    else if (strcmp(argv[1], "linktypes") == 0 && argc > 2) linktypes(argv[2]);
    else if (strcmp(argv[1], "bpf") == 0) bpf();
    else if (strcmp(argv[1], "errors") == 0) errors();
    else if (strcmp(argv[1], "stdin") == 0) from_stdin();
    else if (strcmp(argv[1], "dumpfile") == 0 && argc > 3) dumpfile(argv[2], argv[3]);
    else if (strcmp(argv[1], "signal") == 0 && argc > 2) interrupted(argv[2], 0);
    else if (strcmp(argv[1], "thread") == 0 && argc > 2) interrupted(argv[2], 1);
    else if (strcmp(argv[1], "fork") == 0 && argc > 2) forked(argv[2]);
    else return 2;
    return 0;
}
