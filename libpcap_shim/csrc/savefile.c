/* Opening savefiles: the header checks libpcap 1.10 makes (same order, same messages), then a
 * MAPI offline device for the packets.  The FILE * stays open and positioned after the header,
 * as pcap_file() promises; the MAPI device reads the file through its own descriptor. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "shim.h"
#include "reader.h"              /* mapi/csrc: the engine's savefile readers */

#define PCAP_MAGIC_US 0xa1b2c3d4u
#define PCAP_MAGIC_NS 0xa1b23c4du
#define PCAP_MAGIC_KUZNETZOV 0xa1b2cd34u
#define PCAPNG_SHB 0x0a0d0d0au
#define PCAPNG_BOM 0x1a2b3c4du
#define PCAPNG_IDB 1u
#define PCAPNG_PB 2u
#define PCAPNG_SPB 3u
#define PCAPNG_EPB 6u
#define SHB_INSANE_MAX (1024u * 1024u * 1u)
#define PCAPNG_INITIAL_MAX_BLOCK (16u * 1024u * 1024u)

static uint32_t swap32(uint32_t v) { return __builtin_bswap32(v); }
static uint16_t swap16(uint16_t v) { return __builtin_bswap16(v); }

/* The header bytes read from a stream MAPI cannot reopen (a pipe): they are replayed to it. */
static __thread struct { uint8_t *buf; size_t len, cap; int on; } consumed;

static size_t hread(void *dst, size_t n, FILE *fp)
{
    size_t got = fread(dst, 1, n, fp);
    if (consumed.on && got) {
        if (consumed.len + got > consumed.cap) {
            size_t cap = (consumed.len + got) * 2;
            uint8_t *b = realloc(consumed.buf, cap);
            if (!b) { consumed.on = 0; return got; }
            consumed.buf = b;
            consumed.cap = cap;
        }
        memcpy(consumed.buf + consumed.len, dst, got);
        consumed.len += got;
    }
    return got;
}

/* fread exactly n bytes or describe why not (libpcap's read_bytes()). */
static int read_exact(FILE *fp, void *buf, size_t n, int fail_on_eof, char *errbuf, const char *what)
{
    size_t got = hread(buf, n, fp);
    if (got == n) return 1;
    if (ferror(fp)) {
        shim_errno_msg(errbuf, errno, "error reading dump file");
        return -1;
    }
    if (got == 0 && !fail_on_eof) return 0;
    snprintf(errbuf, PCAP_ERRBUF_SIZE, "truncated %s; tried to read %zu bytes, only got %zu", what, n, got);
    return -1;
}

/* pcap_adjust_snapshot(): only a bogus length (0, or more than INT_MAX) becomes the link type's
 * maximum; an oversized but plausible one stays (records are then checked against both). */
static int adjust_snapshot(int dlt, uint32_t snaplen)
{
    if (snaplen == 0 || snaplen > 0x7fffffffu) snaplen = (uint32_t)shim_max_snaplen_for_dlt(dlt);
    return (int)snaplen;
}

/* libpcap checks the requested precision once it knows the format */
static int bad_precision(pcap_t *p, char *errbuf)
{
    if (p->tstamp_precision == PCAP_TSTAMP_PRECISION_MICRO ||
        p->tstamp_precision == PCAP_TSTAMP_PRECISION_NANO)
        return 0;
    snprintf(errbuf, PCAP_ERRBUF_SIZE, "unknown time stamp resolution %u", (u_int)p->tstamp_precision);
    return 1;
}

