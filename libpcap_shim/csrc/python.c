/* The in-process engine: the embedded interpreter (libpcap_shim_python.so, beside this library)
 * and the ops that go to it.
 *
 * That library holds everything Python (the interpreter, runtime.py's entry points: pyapi.h);
 * it is loaded (dlopen, its symbols global: the interpreter's extension modules need libpython's)
 * and started at the first call that needs it: opening a handle, compiling a filter.  Never in an
 * ELF constructor: `tcpdump --version`, the children an application spawns and every process
 * with a server configured (MAPI_SERVER) load no Python at all. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "shim.h"
#include "pyapi.h"

#define PYTHON_HALF "libpcap_shim_python.so"

static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static int state;                 /* 0 not started, 1 running, -1 failed */
static char failure[PCAP_ERRBUF_SIZE];

/* runtime.py's calls, resolved in the Python half */
static struct {
    __typeof__(shim_py_open_offline) *open_offline;
    __typeof__(shim_py_compile) *compile;
    __typeof__(shim_py_setfilter) *setfilter;
    __typeof__(shim_py_start) *start;
    __typeof__(shim_py_end_status) *end_status;
    __typeof__(shim_py_restart) *restart;
    __typeof__(shim_py_close) *close;
    __typeof__(shim_py_activate) *activate;
    __typeof__(shim_py_setdirection) *setdirection;
    __typeof__(shim_py_stats) *stats;
    __typeof__(shim_py_devices) *devices;
    __typeof__(shim_py_report) *report;
} py;
#undef PY
#define PY(fn, ...) KEEP_ERRNO(py.fn(__VA_ARGS__))

/* Load the Python half from this library's own directory and start its interpreter. */
static int load_and_start(char *errbuf)
{
    Dl_info self;
    char path[PATH_MAX];
    if (!dladdr((void *)load_and_start, &self) || !self.dli_fname) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "MAPI libpcap shim: cannot tell where it was loaded from");
        return -1;
    }
    snprintf(path, sizeof path, "%s", self.dli_fname);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", dirname(path));
    snprintf(path, sizeof path, "%s/%s", dir, PYTHON_HALF);
    void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "MAPI libpcap shim: cannot load its Python half: %s",
                 dlerror());
        return -1;
    }
    int (*start)(char *) = (int (*)(char *))dlsym(h, "shim_pyhalf_start");
#define RESOLVE(field, name) (py.field = (__typeof__(py.field))dlsym(h, name))
    if (!start || !RESOLVE(open_offline, "shim_py_open_offline") ||
        !RESOLVE(compile, "shim_py_compile") || !RESOLVE(setfilter, "shim_py_setfilter") ||
        !RESOLVE(start, "shim_py_start") || !RESOLVE(end_status, "shim_py_end_status") ||
        !RESOLVE(restart, "shim_py_restart") || !RESOLVE(close, "shim_py_close") ||
        !RESOLVE(activate, "shim_py_activate") || !RESOLVE(setdirection, "shim_py_setdirection") ||
        !RESOLVE(stats, "shim_py_stats") || !RESOLVE(devices, "shim_py_devices") ||
        !RESOLVE(report, "shim_py_report")) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "MAPI libpcap shim: %s lacks its entry points", path);
        return -1;
    }
#undef RESOLVE
    return start(errbuf);
}

int shim_python_start(char *errbuf)
{
    pthread_mutex_lock(&start_lock);
    if (state == 0) {
        char msg[PCAP_ERRBUF_SIZE] = "";
        if (load_and_start(msg) == 0) {
            __atomic_store_n(&state, 1, __ATOMIC_RELEASE);
        } else {
            state = -1;
            memcpy(failure, msg, sizeof failure);
        }
    }
    int rc = state == 1 ? 0 : -1;
    if (rc < 0) snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s", failure);
    pthread_mutex_unlock(&start_lock);
    return rc;
}

int shim_python_running(void)
{
    return __atomic_load_n(&state, __ATOMIC_ACQUIRE) == 1;
}

/* ---- the in-process ops: every call goes to runtime.py ------------------------------------ */

static int py_open_offline(pcap_t *p, const char *path, int fd, char *errbuf)
{
    (void)fd;                                  /* the engine opens the file by name */
    return PY(open_offline, p, path, p->linktype, p->snapshot, p->is_pcapng, errbuf);
}

static int py_compile(pcap_t *p, const char *expr, int optimize, uint32_t netmask,
                      uintptr_t *insns, uint32_t *len, char *errbuf)
{
    int file_linktype = p->kind == SHIM_OFFLINE ? p->file_linktype : -1;
    return PY(compile, p->linktype, p->snapshot, file_linktype, p->swapped, expr, optimize,
              netmask, insns, len, errbuf);
}

static int py_setfilter(pcap_t *p, const struct bpf_insn *insns, uint32_t n, int *here,
                        uintptr_t *ring, char *errbuf)
{
    return PY(setfilter, p, insns, n, p->started, here, ring, errbuf);
}

static int py_start(pcap_t *p, uintptr_t *ring, char *errbuf) { return PY(start, p, ring, errbuf); }
static int py_end_status(pcap_t *p, char *errbuf) { return PY(end_status, p, errbuf); }
static int py_restart(pcap_t *p, uintptr_t *ring, char *errbuf) { return PY(restart, p, ring, errbuf); }
static void py_close(pcap_t *p) { py.close(p, p->seen, p->delivered); }
static void py_report(pcap_t *p) { py.report(p, p->seen, p->delivered); }

static int py_activate(pcap_t *p, int *status, int *dlt, char *errbuf)
{
    return PY(activate, p, p->device, p->snapshot, p->promisc, p->timeout_ms, p->buffer_size,
              p->immediate, status, dlt, errbuf);
}

static int py_setdirection(pcap_t *p, int d, char *errbuf) { return PY(setdirection, p, d, errbuf); }

static int py_stats(pcap_t *p, uint32_t *recv, uint32_t *drop, uint32_t *ifdrop, char *errbuf)
{
    return PY(stats, p, recv, drop, ifdrop, errbuf);
}

static int py_devices(char *buf, uint32_t size) { return PY(devices, buf, size); }

const struct shim_ops shim_python_ops = {
    "in-process", py_open_offline, py_compile, py_setfilter, py_start, py_end_status, py_restart,
    py_close, py_report, py_activate, py_setdirection, py_stats, py_devices, NULL,
};

const struct shim_ops *shim_ops_start(char *errbuf)
{
    static int server = -1;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (server < 0) server = getenv("MAPI_SERVER") && *getenv("MAPI_SERVER") ? 1 : 0;
    if (server) {
        pthread_once(&once, shim_use_own_rings);
        return &shim_server_ops;
    }
    return shim_python_start(errbuf) == 0 ? &shim_python_ops : NULL;
}
