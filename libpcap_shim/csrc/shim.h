/* The libpcap drop-in's internal view of a pcap_t.
 *
 * Every pcap_t an application gets is one of these.  Offline and live handles read their packets
 * from the TO_BUFFER ring of a MAPI flow (the engine fills it; we only read it here, in C).  Who
 * opens devices, builds flows and compiles filters is one of two ops tables (struct shim_ops):
 * the embedded Python half (libpcap_shim/runtime.py, the in-process engine: python.c), or, with
 * MAPI_SERVER set, mapid, spoken to in C (server.c; the ring then is mapped from mapid's memfd). */
#ifndef SHIM_H
#define SHIM_H
#define pcap_EXPORTS 1            /* pcap.h then marks every API function visibility("default") */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>
#include <stdio.h>
#include <pcap/pcap.h>
#include "ring.h"                 /* mapi/csrc/ring.h: the ring's record header and return codes */
#include "bpf.h"                  /* mapi/csrc/bpf.h: the engine's BPF interpreter */

#define SHIM_EXPORT __attribute__((visibility("default")))
/* Python and the engine must not leave their errno behind: applications print strerror(errno)
 * after a failed call, and libpcap leaves errno alone where it has no system error to report. */
#define KEEP_ERRNO(expr) __extension__({ int keep_errno_ = errno; __typeof__(expr) keep_r_ = (expr); \
                                         errno = keep_errno_; keep_r_; })
#define KEEP_ERRNO_VOID(expr) do { int keep_errno_ = errno; expr; errno = keep_errno_; } while (0)
#define SHIM_TAG 0x4d415049u      /* "MAPI": a live handle */
#define SHIM_BATCH 256            /* ring records fetched per mapi_ring_next_many() */
#define SHIM_MAX_SNAPLEN 262144   /* MAXIMUM_SNAPLEN of libpcap 1.10 */

enum shim_kind { SHIM_DEAD = 1, SHIM_OFFLINE, SHIM_LIVE };

struct pcap {
    uint32_t tag;
    int kind;
    int activated;
    /* what the handle reports */
    int snapshot;
    int linktype;                 /* DLT_* */
    int linktype_ext;             /* upper bits of a savefile's link type (FCS length) */
    int tstamp_precision;
    int tstamp_type;
    int swapped;
    int version_major, version_minor;
    /* settings of a pcap_create()d handle, used at activation */
    char *device;
    int snaplen_set, promisc, rfmon, timeout_ms, buffer_size, immediate, nonblock, direction;
    /* savefile */
    FILE *rfile;
    int selectable_fd;
    int file_nsec;                /* the file's time stamps are in nanoseconds */
    int is_pcapng;
    void *pump;                   /* a stream copied into a pipe for MAPI (savefile.c) */
    int pump_rfd;
    int file_linktype;            /* LINKTYPE_ value of the file (with its extension bits) */
    int raw_ts;                   /* ring time stamps are sec << 32 | frac as stored */
    int rec_hdrsize;              /* pcap record header bytes: 16, 24 in Kuznetzov's format */
    /* pcap_file() as the read cursor (cursor.c) */
    int cursor, cursor_swapped;
    off_t cursor_start, cursor_pos;   /* first record; where the walk stands */
    uint64_t cursor_seq;          /* packet index of the record at cursor_pos */
    uint64_t skip_below;          /* after a restart: packets before this index are not delivered */
    /* packets through MAPI */
    const struct shim_ops *ops;   /* who runs the handle's flow (set when it opens) */
    int ops_open;                 /* the ops hold state for this handle */
    void *srv;                    /* server mode: the flow's state (server.c) */
    int started;                  /* the flow is connected and its device running */
    mapi_ring *ring;
    int at_end;                   /* the ring ended: EOF (or the file's error) reached */
    int end_status;               /* 0: clean end of file, -1: the error in errbuf */
    const mapi_pkthdr *hdrs[SHIM_BATCH];
    const uint8_t *datas[SHIM_BATCH];
    uint32_t batch_n, batch_pos;
    volatile sig_atomic_t break_loop;
    struct pcap_pkthdr next_hdr;  /* the header pcap_next_ex() hands out */
    struct pcap_pkthdr cb_hdr;    /* the header callbacks get */
    /* the application's filter: a private copy; run here only when MAPI cannot run it */
    struct bpf_insn *fcode;
    u_int fcode_len;
    int filter_here;
    /* counters for the report */
    uint64_t seen, delivered;
    struct pcap *prev_open, *next_open;   /* the handles the Python side knows (reports at exit) */
    char errbuf[PCAP_ERRBUF_SIZE + 1];
};

/* The two ways a handle's flow is run: the same calls, in C or in the embedded Python.  Every int
 * function returns 1 on success; anything else is a failure whose libpcap-style text is in
 * errbuf.  ring: the address of the flow's mapi_ring once it runs (0: unchanged). */
