/* Server mode: what a handle's flow tells (MAPI_PCAP_REPORT's JSON line per handle, the same
 * fields as the in-process report.py writes), live statistics and the devices mapid offers. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "server.h"

#define REQ(name) SCAMPI__MAPI__V1__REQUEST__CALL_##name

static int report_fd = -1;
static void open_once(void);

static void at_exit(void)
{
    shim_client_exiting();
    shim_report_all();                   /* handles the application never closed */
}

/* Opened with the first handle, while the application may still open it (tcpdump drops its
 * privileges right after opening its handle). */
void srv_open_report(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, open_once);
}

static void open_once(void)
{
    const char *dest = getenv("MAPI_PCAP_REPORT");
    if (!dest || !*dest) return;
    report_fd = strcmp(dest, "stderr") == 0
        ? fcntl(2, F_DUPFD_CLOEXEC, 3)
        : open(dest, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (report_fd >= 0) atexit(at_exit);
}

static const Value *reply_value(const shim_reply *r)
{
    if (!r->reply) return NULL;
    if (r->reply->result_case == SCAMPI__MAPI__V1__REPLY__RESULT_RESULTS && r->reply->results)
        return r->reply->results->value;
    return r->reply->result_case == SCAMPI__MAPI__V1__REPLY__RESULT_VALUE ? r->reply->value : NULL;
}

static void function_entry(shim_buf *b, struct srv *h, const char *name, uint32_t fid, int first)
{
    shim_reply r;
    char err[PCAP_ERRBUF_SIZE];
    if (srv_call_fn(REQ(GET_FUNCTION_INFO), h->fd, fid, &r, err) < 0) {
        shim_reply_free(&r);
        return;
    }
    const Value *info = reply_value(&r);
    shim_buf_printf(b, "%s{\"fid\": %u, \"name\": \"%s\", \"pkts_in\": ", first ? "" : ", ", fid, name);
    shim_buf_json_value(b, shim_value_get(info, "pkts_in"));
    shim_buf_printf(b, ", \"pkts_out\": ");
    shim_buf_json_value(b, shim_value_get(info, "pkts_out"));
    if (strcmp(name, "BPF_FILTER") == 0) {
        const Value *native = shim_value_get(info, "native");
        int any = native && ((native->kind_case == SCAMPI__MAPI__V1__VALUE__KIND_LIST &&
                              native->list && native->list->n_items) ||
                             shim_value_int(native, 0));
        shim_buf_printf(b, ", \"native\": %s", any ? "true" : "false");
    }
    shim_reply_free(&r);
    if (strcmp(name, "TO_BUFFER") == 0 &&
        srv_call_fn(REQ(READ_RESULTS), h->fd, fid, &r, err) == 0) {
        shim_buf_printf(b, ", \"ring\": ");
        shim_buf_json_value(b, reply_value(&r));
    }
    shim_reply_free(&r);
    shim_buf_printf(b, "}");
}

void srv_report(pcap_t *p)
{
    struct srv *h = p->srv;
    if (report_fd < 0 || !h || h->reported || srv_foreign(h)) return;
    h->reported = 1;
    if (p->kind == SHIM_OFFLINE && h->fd) {
        /* the counters settle when the replay's last batch is done (an application that stops
         * reading early, tcpdump -c, closes while mapid may still be in it) */
        Scampi__Mapi__V1__WaitOfflineDevice w = SCAMPI__MAPI__V1__WAIT_OFFLINE_DEVICE__INIT;
        Request req = SCAMPI__MAPI__V1__REQUEST__INIT;
        shim_reply r;
        char err[PCAP_ERRBUF_SIZE];
        w.dev = h->dev;
        w.timeout = 0.5;
        w.has_timeout = 1;
        req.call_case = REQ(WAIT_OFFLINE_DEVICE);
        req.wait_offline_device = &w;
        shim_call(&req, NULL, 0, &r, err);
        shim_reply_free(&r);
    }
    shim_buf b = {0};
    shim_buf_printf(&b, "{\"pid\": %d, \"kind\": \"%s\", \"device\": ", (int)getpid(),
                    p->kind == SHIM_OFFLINE ? "offline" : "live");
    shim_buf_json_string(&b, h->dev);
    shim_buf_printf(&b, ", \"path\": ");
    shim_buf_json_string(&b, h->path);
    shim_buf_printf(&b, h->fd ? ", \"flow\": %u" : ", \"flow\": null", h->fd);
    shim_buf_printf(&b, ", \"filter\": ");
    shim_buf_json_string(&b, h->filter_expr);
    shim_buf_printf(&b, ", \"filter_where\": \"%s\", \"notes\": [", h->filter_where);
    for (int i = 0; i < h->nnotes; i++) {
        if (i) shim_buf_printf(&b, ", ");
        shim_buf_json_string(&b, h->notes[i]);
    }
    shim_buf_printf(&b, "], \"functions\": [");
    if (h->fd && h->bpf_fid) function_entry(&b, h, "BPF_FILTER", h->bpf_fid, 1);
    if (h->fd && h->buf_fid) function_entry(&b, h, "TO_BUFFER", h->buf_fid, !h->bpf_fid);
    shim_buf_printf(&b, "]");
    shim_reply r;
    char err[PCAP_ERRBUF_SIZE];
    if (srv_call_dev(REQ(GET_DEVICE_INFO), h->dev, &r, err) == 0) {
        const Value *info = reply_value(&r);
        shim_buf_printf(&b, ", \"device_packets\": ");
        shim_buf_json_value(&b, shim_value_get(info, "packets"));
        shim_buf_printf(&b, ", \"device_backend\": ");
        shim_buf_json_value(&b, shim_value_get(info, "backend"));
    }
    shim_reply_free(&r);
    shim_buf_printf(&b, ", \"shim_seen\": %llu, \"shim_delivered\": %llu, \"server\": true, "
                    "\"python\": %s", (unsigned long long)p->seen, (unsigned long long)p->delivered,
                    shim_python_running() ? "true" : "false");
    if (h->end_error) {
        shim_buf_printf(&b, ", \"end_error\": ");
        shim_buf_json_string(&b, h->end_error);
    }
    shim_buf_printf(&b, "}\n");
    if (b.p) {
        ssize_t w = write(report_fd, b.p, b.n);   /* O_APPEND: one line in one write */
        (void)w;
    }
    free(b.p);
}

/* Live statistics as libpcap on Linux gives them: packets that passed the filter (delivered or
 * dropped for want of room in this handle's ring), drops, drops by the interface. */
int srv_stats(pcap_t *p, uint32_t *recv, uint32_t *drop, uint32_t *ifdrop, char *errbuf)
{
    struct srv *h = p->srv;
    shim_reply r;
    if (srv_foreign(h)) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "MAPI: the statistics of this handle are its parent "
                 "process's (it opened the capture)");
        return 0;
    }
    if (srv_call_dev(REQ(STATS), h->dev, &r, errbuf) < 0) {
        shim_reply_free(&r);
        return 0;
    }
    const Value *st = reply_value(&r);
    uint64_t ps_drop = (uint64_t)shim_value_int(shim_value_get(st, "ps_drop"), 0);
    uint64_t ps_ifdrop = (uint64_t)shim_value_int(shim_value_get(st, "ps_ifdrop"), 0);
    shim_reply_free(&r);
    mapi_ring_stats rs = {0, 0, 0, 0};
    if (h->ring) mapi_ring_get_stats(h->ring, &rs);
    *recv = (uint32_t)(rs.written + rs.dropped + ps_drop);
    *drop = (uint32_t)(ps_drop + rs.dropped);
    *ifdrop = (uint32_t)ps_ifdrop;
    return 1;
}

/* The devices mapid has (live ones in use, the ones it offers): "name\t\n" lines. */
int srv_devices(char *buf, uint32_t size)
{
    Scampi__Mapi__V1__Empty e = SCAMPI__MAPI__V1__EMPTY__INIT;
    Request req = SCAMPI__MAPI__V1__REQUEST__INIT;
    req.call_case = REQ(DEVICES);
    req.devices = &e;
    shim_reply r;
    char err[PCAP_ERRBUF_SIZE];
    size_t n = 0;
    buf[0] = '\0';
    if (shim_call(&req, NULL, 0, &r, err) == 0) {
        const Value *v = reply_value(&r);
        const Scampi__Mapi__V1__ValueList *l =
            v && v->kind_case == SCAMPI__MAPI__V1__VALUE__KIND_LIST ? v->list : NULL;
        for (size_t i = 0; l && i < l->n_items; i++) {
            const char *name = shim_value_text(l->items[i]);
            if (!name || strncmp(name, "/", 1) == 0) continue;
            int w = snprintf(buf + n, size - n, "%s\t\n", name);
            if (w < 0 || (size_t)w >= size - n) break;
            n += (size_t)w;
        }
    }
    shim_reply_free(&r);
    return 1;
}
