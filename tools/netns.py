#!/usr/bin/env python3
"""Throw-away test networks: two network namespaces joined by a veth pair, and a MAPI capture
runner that works inside one of them.

    from tools.netns import VethPair
    with VethPair() as net:                      # names unique per process and call
        cap = net.capture({"dev": "ring:" + net.rx_if, "flows": [...], "until": ...})
        net.replay("trace.pcap", pps=20000)      # tcpreplay from the other end
        out = cap.finish()                       # results, packets, stats as a dict

Nothing is left behind: the namespaces (and with them the veth pair) are deleted on exit, even
when the body raised; stale ones from a killed run are removed by `python tools/netns.py clean`.
Both namespaces have IPv6 disabled and no addresses, so the kernel sends nothing of its own and
the receiving end sees exactly what was replayed.

    python tools/netns.py capture SPEC_JSON      # (inside a namespace) run MAPI flows
    python tools/netns.py clean                  # delete namespaces named scampi-*
"""
import itertools
import json
import os
import shutil
import subprocess
import sys
import time

PREFIX = "scampi-"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_count = itertools.count()


def _run(cmd, check=True, timeout=30, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), r.returncode, r.stderr.strip()))
    return r


def tool(name):
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if path is None:
        raise FileNotFoundError(name)
    return path


def can_create():
    """(ok, why): can this process create namespaces and veth pairs?"""
    if os.geteuid() != 0:
        return False, "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) to create network namespaces"
    try:
        tool("ip")
    except FileNotFoundError:
        return False, "the ip command (iproute2) is not installed"
    name = "%sprobe-%d" % (PREFIX, os.getpid())
    r = _run(["ip", "netns", "add", name], check=False)
    if r.returncode != 0:
        return False, "ip netns add failed: %s" % r.stderr.strip()
    _run(["ip", "netns", "del", name], check=False)
    return True, ""


