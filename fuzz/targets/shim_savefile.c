/* libFuzzer target: the libpcap drop-in's savefile path (libpcap_shim/csrc/savefile.c), the
 * header checks it makes before MAPI reads the records, against the stock libpcap.
 *
 * The input is a file.  The shim reads its header through a FILE * (as pcap_fopen_offline does);
 * the system libpcap, loaded with dlmopen() in a namespace of its own (its internal calls must
 * not land in the shim's pcap_* linked here), opens the same bytes.  Both must agree: accepted or
 * not, the same error text, link type, snapshot length, byte order and version. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "shim.h"

#define SYSTEM_LIBPCAP "/usr/lib/x86_64-linux-gnu/libpcap.so.0.8"

static struct {
    FILE *(*fmemopen)(void *, size_t, const char *);
    void *(*fopen_offline)(FILE *, char *);
    int (*datalink)(void *), (*snapshot)(void *), (*is_swapped)(void *);
    int (*major)(void *), (*minor)(void *), (*datalink_ext)(void *);
    void (*close)(void *);
    int (*fclose)(FILE *);
} real;

static void load(void)
{
    void *h = dlmopen(LM_ID_NEWLM, SYSTEM_LIBPCAP, RTLD_NOW | RTLD_LOCAL);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); abort(); }
    real.fmemopen = dlsym(h, "fmemopen");
    real.fopen_offline = dlsym(h, "pcap_fopen_offline");
    real.datalink = dlsym(h, "pcap_datalink");
    real.datalink_ext = dlsym(h, "pcap_datalink_ext");
    real.snapshot = dlsym(h, "pcap_snapshot");
    real.is_swapped = dlsym(h, "pcap_is_swapped");
    real.major = dlsym(h, "pcap_major_version");
    real.minor = dlsym(h, "pcap_minor_version");
    real.close = dlsym(h, "pcap_close");
    real.fclose = dlsym(h, "fclose");    /* that namespace's libc owns its FILEs */
    if (!real.fmemopen || !real.fopen_offline || !real.close || !real.fclose) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!real.fopen_offline) load();
    if (size == 0) return 0;             /* fmemopen() refuses an empty buffer */
    char err[PCAP_ERRBUF_SIZE] = "", real_err[PCAP_ERRBUF_SIZE] = "";
    /* the shim */
    uint8_t *copy = malloc(size);
    memcpy(copy, data, size);
    FILE *fp = fmemopen(copy, size, "rb");
    pcap_t *p = shim_alloc(SHIM_OFFLINE, err);
    int rc = shim_read_file_header(p, fp, err);
    fclose(fp);
    /* the stock libpcap */
    uint8_t *copy2 = malloc(size);
    memcpy(copy2, data, size);
    FILE *rfp = real.fmemopen(copy2, size, "rb");
    void *rp = real.fopen_offline(rfp, real_err);
    if ((rc == 0) != (rp != NULL)) {
        fprintf(stderr, "shim %s (%s), libpcap %s (%s)\n", rc == 0 ? "accepts" : "refuses", err,
                rp ? "accepts" : "refuses", real_err);
        __builtin_trap();
    }
    if (rp) {
        if (p->linktype != real.datalink(rp) || p->snapshot != real.snapshot(rp) ||
            p->swapped != real.is_swapped(rp) || p->version_major != real.major(rp) ||
            p->version_minor != real.minor(rp) || p->linktype_ext != real.datalink_ext(rp)) {
            fprintf(stderr, "shim dlt %d snap %d swapped %d v%d.%d ext %x; libpcap dlt %d snap %d "
                    "swapped %d v%d.%d ext %x\n", p->linktype, p->snapshot, p->swapped,
                    p->version_major, p->version_minor, p->linktype_ext, real.datalink(rp),
                    real.snapshot(rp), real.is_swapped(rp), real.major(rp), real.minor(rp),
                    real.datalink_ext(rp));
            __builtin_trap();
        }
        real.close(rp);                  /* closes rfp */
    } else {
        if (strcmp(err, real_err) != 0) {
            fprintf(stderr, "shim: %s\nlibpcap: %s\n", err, real_err);
            __builtin_trap();
        }
        real.fclose(rfp);
    }
    free(copy);
    free(copy2);
    free(p);
    return 0;
}
