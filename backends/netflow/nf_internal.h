/* The NetFlow/IPFIX collector's private state and the functions its files share
 * (state.c: state, exporters, templates, pending sets, the record queue; records.c: one
 * data record; messages.c: export packets; transport.c: frames and sockets). */
#ifndef SCAMPI_NETFLOW_INTERNAL_H
#define SCAMPI_NETFLOW_INTERNAL_H
#include <stdint.h>
#include <sys/socket.h>
#include "collector.h"
#include "byteorder.h"

#define NF_HIDDEN __attribute__((visibility("hidden")))

#define NTP_UNIX_OFFSET 2208988800LL
#define RECV_SLOTS 32
#define RECV_SLOT_BYTES 65536
#define NF_SAMPLERS 16
#define PEN_REVERSE 29305         /* RFC 5103 reverse information elements */

typedef struct nf_field {
    uint16_t ie;
    uint16_t len;             /* 65535: variable length (IPFIX) */
    uint32_t pen;             /* enterprise number, 0 for IANA elements */
} nf_field;

typedef struct nf_template {
    uint16_t id;
    uint16_t nfields;
    uint16_t nscope;          /* options templates: scope fields first */
    uint8_t options;
    uint8_t flowish;          /* has a flow key, counter or time: its records are flows */
    uint32_t min_len;         /* bytes of one record at least (a variable field counts 1) */
    nf_field *f;
} nf_template;

typedef struct nf_exporter {
    uint8_t addr[16];
    int32_t family;
    int32_t version;
    uint32_t domain;
    nf_template *tpl;
    uint32_t ntpl, tpl_cap;
    uint32_t sampling;        /* default sampler (options data without a sampler id) */
    uint32_t nsamplers;
    int64_t sampler_id[NF_SAMPLERS];
    uint32_t sampler_rate[NF_SAMPLERS];
    int64_t sys_init_ms;      /* systemInitTimeMilliseconds from options data (0: unknown) */
    uint32_t next_seq;
    int have_seq;
    uint64_t packets, records;
} nf_exporter;

typedef struct nf_ctx {
    uint32_t exp;             /* exporter index */
    int32_t version;
    uint32_t unix_secs;
    uint32_t uptime_ms;       /* v9 */
    int64_t export_ns;
    int64_t recv_ns;
    uint32_t seq;
} nf_ctx;

typedef struct nf_pending {
    struct nf_pending *next;
    nf_ctx ctx;
    uint16_t tid;
    uint32_t len;
    uint8_t data[];
} nf_pending;

struct mapi_nf {
    uint32_t max_exporters, max_templates, max_pending_bytes, pending_ttl_ms, max_queue;
    nf_exporter *exp;
    uint32_t nexp, exp_cap;
    uint32_t last_exp;
    nf_pending *pend_head, *pend_tail;
    uint64_t pend_bytes;
    mapi_flowrec *q;          /* output queue (ring) */
    uint32_t qcap, qhead, qlen;
    uint32_t *qext_off;       /* per queued record: its extra elements in ext[] */
    uint32_t *qext_len;
    uint8_t *ext;             /* extra elements of the queued records, in queue order */
    uint32_t ext_cap, ext_len;
    uint32_t ext_open;        /* where the record being decoded starts its extras */
    uint32_t ext_record_len;  /* its bytes so far (limited to MAPI_FLOWREC_MAX_EXTRA) */
    uint64_t records_this_msg;
    mapi_nf_stats st;
    char err[256];
    /* recvmmsg */
    uint8_t *rbuf;
    struct mmsghdr *msgs;
    struct iovec *iov;
    struct sockaddr_storage *from;
    uint8_t *ctl;
};

/* a big-endian field of 1..8 bytes (longer ones: their last 8 bytes) */
static inline uint64_t nf_rdn(const uint8_t *p, uint32_t len)
{
    uint64_t v = 0;
    if (len > 8) { p += len - 8; len = 8; }
    for (uint32_t i = 0; i < len; i++) v = (v << 8) | p[i];
    return v;
}

/* c->err = fmt with (what, a, b) */
NF_HIDDEN void nf_set_err(mapi_nf *c, const char *fmt, const char *what, long a, long b);

/* state.c */
NF_HIDDEN int64_t nf_find_exporter(mapi_nf *c, const uint8_t *addr, int32_t family, int32_t version,
                                   uint32_t domain);
NF_HIDDEN nf_template *nf_find_template(nf_exporter *e, uint16_t id);
NF_HIDDEN void nf_withdraw(nf_exporter *e, uint16_t id, int all);
/* Install a template (takes ownership of f) and decode the sets that waited for it.  Returns 0,
 * or -1 when refused. */
NF_HIDDEN int nf_add_template(mapi_nf *c, uint32_t exp, uint16_t id, nf_field *f, uint16_t n,
                              uint16_t nscope, int options);
/* A zeroed record at the end of the output queue, or NULL (queue full: counted).  Its extra
 * elements are added with nf_ext_add until the next nf_new_record / nf_drop_last. */
NF_HIDDEN mapi_flowrec *nf_new_record(mapi_nf *c);
/* Keep element (id, value) beside the record nf_new_record returned last. */
NF_HIDDEN void nf_ext_add(mapi_nf *c, uint16_t id, const uint8_t *v, uint32_t len);
/* Take back the record nf_new_record returned last (it turned out malformed). */
NF_HIDDEN void nf_drop_last(mapi_nf *c);
NF_HIDDEN void nf_expire_pending(mapi_nf *c, int64_t now_ns);
NF_HIDDEN void nf_add_pending(mapi_nf *c, const nf_ctx *x, uint16_t tid, const uint8_t *p,
                              uint32_t len);

/* records.c */
NF_HIDDEN void nf_record_header(mapi_flowrec *r, const nf_exporter *e, const nf_ctx *x,
                                uint16_t tid);
/* The records of one data set.  Returns records produced, -1 if malformed. */
NF_HIDDEN int nf_decode_data_set(mapi_nf *c, const nf_ctx *x, nf_template *t, const uint8_t *p,
                                 const uint8_t *end);
/* v5 records: finish a record whose fields are set (times, sampling, ICMP type/code) */
NF_HIDDEN void nf_finish_v5(mapi_flowrec *r, uint32_t sampling, const nf_exporter *e,
                            const nf_ctx *x);
#endif
