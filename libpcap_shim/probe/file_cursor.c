/* pcap_file() as the read cursor: what ftell() says after each record, and what the next read
 * delivers after an fseek() to an offset ftell() gave.  Prints one line per step; the test runs
 * it on the stock libpcap and through the drop-in and compares (tests/test_shim_file_cursor.py).
 *
 *   file_cursor [-f] [-e EXPR] FILE
 *   -f: pcap_fopen_offline on a FILE * of our own (else pcap_open_offline)
 *   -e: a filter set with pcap_compile + pcap_setfilter (records it rejects are still read) */
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_RECS 100000

static long pos_after[MAX_RECS];     /* ftell() after record i */
static struct pcap_pkthdr hdrs[MAX_RECS];
static unsigned sums[MAX_RECS];

static unsigned sum(const u_char *d, unsigned n)
{
    unsigned s = 2166136261u;
    for (unsigned i = 0; i < n; i++) s = (s ^ d[i]) * 16777619u;
    return s;
}

static pcap_t *open_file(const char *path, int use_fopen, char *errbuf)
{
    if (!use_fopen) return pcap_open_offline(path, errbuf);
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    return pcap_fopen_offline(f, errbuf);
}

struct loop_state { FILE *f; int n; };

static void in_loop(u_char *user, const struct pcap_pkthdr *h, const u_char *d)
{
    struct loop_state *s = (struct loop_state *)user;
    printf("loop %d caplen %u sum %08x ftell %ld\n", s->n, h->caplen, sum(d, h->caplen), ftell(s->f));
    s->n++;
}

int main(int argc, char **argv)
{
    int use_fopen = 0;
    const char *expr = NULL;
    for (int i = 1; i < argc - 1; i++) {
        if (strcmp(argv[i], "-f") == 0) use_fopen = 1;
        else if (strcmp(argv[i], "-e") == 0 && i + 1 < argc - 1) expr = argv[++i];
    }
    const char *path = argv[argc - 1];
    char errbuf[PCAP_ERRBUF_SIZE];
    pcap_t *p = open_file(path, use_fopen, errbuf);
    if (!p) { printf("open failed: %s\n", errbuf); return 1; }
    if (expr) {
        struct bpf_program prog;
        if (pcap_compile(p, &prog, expr, 1, PCAP_NETMASK_UNKNOWN) < 0 || pcap_setfilter(p, &prog) < 0) {
            printf("filter: %s\n", pcap_geterr(p));
            return 1;
        }
        pcap_freecode(&prog);
    }
    FILE *f = pcap_file(p);
    long first = ftell(f);
    printf("open ftell %ld\n", first);
    struct pcap_pkthdr *h;
    const u_char *d;
    int n = 0, rc;
    while ((rc = pcap_next_ex(p, &h, &d)) == 1 && n < MAX_RECS) {
        hdrs[n] = *h;
        sums[n] = sum(d, h->caplen);
        pos_after[n] = ftell(f);
        printf("rec %d ts %ld.%06ld caplen %u len %u sum %08x ftell %ld\n", n, (long)h->ts.tv_sec,
               (long)h->ts.tv_usec, h->caplen, h->len, sums[n], pos_after[n]);
        n++;
    }
    struct stat st;
    stat(path, &st);
    printf("end rc %d records %d ftell %ld size %lld\n", rc, n, ftell(f), (long long)st.st_size);
    /* fseek to where record k starts (the offset ftell gave after record k-1): the next read
     * delivers record k, and the reading goes on from there */
    int picks[] = {0, 1, n / 2, n - 1, n / 3};
    for (unsigned i = 0; i < sizeof picks / sizeof picks[0] && n > 0; i++) {
        int k = picks[i];
        long at = k == 0 ? first : pos_after[k - 1];
        int sk = fseek(f, at, SEEK_SET);
        rc = pcap_next_ex(p, &h, &d);
        int same = rc == 1 && h->caplen == hdrs[k].caplen && h->ts.tv_sec == hdrs[k].ts.tv_sec &&
                   h->ts.tv_usec == hdrs[k].ts.tv_usec && sum(d, h->caplen) == sums[k];
        printf("seek %ld (record %d) %d: next rc %d same %d ftell %ld\n", at, k, sk, rc, same, ftell(f));
        int more = 0;
        while (pcap_next_ex(p, &h, &d) == 1) more++;
        printf("  then %d more records, ftell %ld\n", more, ftell(f));
    }
    /* nfpcapd's pattern: read one packet, go back, then pcap_loop over everything */
    fseek(f, first, SEEK_SET);
    struct loop_state s = {f, 0};
    rc = pcap_loop(p, 3, in_loop, (u_char *)&s);
    printf("loop rc %d ftell %ld\n", rc, ftell(f));
    pcap_close(p);
    return 0;
}
