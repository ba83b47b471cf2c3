/* The Python half of the libpcap drop-in as a library of its own (libpcap_shim_python.so, a cffi
 * embedding module): the interpreter and the calls of ../csrc/pyapi.h, implemented by runtime.py.
 * libpcap.so.0.8 loads it (dlopen) at the first call that needs the in-process engine; with a
 * server configured it is never loaded, and no part of Python is in the application.
 *
 * The interpreter starts at that first call, never in an ELF constructor.  It is configured as
 * the project's virtualenv interpreter (SHIM_VENV_PYTHON, fixed at build time), whatever the
 * application's environment says, and it imports everything the runtime will need at once:
 * tcpdump drops to an unprivileged user right after opening its handle, and the interpreter's
 * files may not be readable by that user. */
#include <Python.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pcap/pcap.h>
#include "pyapi.h"

#ifndef SHIM_VENV_PYTHON
#error "build.py defines SHIM_VENV_PYTHON"
#endif

/* libpcap.so.0.8's, resolved when this library is loaded into the application */
extern void shim_report_all(void);

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

/* Called once by libpcap.so.0.8 (python.c, under its lock): 0, or -1 with errbuf. */
__attribute__((visibility("default"))) int shim_pyhalf_start(char *errbuf)
{
    char msg[PCAP_ERRBUF_SIZE] = "";
    if (start_interpreter(msg) == 0 && shim_py_init(msg) == 1) {
        pthread_atfork(before_fork, after_fork_parent, after_fork_child);
        atexit(at_exit);
        return 0;
    }
    if (!msg[0])
        snprintf(msg, sizeof msg, "MAPI libpcap shim: the Python runtime did not start "
                 "(see the messages above)");
    memcpy(errbuf, msg, PCAP_ERRBUF_SIZE);
    return -1;
}
