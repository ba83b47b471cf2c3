/* Server mode (MAPI_SERVER set): every pcap_t is a flow on mapid, driven from C; no Python
 * starts in the application.  The same operations as the in-process drop-in (handles.py):
 *
 *   offline   the application's file, opened here (with the application's rights), passed to
 *             mapid as a descriptor: an offline device of its own (savefile backend, time stamps
 *             as stored, libpcap's pcapng rules) and one flow on it
 *   live      a flow on mapid's device of that name: every application capturing on one
 *             interface shares one device there, one capture
 *   filters   an expression BPF_FILTER compiles to the same program runs in mapid
 *             (programs.c); anything else runs here, in C, on what the flow delivers
 *   packets   the flow's TO_BUFFER ring, mapped from the memfd mapid passes, read in place */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>
#include "server.h"

#define RING_BYTES (64ull << 20)
#define LIVE_RING_MIN (16ull << 20)
#define REQ(name) SCAMPI__MAPI__V1__REQUEST__CALL_##name
/* libpcap settings a MAPI live device may not have: dropped when its backend refuses them */
static const char *const HINTS[] = {"immediate", "block_timeout_ms", "buffer"};
#define NHINTS 3

/* ---- calls -------------------------------------------------------------------------------- */

int srv_call_dev(int call, const char *dev, shim_reply *r, char *errbuf)
{
    Scampi__Mapi__V1__DeviceRef d = SCAMPI__MAPI__V1__DEVICE_REF__INIT;
    Request req = SCAMPI__MAPI__V1__REQUEST__INIT;
    d.dev = (char *)dev;
    req.call_case = call;
    req.get_device_info = &d;                  /* every DeviceRef call shares this slot */
    return shim_call(&req, NULL, 0, r, errbuf);
}

int srv_call_flow(int call, uint32_t fd, shim_reply *r, char *errbuf)
{
    Scampi__Mapi__V1__FlowRef f = SCAMPI__MAPI__V1__FLOW_REF__INIT;
    Request req = SCAMPI__MAPI__V1__REQUEST__INIT;
    f.fd = fd;
    req.call_case = call;
    req.connect = &f;
    return shim_call(&req, NULL, 0, r, errbuf);
}

int srv_call_fn(int call, uint32_t fd, uint32_t fid, shim_reply *r, char *errbuf)
{
    Scampi__Mapi__V1__FunctionRef f = SCAMPI__MAPI__V1__FUNCTION_REF__INIT;
    Request req = SCAMPI__MAPI__V1__REQUEST__INIT;
    f.fd = fd;
    f.fid = fid;
    req.call_case = call;
    req.read_results = &f;
    return shim_call(&req, NULL, 0, r, errbuf);
}

/* A call whose reply carries nothing the caller needs. */
static int call_done(int rc, shim_reply *r)
{
    shim_reply_free(r);
    return rc;
}

void srv_note(struct srv *h, const char *text)
{
    if (h->nnotes < SRV_MAX_NOTES && (h->notes[h->nnotes] = strdup(text)) != NULL) h->nnotes++;
}

static struct srv *srv_new(pcap_t *p)
{
    struct srv *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->trace_fd = -1;
    h->filter_where = "none";
    h->ring_bytes = RING_BYTES;
    h->direction = PCAP_D_INOUT;
    h->owner = getpid();
    p->srv = h;
    srv_open_report();
    return h;
}

static void srv_free(pcap_t *p)
{
    struct srv *h = p->srv;
    if (!h) return;
    p->srv = NULL;
    if (h->ring) {
        /* the reader leaves before its mapping goes (p->ring is read by pcap_breakloop) */
        __atomic_store_n(&p->ring, NULL, __ATOMIC_RELEASE);
        mapi_ring_free(h->ring);
    }
    for (int i = 0; i < h->nold; i++) mapi_ring_free(h->old_rings[i]);
    if (h->trace_fd >= 0) close(h->trace_fd);
    for (int i = 0; i < h->nnotes; i++) free(h->notes[i]);
    free(h->path);
    free(h->name);
    free(h->filter_expr);
    free(h->end_error);
    free(h);
}