class VethPair:
    """Namespaces <tag>-tx and <tag>-rx with interfaces tx_if and rx_if (a veth pair)."""

    def __init__(self, mtu=9000, tag=None):
        self.tag = tag or "%s%d-%d" % (PREFIX, os.getpid(), next(_count))
        self.ns_tx, self.ns_rx = self.tag + "-tx", self.tag + "-rx"
        n = self.tag.replace(PREFIX, "")[-9:]
        self.tx_if, self.rx_if = "vt%s" % n, "vr%s" % n          # IFNAMSIZ: 15 characters
        self.mtu = mtu
        self.procs = []

    def __enter__(self):
        try:
            self.create()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc):
        self.destroy()
        return False

    def create(self):
        for ns in (self.ns_tx, self.ns_rx):
            _run(["ip", "netns", "add", ns])
            self.ns_exec(ns, ["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"])
            self.ns_exec(ns, ["sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"])
            self.ns_exec(ns, ["ip", "link", "set", "lo", "up"])
        _run(["ip", "link", "add", self.tx_if, "netns", self.ns_tx, "mtu", str(self.mtu),
              "type", "veth", "peer", "name", self.rx_if, "netns", self.ns_rx, "mtu", str(self.mtu)])
        self.ns_exec(self.ns_tx, ["ip", "link", "set", self.tx_if, "up"])
        self.ns_exec(self.ns_rx, ["ip", "link", "set", self.rx_if, "up"])

    def destroy(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        self.procs = []
        for ns in (self.ns_tx, self.ns_rx):
            _run(["ip", "netns", "del", ns], check=False)

    def ns_exec(self, ns, cmd, check=True, timeout=60):
        return _run(["ip", "netns", "exec", ns] + list(cmd), check=check, timeout=timeout)

    def link(self, up, side="rx"):
        ns, ifname = (self.ns_rx, self.rx_if) if side == "rx" else (self.ns_tx, self.tx_if)
        self.ns_exec(ns, ["ip", "link", "set", ifname, "up" if up else "down"])

    def replay(self, path, pps=None, mbps=None, topspeed=False, loop=1, cpu=0, timeout=120):
        """tcpreplay `path` out of tx_if, pinned to one CPU so the receiver sees packet order
        unchanged.  Returns tcpreplay's statistics as a dict (packets, failed, ...)."""
        cmd = ["taskset", "-c", str(cpu), tool("tcpreplay"), "-i", self.tx_if, "--preload-pcap",
               "--loop", str(loop)]
        if topspeed:
            cmd.append("--topspeed")
        elif pps:
            cmd.append("--pps=%s" % pps)
        elif mbps:
            cmd.append("--mbps=%s" % mbps)
        cmd.append(str(path))
        r = self.ns_exec(self.ns_tx, cmd, timeout=timeout)
        return parse_tcpreplay(r.stdout)

    def spawn(self, ns, cmd, **kw):
        """Start `cmd` in namespace `ns` (ip netns exec replaces itself with it: the Popen's pid
        is the command's, so signals reach it)."""
        p = subprocess.Popen(["ip", "netns", "exec", ns] + list(cmd), **kw)
        self.procs.append(p)
        return p

    def capture(self, spec, python=sys.executable, ready_timeout=30, cpu=None):
        """Start tools/netns.py capture SPEC in the rx namespace (pinned to `cpu` if given);
        returns once its flows are connected (the device captures)."""
        return Capture(self, spec, python, ready_timeout, cpu)


def parse_tcpreplay(text):
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Actual:"):
            # Actual: 4631 packets (3738499 bytes) sent in 0.46 seconds
            parts = line.split()
            out["packets"] = int(parts[1])
            out["bytes"] = int(parts[3].strip("("))
            out["seconds"] = float(parts[-2])
        elif line.startswith("Rated:"):
            parts = line.split()
            out["pps"] = float(parts[-2]) if parts[-1].startswith("pps") else None
            out["Bps"] = float(parts[1])
        elif ":" in line and line.split(":")[0] in ("Successful packets", "Failed packets",
                                                     "Truncated packets", "Retried packets (ENOBUFS)",
                                                     "Retried packets (EAGAIN)"):
            k, v = line.split(":", 1)
            out[k.strip().lower().replace(" ", "_").replace("(", "").replace(")", "")] = int(v)
    return out


class Capture:
    def __init__(self, net, spec, python, ready_timeout, cpu=None):
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
        self.proc = net.spawn(net.ns_rx, pin + [python, os.path.join(ROOT, "tools", "netns.py"),
                                                "capture", json.dumps(spec)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                              cwd=ROOT)
        deadline = time.time() + ready_timeout
        line = ""
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line or line.strip() == "READY":
                break
        if line.strip() != "READY":
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            try:
                doc = json.loads(line)
            except ValueError:
                doc = None
            raise RuntimeError("the capture did not start: %s %s" % (doc or line.strip(), err[-3000:]))

    def finish(self, timeout=60):
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise RuntimeError("the capture did not finish in %d s: %s" % (timeout, err[-3000:]))
        lines = [l for l in out.splitlines() if l.strip()]
        if not lines:
            raise RuntimeError("the capture printed nothing (exit %s): %s" % (self.proc.returncode, err[-3000:]))
        doc = json.loads(lines[-1])
        doc["stderr"] = err
        return doc


# --- the capture runner (runs inside a namespace) ---------------------------------------------
def _jsonable(v):
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return repr(v)


def run_capture(spec):
    """spec: dev, options, register (backend modules to load), flows [{functions: [[NAME,
    args...], ...], drain: index of a TO_BUFFER to read out}], and when to stop: until {flow,
    fid, value} (a result reached value), wait_for_stats (the device delivered that many
    packets), until_state (the device reached that state), until_quiet_ms (packets came, then
    none for that long) -- all given must hold -- or timeout (s); then settle (s) more before
    results are read."""
    import mapi
    from mapi.registry import get_registry
    reg = get_registry()
    for mod in spec.get("register", []):            # backends not yet in the entry points
        import importlib
        module = importlib.import_module(mod)
        names = [d.name for d in module.scampi_backends()]
        if not any(n in reg.backends for n in names):
            reg.register(module, name="backend-" + mod.rsplit(".", 1)[-1])
    flows = []
    t0 = time.time()
    for f in spec["flows"]:
        fd = mapi.create_flow(spec["dev"], **spec.get("options", {}))
        fids = [mapi.apply_function(fd, fn[0], *fn[1:]) for fn in f["functions"]]
        flows.append((fd, fids, f))
    for fd, _, _ in flows:
        mapi.connect(fd)
    print("READY", flush=True)
    dev = spec["dev"]
    until = spec.get("until")
    want_delivered = spec.get("wait_for_stats")
    want_state = spec.get("until_state")
    quiet_ms = spec.get("until_quiet_ms")
    deadline = time.time() + spec.get("timeout", 30)
    reached = False
    seen, changed = 0, time.time()
    while time.time() < deadline:
        ok = True
        if quiet_ms is not None:           # traffic came and then stopped for quiet_ms
            now = mapi.stats(dev)
            cur = now.get("delivered", 0) + now.get("kernel_drops", 0)
            if cur != seen:
                seen, changed = cur, time.time()
            ok = seen > 0 and (time.time() - changed) * 1000 >= quiet_ms
        if until is not None:
            fd, fids, _ = flows[until["flow"]]
            v = mapi.read_results(fd, fids[until["fid"]]).value
            ok = v is not None and v >= until["value"]
        if ok and want_delivered is not None:
            ok = mapi.stats(dev).get("delivered", 0) >= want_delivered
        if ok and want_state is not None:
            ok = mapi.get_device_info(dev)["state"] == want_state
        if ok:
            reached = True
            break
        time.sleep(0.02)
    time.sleep(spec.get("settle", 0.3))
    out = dict(reached=reached, elapsed=time.time() - t0, results=[], packets={}, functions=[])
    out["stats"] = _jsonable(mapi.stats(dev))
    out["info"] = _jsonable(mapi.get_device_info(dev))
    for i, (fd, fids, f) in enumerate(flows):
        if f.get("drain") is not None:
            pkts = []
            fid = fids[f["drain"]]
            while True:
                p = mapi.get_next_pkt(fd, fid, timeout=0.5)
                if p is None:
                    break
                pkts.append([p.ts, p.caplen, p.wlen, p.data.hex()])
            out["packets"][str(i)] = pkts
    for fd, fids, f in flows:
        out["results"].append([_jsonable(mapi.read_results(fd, fid).value) for fid in fids])
        out["functions"].append([_jsonable(mapi.get_function_info(fd, fid)) for fid in fids])
    for fd, _, _ in flows:
        mapi.close_flow(fd)
    return out


def _clean():
    r = _run(["ip", "netns", "list"], check=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(PREFIX):
            _run(["ip", "netns", "del", name], check=False)
            print("deleted", name)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["capture"] and len(argv) == 2:
        try:
            out = run_capture(json.loads(argv[1]))
        except Exception as exc:      # report, never hang the parent waiting for READY
            import traceback
            print(json.dumps(dict(error="%s: %s" % (type(exc).__name__, exc),
                                  code=getattr(exc, "code", None),
                                  traceback=traceback.format_exc())), flush=True)
            return 1
        print(json.dumps(out), flush=True)
        return 0
    if argv[:1] == ["clean"]:
        _clean()
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
