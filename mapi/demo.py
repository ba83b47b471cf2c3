"""`make demo`: five concurrent MAPI flows watch one generated trace; a readable report follows.

    python -m mapi.demo [--packets N] [--seed S] [--dir DIR] [--json]

The trace comes from mapi.tracegen (seeded, so every run sees the same packets) and goes to DIR
(default build/demo in a source checkout, else a temporary directory) together with the pcap of
the signature matches.  The flows, all on one offline device and all fed by the same replay:

  web         BPF_FILTER("tcp port 80") PKT_COUNTER BYTE_COUNTER
  dns         BPF_FILTER("udp port 53") PKT_COUNTER SAMPLE(10, PERIODIC) TO_BUFFER
  signatures  STR_SEARCH([100 signatures]) TO_FILE(MFF_PCAP, DIR/matches.pcap)
  talkers     BPF_FILTER("ip") TOP(5, "ip.src")
  alert       THRESHOLD(GREATER, web's PKT_COUNTER, N) with an event callback

A flow whose function is not installed is skipped with a message; the others still run.
"""
import argparse
import datetime
import json
import os
import struct
import sys
import tempfile
import threading
import time

import mapi
from mapi import tracegen
from mapi.registry import get_registry

DEFAULT_PACKETS = 200_000
DEFAULT_SEED = 1
DNS_SAMPLE_EVERY = 10
TOP_N = 5
SHOW_QUERIES = 3
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _checkout_build_dir():
    """build/demo of the source checkout this module runs from; None when installed (its
    parent is then site-packages, no place for traces)."""
    if os.path.exists(os.path.join(ROOT, "setup.py")):
        return os.path.join(ROOT, "build", "demo")
    return None


def demo_dir(path=None):
    """Where the trace and the match pcap go: `path`, $SCAMPI_DEMO_DIR, build/demo in the
    source checkout if writable, else a fresh temporary directory."""
    for cand in (path, os.environ.get("SCAMPI_DEMO_DIR"), _checkout_build_dir()):
        if not cand:
            continue
        try:
            os.makedirs(cand, exist_ok=True)
        except OSError:
            continue
        if os.access(cand, os.W_OK):
            return cand
    return tempfile.mkdtemp(prefix="scampi-demo-")


def make_trace(path, packets=DEFAULT_PACKETS, seed=DEFAULT_SEED):
    """Write the demo trace; returns the generator's exact counts (TraceStats)."""
    return tracegen.write_trace(path, packets, seed=seed)


def signatures():
    return list(tracegen.SIGNATURES)