/* The info dictionary a call answered with (get_device_info, get_flow_info, stats). */
static const Value *reply_value(const shim_reply *r)
{
    return r->reply && r->reply->result_case == SCAMPI__MAPI__V1__REPLY__RESULT_VALUE
           ? r->reply->value : NULL;
}

/* The device's snapshot length and link type, as mapid reports them. */
static int device_info(struct srv *h, int *linktype, char *errbuf)
{
    shim_reply r;
    if (srv_call_dev(REQ(GET_DEVICE_INFO), h->dev, &r, errbuf) < 0) return call_done(-1, &r);
    const Value *info = reply_value(&r);
    h->dev_snaplen = (int)shim_value_int(shim_value_get(info, "snaplen"), 0);
    if (linktype) *linktype = (int)shim_value_int(shim_value_get(info, "linktype"), 1);
    return call_done(0, &r);
}

/* ---- flows -------------------------------------------------------------------------------- */

static int create_flow(struct srv *h, const char *dev, Scampi__Mapi__V1__CreateFlow__OptionsEntry **opts,
                       size_t nopts, shim_reply *r, char *errbuf)
{
    Scampi__Mapi__V1__CreateFlow cf = SCAMPI__MAPI__V1__CREATE_FLOW__INIT;
    Request req = SCAMPI__MAPI__V1__REQUEST__INIT;
    cf.dev = (char *)dev;
    cf.n_options = nopts;
    cf.options = opts;
    req.call_case = REQ(CREATE_FLOW);
    req.create_flow = &cf;
    if (shim_call(&req, NULL, 0, r, errbuf) < 0) return -1;
    h->fd = r->reply->flow ? r->reply->flow->fd : 0;
    return 0;
}

static uint32_t apply(struct srv *h, const char *name, Value **args, size_t nargs, char *errbuf)
{
    Scampi__Mapi__V1__ApplyFunction af = SCAMPI__MAPI__V1__APPLY_FUNCTION__INIT;
    Request req = SCAMPI__MAPI__V1__REQUEST__INIT;
    af.fd = h->fd;
    af.name = (char *)name;
    af.n_args = nargs;
    af.args = args;
    req.call_case = REQ(APPLY_FUNCTION);
    req.apply_function = &af;
    shim_reply r;
    uint32_t fid = 0;
    if (shim_call(&req, NULL, 0, &r, errbuf) == 0 && r.reply->function) fid = r.reply->function->fid;
    shim_reply_free(&r);
    return fid;
}

/* Apply the handle's functions to its flow (BPF_FILTER if it has one, TO_BUFFER), connect it,
 * and map the ring mapid passes; NULL and errbuf on failure. */
static mapi_ring *connect_flow(struct srv *h, char *errbuf)
{
    Value expr, mode, size;
    Value *fargs[] = {&expr}, *bargs[] = {&mode, &size};
    h->bpf_fid = h->buf_fid = 0;
    if (h->filter_expr) {
        shim_value_text_init(&expr, h->filter_expr);
        if (!(h->bpf_fid = apply(h, "BPF_FILTER", fargs, 1, errbuf))) return NULL;
    }
    shim_value_text_init(&mode, "WAIT");
    shim_value_int_init(&size, (int64_t)h->ring_bytes);
    if (!(h->buf_fid = apply(h, "TO_BUFFER", bargs, 2, errbuf))) return NULL;
    shim_reply r;
    if (srv_call_flow(REQ(CONNECT), h->fd, &r, errbuf) < 0) {
        shim_reply_free(&r);
        return NULL;
    }
    Scampi__Mapi__V1__ConnectReply *c = r.reply->connected;
    mapi_ring *ring = NULL;
    for (size_t i = 0; c && i < c->n_buffers; i++) {
        if (c->buffers[i]->fid != h->buf_fid || 3 * (int)i + 2 >= r.nfds) continue;
        int *fds = r.fds + 3 * i;
        ring = mapi_ring_attach(fds[0], fds[1], fds[2]);   /* owns (and closes) them now */
        fds[0] = fds[1] = fds[2] = -1;
    }
    shim_reply_free(&r);
    if (!ring) snprintf(errbuf, PCAP_ERRBUF_SIZE, "MAPI: mapid passed no ring this process can map");
    return ring;
}

