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
    /* mapi-preload names the interpreter it runs under (a wheel installed in another virtualenv
     * than the one it was built in) */
    const char *python = getenv("MAPI_PCAP_PYTHON");
    if (!python || !*python) python = SHIM_VENV_PYTHON;
    PyStatus st = PyConfig_SetBytesString(&config, &config.executable, python);
    if (!PyStatus_Exception(st))
        st = PyConfig_SetBytesString(&config, &config.program_name, python);
    if (!PyStatus_Exception(st))
        st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) {
        snprintf(errbuf, PCAP_ERRBUF_SIZE, "MAPI libpcap shim: cannot start Python (%s): %s",
                 python, st.err_msg ? st.err_msg : "unknown error");
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
