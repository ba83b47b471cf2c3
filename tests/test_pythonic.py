"""The object layer gives the same answers as the plain calls and tcpdump."""
import mapi
from helpers import generated, tcpdump_records

TRACE = str(generated("mixed.pcap"))


def test_objects_context_managers_and_iterators():
    want, _ = tcpdump_records(TRACE, "udp port 53")
    with mapi.OfflineDevice(TRACE) as dev:
        dns = dev.flow()
        dns.apply("BPF_FILTER", "udp port 53")
        dns.apply("PKT_COUNTER")
        buf = dns.apply("TO_BUFFER")
        everything = dev.flow()
        everything.apply("PKT_COUNTER")
        everything.apply("BYTE_COUNTER")
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