/* The ring of a newly connected flow becomes the handle's; the one it replaces stays mapped
 * until the handle closes (a signal handler may still be interrupting it). */
static uintptr_t take_ring(struct srv *h, mapi_ring *ring)
{
    if (h->ring) {
        if (h->nold < SRV_MAX_OLD_RINGS) h->old_rings[h->nold++] = h->ring;
        else mapi_ring_free(h->ring);
    }
    h->ring = ring;
    return (uintptr_t)ring;
}

/* ---- offline handles ---------------------------------------------------------------------- */

static int open_device(struct srv *h, char *errbuf)
{
    static char backend[] = "savefile";
    Scampi__Mapi__V1__CreateOfflineDevice cd = SCAMPI__MAPI__V1__CREATE_OFFLINE_DEVICE__INIT;
    Scampi__Mapi__V1__CreateOfflineDevice__OptionsEntry raw = SCAMPI__MAPI__V1__CREATE_OFFLINE_DEVICE__OPTIONS_ENTRY__INIT,
                                                        compat = SCAMPI__MAPI__V1__CREATE_OFFLINE_DEVICE__OPTIONS_ENTRY__INIT;
    Scampi__Mapi__V1__CreateOfflineDevice__OptionsEntry *opts[] = {&raw, &compat};
    Value yes;
    Request req = SCAMPI__MAPI__V1__REQUEST__INIT;
    /* classic pcap time stamps exactly as stored (libpcap hands them out unnormalised);
     * pcapng files fail where libpcap fails */
    shim_value_bool_init(&yes, 1);
    raw.key = "raw_ts";
    raw.value = &yes;
    compat.key = "libpcap_compat";
    compat.value = &yes;
    cd.path = h->path;
    cd.backend = backend;
    cd.n_options = 2;
    cd.options = opts;
    req.call_case = REQ(CREATE_OFFLINE_DEVICE);
    req.create_offline_device = &cd;
    shim_reply r;
    if (shim_call(&req, &h->trace_fd, 1, &r, errbuf) < 0) return call_done(-1, &r);
    snprintf(h->dev, sizeof h->dev, "%s", r.reply->device ? r.reply->device->dev : "");
    shim_reply_free(&r);
    return device_info(h, NULL, errbuf);
}

/* The descriptor mapid reads: an open file of its own for a regular file (mapid moves its
 * offset, the application's FILE must not see that: pcap_file() and ftell), else a copy. */
static int trace_descriptor(int fd)
{
    struct stat st;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        int own = open(proc, O_RDONLY | O_CLOEXEC);
        if (own >= 0) return own;
    }
    return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

static int srv_open_offline(pcap_t *p, const char *path, int fd, char *errbuf)
{
    struct srv *h = srv_new(p);
    if (!h || !(h->path = strdup(path)) || (h->trace_fd = trace_descriptor(fd)) < 0) {
        shim_errno_msg(errbuf, errno, "%s", path);
        srv_free(p);
        return 0;
    }
    char err[PCAP_ERRBUF_SIZE];
    if (open_device(h, err) < 0) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s: %s", path, err);
        srv_free(p);
        return 0;
    }
    return 1;
}

static int start_offline(pcap_t *p, uintptr_t *ring, char *errbuf)
{
    struct srv *h = p->srv;
    shim_reply r;
    if (!h->fd) {
        if (create_flow(h, h->dev, NULL, 0, &r, errbuf) < 0) return call_done(0, &r);
        shim_reply_free(&r);
    }
    mapi_ring *rg = connect_flow(h, errbuf);
    if (!rg) return 0;
    *ring = take_ring(h, rg);
    return call_done(srv_call_dev(REQ(START_OFFLINE_DEVICE), h->dev, &r, errbuf) == 0, &r);
}

