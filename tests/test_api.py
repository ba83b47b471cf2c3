"""The MAPI calls: call order, errors that say what to fix, concurrency, closing under load."""
import threading
import time

import pytest

import mapi
from helpers import generated, tcpdump_records

TRACE = str(generated("mixed.pcap"))
HTTP = str(generated("slow.pcap"))


def error(fn, *args, **kwargs):
    with pytest.raises(mapi.MapiError) as ei:
        fn(*args, **kwargs)
    return ei.value


def test_errors_name_what_to_fix():
    dev = mapi.create_offline_device(TRACE)
    fd = mapi.create_flow(dev)
    e = error(mapi.apply_function, fd, "NO_SUCH_FUNCTION")
    assert e.code == 1004 and "NO_SUCH_FUNCTION" in str(e) and "BPF_FILTER" in str(e)
    e = error(mapi.apply_function, fd, "BPF_FILTER", 42)
    assert e.code == 1005 and "expr" in str(e) and "string" in str(e)
    e = error(mapi.apply_function, fd, "BPF_FILTER", "tcp prot 80")
    assert e.code == 1009 and "syntax error" in str(e)          # libpcap's own words
    e = error(mapi.apply_function, fd, "BPF_FILTER")
    assert e.code == 1005 and "missing argument 'expr'" in str(e)
    e = error(mapi.apply_function, fd, "PKT_COUNTER", 1)
    assert e.code == 1005 and "at most 0" in str(e)
    e = error(mapi.apply_function, fd, "TO_BUFFER", "SOMETIMES")
    assert e.code == 1005 and "WAIT" in str(e)
    cnt = mapi.apply_function(fd, "PKT_COUNTER")
    e = error(mapi.read_results, fd, cnt)
    assert e.code == 1007 and "connect" in str(e)
    mapi.connect(fd)
    e = error(mapi.apply_function, fd, "BYTE_COUNTER")
    assert e.code == 1006 and "before mapi.connect" in str(e)
    e = error(mapi.connect, fd)
    assert e.code == 1006
    e = error(mapi.get_next_pkt, fd, cnt)
    assert e.code == 1015 and "TO_BUFFER" in str(e)
    e = error(mapi.read_results, fd, 99)
    assert e.code == 1002 and "1=PKT_COUNTER" in str(e)
    e = error(mapi.wait_offline_device, dev)
    assert e.code == 1014 and "start_offline_device" in str(e)
    mapi.close_flow(fd)
    e = error(mapi.read_results, fd, cnt)
    assert e.code == 1008 and "closed" in str(e)
    e = error(mapi.create_flow, "offline-nonexistent")
    assert e.code == 1003
    e = error(mapi.create_offline_device, "/nonexistent/file.pcap")
    assert e.code == 1010 and "/nonexistent/file.pcap" in str(e)
    e = error(mapi.read_results, 123456, 1)
    assert e.code == 1001


def test_flows_on_several_devices_run_concurrently_and_agree_with_tcpdump():
    exprs = ["tcp", "udp", "tcp port 80", "not tcp"]
    devs, flows = [], []
    for path in (TRACE, HTTP):
        dev = mapi.create_offline_device(path)
        devs.append(dev)
        for e in exprs:
            fd = mapi.create_flow(dev)
            mapi.apply_function(fd, "BPF_FILTER", e)
            flows.append((path, e, fd, mapi.apply_function(fd, "PKT_COUNTER")))
            mapi.connect(fd)
    for dev in devs:
        mapi.start_offline_device(dev)
    for dev in devs:
        mapi.wait_offline_device(dev, timeout=60)
    for path, e, fd, cnt in flows:
        assert mapi.read_results(fd, cnt).value == len(tcpdump_records(path, e)[0]), (path, e)


def test_closing_a_flow_whose_buffer_blocks_the_replay(tmp_path):
    """An unread lossless TO_BUFFER makes the offline replay wait; closing that flow must let
    the other flows finish, with exact results."""
    from tools.gentrace import write_trace
    trace = str(tmp_path / "t.pcap")
    write_trace(trace, 20000, seed=3)                     # ~12 MB: far more than the buffer
    dev = mapi.create_offline_device(trace)
    slow = mapi.create_flow(dev)
    buf = mapi.apply_function(slow, "TO_BUFFER", mapi.WAIT, 1 << 20)   # far smaller than the file
    mapi.connect(slow)
    counter = mapi.create_flow(dev)
    cnt = mapi.apply_function(counter, "PKT_COUNTER")
    mapi.connect(counter)
    mapi.start_offline_device(dev)
    assert mapi.get_next_pkt(slow, buf) is not None
    time.sleep(0.3)
    assert mapi.get_device_info(dev)["state"] == "running"      # waiting for the slow reader
    mapi.close_flow(slow)
    mapi.wait_offline_device(dev, timeout=30)
    assert mapi.read_results(counter, cnt).value == 20000 == len(tcpdump_records(trace)[0])


