/* The embedded interpreter.
 *
 * It starts at the first call that needs it (opening a handle, compiling a filter), never in an
 * ELF constructor: `tcpdump --version` and the children an application spawns do not pay for it.
 * It is configured as the project's virtualenv interpreter (SHIM_VENV_PYTHON, fixed at build
 * time), whatever the application's environment says, and it imports everything the runtime
 * will need at once: tcpdump drops to an unprivileged user right after opening its handle, and
 * the interpreter's files may not be readable by that user. */
#include <Python.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "shim.h"
#include "pyapi.h"

#ifndef SHIM_VENV_PYTHON
#error "build.py defines SHIM_VENV_PYTHON"
#endif

static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static int state;                 /* 0 not started, 1 running, -1 failed */
static char failure[PCAP_ERRBUF_SIZE];
static PyGILState_STATE fork_gil;

/* Forking with the interpreter alive: hold the GIL across fork() so that the child's copy of the
 * interpreter is consistent (what os.fork() does). */
static void before_fork(void)
{
    fork_gil = PyGILState_Ensure();
    PyOS_BeforeFork();
}

static void after_fork_parent(void)
{
    PyOS_AfterFork_Parent();
    PyGILState_Release(fork_gil);
}

static void after_fork_child(void)
{
    PyOS_AfterFork_Child();
    PyGILState_Release(fork_gil);
}

/* Handles an application never closed still get their report. */
static void at_exit(void)
{
    shim_report_all();
}

static int start_interpreter(char *errbuf)
{
    if (Py_IsInitialized()) return 0;          /* the application embeds Python itself */
    /* Leave the application's locale and environment alone: no setlocale(), no C locale
     * coercion (which would export LC_CTYPE); Python itself works in UTF-8 mode. */
    PyPreConfig pre;
    PyPreConfig_InitPythonConfig(&pre);
    pre.configure_locale = 0;
    pre.coerce_c_locale = 0;
    pre.coerce_c_locale_warn = 0;
    pre.utf8_mode = 1;
    pre.use_environment = 0;
    PyStatus ps = Py_PreInitialize(&pre);
    if (PyStatus_Exception(ps)) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "MAPI libpcap shim: cannot start Python: %s",
                 ps.err_msg ? ps.err_msg : "pre-initialisation failed");
        return -1;
    }
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0;        /* signals belong to the application */
    config.parse_argv = 0;
    config.use_environment = 0;                /* ignore the application's PYTHON* variables */
    config.user_site_directory = 0;
    config.write_bytecode = 0;
    /* MAPI_PCAP_IMPORTTIME=1: python -X importtime inside the application (on its stderr) */
    const char *it = getenv("MAPI_PCAP_IMPORTTIME");
    if (it && *it && *it != '0') config.import_time = 1;
    PyStatus st = PyConfig_SetBytesString(&config, &config.executable, SHIM_VENV_PYTHON);
    if (!PyStatus_Exception(st))
        st = PyConfig_SetBytesString(&config, &config.program_name, SHIM_VENV_PYTHON);
    if (!PyStatus_Exception(st))
        st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "MAPI libpcap shim: cannot start Python (%s): %s",
                 SHIM_VENV_PYTHON, st.err_msg ? st.err_msg : "unknown error");
        return -1;
    }
    PyEval_SaveThread();                       /* from now on cffi takes the GIL per call */
    return 0;
}

int shim_python_start(char *errbuf)
{
    pthread_mutex_lock(&start_lock);
    if (state == 0) {
        char msg[PCAP_ERRBUF_SIZE] = "";
        if (start_interpreter(msg) == 0 && shim_py_init(msg) == 1) {
            state = 1;
            pthread_atfork(before_fork, after_fork_parent, after_fork_child);
            atexit(at_exit);
        } else {
            state = -1;
            if (!msg[0])
                snprintf(msg, sizeof msg, "MAPI libpcap shim: the Python runtime did not start "
                         "(see the messages above)");
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
static void py_close(pcap_t *p) { shim_py_close(p, p->seen, p->delivered); }
static void py_report(pcap_t *p) { shim_py_report(p, p->seen, p->delivered); }

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