static int srv_end_status(pcap_t *p, char *errbuf)
{
    struct srv *h = p->srv;
    if (p->kind != SHIM_OFFLINE || srv_foreign(h)) return 1;
    Scampi__Mapi__V1__WaitOfflineDevice w = SCAMPI__MAPI__V1__WAIT_OFFLINE_DEVICE__INIT;
    Request req = SCAMPI__MAPI__V1__REQUEST__INIT;
    w.dev = h->dev;
    w.timeout = 60;
    w.has_timeout = 1;
    req.call_case = REQ(WAIT_OFFLINE_DEVICE);
    req.wait_offline_device = &w;
    shim_reply r;
    char err[PCAP_ERRBUF_SIZE];
    if (shim_call(&req, NULL, 0, &r, err) == 0) return call_done(1, &r);
    /* libpcap's text for where the reader stopped (the reader keeps it beside its own) */
    const char *pcap_error = shim_value_text(shim_error_where(&r, "pcap_error"));
    snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", pcap_error && *pcap_error ? pcap_error : err);
    free(h->end_error);
    h->end_error = strdup(errbuf);
    return call_done(0, &r);
}

/* Closing calls are posted, not waited for (nothing in their answer changes what follows). */
static void close_flow(struct srv *h)
{
    char err[PCAP_ERRBUF_SIZE];
    if (h->fd) srv_call_flow(REQ(CLOSE_FLOW), h->fd, NULL, err);
    h->fd = 0;
}

static void delete_device(struct srv *h)
{
    char err[PCAP_ERRBUF_SIZE];
    srv_call_dev(REQ(DELETE_OFFLINE_DEVICE), h->dev, NULL, err);
}

static int srv_restart(pcap_t *p, uintptr_t *ring, char *errbuf)
{
    struct srv *h = p->srv;
    close_flow(h);
    delete_device(h);
    srv_note(h, "pcap_file() moved; the file was read again from its start");
    if (open_device(h, errbuf) < 0) return 0;
    return start_offline(p, ring, errbuf);
}

/* ---- live handles ------------------------------------------------------------------------- */

/* A flow on the live device the application named, with its settings as create_flow options;
 * options the backend refuses (HINTS) are dropped one by one, as libpcap ignores what a
 * device cannot do. */
static int open_live_flow(pcap_t *p, struct srv *h, shim_reply *r, char *errbuf)
{
    static const char *const dirs[] = {"inout", "in", "out"};
    for (;;) {
        Scampi__Mapi__V1__CreateFlow__OptionsEntry e[6], *opts[6];
        Value v[6];
        size_t n = 0;
        int timeout = p->timeout_ms > 0 && !p->immediate;
        const struct { const char *key; int present, kind; int64_t val; const char *text; } o[] = {
            {"snaplen", 1, 0, p->snapshot, NULL}, {"promisc", 1, 1, p->promisc != 0, NULL},
            {"immediate", 1, 1, p->immediate != 0, NULL},
            {"block_timeout_ms", timeout, 0, p->timeout_ms, NULL},
            {"buffer", p->buffer_size > 0, 0, p->buffer_size, NULL},
            {"direction", h->direction != PCAP_D_INOUT, 2, 0, dirs[h->direction % 3]},
        };
        for (size_t i = 0; i < 6; i++) {
            int hint = i >= 2 && i <= 4 ? (int)i - 2 : -1;
            if (!o[i].present || (hint >= 0 && (h->dropped_hints & (1u << hint)))) continue;
            scampi__mapi__v1__create_flow__options_entry__init(&e[n]);
            if (o[i].kind == 0) shim_value_int_init(&v[n], o[i].val);
            else if (o[i].kind == 1) shim_value_bool_init(&v[n], (int)o[i].val);
            else shim_value_text_init(&v[n], (char *)o[i].text);
            e[n].key = (char *)o[i].key;
            e[n].value = &v[n];
            opts[n] = &e[n];
            n++;
        }
        if (create_flow(h, h->name, opts, n, r, errbuf) == 0) return 0;
        const char *arg = shim_value_text(shim_error_where(r, "argument"));
        int k = -1;
        for (int i = 0; arg && i < NHINTS; i++)
            if (strcmp(arg, HINTS[i]) == 0 && !(h->dropped_hints & (1u << i))) k = i;
        if (r->code != MAPI_EBADARG || k < 0) return -1;
        shim_reply_free(r);
        h->dropped_hints |= 1u << k;
    }
}

