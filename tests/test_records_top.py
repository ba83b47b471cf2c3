"""One vocabulary for TOP and RECORD_TOP: on flow records the same field names give the same
keys and counts (TOP counts a record as a packet, RECORD_TOP as a record), and RECORD_TOP's own
names (nfdump's -s names, IPFIX element names) rank what nfdump ranks."""
import collections

import pytest

import mapi
from helpers import generated
from helpers.flowtools import UdpSink, softflowd
from helpers.nfexports import captured

FIELDS = ["ip.src", "ip.dst", "ipv6.src", "addr.src", "addr.dst", "ip.proto", "tcp.sport",
          "tcp.dport", "udp.dport", "port.src", "port.dst", "ip.src,tcp.dport", "conv", "5tuple"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    sink = UdpSink()
    softflowd(generated("mixed.pcap"), sink.port, 10, {})
    return captured(sink.messages(), tmp_path_factory.mktemp("exports") / "exports.pcap")


def results(path, flows):
    dev = mapi.create_offline_device(str(path), backend="netflow")
    fds = []
    for fn in flows:
        fd = mapi.create_flow(dev)
        fds.append((fd, mapi.apply_function(fd, *fn)))
        mapi.connect(fd)
    mapi.start_offline_device(dev)
    mapi.wait_offline_device(dev)
    out = [mapi.read_results(fd, fid).value for fd, fid in fds]
    mapi.delete_offline_device(dev)
    return out


@pytest.mark.parametrize("field", FIELDS)
def test_top_and_record_top_agree(exports, field):
    top, rtop = results(exports, [("TOP", 1 << 16, field), ("RECORD_TOP", 1 << 16, field, "records")])
    a = collections.Counter({e.value: e.packets for e in top})
    b = collections.Counter({e.value: e.records for e in rtop})
    assert a == b and len(a) > 1


def test_record_names_rank_like_the_header_names(exports):
    by_names = results(exports, [("RECORD_TOP", 20, "srcip", "bytes"), ("RECORD_TOP", 20, "addr.src", "bytes"),
                                 ("RECORD_TOP", 20, "sourceIPv4Address", "bytes"),
                                 ("RECORD_TOP", 20, "dstport", "packets"), ("RECORD_TOP", 20, "dport", "packets"),
                                 ("RECORD_TOP", 20, "destinationTransportPort", "packets")])
    v4 = [e for e in by_names[1] if ":" not in e.value]
    assert by_names[0] == by_names[1] and by_names[2] == v4[:len(by_names[2])]
    assert by_names[3] == by_names[4] == by_names[5]     # every record (nfdump -s dstport: ICMP too)


def test_unknown_names_are_refused():
    dev = mapi.create_offline_device(str(generated("mixed.pcap")))
    try:
        fd = mapi.create_flow(dev)
        mapi.apply_function(fd, "FLOW_REPORT", "ipfix", "")
        with pytest.raises(mapi.MapiError) as e:
            mapi.apply_function(fd, "RECORD_TOP", 5, "ip.nosuch")
        assert "ip.nosuch" in str(e.value) and "addr.src" in str(e.value)
        with pytest.raises(mapi.MapiError) as e:
            mapi.apply_function(fd, "RECORD_TOP", 5, "flowStartSeconds")
        assert "first" in str(e.value)
    finally:
        mapi.delete_offline_device(dev)