static int check_pcap(pcap_t *p, uint32_t magic, FILE *fp, char *errbuf)
{
    int swapped = 0;
    if (magic != PCAP_MAGIC_US && magic != PCAP_MAGIC_NS && magic != PCAP_MAGIC_KUZNETZOV) {
        magic = swap32(magic);
        if (magic != PCAP_MAGIC_US && magic != PCAP_MAGIC_NS && magic != PCAP_MAGIC_KUZNETZOV)
            return 0;
        swapped = 1;
    }
    struct { uint16_t major, minor; int32_t thiszone; uint32_t sigfigs, snaplen, linktype; } h;
    size_t got = hread(&h, sizeof h, fp);
    if (got != sizeof h) {
        if (ferror(fp))
            shim_errno_msg(errbuf, errno, "error reading dump file");
        else
            snprintf(errbuf, PCAP_ERRBUF_SIZE,
                     "truncated dump file; tried to read %zu file header bytes, only got %zu",
                     sizeof h + 4, got);
        return -1;
    }
    if (swapped) {
        h.major = swap16(h.major);
        h.minor = swap16(h.minor);
        h.snaplen = swap32(h.snaplen);
        h.linktype = swap32(h.linktype);
    }
    if (h.major < 2) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "archaic pcap savefile format");
        return -1;
    }
    if (!((h.major == 2 && h.minor <= 4) || (h.major == 543 && h.minor == 0))) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "unsupported pcap savefile version %u.%u",
                 h.major, h.minor);
        return -1;
    }
    if (bad_precision(p, errbuf)) return -1;
    p->swapped = swapped;
    p->version_major = h.major;
    p->version_minor = h.minor;
    p->file_linktype = (int)h.linktype;
    p->linktype = shim_linktype_to_dlt((int)(h.linktype & 0x03FFFFFF));
    p->linktype_ext = (int)(h.linktype & 0xFC000000);
    p->snapshot = adjust_snapshot(p->linktype, h.snaplen);
    if (magic == PCAP_MAGIC_KUZNETZOV && p->linktype == DLT_EN10MB)
        p->snapshot = p->snapshot <= 0x7fffffff - 14 ? p->snapshot + 14 : 0x7fffffff;
    p->file_nsec = magic == PCAP_MAGIC_NS;
    p->rec_hdrsize = magic == PCAP_MAGIC_KUZNETZOV ? 24 : 16;
    return 1;
}

/* One pcapng block: type and body (for the IDB we need); libpcap's read_block() checks. */
static int next_block(FILE *fp, int swapped, uint32_t *type, uint8_t **body, uint32_t *body_len,
                      char *errbuf)
{
    uint32_t bh[2];
    int rc = read_exact(fp, bh, sizeof bh, 0, errbuf, "pcapng dump file");
    if (rc <= 0) return rc;
    if (swapped) { bh[0] = swap32(bh[0]); bh[1] = swap32(bh[1]); }
    if (bh[1] < 12) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "block in pcapng dump file has a length of %u < %zu",
                 bh[1], (size_t)12);
        return -1;
    }
    if (bh[1] % 4) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE,
                 "block in pcapng dump file has a length of %u that is not a multiple of 4", bh[1]);
        return -1;
    }
    if (bh[1] > PCAPNG_INITIAL_MAX_BLOCK) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "pcapng block size %u > maximum %u", bh[1],
                 PCAPNG_INITIAL_MAX_BLOCK);
        return -1;
    }
    uint32_t rest = bh[1] - 8;
    uint8_t *b = malloc(rest ? rest : 1);
    if (!b) { snprintf(errbuf, PCAP_ERRBUF_SIZE, "out of memory"); return -1; }
    if (read_exact(fp, b, rest, 1, errbuf, "pcapng dump file") < 0) { free(b); return -1; }
    uint32_t trailer;
    memcpy(&trailer, b + rest - 4, 4);
    if (swapped) trailer = swap32(trailer);
    if (trailer != bh[1]) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "block total length in header and trailer don't match");
        free(b);
        return -1;
    }
    *type = bh[0];
    *body = b;
    *body_len = rest - 4;
    return 1;
}

/* The first IDB (body = after its 8-byte header, len = bytes before its trailer), its options
 * included, checked by the engine's pcapng reader (mapi/csrc/pcapng.c, libpcap's checks and
 * texts): it gets a minimal section header in the file's byte order and this block. */