/* The device mapid put the flow on (its own name for it). */
static int flow_device(struct srv *h, char *errbuf)
{
    shim_reply r;
    if (srv_call_flow(REQ(GET_FLOW_INFO), h->fd, &r, errbuf) < 0) return call_done(-1, &r);
    const char *dev = shim_value_text(shim_value_get(reply_value(&r), "device"));
    snprintf(h->dev, sizeof h->dev, "%s", dev ? dev : h->name);
    return call_done(0, &r);
}

static int srv_activate(pcap_t *p, int *status, int *dlt, char *errbuf)
{
    *status = PCAP_ERROR;
    if (strcmp(p->device, "any") == 0) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "MAPI devices capture on one interface; the \"any\" "
                 "pseudo-device is not available through MAPI");
        return 0;
    }
    struct srv *h = srv_new(p);
    if (!h || !(h->name = strdup(p->device))) {
        shim_errno_msg(errbuf, errno, "malloc");
        srv_free(p);
        return 0;
    }
    shim_reply r;
    int linktype = 1;
    if (open_live_flow(p, h, &r, errbuf) < 0) {
        *status = r.code == MAPI_ENODEV ? PCAP_ERROR_NO_SUCH_DEVICE :
                  r.code == MAPI_EPERM ? PCAP_ERROR_PERM_DENIED : PCAP_ERROR;
        if (*status == PCAP_ERROR_NO_SUCH_DEVICE) errbuf[0] = '\0';
        shim_reply_free(&r);
        srv_free(p);
        return 0;
    }
    shim_reply_free(&r);
    if (flow_device(h, errbuf) < 0 || device_info(h, &linktype, errbuf) < 0) {
        close_flow(h);
        srv_free(p);
        return 0;
    }
    if (!h->dev_snaplen) h->dev_snaplen = p->snapshot;
    /* -B sizes the flow's ring (libpcap's buffer), but never below LIVE_RING_MIN: mapid
     * hands packets over a whole capture block (up to 1 MiB) at a time, in bursts a 2 MiB
     * ring (libpcap's default) loses under load where a socket of its own would not.  Without
     * -B the ring is LIVE_RING_MIN too, not the offline RING_BYTES: a reader copies packets
     * out soon after mapid wrote them, from the cache while the ring is small (eight
     * tcpdumps on 64 MiB rings each spent a third of their time copying from memory, and
     * mapid zeroed half a GiB of new pages during the capture) */
    h->ring_bytes = LIVE_RING_MIN;
    if (p->buffer_size > 0) {
        uint64_t b = (uint64_t)p->buffer_size;
        h->ring_bytes = b < LIVE_RING_MIN ? LIVE_RING_MIN : b;
    }
    *dlt = shim_linktype_to_dlt(linktype);
    *status = 0;
    return 1;
}

static int srv_setdirection(pcap_t *p, int direction, char *errbuf)
{
    struct srv *h = p->srv;
    shim_reply r;
    close_flow(h);                   /* the device closes with it (if nobody else uses it) */
    h->direction = direction;
    if (open_live_flow(p, h, &r, errbuf) < 0) return call_done(0, &r);
    shim_reply_free(&r);
    return flow_device(h, errbuf) == 0;
}

/* ---- the operations ------------------------------------------------------------------------ */

/* A forked child reading a handle its parent opened and did not start: the handle gets a device
 * (offline) or a flow (live) of the child's own on mapid, as libpcap's child reads on its own. */
