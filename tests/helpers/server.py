"""Real mapid processes for the server tests: started on a Unix socket in a temporary
directory, stopped with SIGTERM (or killed), plus client processes that use it through
MAPI_SERVER."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:                  # tools/ (the trace generator) is not installed
    sys.path.insert(0, str(ROOT))


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "MAPI_SERVER"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


# Job control for tests that are not about it: every uid may do anything (as before job control
# existed), the resource database beside the socket, fixed cost classes (no calibration run),
# no CPU budget to speak of
OPEN_JOBS = """
[jobcontrol]
database = "%s"
costs = { free = 1.0, low = 10.0, high = 40.0 }
[jobcontrol.grants]
"*" = "all"
"cert:*" = "all"
[jobcontrol.capacity]
cpu_budget = 1000000.0
"""


# mapid as another user: the interpreter lives where only root may start it, so mapid starts as
# root, loads what it serves with (modules, plugins) and then becomes the user before it
# listens; from then on it can open nothing its user could not
AS_USER = """
import os, sys
uid, gid = int(sys.argv.pop(1)), int(sys.argv.pop(1))
import bz2, fractions, gzip, lzma, tomllib, mapi, mapi.explain
import importlib, pkgutil, mapi.jobcontrol
for m in pkgutil.walk_packages(mapi.jobcontrol.__path__, 'mapi.jobcontrol.'):
    importlib.import_module(m.name)
from mapi.registry import get_registry
from mapi.server import main, config, engine, loop, session, views
get_registry()
os.setgroups([]); os.setgid(gid); os.setuid(uid)
sys.exit(main.main(sys.argv[1:]))
"""


class Mapid:
    """One mapid process.  `config`: TOML text written next to the socket; `user`: (uid, gid)
    mapid runs as (the directory must be that user's)."""

    def __init__(self, directory, config=None, args=(), user=None):
        self.dir = Path(directory)
        self.socket = str(self.dir / "mapid.sock")
        self.url = "unix:" + self.socket
        self.log = self.dir / "mapid.log"
        self.database = str(self.dir / "mapid.db")
        cmd = [sys.executable, "-m", "mapi.server"]
        env = clean_env(PYTHONFAULTHANDLER="1")
        if user is not None:
            cmd = [sys.executable, "-c", AS_USER, str(user[0]), str(user[1])]
            env.update(HOME=str(self.dir), MAPI_CACHE_DIR=str(self.dir / "cache"))
        cmd += ["--socket", self.socket, *args]
        self.config = self.dir / "mapid.toml"
        if config is not None or not self.config.exists():     # None: the config left there
            config = config or ""
            if "[jobcontrol" not in config:
                config += OPEN_JOBS % self.database
            self.config.write_text(config)
        cmd += ["--config", str(self.config)]
        self._log = open(self.log, "ab")
        self.proc = self._spawn(cmd, env)
        self.pid = self.proc.pid
        self.wait_ready()

    def _spawn(self, cmd, env):
        # a crash leaves its Python stacks in the log
        return subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                cwd=str(ROOT))

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mapid exited with %s:\n%s" % (self.proc.returncode, self.log_text()))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.socket)
                return
            except OSError:
                time.sleep(0.05)
            finally:
                s.close()
        raise RuntimeError("mapid did not listen within %d s:\n%s" % (timeout, self.log_text()))

    def log_text(self):
        return self.log.read_text(errors="replace")

    def rss_kb(self):
        """VmRSS, RssAnon and RssShmem of mapid in kB."""
        out = {}
        for line in open("/proc/%d/status" % self.pid):
            key = line.split(":")[0]
            if key in ("VmRSS", "RssAnon", "RssShmem", "RssFile", "VmHWM"):
                out[key] = int(line.split()[1])
        return out

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("mapid did not stop on SIGTERM:\n" + self.log_text())
        self._log.close()
        return self.proc.returncode

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self._log.closed:
            self._log.close()


