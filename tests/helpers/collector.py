"""Running the netflow collector device for the tests: live on netflow:udp:127.0.0.1:0 fed
datagrams from sockets here, offline over a capture of exports; nfdump's listings and totals
(corpus reference/*.nfdump.txt) parsed for comparison."""
import importlib
import os
import re
import socket
import time

import mapi
from mapi._engine import ffi
from mapi.registry import get_registry

from . import CORPUS


def use_netflow_backend():
    """Registers the netflow backend when the installed plugins do not (a bare checkout)."""
    reg = get_registry()
    if "netflow" not in reg.backends:
        reg.register(importlib.import_module("scampi.backends.netflow"), name="backend-netflow")


# --- corpus groups and their nfdump references ------------------------------------------------
def reference_file(group):
    if group.startswith("derived/"):
        return CORPUS / "reference" / (os.path.basename(group)[:-5] + ".nfdump.txt")
    src, name = group.split(":")
    return CORPUS / "reference" / (("akvorado__" if src == "akvorado" else "pta__") + name + ".nfdump.txt")


def nfdump_totals(text):
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+): (\d+)$", text, re.M)}


def nfdump_flows(text):
    """(proto, src, sport, dst, dport, packets, bytes) of each line of nfdump's listing."""
    out = []
    for line in text.splitlines():
        p = line.split()
        if len(p) >= 12 and re.match(r"\d{4}-\d\d-\d\d", p[0]):
            out.append((int(p[5]), p[6], p[7], p[8], p[9], int(p[10]), int(p[11])))
    return out



# --- running the collector --------------------------------------------------------------------
def live_collector(flows, payloads=(), options=None, senders=None):
    """Open netflow:udp:127.0.0.1:0 with `flows` (lists of (NAME, args...)), send `payloads`
    from one socket (or per sender), wait until every datagram was decoded; return
    (results, stats, info, drained records)."""
    name = "netflow:udp:127.0.0.1:0"
    fds = []
    for fl in flows:
        fd = mapi.create_flow(name, **(options or {}))
        fids = [mapi.apply_function(fd, fn[0], *fn[1:]) for fn in fl]
        mapi.connect(fd)
        fds.append((fd, fids, fl))
    try:
        port = mapi.get_device_info(name)["port"]
        sent = 0
        if senders is None:
            senders = [payloads]
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in senders]
        for s, pl in zip(socks, senders):
            for p in pl:
                s.sendto(p, ("127.0.0.1", port))
                sent += 1
        deadline = time.time() + 20
        while time.time() < deadline:
            st = mapi.stats(name)
            if st["packets"] >= sent and mapi.get_device_info(name)["packets"] >= st["records"]:
                break
            time.sleep(0.02)
        for s in socks:
            s.close()
        time.sleep(0.05)
        drained = {}
        for i, (fd, fids, fl) in enumerate(fds):
            for k, fn in enumerate(fl):
                if fn[0] == "TO_BUFFER":
                    recs = []
                    while True:
                        p = mapi.get_next_pkt(fd, fids[k], timeout=0.2)
                        if p is None:
                            break
                        recs.append(record(p.data))
                    drained[i] = recs
        results = [[mapi.read_results(fd, fid).value for fid in fids] for fd, fids, _ in fds]
        return results, mapi.stats(name), mapi.get_device_info(name), drained
    finally:
        for fd, _, _ in fds:
            mapi.close_flow(fd)


def record(data):
    """A mapi_flowrec from a record's bytes, as a dict."""
    buf = ffi.new("mapi_flowrec *")
    ffi.memmove(buf, data, ffi.sizeof("mapi_flowrec"))
    return {k: (bytes(getattr(buf, k)) if isinstance(getattr(buf, k), ffi.CData) else getattr(buf, k))
            for k, _ in ffi.typeof("mapi_flowrec").fields}


def offline_collector(path, flows, **options):
    dev = mapi.create_offline_device(str(path), backend="netflow", **options)
    fds = []
    for fl in flows:
        fd = mapi.create_flow(dev)
        fids = [mapi.apply_function(fd, fn[0], *fn[1:]) for fn in fl]
        mapi.connect(fd)
        fds.append((fd, fids))
    mapi.start_offline_device(dev)
    mapi.wait_offline_device(dev)
    out = [[mapi.read_results(fd, fid).value for fid in fids] for fd, fids in fds]
    st = mapi.stats(dev)
    mapi.delete_offline_device(dev)
    return out, st


PER_PROTO = [
    [("RECORD_COUNTER",)],
    [("RECORD_FILTER", "proto=tcp"), ("RECORD_COUNTER",)],
    [("RECORD_FILTER", "proto=udp"), ("RECORD_COUNTER",)],
    [("RECORD_FILTER", "proto=icmp or proto=icmp6"), ("RECORD_COUNTER",)],
    [("RECORD_FILTER", "not (proto=tcp or proto=udp or proto=icmp or proto=icmp6)"), ("RECORD_COUNTER",)],
    [("PKT_COUNTER",), ("TO_BUFFER",)],
]


def totals_of(results):
    """nfdump -I's fields from RECORD_COUNTER results: nfdump adds a record's out (or biflow
    reverse) counters into the grand totals but not into the per-protocol ones."""
    out = {}
    for key, res in zip(("", "_tcp", "_udp", "_icmp", "_other"), results[:5]):
        c = res[-1]
        out["Flows" + key] = c["records"]
        out["Packets" + key] = c["packets"] + (c["out_packets"] if not key else 0)
        out["Bytes" + key] = c["bytes"] + (c["out_bytes"] if not key else 0)
    return out


NFDUMP_KEYS = [k + s for k in ("Flows", "Packets", "Bytes") for s in ("", "_tcp", "_udp", "_icmp", "_other")]

