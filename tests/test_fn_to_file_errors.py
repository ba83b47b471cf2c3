"""TO_FILE when things go wrong: a full filesystem (a 256 kB tmpfs mounted by the test), a
second writer to a path already being written, explicit appending.  The reference for what
the file holds is what `tcpdump -r` reads from it."""
import os
import subprocess

import pytest

import mapi
from helpers import generated, need_tool, sample, tcpdump_records

EXAMPLE = generated("mixed.pcap")                               # 4631 packets, mixed traffic
HTTP = generated("tcp4.pcap")


@pytest.fixture
def small_fs(tmp_path):
    """A 256 kB tmpfs: far smaller than the trace written to it."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs (needs root): %s" % r.stderr.strip())
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def write(src, path, *extra, expr=None, wait_error=False):
    """Replay src through [BPF_FILTER expr] TO_FILE(pcap, path, *extra) PKT_COUNTER;
    returns (TO_FILE result, packets that reached it, the wait's MapiError or None)."""
    dev = mapi.create_offline_device(str(src))
    try:
        fd = mapi.create_flow(dev)
        if expr:
            mapi.apply_function(fd, "BPF_FILTER", expr)
        cnt = mapi.apply_function(fd, "PKT_COUNTER")
        fid = mapi.apply_function(fd, "TO_FILE", mapi.MFF_PCAP, str(path), *extra)
        mapi.connect(fd)
        mapi.start_offline_device(dev)
        err = None
        try:
            mapi.wait_offline_device(dev, timeout=60)
        except mapi.MapiError as exc:
            err = exc
        assert (err is not None) == wait_error, err
        return mapi.read_results(fd, fid).value, mapi.read_results(fd, cnt).value, err
    finally:
        mapi.delete_offline_device(dev)


def tcpdump_count(path):
    recs, err = tcpdump_records(path)
    assert recs is not None, err
    assert "truncated" not in err and "bogus" not in err, err
    return len(recs)


@pytest.mark.parametrize("flush", ["4MiB", "batch", "record", "64KiB", 100000])
def test_a_full_filesystem_gives_the_truth_and_a_readable_file(small_fs, flush):
    out = small_fs / "out.pcap"
    res, reached, err = write(EXAMPLE, out, 0, flush, wait_error=True)
    in_file = tcpdump_count(out)                  # tcpdump reads the file to its clean end
    assert 0 < in_file < reached == 4631
    assert res["packets"] == in_file
    assert res["bytes"] == os.path.getsize(out) == res["error_offset"]
    assert res["complete"] is False and res["buffered"] == 0
    assert res["lost"] == reached - in_file
    assert res["errno"] == "ENOSPC" and res["error"] == os.strerror(28)
    assert err.code == mapi.EWRITE
    text = str(err)
    assert str(out) in text and "ENOSPC" in text and "offset %d" % res["bytes"] in text
    assert err.where["file"] == str(out) and err.where["offset"] == res["bytes"]
    assert "%d complete packets" % in_file in text


KILLED_CHILD = """
import mapi, os, signal, sys, time
dev = mapi.create_offline_device(sys.argv[1])
fd = mapi.create_flow(dev)
cnt = mapi.apply_function(fd, "PKT_COUNTER")
fid = mapi.apply_function(fd, "TO_FILE", mapi.MFF_PCAP, sys.argv[2])
mapi.apply_function(fd, "TO_BUFFER", mapi.WAIT, 6 << 20)   # never read: the replay stalls
                                              # (once more than the 4 MiB flush went by)
mapi.connect(fd)
mapi.start_offline_device(dev)
last = -1
while True:                                   # wait until the engine stands still
    time.sleep(0.3)
    now = mapi.read_results(fd, cnt).value
    if now == last:
        break
    last = now
print(now, mapi.read_results(fd, fid).value["packets"], flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_kill_loses_at_most_the_default_buffer(tmp_path):
    """The documented bound of flush="4MiB": SIGKILL while packets wait in the buffer; the
    file then holds whole records only, as many as the result said, and what reached TO_FILE
    but is not in the file is at most 4 MiB of records."""
    import sys
    from tools.gentrace import write_trace
    src, out = tmp_path / "src.pcap", tmp_path / "out.pcap"
    write_trace(str(src), 30000, seed=5)
    child = subprocess.run([sys.executable, "-c", KILLED_CHILD, str(src), str(out)],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == -9, child.stderr
    reached, said = map(int, child.stdout.split())
    in_file = tcpdump_count(out)
    assert in_file == said < reached
    records = tcpdump_records(src)[0]
    lost_bytes = sum(16 + len(r[2]) for r in records[in_file:reached])
    assert 0 < lost_bytes <= 4 << 20


def test_a_second_writer_to_the_same_file_is_refused(tmp_path):
    out = tmp_path / "one.pcap"
    link = tmp_path / "link.pcap"
    os.symlink(out, link)
    dev = mapi.create_offline_device(str(HTTP))
    other = mapi.create_offline_device(str(EXAMPLE))
    try:
        a = mapi.create_flow(dev)
        fa = mapi.apply_function(a, "TO_FILE", mapi.MFF_PCAP, str(out))
        b = mapi.create_flow(dev)                          # another flow, same device
        with pytest.raises(mapi.MapiError) as e:
            mapi.apply_function(b, "TO_FILE", mapi.MFF_PCAP, str(out))
        assert e.value.code == mapi.EBUSY and e.value.where["argument"] == "path"
        assert "function %d of flow %d" % (fa, a) in str(e.value) and str(out) in str(e.value)
        mapi.connect(a)
        c = mapi.create_flow(other)                        # another device, through a link
        with pytest.raises(mapi.MapiError) as e:
            mapi.apply_function(c, "TO_FILE", mapi.MFF_DAG_ERF, str(link))
        assert e.value.code == mapi.EBUSY
        mapi.start_offline_device(dev)
        mapi.wait_offline_device(dev)
        assert mapi.read_results(a, fa).value["packets"] == tcpdump_count(out) == tcpdump_count(HTTP)
        # the writer finished: the path is free again
        fc = mapi.apply_function(c, "TO_FILE", mapi.MFF_PCAP, str(tmp_path / "other.pcap"))
        d = mapi.create_flow(other)
        mapi.apply_function(d, "TO_FILE", mapi.MFF_PCAP, str(out))
        assert fc
    finally:
        mapi.delete_offline_device(dev)
        mapi.delete_offline_device(other)


def test_a_reservation_ends_with_its_flow(tmp_path):
    out = tmp_path / "r.pcap"
    dev = mapi.create_offline_device(str(HTTP))
    try:
        a = mapi.create_flow(dev)
        mapi.apply_function(a, "TO_FILE", mapi.MFF_PCAP, str(out))
        mapi.close_flow(a)                                 # never connected
        b = mapi.create_flow(dev)
        mapi.apply_function(b, "TO_FILE", mapi.MFF_PCAP, str(out))
    finally:
        mapi.delete_offline_device(dev)


def test_append_is_explicit_and_checked(tmp_path):
    out = tmp_path / "both.pcap"
    first, _, _ = write(EXAMPLE, out, expr="tcp")
    second, _, _ = write(EXAMPLE, out, 0, "4MiB", True, expr="udp")
    tcp = tcpdump_records(EXAMPLE, "tcp")[0]
    udp = tcpdump_records(EXAMPLE, "udp")[0]
    got = tcpdump_records(out)[0]
    assert [r[2] for r in got] == [r[2] for r in tcp] + [r[2] for r in udp]
    assert first["packets"] == len(tcp) and second["packets"] == len(udp)
    assert second["appended_at"] == first["bytes"]
    assert second["appended_at"] + second["bytes"] == os.path.getsize(out)
    # without append the file starts over
    write(EXAMPLE, out, expr="udp")
    assert len(tcpdump_records(out)[0]) == len(udp)
    # a file cut inside a record, or of another link type, is not appended to
    data = open(out, "rb").read()
    (tmp_path / "cut.pcap").write_bytes(data[:-5])
    dev = mapi.create_offline_device(str(EXAMPLE))
    try:
        fd = mapi.create_flow(dev)
        mapi.apply_function(fd, "TO_FILE", mapi.MFF_PCAP, str(tmp_path / "cut.pcap"), 0, "4MiB", True)
        with pytest.raises(mapi.MapiError) as e:
            mapi.connect(fd)
        assert e.value.where["argument"] == "append" and "cut.pcap" in str(e.value)
        assert e.value.where["offset"] == len(data) - len(udp[-1][2]) - 16
        raw = tmp_path / "raw.pcap"
        raw.write_bytes(open(sample("pcap/PcapPlusPlus__raw_ip.pcap"), "rb").read())
        g = mapi.create_flow(dev)
        mapi.apply_function(g, "TO_FILE", mapi.MFF_PCAP, str(raw), 0, "4MiB", True)
        with pytest.raises(mapi.MapiError) as e:
            mapi.connect(g)
        assert "link type" in str(e.value)
    finally:
        mapi.delete_offline_device(dev)
    assert open(out, "rb").read() == data                  # refused: nothing touched


def test_erf_append_is_the_two_runs_one_after_the_other(tmp_path):
    def erf(path, expr, *extra):
        dev = mapi.create_offline_device(str(EXAMPLE))
        try:
            fd = mapi.create_flow(dev)
            mapi.apply_function(fd, "BPF_FILTER", expr)
            fid = mapi.apply_function(fd, "TO_FILE", mapi.MFF_DAG_ERF, str(path), 0, "4MiB", *extra)
            mapi.connect(fd)
            mapi.start_offline_device(dev)
            mapi.wait_offline_device(dev)
            return mapi.read_results(fd, fid).value
        finally:
            mapi.delete_offline_device(dev)
    erf(tmp_path / "tcp.erf", "tcp")
    erf(tmp_path / "udp.erf", "udp")
    erf(tmp_path / "both.erf", "tcp")
    res = erf(tmp_path / "both.erf", "udp", True)
    both = open(tmp_path / "both.erf", "rb").read()
    assert both == open(tmp_path / "tcp.erf", "rb").read() + open(tmp_path / "udp.erf", "rb").read()
    assert res["appended_at"] + res["bytes"] == len(both)
    assert res["packets"] == len(tcpdump_records(EXAMPLE, "udp")[0])
