"""One flow over three sensors (DiMAPI): three real mapids, each in its own network namespace
capturing its own veth pair fed by tcpreplay, reached over gRPC with mutual TLS on veth
addresses of this machine.  Each sensor replays a different trace (generated ones always, the
corpus's when present); the combined counters equal the sum of tcpdump's counts, TOP equals
the TOP of the three files together (counted from tcpdump's output with dpkt), each sensor's
values equal its file's, and the merged packets come tagged and in timestamp order.  Killing
one sensor gives partial results within the call deadline; restarting it brings the flow back
on all three."""
import collections
import ipaddress
import time

import pytest

import mapi
from helpers import CORPUS, generated, need_tool, needs_corpus, tcpdump_pcap, need_netns
from helpers.remote import Sensor, count_grpc_calls, pki_fixture
from mapi.client.grpc_channel import DEFAULT_DEADLINE

GENERATED = ["mixed.pcap", "tcp4.pcap", "mixed-6k.pcap"]
CORPUS_FILES = ["PcapPlusPlus__example.pcap", "PcapPlusPlus__DnsPackets.pcap",
                "PcapPlusPlus__4KHttpRequests.pcap"]
PPS = 20000
pki = pki_fixture()


@pytest.fixture(scope="module")
def sensors(tmp_path_factory, pki):
    need_netns("distributed flows on live sensors")
    need_tool("tcpreplay")
    made = []
    try:
        for i in range(3):
            made.append(Sensor(i, tmp_path_factory.mktemp("sensors"), pki))
        yield made
    finally:
        for s in made:
            s.close()


def reference(path):
    """(packets, wire bytes, {ip.src: [packets, bytes]}) of a file, from tcpdump's output."""
    import dpkt
    recs = tcpdump_pcap(path, "len >= 0")
    top = collections.defaultdict(lambda: [0, 0])
    for _, wire, data in recs:
        eth = dpkt.ethernet.Ethernet(data)
        if isinstance(eth.data, dpkt.ip.IP):
            entry = top[str(ipaddress.IPv4Address(eth.data.src))]
            entry[0] += 1
            entry[1] += wire
    return len(recs), sum(w for _, w, _ in recs), top


def ranked(table, x):
    order = sorted(table.items(), key=lambda kv: (-kv[1][0], -kv[1][1],
                                                  ipaddress.ip_address(kv[0]).packed))
    return [(k, p, b) for k, (p, b) in order[:x]]


def merge(tables):
    out = collections.defaultdict(lambda: [0, 0])
    for t in tables:
        for k, (p, b) in t.items():
            out[k][0] += p
            out[k][1] += b
    return out


