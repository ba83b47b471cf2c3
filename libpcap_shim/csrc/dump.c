/* Savefile writing.  As in libpcap 1.10 a pcap_dumper_t * is the stdio FILE * itself, so an
 * application that mixes pcap_dump_fopen() with its own stdio calls sees one stream. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include "shim.h"

#define MAGIC_US 0xa1b2c3d4u
#define MAGIC_NS 0xa1b23c4du

struct file_header {
    uint32_t magic;
    uint16_t major, minor;
    int32_t thiszone;
    uint32_t sigfigs, snaplen, linktype;
};

struct record_header { int32_t sec, frac; uint32_t caplen, len; };

static int write_header(pcap_t *p, FILE *f, int linktype)
{
    struct file_header h = {
        p->tstamp_precision == PCAP_TSTAMP_PRECISION_NANO ? MAGIC_NS : MAGIC_US, 2, 4, 0, 0,
        (uint32_t)p->snapshot, (uint32_t)linktype};
    return fwrite(&h, sizeof h, 1, f) == 1 ? 0 : -1;
}

static pcap_dumper_t *setup(pcap_t *p, int linktype, FILE *f, const char *fname)
{
    if (write_header(p, f, linktype) < 0) {
        shim_errno_msg(p->errbuf, errno, "Can't write to %s", fname);
        if (f != stdout) fclose(f);
        return NULL;
    }
    return (pcap_dumper_t *)f;
}

SHIM_EXPORT pcap_dumper_t *pcap_dump_open(pcap_t *p, const char *fname)
{
    if (!p->activated) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE,
                 "%s: not-yet-activated pcap_t passed to pcap_dump_open", fname ? fname : "(null)");
        return NULL;
    }
    int linktype = shim_dlt_to_linktype(p->linktype);
    if (linktype == -1) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "%s: link-layer type %d isn't supported in savefiles",
                 fname ? fname : "(null)", p->linktype);
        return NULL;
    }
    linktype |= p->linktype_ext;
    if (fname == NULL) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "A null pointer was supplied as the file name");
        return NULL;
    }
    FILE *f;
    if (strcmp(fname, "-") == 0) {
        f = stdout;
        fname = "standard output";
    } else {
        f = fopen(fname, "wb");
        if (!f) {
            shim_errno_msg(p->errbuf, errno, "%s", fname);
            return NULL;
        }
    }
    return setup(p, linktype, f, fname);
}

SHIM_EXPORT pcap_dumper_t *pcap_dump_fopen(pcap_t *p, FILE *f)
{
    int linktype = shim_dlt_to_linktype(p->linktype);
    if (linktype == -1) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE,
                 "stream: link-layer type %d isn't supported in savefiles", p->linktype);
        return NULL;
    }
    linktype |= p->linktype_ext;
    return setup(p, linktype, f, "stream");
}

SHIM_EXPORT pcap_dumper_t *pcap_dump_open_append(pcap_t *p, const char *fname)
{
    int linktype = shim_dlt_to_linktype(p->linktype);
    if (linktype == -1) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "%s: link-layer type %d isn't supported in savefiles",
                 fname ? fname : "(null)", p->linktype);
        return NULL;
    }
    if (fname == NULL) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "A null pointer was supplied as the file name");
        return NULL;
    }
    if (strcmp(fname, "-") == 0) return setup(p, linktype, stdout, "standard output");
    FILE *f = fopen(fname, "rb+");
    if (!f && errno == ENOENT) f = fopen(fname, "wb+");
    if (!f) {
        shim_errno_msg(p->errbuf, errno, "%s", fname);
        return NULL;
    }
    struct file_header h;
    size_t got = fread(&h, 1, sizeof h, f);
    if (got < sizeof h) {
        if (ferror(f)) {
            shim_errno_msg(p->errbuf, errno, "%s", fname);
            fclose(f);
            return NULL;
        }
        if (got == 0) {
            /* an empty file: start it */
            if (fseek(f, 0, SEEK_SET) < 0) {
                shim_errno_msg(p->errbuf, errno, "Can't seek to the beginning of %s", fname);
                fclose(f);
                return NULL;
            }
            return setup(p, linktype, f, fname);
        }
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "%s: truncated pcap file header", fname);
        fclose(f);
        return NULL;
    }
    const char *problem = NULL;
    char buf[64];
    switch (h.magic) {
    case MAGIC_US:
        if (p->tstamp_precision != PCAP_TSTAMP_PRECISION_MICRO)
            problem = "different time stamp precision, cannot append to file";
        break;
    case MAGIC_NS:
        if (p->tstamp_precision != PCAP_TSTAMP_PRECISION_NANO)
            problem = "different time stamp precision, cannot append to file";
        break;
    case 0xd4c3b2a1u:
    case 0x4d3cb2a1u:
        problem = "different byte order, cannot append to file";
        break;
    default:
        problem = "not a pcap file";
        break;
    }
    if (!problem && !(h.major == 2 && h.minor == 4)) {
        snprintf(buf, sizeof buf, "version is %u.%u, cannot append to file", h.major, h.minor);
        problem = buf;
    }
    if (!problem && h.linktype != (uint32_t)linktype)
        problem = "different linktype, cannot append to file";
    if (!problem && h.snaplen != (uint32_t)p->snapshot)
        problem = "different snaplen, cannot append to file";
    if (problem) {
        snprintf(p->errbuf, PCAP_ERRBUF_SIZE, "%s: %s", fname, problem);
        fclose(f);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) < 0) {
        shim_errno_msg(p->errbuf, errno, "Can't seek to end of %s", fname);
        fclose(f);
        return NULL;
    }
    return (pcap_dumper_t *)f;
}

SHIM_EXPORT void pcap_dump(u_char *user, const struct pcap_pkthdr *h, const u_char *sp)
{
    FILE *f = (FILE *)user;
    if (ferror(f)) return;    /* a broken file stays as it is */
    struct record_header r = {(int32_t)h->ts.tv_sec, (int32_t)h->ts.tv_usec, h->caplen, h->len};
    if (fwrite(&r, sizeof r, 1, f) == 1) (void)fwrite(sp, h->caplen, 1, f);
}

SHIM_EXPORT FILE *pcap_dump_file(pcap_dumper_t *p)
{
    return (FILE *)p;
}

SHIM_EXPORT long pcap_dump_ftell(pcap_dumper_t *p)
{
    return ftell((FILE *)p);
}

SHIM_EXPORT int64_t pcap_dump_ftell64(pcap_dumper_t *p)
{
    return (int64_t)ftello((FILE *)p);
}

SHIM_EXPORT int pcap_dump_flush(pcap_dumper_t *p)
{
    return fflush((FILE *)p) == EOF ? -1 : 0;
}

SHIM_EXPORT void pcap_dump_close(pcap_dumper_t *p)
{
    fclose((FILE *)p);
}
