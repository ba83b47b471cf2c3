"""Savefile input paths: compressed files (gzip, xz, bzip2) equal the plain ones, cut and
corrupt compressed streams give clear errors, records straddle tiny mmap windows and read
buffers, pipes are read, bad arguments are named.  References: the plain file's records and
tcpdump (libpcap 1.10.3) on the same bytes."""
import bz2
import gzip
import lzma

import pytest

import mapi
import scampi.backends.savefile as savefile
from scampi.backends.savefile import SavefileSource
from helpers import CORPUS, file_sets, generated, inputs
from helpers.savefile import PKT, pcap_header, pcap_record, read_source, records_of, tcpdump_ref
from mapi.errors import MapiError, EFORMAT, ETRUNC, EBADARG, EOPEN

SNAPLEN_0 = pcap_header(snaplen=0) + pcap_record(PKT)
DBUS_300K_RECORD = pcap_header(linktype=231, snaplen=0) + pcap_record(b"x" * 300000)


FORMAT_FILES = ["pcap/PcapPlusPlus__4KHttpRequests.pcap", "pcap/libtrace__100_packets.pcapng",
                "erf/libtrace__100_packets.erf", "pcap/libtrace__complex.pcapng"]
GENERATED_FORMATS = [generated("mixed.pcap"), generated("mixed.pcapng"), generated("mixed.erf")]


@pytest.mark.parametrize("name", inputs(GENERATED_FORMATS + FORMAT_FILES))
@pytest.mark.parametrize("compress", [gzip.compress, lzma.compress, bz2.compress])
def test_compressed_equals_plain(tmp_path, name, compress):
    plain = CORPUS / name
    path = tmp_path / "c.bin"
    path.write_bytes(compress(plain.read_bytes()))
    want, err0, _ = read_source(plain)
    got, err, src = read_source(path)
    assert err0 is None and err is None and got == want and len(got) > 0
    assert src.compression in ("gzip", "xz", "bzip2")


def test_cut_and_corrupt_gzip(tmp_path):
    data = gzip.compress(generated("mixed.pcap").read_bytes())
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(data[:len(data) // 2])
    ref, _ = tcpdump_ref(None, stdin=gzip.decompress(data))
    got, err, _ = read_source(path)
    assert err is not None and err.code == ETRUNC and "offset" in str(err)
    assert 0 < len(got) < len(ref) and records_of(got) == ref[:len(got)]
    bad = bytearray(data)
    bad[len(bad) // 2:len(bad) // 2 + 64] = b"\xff" * 64
    path.write_bytes(bytes(bad))
    got, err, _ = read_source(path)
    # deflate output before the damage is found may be garbage: any format error is right
    assert err is not None and err.code in (ETRUNC, EFORMAT) and str(path) in str(err)
    assert len(got) > 10 and records_of(got[:10]) == ref[:10]


def tiny_regions(monkeypatch):
    """Mapped windows, stream buffers and read-ahead chunks of 4 KiB, with 1 KiB of room for a
    record carried over: records straddle every region boundary, big ones need more than one."""
    for name, size in (("WINDOW_SIZE", 4096), ("BUFFER_SIZE", 4096), ("READ_AHEAD_CHUNK", 4096),
                       ("HEADROOM", 1024)):
        monkeypatch.setattr(savefile.streams, name, size)


@pytest.mark.parametrize("files", file_sets(GENERATED_FORMATS, FORMAT_FILES))
@pytest.mark.parametrize("use_mmap", [True, False])
def test_tiny_regions_give_the_same_records(monkeypatch, use_mmap, files):
    """Windows / buffers of 4 KiB: records straddle every region boundary, big ones need more
    than a region."""
    want = {n: read_source(CORPUS / n)[0] for n in files}
    tiny_regions(monkeypatch)
    for n in files:
        got, err, _ = read_source(CORPUS / n, mmap=use_mmap)
        assert err is None and got == want[n], n


def test_record_larger_than_a_region(tmp_path, monkeypatch):
    tiny_regions(monkeypatch)
    path = tmp_path / "dbus.pcap"
    path.write_bytes(DBUS_300K_RECORD + pcap_record(PKT))
    for use_mmap in (True, False):
        got, err, _ = read_source(path, mmap=use_mmap)
        assert err is None and [r[1] for r in got] == [300000, 60]


def test_pipe_input(tmp_path):
    import os
    import threading
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    data = generated("slow.pcap").read_bytes()
    t = threading.Thread(target=lambda: fifo.write_bytes(data))
    t.start()
    got, err, _ = read_source(fifo)
    t.join()
    assert err is None and records_of(got) == tcpdump_ref(generated("slow.pcap"))[0]


def test_bad_arguments(tmp_path):
    with pytest.raises(MapiError) as e:
        SavefileSource(str(tmp_path / "missing.pcap"))
    assert e.value.code == EOPEN and "missing.pcap" in str(e.value)
    with pytest.raises(MapiError) as e:
        SavefileSource(str(tmp_path))
    assert e.value.code == EOPEN and "directory" in str(e.value)
    path = tmp_path / "a.pcap"
    path.write_bytes(SNAPLEN_0)
    with pytest.raises(MapiError) as e:
        SavefileSource(str(path), "pcapx")
    assert e.value.code == EBADARG and e.value.where["argument"] == "fmt"
    with pytest.raises(MapiError) as e:
        mapi.create_offline_device(str(path), windowsize=3)
    assert e.value.code == EBADARG and "windowsize" in str(e.value)
    # a forced format that does not match
    with pytest.raises(MapiError) as e:
        SavefileSource(str(path), mapi.MFF_PCAPNG)
    assert e.value.code == EFORMAT and e.value.where["offset"] == 8
