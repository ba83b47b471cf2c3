"""Strings are strings: a NUL or a character that cannot be encoded in any string argument
(filters, patterns, paths, field names, device and function names) is refused with the
argument's name and the offset; it never silently cuts the text where C reads it."""
import os
import shutil
import subprocess

import pytest

import mapi
from helpers import generated, need_tool, tcpdump_records

TRACE = str(generated("mixed.pcap"))


@pytest.fixture
def fd():
    dev = mapi.create_offline_device(TRACE)
    try:
        yield mapi.create_flow(dev)
    finally:
        mapi.delete_offline_device(dev)


def refused(fn, *args):
    with pytest.raises(mapi.MapiError) as e:
        fn(*args)
    assert e.value.code == mapi.EBADARG, e.value
    return e.value


@pytest.mark.parametrize("name, args, argument, offset", [
    ("BPF_FILTER", ("tcp\x00 and port 81",), "expr", 3),         # counted like "tcp" before
    ("BPF_FILTER", (b"udp\x00",), "expr", 3),
    ("REGEXP", ("GET /\x00index",), "pcre", 5),
    ("STR_SEARCH", (["GET", "Ho\x00st"],), "pattern[1]", 2),
    ("STR_SEARCH", ("\x00",), "pattern", 0),
    ("TOP", (3, "ip.src\x00"), "field", 6),
    ("TO_FILE", (mapi.MFF_PCAP, "/tmp/a\x00b.pcap"), "path", 6),
    ("BPF_FILTER", ("tcp\udcff",), "expr", 3),                    # a lone surrogate
    ("TOP", (3, "ip.\ud800src"), "field", 3),
])
def test_bad_characters_in_function_arguments_are_refused(fd, name, args, argument, offset):
    e = refused(mapi.apply_function, fd, name, *args)
    assert e.where == {"argument": argument, "offset": offset}
    assert name in str(e) and repr(argument) in str(e) and "offset %d" % offset in str(e)


def test_the_filter_before_the_nul_is_not_what_runs(fd):
    """The reference: what the filter without the NUL counts differs from "tcp" alone, so a
    cut filter would have given a wrong count, not an error."""
    assert len(tcpdump_records(TRACE, "tcp and port 81")[0]) != len(tcpdump_records(TRACE, "tcp")[0])
    refused(mapi.apply_function, fd, "BPF_FILTER", "tcp\x00 and port 81")


def test_bad_characters_in_names_and_paths_are_refused(fd):
    e = refused(mapi.create_offline_device, TRACE + "\x00.gz")
    assert e.where == {"argument": "path", "offset": len(TRACE)}
    e = refused(mapi.create_flow, "eth0\x00foo")
    assert e.where == {"argument": "dev", "offset": 4}
    e = refused(mapi.apply_function, fd, "PKT_\x00COUNTER")
    assert e.where == {"argument": "name", "offset": 4}


def test_paths_in_the_file_systems_encoding_work_both_ways(tmp_path):
    """A file name that is not UTF-8 is a file name all the same (bytes, or str with
    surrogate escapes): it is opened and written as named."""
    src = os.path.join(os.fsencode(str(tmp_path)), b"tr\xffce.pcap")
    shutil.copyfile(TRACE, src)
    out = os.path.join(os.fsencode(str(tmp_path)), b"o\xfeut.pcap")
    dev = mapi.create_offline_device(src)
    try:
        fd = mapi.create_flow(dev)
        fid = mapi.apply_function(fd, "TO_FILE", mapi.MFF_PCAP, out)
        mapi.connect(fd)
        mapi.start_offline_device(dev)
        mapi.wait_offline_device(dev)
        res = mapi.read_results(fd, fid).value
    finally:
        mapi.delete_offline_device(dev)
    assert os.path.exists(out) and res["path"] == os.fsdecode(out)
    assert res["packets"] == len(tcpdump_records(TRACE)[0])
    ref = tmp_path / "ref.pcap"
    subprocess.run([need_tool("tcpdump"), "-r", src, "-w", str(ref)], check=True,
                   capture_output=True, timeout=60)
    assert open(out, "rb").read() == open(ref, "rb").read()
