"""Helpers for the shim's acceptance tests (tests/test_shim_*.py): build the library once, run a
command with and without it preloaded, collect the MAPI reports of a preloaded run."""
import fcntl
import json
import os
import shutil
import subprocess
import tempfile

from scampi.libpcap_shim import build as _build
from scampi.libpcap_shim.preload import preload_env

SYSTEM_LIBPCAP = "/usr/lib/x86_64-linux-gnu/libpcap.so.0.8"
_LOCK = os.path.join(tempfile.gettempdir(), "scampi-libpcap-shim-build.lock")


def library():
    """Path of libpcap.so.0.8, rebuilt first if a source changed (serialised across processes).
    MAPI_PCAP_SHIM_LIBRARY names another build of it (make test-asan's)."""
    other = os.environ.get("MAPI_PCAP_SHIM_LIBRARY")
    if other:
        return other
    with open(_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _build.up_to_date():
            _build.build()
    return _build.TARGET


def tool(name):
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")


class Run:
    """One finished command: stdout/stderr bytes, exit code, the shim's reports."""

    def __init__(self, proc, reports):
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.returncode = proc.returncode
        self.reports = reports

    def __repr__(self):
        return "Run(rc=%d, stdout=%d bytes, stderr=%r)" % (self.returncode, len(self.stdout),
                                                            self.stderr[-300:])


def run(argv, preload, cwd=None, env=None, timeout=120, input=None, server=None):
    """Run argv with the stock libpcap (preload False) or through the shim (True); server: a
    mapid URL the shim then uses (MAPI_SERVER), None for the in-process engine."""
    e = dict(os.environ)
    e.update(env or {})
    e.pop("LD_PRELOAD", None)
    e.pop("MAPI_SERVER", None)
    report = None
    if preload:
        e.update(preload_env(library()))
        if server:
            e["MAPI_SERVER"] = server
        fd, report = tempfile.mkstemp(prefix="shim-report-", suffix=".jsonl")
        os.close(fd)
        os.chmod(report, 0o666)         # the application may drop to another user
        e["MAPI_PCAP_REPORT"] = report
    try:
        proc = subprocess.run(argv, cwd=cwd, env=e, capture_output=True, timeout=timeout,
                              input=input)
        reports = []
        if report:
            with open(report) as f:
                reports = [json.loads(line) for line in f if line.strip()]
    finally:
        if report:
            os.unlink(report)
    return Run(proc, reports)


def in_mode(run, server):
    """Every handle of a preloaded run went the way asked: through mapid (server) with no
    interpreter started in the application, or through the in-process engine."""
    assert run.reports, "the shim wrote no MAPI report: %r" % (run,)
    for r in run.reports:
        assert bool(r.get("server")) == bool(server), r
        if server:
            assert r.get("python") is False, r


def function_counts(report, name):
    """(pkts_in, pkts_out) of the named MAPI function in one handle's report, or None."""
    for f in report.get("functions", []):
        if f["name"] == name:
            return f["pkts_in"], f["pkts_out"]
    return None