static int adopt(pcap_t *p, char *errbuf)
{
    struct srv *h = p->srv;
    if (!srv_foreign(h) || p->started) return 0;
    h->owner = getpid();
    h->fd = h->bpf_fid = h->buf_fid = 0;
    if (p->kind == SHIM_OFFLINE) return open_device(h, errbuf);
    shim_reply r;
    int rc = open_live_flow(p, h, &r, errbuf);
    shim_reply_free(&r);
    return rc < 0 ? -1 : flow_device(h, errbuf);
}

static int srv_compile(pcap_t *p, const char *expr, int optimize, uint32_t netmask,
                       uintptr_t *insns, uint32_t *len, char *errbuf)
{
    int rc = p->kind == SHIM_OFFLINE
        ? shim_savefile_compile(p->file_linktype, p->snapshot, p->swapped, expr, optimize, netmask,
                                insns, len, errbuf)
        : shim_dead_compile(p->linktype, p->snapshot, expr, optimize, netmask, insns, len, errbuf);
    if (rc < 0) return 0;
    shim_programs_remember((const struct bpf_insn *)*insns, *len, expr, optimize);
    return 1;
}

static int srv_setfilter(pcap_t *p, const struct bpf_insn *insns, uint32_t n, int *here,
                         uintptr_t *ring, char *errbuf)
{
    struct srv *h = p->srv;
    if (adopt(p, errbuf) < 0) return 0;
    if (p->kind == SHIM_OFFLINE && p->started) {
        /* the replay runs: the new program runs here on what the flow delivers */
        srv_note(h, "filter replaced after the flow started; run in the shim");
        h->filter_where = "shim";
        *here = 1;
        return 1;
    }
    int offline = p->kind == SHIM_OFFLINE;
    const char *expr;
    char note[PCAP_ERRBUF_SIZE + 128];
    *here = shim_programs_place(insns, n, offline ? (p->file_linktype & 0x03FFFFFF)
                                                  : shim_dlt_to_linktype(p->linktype),
                                h->dev_snaplen, offline ? p->swapped : 0, &h->filter_where, &expr,
                                note, sizeof note);
    free(h->filter_expr);
    h->filter_expr = expr ? strdup(expr) : NULL;
    if (note[0]) srv_note(h, note);
    if (offline || !p->started) return 1;
    /* a running capture: a new flow with the new filter replaces the running one */
    uint32_t old = h->fd;
    shim_reply r;
    if (create_flow(h, h->dev, NULL, 0, &r, errbuf) < 0) {
        h->fd = old;
        return call_done(0, &r);
    }
    shim_reply_free(&r);
    mapi_ring *rg = connect_flow(h, errbuf);
    if (!rg) return 0;
    *ring = take_ring(h, rg);
    call_done(srv_call_flow(REQ(CLOSE_FLOW), old, &r, errbuf), &r);
    return 1;
}

static int srv_start(pcap_t *p, uintptr_t *ring, char *errbuf)
{
    if (adopt(p, errbuf) < 0) return 0;
    if (p->kind == SHIM_OFFLINE) return start_offline(p, ring, errbuf);
    mapi_ring *rg = connect_flow(p->srv, errbuf);
    if (!rg) return 0;
    *ring = take_ring(p->srv, rg);
    return 1;
}

static void srv_close(pcap_t *p)
{
    struct srv *h = p->srv;
    if (!h) return;
    if (srv_foreign(h)) {            /* the parent's flow: the parent closes it */
        srv_free(p);
        return;
    }
    srv_report(p);
    close_flow(h);
    if (p->kind == SHIM_OFFLINE) delete_device(h);
    srv_free(p);
}

const struct shim_ops shim_server_ops = {
    "server", srv_open_offline, srv_compile, srv_setfilter, srv_start, srv_end_status,
    srv_restart, srv_close, srv_report, srv_activate, srv_setdirection, srv_stats, srv_devices,
    shim_server_gone,
};

void shim_use_own_rings(void)
{
    shim_engine.ring_next_many = mapi_ring_next_many;
    shim_engine.ring_interrupt = mapi_ring_interrupt;
    shim_engine.ring_clear_interrupt = mapi_ring_clear_interrupt;
    shim_engine.ring_fd = mapi_ring_fd;
}
