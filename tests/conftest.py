"""Shared test fixtures: where the corpus is, and the stock tools used as references."""
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"


def corpus_path(*parts):
    return CORPUS.joinpath(*parts)


@pytest.fixture(scope="session")
def corpus():
    if not CORPUS.is_dir():
        pytest.fail("the shared corpus is missing: expected %s" % CORPUS)
    return CORPUS


def need_tool(name):
    """Skip loudly if a stock reference tool is missing (make test installs them all)."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if path is None:
        pytest.skip("%s is not installed (make test installs it)" % name)
    return path


def tcpdump_records(path, expr="", extra=()):
    """(ts_us, caplen, wirelen, data) of the records `tcpdump -r path expr -w -` selects."""
    import dpkt
    import io
    cmd = [need_tool("tcpdump"), "-r", str(path), "-w", "-", *extra] + ([expr] if expr else [])
    out = subprocess.run(cmd, capture_output=True, timeout=120)
    if not out.stdout:
        return None, out.stderr.decode(errors="replace")
    reader = dpkt.pcap.Reader(io.BytesIO(out.stdout))
    return [(ts, len(buf), buf) for ts, buf in reader], out.stderr.decode(errors="replace")


def replay(path, calls, buffer=True, timeout=None):
    """Replay `path` through one flow of `calls` [(name, args, kwargs)] (+ a TO_BUFFER read to
    the end when `buffer`).  Returns a namespace: before (results right after connect),
    results, infos, packets (mapi Packets), batches (of the device)."""
    import types
    import mapi
    dev = mapi.create_offline_device(str(path))
    try:
        fd = mapi.create_flow(dev)
        fids = [mapi.apply_function(fd, name, *args, **kw) for name, args, kw in calls]
        buf = mapi.apply_function(fd, "TO_BUFFER") if buffer else None
        mapi.connect(fd)
        before = [mapi.read_results(fd, f) for f in fids]
        mapi.start_offline_device(dev)
        packets = []
        while buf is not None:
            p = mapi.get_next_pkt(fd, buf, timeout)
            if p is None:
                break
            packets.append(p)
        mapi.wait_offline_device(dev, timeout)
        return types.SimpleNamespace(
            before=before, results=[mapi.read_results(fd, f) for f in fids],
            infos=[mapi.get_function_info(fd, f) for f in fids], packets=packets,
            batches=mapi.get_device_info(dev)["batches"])
    finally:
        mapi.delete_offline_device(dev)


def linktype_of(path):
    """LINKTYPE_ value from a classic pcap file's header."""
    import struct
    head = open(path, "rb").read(24)
    order = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    return struct.unpack(order + "I", head[20:24])[0] & 0xFFFF