static int check_idb(const uint8_t *body, uint32_t len, int swapped, uint16_t *lt,
                     uint32_t *snaplen, char *errbuf)
{
    uint32_t total = 8 + len + 4;
    uint8_t *buf = malloc(28 + total);
    if (!buf) { snprintf(errbuf, PCAP_ERRBUF_SIZE, "out of memory"); return -1; }
    const uint32_t words[] = {PCAPNG_SHB, 28, PCAPNG_BOM, 0, 0xffffffffu, 0xffffffffu, 28,
                              PCAPNG_IDB, total};
    for (int i = 0; i < 9; i++) {
        uint32_t w = swapped ? swap32(words[i]) : words[i];
        memcpy(buf + 4 * i, &w, 4);
    }
    uint16_t major = swapped ? swap16(1) : 1;    /* version 1.0 */
    memcpy(buf + 12, &major, 2);
    memcpy(buf + 36, body, len);
    memcpy(buf + 36 + len, buf + 32, 4);         /* the trailer repeats the length */
    static __thread mapi_reader r;
    mapi_reader_init(&r, MAPI_FMT_PCAPNG);
    uint64_t used;
    int rc = mapi_reader_open(&r, buf, 28 + total, 0, &used);
    free(buf);
    if (rc != MAPI_PARSE_OK) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", r.pcap_err[0] ? r.pcap_err : r.err);
        return -1;
    }
    uint32_t snap;
    memcpy(&snap, body + 4, 4);                  /* the reader checked the body has 8 bytes */
    *lt = (uint16_t)r.ifaces[0].linktype;
    *snaplen = swapped ? swap32(snap) : snap;
    return 0;
}

static int check_pcapng(pcap_t *p, uint32_t magic, FILE *fp, char *errbuf)
{
    if (magic != PCAPNG_SHB) return 0;
    uint32_t total, bom;
    if (hread(&total, 4, fp) < 4 || hread(&bom, 4, fp) < 4) {
        if (ferror(fp)) {
            shim_errno_msg(errbuf, errno, "error reading dump file");
            return -1;
        }
        return 0;
    }
    int swapped = 0;
    if (bom != PCAPNG_BOM) {
        if (swap32(bom) != PCAPNG_BOM) return 0;
        swapped = 1;
        total = swap32(total);
    }
    if (total < 28 || total > SHB_INSANE_MAX) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE,
                 "Section Header Block in pcapng dump file has invalid length %zu < _%u_ < %u "
                 "(BT_SHB_INSANE_MAX)", (size_t)28, total, SHB_INSANE_MAX);
        return -1;
    }
    if (bad_precision(p, errbuf)) return -1;
    uint32_t rest = total - 12;
    uint8_t *shb = malloc(rest);
    if (!shb) { snprintf(errbuf, PCAP_ERRBUF_SIZE, "out of memory"); return -1; }
    if (read_exact(fp, shb, rest, 1, errbuf, "pcapng dump file") < 0) { free(shb); return -1; }
    uint16_t major, minor;
    memcpy(&major, shb, 2);
    memcpy(&minor, shb + 2, 2);
    free(shb);
    if (swapped) { major = swap16(major); minor = swap16(minor); }
    if (!(major == 1 && (minor == 0 || minor == 2))) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "unsupported pcapng savefile version %u.%u", major, minor);
        return -1;
    }
    p->swapped = swapped;
    p->version_major = major;
    p->version_minor = minor;
    for (;;) {
        uint32_t type, len;
        uint8_t *body;
        int rc = next_block(fp, swapped, &type, &body, &len, errbuf);
        if (rc == 0) {
            snprintf(errbuf, PCAP_ERRBUF_SIZE, "the capture file has no Interface Description Blocks");
            return -1;
        }
        if (rc < 0) return -1;
        if (type == PCAPNG_IDB) {
            uint16_t lt;
            uint32_t snaplen;
            rc = check_idb(body, len, swapped, &lt, &snaplen, errbuf);
            free(body);
            if (rc < 0) return -1;
            p->file_linktype = lt;
            p->linktype = shim_linktype_to_dlt(lt);
            p->linktype_ext = 0;
            p->snapshot = adjust_snapshot(p->linktype, snaplen);
            p->file_nsec = 1;
            p->is_pcapng = 1;
            return 1;
        }
        free(body);
        if (type == PCAPNG_EPB || type == PCAPNG_SPB || type == PCAPNG_PB) {
            snprintf(errbuf, PCAP_ERRBUF_SIZE,
                     "the capture file has a packet block before any Interface Description Blocks");
            return -1;
        }
    }
}