struct shim_ops {
    const char *name;
    /* a savefile whose header the shim checked; fd reads it (the FILE's or the pump's pipe) */
    int (*open_offline)(pcap_t *p, const char *path, int fd, char *errbuf);
    int (*compile)(pcap_t *p, const char *expr, int optimize, uint32_t netmask, uintptr_t *insns,
                   uint32_t *len, char *errbuf);
    /* a running live flow is replaced by one with the new filter: *ring is then its ring */
    int (*setfilter)(pcap_t *p, const struct bpf_insn *insns, uint32_t n, int *filter_here,
                     uintptr_t *ring, char *errbuf);
    int (*start)(pcap_t *p, uintptr_t *ring, char *errbuf);
    int (*end_status)(pcap_t *p, char *errbuf);
    /* the application moved pcap_file(): the offline flow starts over on a new device */
    int (*restart)(pcap_t *p, uintptr_t *ring, char *errbuf);
    void (*close)(pcap_t *p);
    void (*report)(pcap_t *p);
    int (*activate)(pcap_t *p, int *status, int *dlt, char *errbuf);
    /* direction: 0 in+out, 1 in, 2 out (PCAP_D_*); reopens the live device before it runs */
    int (*setdirection)(pcap_t *p, int direction, char *errbuf);
    int (*stats)(pcap_t *p, uint32_t *recv, uint32_t *drop, uint32_t *ifdrop, char *errbuf);
    int (*devices)(char *buf, uint32_t size);
    /* NULL, or: 1 when the flows' source went away (a reader waiting on a ring checks it) */
    int (*gone)(void);
};
extern const struct shim_ops shim_python_ops, shim_server_ops;
/* The process's ops (the interpreter started, for the Python ones); NULL and errbuf on failure. */
const struct shim_ops *shim_ops_start(char *errbuf);
#define OPS(p, fn, ...) KEEP_ERRNO((p)->ops->fn((p), __VA_ARGS__))

/* The ring calls (the engine's, resolved by the Python side at start-up, or this library's own
 * copy of mapi/csrc/ring.c for rings mapped from mapid). */
struct shim_engine {
    int (*ring_next_many)(mapi_ring *, int, uint32_t, const mapi_pkthdr **, const uint8_t **);
    void (*ring_interrupt)(mapi_ring *);
    void (*ring_clear_interrupt)(mapi_ring *);
    int (*ring_fd)(mapi_ring *);
};
extern struct shim_engine shim_engine;

/* The calls the Python half (libpcap_shim_python.so) makes into this library: exported. */
SHIM_EXPORT void shim_set_engine(uintptr_t next_many, uintptr_t interrupt,
                                 uintptr_t clear_interrupt, uintptr_t ring_fd);

/* python.c: the embedded interpreter */
int shim_python_start(char *errbuf);
int shim_python_running(void);
/* server.c: the ring calls of this library's own ring.c */
void shim_use_own_rings(void);

/* handle.c */
void shim_track(pcap_t *p);
void shim_untrack(pcap_t *p);
SHIM_EXPORT void shim_report_all(void);
pcap_t *shim_alloc(int kind, char *errbuf);
int shim_linktype_to_dlt(int linktype);
int shim_dlt_to_linktype(int dlt);
int shim_max_snaplen_for_dlt(int dlt);
void shim_errno_msg(char *buf, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* savefile.c */
int shim_read_file_header(pcap_t *p, FILE *fp, char *errbuf);

int shim_pump_release(void *pump, int close_file);

/* cursor.c */
void shim_cursor_enable(pcap_t *p);
void shim_cursor_advance(pcap_t *p, uint64_t seq);
int shim_cursor_check(pcap_t *p);

/* read.c */
int shim_start(pcap_t *p);

/* compile.c */
SHIM_EXPORT uintptr_t shim_copy_program(const char *insns, uint32_t n);
SHIM_EXPORT int shim_savefile_compile(int linktype, int snaplen, int swapped, const char *expr, int optimize,
                          uint32_t netmask, uintptr_t *insns, uint32_t *len, char *errbuf);
int shim_dead_compile(int dlt, int snaplen, const char *expr, int optimize, uint32_t netmask,
                      uintptr_t *insns, uint32_t *len, char *errbuf);

/* programs.c: what pcap_compile() compiled, and where a program set on a handle runs */
void shim_programs_remember(const struct bpf_insn *code, uint32_t n, const char *expr, int optimize);
/* where: "none", "mapi", "mapi+shim" or "shim"; *expr: the BPF_FILTER expression or NULL;
 * returns 1 when the C half must run the program on what the flow delivers */
int shim_programs_place(const struct bpf_insn *code, uint32_t n, int linktype, int snaplen,
                        int swapped, const char **where, const char **expr, char *note,
                        size_t notesize);

/* bpf.c: libpcap's bpf_filter() is the engine's interpreter (same instruction layout) */
#define shim_bpf_run(pc, p, wirelen, buflen) \
    mapi_bpf_run((const mapi_bpf_insn *)(pc), (p), (wirelen), (buflen))

#endif