def client_script(body, user=None):
    """A client program: `body` runs with mapi imported (through MAPI_SERVER) and prints JSON
    lines with emit(...).  user: (uid, gid) it becomes before its first MAPI call (the
    interpreter lives where only root may start it, so the drop happens inside)."""
    drop = ""
    if user is not None:
        drop = "os.setgroups([]); os.setgid(%d); os.setuid(%d)\n" % (user[1], user[0])
    return textwrap.dedent("""
        import json, os, sys, time
        import mapi
        def emit(obj):
            print(json.dumps(obj, default=repr), flush=True)
    """) + drop + textwrap.dedent(body)


def start_client(mapid, body, user=None, args=(), **popen):
    """A client process on mapid (stdin/stdout pipes); user: (uid, gid) it runs its MAPI calls as."""
    env = clean_env(MAPI_SERVER=mapid.url, HOME=tempfile.gettempdir())
    popen.setdefault("stdin", subprocess.PIPE)
    return subprocess.Popen([sys.executable, "-c", client_script(body, user), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tempfile.gettempdir(), **popen)


def run_client(mapid, body, user=None, timeout=120, args=()):
    """Run a client to its end; returns (its emitted JSON objects, stderr)."""
    p = start_client(mapid, body, user, args)
    out, err = p.communicate(timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("client failed (%d):\n%s\nmapid log:\n%s" % (p.returncode, err,
                                                                          mapid.log_text()))
    return [json.loads(line) for line in out.splitlines() if line.startswith(("{", "["))], err


def nobody():
    import pwd
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


def open_dir(prefix):
    """A temporary directory every user may read (for traces an unprivileged client reads)."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    return Path(d)


def private_dir(prefix, user=None):
    """A temporary directory only its owner may enter: root's, or `user`'s (uid, gid)."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o700)
    if user is not None:
        os.chown(d, *user)
    return Path(d)


def trace(directory, packets, seed=1):
    from tools.gentrace import write_trace
    path = Path(directory) / ("trace-%d-%d.pcap" % (packets, seed))
    if not path.exists():
        write_trace(str(path), packets=packets, seed=seed)
        os.chmod(path, 0o644)
    return path


def trace_fixtures(prefix, packets, seed):
    """A module's `workdir` (open_dir(prefix), where mapid and its clients find traces) and
    `tracefile` (a generated trace of `packets` packets there) fixtures, module-scoped; bind
    them at module level: ``workdir, tracefile = trace_fixtures(...)``."""
    @pytest.fixture(scope="module", name="workdir")
    def workdir_fixture():
        return open_dir(prefix)

    @pytest.fixture(scope="module", name="tracefile")
    def tracefile_fixture(workdir):
        return trace(workdir, packets, seed=seed)
    return workdir_fixture, tracefile_fixture


def web_and_talkers(m, dev):
    """The first two flows of the jobs compared between in-process and server runs, created and
    connected on `dev` through `m` (the mapi module or a client): `web` counts the packets and
    bytes of "tcp port 80", `talkers` keeps the TOP 5 IPv4 sources.
    Returns (web, pkts, nbytes, talkers, top)."""
    web = m.create_flow(dev)
    m.apply_function(web, "BPF_FILTER", "tcp port 80")
    pkts = m.apply_function(web, "PKT_COUNTER")
    nbytes = m.apply_function(web, "BYTE_COUNTER")
    m.connect(web)
    talkers = m.create_flow(dev)
    m.apply_function(talkers, "BPF_FILTER", "ip")
    top = m.apply_function(talkers, "TOP", 5, "ip.src")
    m.connect(talkers)
    return web, pkts, nbytes, talkers, top


def in_process(path, expr, function):
    """The result of BPF_FILTER(expr) + function on the in-process engine (the reference)."""
    import mapi
    with mapi.OfflineDevice(str(path)) as dev:
        f = dev.flow()
        f.apply("BPF_FILTER", expr)
        fn = f.apply(function)
        dev.run()
        return fn.value