/* libpcap's pcap_fopen_offline_with_tstamp_precision() checks, in its order. */
int shim_read_file_header(pcap_t *p, FILE *fp, char *errbuf)
{
    uint32_t magic;
    size_t got = hread(&magic, 4, fp);
    if (got != 4) {
        if (ferror(fp))
            shim_errno_msg(errbuf, errno, "error reading dump file");
        else
            snprintf(errbuf, PCAP_ERRBUF_SIZE,
                     "truncated dump file; tried to read %zu file header bytes, only got %zu",
                     (size_t)4, got);
        return -1;
    }
    int rc = check_pcap(p, magic, fp, errbuf);
    if (rc == 0) rc = check_pcapng(p, magic, fp, errbuf);
    if (rc == 0) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "unknown file format");
        return -1;
    }
    return rc < 0 ? -1 : 0;
}

/* A pipe (tcpdump -r -, fprobe -i -) or a FILE * not at its start: a thread replays the header
 * bytes already read, then copies the rest of the stream into a pipe that MAPI reads. */
struct pump {
    FILE *src;
    int wfd;
    uint8_t *prefix;
    size_t prefix_len;
    pthread_mutex_t lock;     /* the struct is freed by the last of the pump and pcap_close */
    int finished;             /* the pump thread is done */
    int released;             /* pcap_close happened */
    int close_src;            /* ... and asked for the FILE * to be closed */
};

static void pump_free(struct pump *pu)
{
    if (pu->close_src) fclose(pu->src);
    pthread_mutex_destroy(&pu->lock);
    free(pu);
}

static int write_all(int fd, const uint8_t *b, size_t n)
{
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static void *pump_main(void *arg)
{
    struct pump *pu = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);     /* no SIGPIPE here when MAPI stops reading */
    uint8_t buf[65536];
    if (write_all(pu->wfd, pu->prefix, pu->prefix_len) == 0) {
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, pu->src)) > 0)
            if (write_all(pu->wfd, buf, got) < 0) break;
    }
    close(pu->wfd);
    free(pu->prefix);
    pu->prefix = NULL;
    pthread_mutex_lock(&pu->lock);
    pu->finished = 1;
    int released = pu->released;
    pthread_mutex_unlock(&pu->lock);
    if (released) pump_free(pu);
    return NULL;
}

/* pcap_close of a pumped handle: the FILE * is closed by whoever finishes last. */
int shim_pump_release(void *pump, int close_file)
{
    struct pump *pu = pump;
    pthread_mutex_lock(&pu->lock);
    pu->released = 1;
    pu->close_src = close_file;
    int finished = pu->finished;
    pthread_mutex_unlock(&pu->lock);
    if (finished) pump_free(pu);
    return finished;
}

static int start_pump(pcap_t *p, FILE *fp, char *path, size_t pathlen, char *errbuf)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        shim_errno_msg(errbuf, errno, "pipe");
        return -1;
    }
    struct pump *pu = calloc(1, sizeof *pu);
    if (!pu) {
        close(fds[0]);
        close(fds[1]);
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "out of memory");
        return -1;
    }
    pu->src = fp;
    pu->wfd = fds[1];
    pu->prefix = consumed.buf;
    pu->prefix_len = consumed.len;
    consumed.buf = NULL;
    consumed.len = consumed.cap = 0;
    pthread_mutex_init(&pu->lock, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, pump_main, pu) != 0) {
        close(fds[0]);
        close(fds[1]);
        free(pu->prefix);
        free(pu);
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "cannot start a thread to read the stream");
        return -1;
    }
    pthread_detach(t);
    p->pump = pu;
    p->pump_rfd = fds[0];
    snprintf(path, pathlen, "/proc/self/fd/%d", fds[0]);
    return 0;
}

