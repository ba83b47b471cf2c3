"""PKT_RATE and BIT_RATE against rates computed by hand from tcpdump's record lists: packets
(or 8 x wire-length bytes) of each complete interval of packet time, per second."""
import pytest

import mapi
from helpers import CORPUS, generated, inputs, replay
from helpers.intervals import S, interval_sums

PCAP = CORPUS / "pcap"


def meters(path, expr, interval, size=1000):
    def setup(dev):
        fd = mapi.create_flow(dev)
        if expr:
            mapi.apply_function(fd, "BPF_FILTER", expr)
        pkt = mapi.apply_function(fd, "PKT_RATE", interval, size)
        bit = mapi.apply_function(fd, "BIT_RATE", interval, size)
        mapi.connect(fd)
        return fd, pkt, bit
    dev, (fd, pkt, bit) = replay(path, setup)
    out = (mapi.read_results(fd, pkt), mapi.read_results(fd, bit),
           mapi.get_function_info(fd, pkt))
    mapi.delete_offline_device(dev)
    return out


def expected_rates(path, expr, interval_ns, per_unit, weight):
    sums, n, t0 = interval_sums(path, interval_ns, expr, weight)
    return [(t0 + k * interval_ns, sums.get(k, 0) * per_unit * S / interval_ns)
            for k in range(n - 1)]                  # the interval under way at the end is not one


@pytest.mark.parametrize("name, expr, interval, interval_ns", inputs([
    (generated("mixed.pcap"), "", "1s", S),
    (generated("mixed.pcap"), "tcp", "100ms", S // 10),
    (generated("mixed.pcap"), "tcp port 443", 3 * S, 3 * S),
    (generated("slow.pcap"), "tcp port 80", "10s", 10 * S),
    (generated("hundred.pcap"), "", "250ms", S // 4),
    ("PcapPlusPlus__example.pcap", "", "1s", S),
    ("PcapPlusPlus__example.pcap", "tcp", "100ms", S // 10),
    ("PcapPlusPlus__tls2.pcap", "tcp port 443", 3 * S, 3 * S),
    ("PcapPlusPlus__4KHttpRequests.pcap", "tcp port 80", "10s", 10 * S),
    ("libtrace__100_seconds.pcap", "", "250ms", S // 4),
], base="pcap"))
def test_rates_of_complete_intervals(name, expr, interval, interval_ns):
    path = PCAP / name
    pkts = expected_rates(path, expr, interval_ns, 1, lambda r: 1)
    bits = expected_rates(path, expr, interval_ns, 8, lambda r: r[1])
    pkt, bit, info = meters(path, expr, interval)
    assert pkt.value.history == pkts and bit.value.history == bits
    assert pkt.value == pkts[-1][1] and bit.value == bits[-1][1]
    assert isinstance(pkt.value, float) and pkt.value.interval == interval_ns
    assert pkt.value.start == pkts[-1][0] and pkt.ts == pkts[-1][0] + interval_ns
    assert info["intervals_lost"] == 0


@pytest.mark.parametrize("name", inputs([generated("years.pcap"), "zeek__ssh__ssh.pcap"], base="pcap"))
def test_history_is_bounded_and_gaps_are_zero_rates(name):
    path = PCAP / name                              # three years with long silences
    pkts = expected_rates(path, "", 3600 * S, 1, lambda r: 1)
    pkt, bit, info = meters(path, "", "1h", size=200)
    assert pkt.value.history == pkts[-200:]
    assert info["intervals_lost"] == len(pkts) - 200
    assert 0.0 in [r for _, r in pkt.value.history] and any(r for _, r in pkt.value.history)


def test_no_rate_before_the_first_interval_is_complete():
    pkt, bit, _ = meters(generated("mixed.pcap"), "", "1h")                # a 15 s trace
    assert (pkt.value, bit.value, pkt.ts) == (None, None, 0)


@pytest.mark.parametrize("fn", ["PKT_RATE", "BIT_RATE"])
def test_meter_argument_errors(fn):
    dev = mapi.create_offline_device(str(generated("hundred.pcap")))
    try:
        fd = mapi.create_flow(dev)
        for args, arg in [(("1 minute",), "interval"), ((0,), "interval"), (("1s", 0), "size"),
                          (("-1s",), "interval")]:
            with pytest.raises(mapi.MapiError) as e:
                mapi.apply_function(fd, fn, *args)
            assert e.value.code == 1005 and e.value.where.get("argument") == arg, args
        assert mapi.apply_function(fd, fn) == 1                   # default: 1 s
        assert mapi.get_function_info(fd, 1)["args"][0] == S
    finally:
        mapi.delete_offline_device(dev)
