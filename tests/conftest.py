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