static pcap_t *open_stream(FILE *fp, const char *path, u_int precision, int close_on_error,
                           char *errbuf)
{
    const struct shim_ops *ops = KEEP_ERRNO(shim_ops_start(errbuf));
    if (!ops) {
        if (close_on_error) fclose(fp);
        return NULL;
    }
    pcap_t *p = shim_alloc(SHIM_OFFLINE, errbuf);
    if (!p) {
        if (close_on_error) fclose(fp);
        return NULL;
    }
    long start = ftell(fp);
    p->tstamp_precision = (int)precision;
    p->pump_rfd = -1;
    free(consumed.buf);
    consumed.buf = NULL;
    consumed.len = consumed.cap = 0;
    consumed.on = path == NULL;
    int hrc = shim_read_file_header(p, fp, errbuf);
    consumed.on = 0;
    if (hrc < 0) {
        if (close_on_error) fclose(fp);
        free(p);
        return NULL;
    }
    p->rfile = fp;
    p->selectable_fd = fileno(fp);
    p->activated = 1;
    /* The MAPI device reads the file itself: by name, or through /proc for a FILE * we were
     * handed (a regular file read from its start). */
    char procpath[64];
    struct stat st;
    if (!path) {
        if (fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode) && start == 0) {
            snprintf(procpath, sizeof procpath, "/proc/self/fd/%d", fileno(fp));
        } else if (start_pump(p, fp, procpath, sizeof procpath, errbuf) < 0) {
            goto fail;
        }
        path = procpath;
    }
    p->ops = ops;
    int opened = OPS(p, open_offline, path, p->pump ? p->pump_rfd : fileno(fp), errbuf);
    if (p->pump_rfd >= 0) {
        close(p->pump_rfd);          /* MAPI holds its own descriptor of the pipe now */
        p->pump_rfd = -1;
    }
    if (opened != 1) {
        if (p->pump) {
            shim_pump_release(p->pump, close_on_error);
            free(p);
            return NULL;
        }
        goto fail;
    }
    p->ops_open = 1;
    shim_track(p);
    p->raw_ts = !p->is_pcapng;
    /* a FILE * the application handed in: it may ftell()/fseek() it at any time */
    if (path == procpath) shim_cursor_enable(p);
    return p;
fail:
    if (close_on_error) fclose(fp);
    free(p);
    return NULL;
}

SHIM_EXPORT pcap_t *pcap_open_offline_with_tstamp_precision(const char *fname, u_int precision,
                                                            char *errbuf)
{
    if (fname == NULL) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "A null pointer was supplied as the file name");
        return NULL;
    }
    FILE *fp;
    if (strcmp(fname, "-") == 0) {
        fp = stdin;
        if (fp == NULL) {
            snprintf(errbuf, PCAP_ERRBUF_SIZE, "The standard input is not open");
            return NULL;
        }
        return open_stream(fp, NULL, precision, 0, errbuf);
    }
    fp = fopen(fname, "rb");
    if (fp == NULL) {
        shim_errno_msg(errbuf, errno, "%s", fname);
        return NULL;
    }
    return open_stream(fp, fname, precision, 1, errbuf);
}

SHIM_EXPORT pcap_t *pcap_open_offline(const char *fname, char *errbuf)
{
    return pcap_open_offline_with_tstamp_precision(fname, PCAP_TSTAMP_PRECISION_MICRO, errbuf);
}

SHIM_EXPORT pcap_t *pcap_fopen_offline_with_tstamp_precision(FILE *fp, u_int precision,
                                                             char *errbuf)
{
    if (fp == NULL) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "Null FILE * pointer provided to savefile open routine");
        return NULL;
    }
    return open_stream(fp, NULL, precision, 0, errbuf);
}

SHIM_EXPORT pcap_t *pcap_fopen_offline(FILE *fp, char *errbuf)
{
    return pcap_fopen_offline_with_tstamp_precision(fp, PCAP_TSTAMP_PRECISION_MICRO, errbuf);
}
