"""The library never prints: failures reach the caller as exceptions (and the device's errors),
diagnostics go to the `mapi` logger, and a program that configures no logging sees nothing on
stdout or stderr."""
import os
import subprocess
import sys

import pytest

from helpers import generated

TRACE = str(generated("mixed.pcap"))

CHILD = r"""
import sys, mapi
trace, cut = sys.argv[1], sys.argv[2]
raised = []
# a write that fails (ENOSPC) and a file that ends inside a record
for path, calls in ((trace, [("TO_FILE", mapi.MFF_PCAP, "/dev/full")]), (cut, [("PKT_COUNTER",)])):
    dev = mapi.create_offline_device(path)
    fd = mapi.create_flow(dev)
    for c in calls:
        mapi.apply_function(fd, *c)
    mapi.connect(fd)
    mapi.start_offline_device(dev)
    try:
        mapi.wait_offline_device(dev)
    except mapi.MapiError as exc:
        raised.append(exc.code)
    mapi.delete_offline_device(dev)
# a filter libpcap refuses for this link type (logged: its packets do not match)
dev = mapi.create_offline_device(trace)
fd = mapi.create_flow(dev)
mapi.apply_function(fd, "BPF_FILTER", "tcp")
mapi.connect(fd)
mapi.start_offline_device(dev)
mapi.wait_offline_device(dev)
mapi.delete_offline_device(dev)
assert raised == [mapi.EWRITE, mapi.ETRUNC], raised
"""


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_failures_print_nothing_without_logging_configured(tmp_path):
    cut = tmp_path / "cut.pcap"
    data = open(TRACE, "rb").read()
    cut.write_bytes(data[:len(data) // 2 + 5])
    p = subprocess.run([sys.executable, "-c", CHILD, TRACE, str(cut)], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" and p.stderr == ""


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_diagnostics_reach_the_mapi_logger(caplog):
    import mapi
    dev = mapi.create_offline_device(TRACE)
    try:
        fd = mapi.create_flow(dev)
        mapi.apply_function(fd, "TO_FILE", mapi.MFF_PCAP, "/dev/full")
        mapi.connect(fd)
        mapi.start_offline_device(dev)
        with pytest.raises(mapi.MapiError):
            mapi.wait_offline_device(dev)
    finally:
        mapi.delete_offline_device(dev)
    records = [r for r in caplog.records if r.name.startswith("mapi")]
    assert any("ENOSPC" in r.getMessage() and "/dev/full" in r.getMessage() for r in records)
