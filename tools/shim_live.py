#!/usr/bin/env python3
"""Several unchanged `tcpdump -i` on one veth interface, natively or through the libpcap drop-in
on one mapid: the run the live test (tests/test_shim_live_shared.py) checks and the bench
(tools/bench_shim_server.py) measures.

    from tools.netns import VethPair
    from tools.shim_live import run_set
    with VethPair() as net:
        out = run_set(net, "trace.pcap", n=8, mode="server", pps=2000)

mode "native": the stock libpcap, one AF_PACKET socket per tcpdump; "server": every tcpdump
preloaded with MAPI_SERVER pointing at a mapid started for the run in the receiving namespace
(one device, one socket, one flow per tcpdump).  The result says, per tcpdump, what it wrote
(-w), what it counted (its closing "captured / received by filter / dropped by kernel"
lines) and its CPU time; for the set, the packet sockets on the interface while the tcpdumps ran
(/proc/net/packet of the namespace) and mapid's CPU time during the replay (mapid_cpu) and from
the first tcpdump's start (mapid_cpu_all: the flows' set-up too)."""
import os
import re
import select
import resource  # noqa: F401  (os.wait4's rusage)
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.helpers.server import Mapid as HelperMapid  # noqa: E402
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _tool(name):
    import shutil
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")


def shim_library():
    from scampi.libpcap_shim import testing
    return testing.library()


def preload_env(lib, base):
    from scampi.libpcap_shim.preload import preload_env as env_of
    return env_of(lib, base)


def packet_sockets(net):
    """Rows of /proc/net/packet in the receiving namespace on its veth end (ifindex)."""
    ifindex = int(net.ns_exec(net.ns_rx, ["cat", "/sys/class/net/%s/ifindex" % net.rx_if]).stdout)
    rows = net.ns_exec(net.ns_rx, ["cat", "/proc/net/packet"]).stdout.splitlines()[1:]
    # sk RefCnt Type Proto Iface R Rmem User Inode
    return [r for r in rows if len(r.split()) >= 5 and int(r.split()[4]) == ifindex]


def _cpu_seconds(pid):
    """utime + stime of a running process (/proc/PID/stat), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Mapid(HelperMapid):
    """mapid in the receiving namespace, on a socket in a directory of its own: the tests' helper
    (its open job control config, wait_ready, log_text) spawned through `ip netns exec`."""

    def __init__(self, net, directory, config=None):
        self.net = net
        super().__init__(directory, config)

    def _spawn(self, cmd, env):
        return self.net.spawn(self.net.ns_rx, cmd, stdout=self._log, stderr=subprocess.STDOUT,
                              env=env, cwd=ROOT)

    def cpu(self):
        return _cpu_seconds(self.proc.pid)

    def stop(self, timeout=30):
        """SIGTERM; a mapid that does not stop is made to dump its threads' stacks into its log
        (faulthandler, SIGABRT) before the error says so."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGABRT)
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                self._log.close()
                raise RuntimeError("mapid did not stop on SIGTERM:\n" + self.log_text())
        self._log.close()
        return self.proc.returncode


COUNTS = re.compile(rb"(\d+) packets? captured\n(\d+) packets? received by filter\n"
                    rb"(\d+) packets? dropped by kernel")


def _start_tcpdump(net, out, env):
    p = net.spawn(net.ns_rx, [_tool("tcpdump"), "-i", net.rx_if, "-n", "-w", out, "-Z", "root"],
                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err = b""
    deadline = time.time() + 30
    while b"listening on" not in err and p.poll() is None and time.time() < deadline:
        if select.select([p.stderr], [], [], 0.5)[0]:
            err += os.read(p.stderr.fileno(), 4096)
    if b"listening on" not in err:
        p.kill()
        raise RuntimeError("tcpdump did not start: %r" % (err + p.stderr.read()))
    return p, err


def run_set(net, trace, n=8, mode="server", pps=None, topspeed=False, settle=1.5, workdir=None,
            mapid_config=None):
    """Start n `tcpdump -i` on the receiving end, replay `trace` from the other, stop them
    (SIGINT, as a user would) and collect what each saw.  Returns a dict (see the module)."""
    workdir = workdir or tempfile.mkdtemp(prefix="shim-live-")
    os.chmod(workdir, 0o777)
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MAPI_SERVER")}
    mapid = None
    if mode == "server":
        mapid = Mapid(net, workdir, mapid_config)
        # the shim after a sanitizer runtime that make test-asan preloads, which must stay first
        env.update(preload_env(shim_library(), base=os.environ))
        env["MAPI_SERVER"] = mapid.url
    procs = []
    try:
        mapid_cpu_start = mapid.cpu() if mapid else 0.0     # before the tcpdumps connect
        for i in range(n):
            out = os.path.join(workdir, "%s-%d.pcap" % (mode, i))
            p, err = _start_tcpdump(net, out, env)
            procs.append((p, out, err))
        sockets = packet_sockets(net)
        mapid_cpu0 = mapid.cpu() if mapid else 0.0
        t0 = time.time()
        replay = net.replay(trace, pps=pps, topspeed=topspeed)
        time.sleep(settle)
        mapid_cpu = (mapid.cpu() - mapid_cpu0) if mapid else 0.0
        # with the flows' set-up (their rings faulted in at connect, mapi_ring_warm)
        mapid_cpu_all = (mapid.cpu() - mapid_cpu_start) if mapid else 0.0
        for p, _, _ in procs:
            p.send_signal(signal.SIGINT)
        dumps = []
        for p, out, err in procs:
            _, status, usage = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            err += p.stderr.read()
            m = COUNTS.search(err)
            dumps.append(dict(file=out, rc=p.returncode, stderr=err.decode(errors="replace"),
                              captured=int(m.group(1)) if m else None,
                              received=int(m.group(2)) if m else None,
                              dropped=int(m.group(3)) if m else None,
                              cpu=usage.ru_utime + usage.ru_stime))
        return dict(mode=mode, n=n, replay=replay, sockets=len(sockets), socket_rows=sockets,
                    tcpdumps=dumps, mapid_cpu=mapid_cpu, mapid_cpu_all=mapid_cpu_all, seconds=time.time() - t0,
                    mapid_log=mapid.log_text() if mapid else "")
    finally:
        for p, _, _ in procs:
            if p.poll() is None:
                p.kill()
        if mapid:
            mapid.stop()


def printed(path, tcpdump=None):
    """What native tcpdump prints for a file, without time stamps (tcpdump -nt -r)."""
    r = subprocess.run([tcpdump or _tool("tcpdump"), "-n", "-t", "-r", path], capture_output=True,
                       env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"})
    return r.stdout