def threshold_for(packets):
    """The alert fires once web traffic passes this many packets: about a sixth of the web
    traffic of a generated trace (tcp port 80 carries ~28 % of its packets)."""
    return max(1, packets // 20)


# --- the flows ----------------------------------------------------------------------------------
class Missing(Exception):
    """A function a flow needs is not installed."""


class Demo:
    def __init__(self, trace, outdir, packets, seed):
        self.trace = trace
        self.outdir = outdir
        self.packets = packets
        self.seed = seed
        self.dev = None
        self.parts = []            # dicts: name, asked, fd, fids, skipped, found
        self.reg = get_registry()
        self.events = []
        self.sampled = []          # the first few packets the DNS sampler kept
        self.sampled_taken = 0
        self._drains = []

    def need(self, *names):
        missing = [n for n in names if n not in self.reg.functions]
        if missing:
            raise Missing("%s %s not installed" % (", ".join(missing), "is" if len(missing) == 1 else "are"))

    def part(self, name, asked, build):
        entry = dict(name=name, asked=asked, fd=None, fids={}, skipped=None, found={})
        self.parts.append(entry)
        try:
            build(entry)
        except Missing as exc:
            entry["skipped"] = str(exc)
            if entry["fd"] is not None:
                mapi.close_flow(entry["fd"])
                entry["fd"] = None
        return entry

    def _flow(self, entry, steps):
        """Apply [(key, NAME, args...)] to a new flow of the device and connect it."""
        self.need(*[s[1] for s in steps])
        fd = mapi.create_flow(self.dev)
        entry["fd"] = fd
        for key, name, *args in steps:
            entry["fids"][key] = mapi.apply_function(fd, name, *args)
        mapi.connect(fd)
        return fd

    def build(self):
        self.dev = mapi.create_offline_device(self.trace)
        self.part("web", 'BPF_FILTER("tcp port 80") PKT_COUNTER BYTE_COUNTER', lambda e: self._flow(e, [
            ("filter", "BPF_FILTER", "tcp port 80"), ("packets", "PKT_COUNTER"), ("bytes", "BYTE_COUNTER")]))
        self.part("dns", 'BPF_FILTER("udp port 53") PKT_COUNTER SAMPLE(%d, PERIODIC) TO_BUFFER'
                  % DNS_SAMPLE_EVERY, self._dns)
        sigs = signatures()
        self.matches = os.path.join(self.outdir, "matches.pcap")
        self.part("signatures", "STR_SEARCH([%d signatures]) TO_FILE(MFF_PCAP, %r)"
                  % (len(sigs), self.matches), lambda e: self._flow(e, [
                      ("search", "STR_SEARCH", sigs), ("file", "TO_FILE", mapi.MFF_PCAP, self.matches)]))
        self.part("talkers", 'BPF_FILTER("ip") TOP(%d, "ip.src")' % TOP_N, lambda e: self._flow(e, [
            ("filter", "BPF_FILTER", "ip"), ("top", "TOP", TOP_N, "ip.src")]))
        self.limit = threshold_for(self.packets)
        self.part("alert", "THRESHOLD(GREATER, web's PKT_COUNTER, %d) -> event callback" % self.limit,
                  self._alert)

    def _dns(self, entry):
        fd = self._flow(entry, [("filter", "BPF_FILTER", "udp port 53"), ("packets", "PKT_COUNTER"),
                                ("sample", "SAMPLE", DNS_SAMPLE_EVERY, mapi.PERIODIC),
                                ("buffer", "TO_BUFFER", mapi.WAIT)])
        fid = entry["fids"]["buffer"]

        def take():
            # the sampler's packets: keep a few to show, count the rest (an offline TO_BUFFER is
            # lossless, so it must be read to the end or the replay would wait for us)
            for p in iter(lambda: mapi.get_next_pkt(fd, fid), None):
                if len(self.sampled) < SHOW_QUERIES:
                    self.sampled.append(p)
                self.sampled_taken += 1
        t = threading.Thread(target=take, name="demo-dns", daemon=True)
        self._drains.append(t)

    def _alert(self, entry):
        web = next(p for p in self.parts if p["name"] == "web")
        if web["skipped"]:
            raise Missing("needs the web flow (%s)" % web["skipped"])
        self.need("THRESHOLD")
        self._flow(entry, [("threshold", "THRESHOLD", mapi.GREATER, (web["fd"], web["fids"]["packets"]), self.limit)])
        mapi.set_event_callback(entry["fd"], entry["fids"]["threshold"], self.events.append)

    # --- run and read back ------------------------------------------------------------------
    def run(self):
        t0 = time.perf_counter()
        for t in self._drains:
            t.start()
        mapi.start_offline_device(self.dev)
        self.error = None
        try:
            mapi.wait_offline_device(self.dev)
        except mapi.MapiError as exc:
            self.error = exc
        for t in self._drains:
            t.join()
        self.seconds = time.perf_counter() - t0
        for entry in self.parts:
            if entry["skipped"] is None:
                getattr(self, "_found_" + entry["name"])(entry, entry["fd"], entry["fids"])
        self.device_packets = mapi.get_device_info(self.dev)["packets"]
        return self

    def _found_web(self, e, fd, f):
        e["found"] = dict(packets=mapi.read_results(fd, f["packets"]).value,
                          bytes=mapi.read_results(fd, f["bytes"]).value)

    def _found_dns(self, e, fd, f):
        e["found"] = dict(packets=mapi.read_results(fd, f["packets"]).value,
                          sampled=mapi.read_results(fd, f["sample"]).value,
                          taken=self.sampled_taken,
                          first_sampled=[dict(ts=p.ts, seq=p.seq, query=dns_query(p.data, p.linktype))
                                         for p in self.sampled])

    def _found_signatures(self, e, fd, f):
        counts = mapi.get_function_info(fd, f["search"]).get("pattern_counts") or []
        per = {sig: n for sig, n in zip(signatures(), counts) if n}
        written = mapi.read_results(fd, f["file"]).value
        e["found"] = dict(packets=mapi.read_results(fd, f["search"]).value, file=self.matches,
                          written=_field(written, "packets"), per_pattern=per)

    def _found_talkers(self, e, fd, f):
        top = mapi.read_results(fd, f["top"]).value
        e["found"] = dict(ip_packets=mapi.get_function_info(fd, f["filter"]).get("pkts_out"),
                          top=[_talker(x) for x in (top or [])])

    def _found_alert(self, e, fd, f):
        e["found"] = dict(limit=self.limit,
                          events=[dict(ts=ev.ts, value=ev.value, seq=ev.seq) for ev in self.events])

    def close(self):
        if self.dev is not None:
            mapi.delete_offline_device(self.dev)
            self.dev = None

    def report(self):
        return dict(trace=self.trace, seed=self.seed, packets=self.device_packets,
                    seconds=round(self.seconds, 3), flows=[{k: v for k, v in p.items() if k != "fids"}
                                                           for p in self.parts],
                    error=None if self.error is None else str(self.error))


def _field(v, name):
    if isinstance(v, dict):
        return v.get(name)
    return getattr(v, name, v)


def _talker(item):
    """One TOP entry as a dict with value, packets, bytes (whatever shape TOP returns)."""
    if isinstance(item, dict):
        return {k: item[k] for k in ("value", "packets", "bytes") if k in item}
    if hasattr(item, "_asdict"):
        d = item._asdict()
        return {k: d[k] for k in ("value", "packets", "bytes") if k in d}
    value, *counts = item
    return dict(value=str(value), packets=counts[0] if counts else None,
                bytes=counts[1] if len(counts) > 1 else None)


def dns_query(frame, linktype=1):
    """The first question name of a DNS packet (Ethernet, optional VLAN, IPv4/IPv6, UDP), or
    None.  Only for the handful of sampled packets the report shows."""
    try:
        pos = 0
        if linktype == 1:
            etype = struct.unpack_from("!H", frame, 12)[0]
            pos = 14
            while etype in (0x8100, 0x88A8):
                etype = struct.unpack_from("!H", frame, pos + 2)[0]
                pos += 4
        elif linktype == 101:
            etype = 0x0800 if frame[0] >> 4 == 4 else 0x86DD
        else:
            return None
        if etype == 0x0800:
            pos += (frame[pos] & 0x0F) * 4
        elif etype == 0x86DD:
            pos += 40
        else:
            return None
        pos += 8 + 12                       # UDP header, DNS header
        labels = []
        while frame[pos]:
            n = frame[pos]
            labels.append(bytes(frame[pos + 1:pos + 1 + n]).decode("ascii", "replace"))
            pos += 1 + n
        return ".".join(labels)
    except (IndexError, struct.error):
        return None


# --- the report -----------------------------------------------------------------------------------
def when(ts_ns):
    """Time of day (UTC) with microseconds: the demo trace spans well under a second."""
    secs, ns = divmod(ts_ns, 10 ** 9)
    t = datetime.datetime.fromtimestamp(secs, datetime.timezone.utc).strftime("%H:%M:%S")
    return "%s.%06d" % (t, ns // 1000)


def format_report(rep, trace_stats=None):
    out = []
    w = out.append
    w("SCAMPI demo: %d flows on one offline device, all fed by one replay" % len(rep["flows"]))
    size = os.path.getsize(rep["trace"]) if os.path.exists(rep["trace"]) else 0
    w("trace: %s (%s packets, %.1f MB, generated with seed %d)"
      % (rep["trace"], "{:,}".format(rep["packets"]), size / 1e6, rep["seed"]))
    if rep["seconds"]:
        w("replay: %.2f s (%s packets/s through every flow at once)"
          % (rep["seconds"], "{:,.0f}".format(rep["packets"] / rep["seconds"])))
    w("")
    for i, p in enumerate(rep["flows"], 1):
        w("[%d] %-11s %s" % (i, p["name"], p["asked"]))
        if p["skipped"]:
            w("    skipped: %s" % p["skipped"])
            continue
        for line in globals()["_say_" + p["name"]](p["found"], rep):
            w("    " + line)
    if rep["error"]:
        w("")
        w("replay error: %s" % rep["error"])
    return "\n".join(out) + "\n"


def _n(x):
    return "{:,}".format(x) if isinstance(x, int) else str(x)


def _say_web(f, rep):
    share = 100.0 * f["packets"] / rep["packets"] if rep["packets"] else 0
    yield "%s packets (%.1f %% of all), %s bytes on the wire" % (_n(f["packets"]), share, _n(f["bytes"]))


def _say_dns(f, rep):
    yield "%s DNS packets, %s kept by the 1-in-%d sampler (%s read from its buffer)" % (
        _n(f["packets"]), _n(f["sampled"]), DNS_SAMPLE_EVERY, _n(f["taken"]))
    for q in f["first_sampled"]:
        yield "  frame %s at %s: %s" % (_n(q["seq"] + 1), when(q["ts"]), q["query"] or "(not a query)")


def _say_signatures(f, rep):
    yield "%s packets carry one of the signatures; %s written to %s" % (
        _n(f["packets"]), _n(f["written"]), f["file"])
    common = sorted(f["per_pattern"].items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    if common:
        yield "most frequent: " + ", ".join("%s (%s)" % (k, _n(v)) for k, v in common)


def _say_talkers(f, rep):
    yield "top %d IPv4 sources of %s IP packets:" % (len(f["top"]), _n(f["ip_packets"]))
    for i, t in enumerate(f["top"], 1):
        extra = ", %s bytes" % _n(t["bytes"]) if t.get("bytes") is not None else ""
        yield "  %d. %-15s %s packets%s" % (i, t["value"], _n(t["packets"]), extra)


def _say_alert(f, rep):
    if not f["events"]:
        yield "no event: web traffic stayed at or below %s packets" % _n(f["limit"])
    for ev in f["events"]:
        yield "event: web packets passed %s at %s (frame %s, count %s)" % (
            _n(f["limit"]), when(ev["ts"]), _n(ev["seq"] + 1), _n(ev["value"]))


def run_demo(packets=DEFAULT_PACKETS, seed=DEFAULT_SEED, outdir=None):
    """Generate the trace, run the flows; returns (report dict, generator stats)."""
    outdir = demo_dir(outdir)
    trace = os.path.join(outdir, "demo-%d-%d.pcap" % (packets, seed))
    stats = make_trace(trace, packets, seed)
    demo = Demo(trace, outdir, packets, seed)
    try:
        demo.build()
        demo.run()
        return demo.report(), stats
    finally:
        demo.close()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m mapi.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=DEFAULT_PACKETS, help="trace length (default %(default)s)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed (default %(default)s)")
    ap.add_argument("--dir", help="where the trace and the match pcap go (default build/demo)")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    args = ap.parse_args(argv)
    if args.packets < 1:
        ap.error("--packets must be at least 1")
    try:
        rep, _ = run_demo(args.packets, args.seed, args.dir)
    except mapi.MapiError as exc:
        sys.stderr.write("demo: %s\n" % exc)
        return 2
    if args.json:
        json.dump(rep, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_report(rep))
    return 1 if rep["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
