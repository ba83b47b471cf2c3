/* Server mode: what a pcap_t keeps of its flow on mapid, and the calls server.c and
 * server_report.c share. */
#ifndef SHIM_SERVER_H
#define SHIM_SERVER_H
#include <unistd.h>
#include "shim.h"
#include "client.h"

#define SRV_MAX_NOTES 8
#define SRV_MAX_OLD_RINGS 16

struct srv {
    char dev[256];               /* mapid's name for the device */
    char *path;                  /* offline: the application's name for the file */
    char *name;                  /* live: the device name the application opened */
    int trace_fd;                /* offline: the trace, kept to start over (pcap_file() moved) */
    uint32_t fd;                 /* the flow, 0 before it exists */
    uint32_t bpf_fid, buf_fid;   /* its BPF_FILTER and TO_BUFFER (0: none) */
    char *filter_expr;           /* what the flow's BPF_FILTER runs */
    const char *filter_where;    /* none | mapi | mapi+shim | shim (run by the C half) */
    char *notes[SRV_MAX_NOTES];
    int nnotes;
    int dev_snaplen;
    uint64_t ring_bytes;
    mapi_ring *ring;             /* the TO_BUFFER ring, mapped from mapid's memfd */
    mapi_ring *old_rings[SRV_MAX_OLD_RINGS];   /* replaced ones: freed at close */
    int nold;
    char *end_error;
    int reported;
    int direction;               /* live: PCAP_D_* asked for */
    unsigned dropped_hints;      /* live: options the backend refused (HINTS bits) */
    pid_t owner;                 /* the process whose connection holds the flow */
};

/* A handle a parent process opened before fork(): on mapid its flow is the parent's. */
static inline int srv_foreign(const struct srv *h) { return h->owner != getpid(); }

/* server.c: one call, with the usual shapes of request (r NULL: posted, see shim_call) */
int srv_call_dev(int call, const char *dev, shim_reply *r, char *errbuf);
int srv_call_flow(int call, uint32_t fd, shim_reply *r, char *errbuf);
int srv_call_fn(int call, uint32_t fd, uint32_t fid, shim_reply *r, char *errbuf);
void srv_note(struct srv *h, const char *text);
/* server_report.c */
void srv_open_report(void);
void srv_report(pcap_t *p);
int srv_stats(pcap_t *p, uint32_t *recv, uint32_t *drop, uint32_t *ifdrop, char *errbuf);
int srv_devices(char *buf, uint32_t size);
#endif