def test_get_next_pkt_and_loop_deliver_every_packet_in_order():
    want = [r[2] for r in tcpdump_records(TRACE, "udp")[0]]
    dev = mapi.create_offline_device(TRACE)
    a = mapi.create_flow(dev)
    mapi.apply_function(a, "BPF_FILTER", "udp")
    abuf = mapi.apply_function(a, "TO_BUFFER")
    b = mapi.create_flow(dev)
    mapi.apply_function(b, "BPF_FILTER", "udp")
    bbuf = mapi.apply_function(b, "TO_BUFFER")
    mapi.connect(a)
    mapi.connect(b)
    mapi.start_offline_device(dev)
    got_a = []
    t = threading.Thread(target=lambda: mapi.loop(a, abuf, 0, lambda p: got_a.append(bytes(p.data))))
    t.start()
    got_b = []
    while True:
        p = mapi.get_next_pkt(b, bbuf)
        if p is None:
            break
        got_b.append(bytes(p.data))
    t.join(30)
    mapi.wait_offline_device(dev)
    assert got_a == want == got_b
    info = mapi.get_function_info(a, 1)
    assert info["shared_with"] == [b] and info["pkts_out"] == len(want)


def test_results_stay_readable_after_a_truncated_file(tmp_path):
    data = open(HTTP, "rb").read()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) // 2 + 7])
    want = len(tcpdump_records(str(cut))[0] or [])
    dev = mapi.create_offline_device(str(cut))
    fd = mapi.create_flow(dev)
    cnt = mapi.apply_function(fd, "PKT_COUNTER")
    mapi.connect(fd)
    mapi.start_offline_device(dev)
    e = error(mapi.wait_offline_device, dev, timeout=30)
    assert e.code in (1011, 1012) and "cut.pcap" in str(e) and "offset" in str(e)
    assert mapi.read_results(fd, cnt).value == want > 0


def test_threshold_event_and_device_byte_counts():
    """THRESHOLD's event carries the crossing packet's time; the device counts wire and
    captured bytes."""
    import subprocess
    dev = mapi.create_offline_device(TRACE)
    fd = mapi.create_flow(dev)
    mapi.apply_function(fd, "BPF_FILTER", "tcp")
    c = mapi.apply_function(fd, "PKT_COUNTER")
    mapi.connect(fd)
    wd = mapi.create_flow(dev)
    th = mapi.apply_function(wd, "THRESHOLD", mapi.GREATER, (fd, c), 100)
    mapi.connect(wd)
    mapi.start_offline_device(dev)
    mapi.wait_offline_device(dev)
    ev = mapi.get_next_event(wd, th, timeout=5)
    tcp = tcpdump_records(TRACE, "tcp")[0]
    assert ev is not None and ev.ts == round(tcp[100][0] * 1e6) * 1000
    info = mapi.get_device_info(dev)
    out = subprocess.run(["capinfos", "-M", "-d", "-c", TRACE], capture_output=True, text=True).stdout
    data_size = int([l for l in out.splitlines() if "Data size" in l][0].split(":")[1].split()[0])
    assert info["captured_bytes"] == data_size
    assert info["first_ts"] == round(tcpdump_records(TRACE)[0][0][0] * 1e6) * 1000


def test_nowait_buffer_never_holds_up_an_offline_replay(tmp_path):
    from tools.gentrace import write_trace
    trace = str(tmp_path / "t.pcap")
    write_trace(trace, 20000, seed=4)
    dev = mapi.create_offline_device(trace)
    fd = mapi.create_flow(dev)
    buf = mapi.apply_function(fd, "TO_BUFFER", mapi.NOWAIT, 1 << 20)
    cnt = mapi.apply_function(fd, "PKT_COUNTER")
    mapi.connect(fd)
    mapi.start_offline_device(dev)
    mapi.wait_offline_device(dev, timeout=30)                 # nobody reads: no stall
    r = mapi.read_results(fd, buf).value
    assert mapi.read_results(fd, cnt).value == 20000
    assert r["written"] + r["dropped"] == 20000 and r["dropped"] > 0
    assert mapi.stats(dev)["flow_drops"] == {fd: r["dropped"]}
    assert mapi.get_flow_info(fd)["drops"] == r["dropped"]


def test_deleting_a_device_in_the_middle_of_its_replay(tmp_path):
    """The reader may be inside the mapped file when the device is deleted: deletion stops the
    replay, waits for the device's threads and only then closes the file."""
    from tools.gentrace import write_trace
    trace = str(tmp_path / "t.pcap")
    write_trace(trace, 20000, seed=8)
    for _ in range(20):
        dev = mapi.create_offline_device(trace)
        fd = mapi.create_flow(dev)
        cnt = mapi.apply_function(fd, "PKT_COUNTER")
        mapi.apply_function(fd, "TO_BUFFER", mapi.WAIT, 1 << 20)    # nobody reads: it waits
        mapi.connect(fd)
        mapi.start_offline_device(dev)
        time.sleep(0.01)
        mapi.delete_offline_device(dev)
        assert dev not in mapi.devices()
        e = error(mapi.read_results, fd, cnt)
        assert e.code == 1008
    workers = [t for t in threading.enumerate() if t.name.startswith("mapi-")]
    assert all(t.name == "mapi-idle" for t in workers), [t.name for t in workers]
