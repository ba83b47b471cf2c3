"""The object layer gives the same answers as the plain calls and tcpdump."""
import mapi
from conftest import CORPUS, tcpdump_records

TRACE = str(CORPUS / "pcap/PcapPlusPlus__example.pcap")


def test_objects_context_managers_and_iterators():
    want, _ = tcpdump_records(TRACE, "udp port 53")
    with mapi.OfflineDevice(TRACE) as dev:
        dns = dev.flow('BPF_FILTER("udp port 53") PKT_COUNTER')
        buf = dns.apply("TO_BUFFER")
        everything = dev.flow("PKT_COUNTER BYTE_COUNTER")
        for f in (dns, everything):
            f.connect()
        dev.start()
        got = [bytes(p.data) for p in buf]           # iterates until the end of the stream
        dev.wait()
        assert dns[2].value == len(want) == len(got)
        assert got == [r[2] for r in want]
        assert everything[1].value == len(tcpdump_records(TRACE)[0])
        name = dev.name
    # leaving the block deleted the device
    try:
        mapi.get_device_info(name)
        raise AssertionError("device still there")
    except mapi.MapiError as e:
        assert e.code == 1003


def test_spec_parser_rejects_what_it_cannot_read():
    from mapi.flow import parse_spec
    assert parse_spec('BPF_FILTER("tcp port 80") SAMPLE(10, PERIODIC) PKT_COUNTER') == [
        ("BPF_FILTER", ("tcp port 80",)), ("SAMPLE", (10, "PERIODIC")), ("PKT_COUNTER", ())]
    for bad in ['BPF_FILTER("tcp', "SAMPLE(__import__('os'))", "x.y()"]:
        try:
            parse_spec(bad)
            raise AssertionError(bad)
        except mapi.MapiError as e:
            assert e.code == 1005