def settle(fd, fid, want, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        r = mapi.read_results(fd, fid)
        if r.value == want or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def scope_of(sensors):
    return ", ".join(s.device_url() for s in sensors)


def check_three_traces(sensors, pki, files, together=False):
    """together: the flow made with create_flow_with (one request per sensor)."""
    refs = [reference(f) for f in files]
    if together:
        fd, (cnt, nbytes, top, buf) = mapi.create_flow_with(
            scope_of(sensors), ["PKT_COUNTER", "BYTE_COUNTER", ("TOP", 5, "ip.src"), "TO_BUFFER"],
            **pki.tls())
    else:
        fd = mapi.create_flow(scope_of(sensors), **pki.tls())
        cnt = mapi.apply_function(fd, "PKT_COUNTER")
        nbytes = mapi.apply_function(fd, "BYTE_COUNTER")
        top = mapi.apply_function(fd, "TOP", 5, "ip.src")
        buf = mapi.apply_function(fd, "TO_BUFFER")
        mapi.connect(fd)
    try:
        for s, f in zip(sensors, files):
            sent = s.replay(f, pps=PPS)
            assert sent["failed_packets"] == 0, sent
        total = sum(r[0] for r in refs)
        r = settle(fd, cnt, total)
        assert not r.partial, r.missing
        assert r.value == total
        assert [r.sensors[s.device_url()].value for s in sensors] == [x[0] for x in refs]
        b = mapi.read_results(fd, nbytes)
        assert b.value == sum(x[1] for x in refs)
        assert [b.sensors[s.device_url()].value for s in sensors] == [x[1] for x in refs]
        t = mapi.read_results(fd, top)
        assert [tuple(e) for e in t.value] == ranked(merge([x[2] for x in refs]), 5)
        for s, x in zip(sensors, refs):
            assert [tuple(e) for e in t.sensors[s.device_url()].value] == ranked(x[2], 5)
        tags = collections.Counter()
        last, backwards = 0, 0
        while True:
            p = mapi.get_next_pkt(fd, buf, timeout=1.0)
            if p is None:
                break
            tags[p.sensor] += 1
            backwards += p.ts < last
            last = p.ts
        assert [tags[s.device_url()] for s in sensors] == [x[0] for x in refs]
        assert backwards == 0              # the replays followed each other: exact order
    finally:
        mapi.close_flow(fd)


def test_three_sensors_generated(sensors, pki):
    check_three_traces(sensors, pki, [generated(n) for n in GENERATED])


def test_three_sensors_one_request_each(sensors, pki, monkeypatch):
    """create_flow_with over the scope: one Call per sensor, the same exact results."""
    sent = count_grpc_calls(monkeypatch)
    check_three_traces(sensors, pki, [generated(n) for n in GENERATED], together=True)
    made = [c for c in sent if c in ("create_flow", "apply_function", "connect",
                                     "create_flow_with")]
    assert made == ["create_flow_with"] * 3


@needs_corpus
def test_three_sensors_corpus(sensors, pki):
    check_three_traces(sensors, pki, [CORPUS / "pcap" / n for n in CORPUS_FILES])


def test_combined_stats_and_threshold(sensors, pki):
    """STATS combine exactly (per-packet sizes: count, sum, sum of squares); THRESHOLD fires
    on the combined count, which no single sensor reaches."""
    files = [generated(n) for n in GENERATED]
    refs = [reference(f) for f in files]
    scope = scope_of(sensors)
    fd = mapi.create_flow(scope, **pki.tls())
    cnt = mapi.apply_function(fd, "PKT_COUNTER")
    nbytes = mapi.apply_function(fd, "BYTE_COUNTER")
    mapi.connect(fd)
    watch = mapi.create_flow(scope, **pki.tls())
    st = mapi.apply_function(watch, "STATS", (fd, nbytes), 0, True)
    mapi.connect(watch)
    alert = mapi.create_flow(scope, **pki.tls())
    most = max(x[0] for x in refs)
    th = mapi.apply_function(alert, "THRESHOLD", mapi.GREATER, (fd, cnt), most + 10)
    mapi.connect(alert)
    try:
        for s, f in zip(sensors, files):
            s.replay(f, pps=PPS)
        total = sum(x[0] for x in refs)
        settle(fd, cnt, total)
        sizes = [w for f in files for _, w, _ in tcpdump_pcap(f, "len >= 0")]
        stats = mapi.read_results(watch, st).value
        assert (stats.count, stats.sum, stats.sum2, stats.min, stats.max) == \
            (len(sizes), sum(sizes), sum(w * w for w in sizes), min(sizes), max(sizes))
        ev = mapi.get_next_event(alert, th, timeout=10)
        assert ev is not None and ev.value > most + 10 and ev.kind == mapi.GREATER
        assert mapi.read_results(alert, th).value == 1
    finally:
        for f in (alert, watch, fd):
            mapi.close_flow(f)


def test_sensor_killed_and_restarted(sensors, pki):
    files = [generated(n) for n in GENERATED]
    counts = [reference(f)[0] for f in files]
    fd = mapi.create_flow(scope_of(sensors), **pki.tls())
    cnt = mapi.apply_function(fd, "PKT_COUNTER")
    mapi.connect(fd)
    gone = sensors[1]
    try:
        for s, f in zip(sensors, files):
            s.replay(f, pps=PPS)
        assert settle(fd, cnt, sum(counts)).value == sum(counts)
        killed = time.time()
        gone.kill()
        t0 = time.monotonic()
        r = mapi.read_results(fd, cnt)
        took = time.monotonic() - t0
        assert took < DEFAULT_DEADLINE, took
        assert r.partial and list(r.missing) == [gone.device_url()]
        assert killed - 1 <= r.missing[gone.device_url()] <= time.time()
        assert r.value == counts[0] + counts[2]
        assert r.sensors[gone.device_url()] is None
        gone.start()
        limit = time.monotonic() + 20
        while True:
            r = mapi.read_results(fd, cnt)
            if not r.partial or time.monotonic() > limit:
                break
            time.sleep(0.2)
        assert not r.partial, r.missing
        assert gone.device_url() in r.restarted
        assert r.sensors[gone.device_url()].value == 0         # counts again from zero
        gone.replay(files[1], pps=PPS)
        assert settle(fd, cnt, sum(counts)).value == sum(counts)
    finally:
        mapi.close_flow(fd)


def test_unreachable_sensor_never_hangs(sensors, pki):
    """A sensor cut off without a word (its end of the control link down: packets to it are
    dropped on this machine, no reset, no answer): calls come back partial at the deadline,
    never later; when the link is back, so is the sensor."""
    fd = mapi.create_flow(scope_of(sensors), deadline=1.5, **pki.tls())
    cnt = mapi.apply_function(fd, "PKT_COUNTER")
    mapi.connect(fd)
    cut_off = sensors[2]
    try:
        cut_off.control_link(False)
        for _ in range(2):
            t0 = time.monotonic()
            r = mapi.read_results(fd, cnt)
            assert time.monotonic() - t0 < 2 * 1.5 + 1
            assert r.partial and list(r.missing) == [cut_off.device_url()]
        info = mapi.get_flow_info(fd)
        assert list(info["missing"]) == [cut_off.device_url()]
        cut_off.control_link(True)
        limit = time.monotonic() + 30
        while mapi.read_results(fd, cnt).partial:
            assert time.monotonic() < limit, "the sensor did not come back"
            time.sleep(0.3)
        sensors[0].replay(generated(GENERATED[0]), pps=PPS)
        want = reference(generated(GENERATED[0]))[0]
        assert settle(fd, cnt, want).value == want
    finally:
        cut_off.control_link(True)
        mapi.close_flow(fd)
