"""Bad input: every corpus file is processed or rejected with a MapiError naming the file and a
byte offset (never a crash or a hang); a cut file gives the complete records before the cut plus
an error, and what was collected stays readable; damaged headers and records fail at the record
libpcap fails at, with libpcap's text (tcpdump is the reference), and the corpus's deliberately
malformed files give the errors recorded in reference/*.err."""
import json
import os
import random
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

import mapi
from helpers import CORPUS, ROOT, manifest, needs_corpus
from mapi.errors import MapiError, EFORMAT, ETRUNC
from helpers.savefile import parse_pcap_bytes, read_source, records_of, tcpdump_ref, tshark_ref

CORPUS_DIRS = ("pcap", "tcpdump/pcap", "erf", "netflow", "derived")

# One process replays many files; the parent watches it with a timeout so a hang or a crash
# names the file.
WORKER = r"""
import json, sys
import mapi
from mapi.errors import MapiError
for path in sys.argv[1:]:
    print(json.dumps({"start": path}), flush=True)
    rec = {"file": path}
    try:
        dev = mapi.create_offline_device(path)
    except MapiError as e:
        rec.update(stage="open", code=e.code, msg=str(e), where=e.where)
        print(json.dumps(rec), flush=True)
        continue
    fd = mapi.create_flow(dev)
    c = mapi.apply_function(fd, "PKT_COUNTER")
    b = mapi.apply_function(fd, "BYTE_COUNTER")
    mapi.connect(fd)
    mapi.start_offline_device(dev)
    try:
        mapi.wait_offline_device(dev, timeout=60)
    except MapiError as e:
        rec.update(stage="replay", code=e.code, msg=str(e), where=e.where)
    # results collected up to an error stay readable
    rec.update(packets=mapi.read_results(fd, c).value, bytes=mapi.read_results(fd, b).value)
    mapi.delete_offline_device(dev)
    print(json.dumps(rec), flush=True)
"""


def corpus_files():
    files = []
    for d in CORPUS_DIRS:
        files += sorted(str(p) for p in (CORPUS / d).iterdir() if p.is_file())
    return files


def run_workers(files, timeout=300):
    """{path: result} of WORKER over `files`, in two processes."""
    halves = [files[0::2], files[1::2]]
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def one(chunk):
        p = subprocess.run([sys.executable, "-c", WORKER, *chunk], capture_output=True,
                           timeout=timeout, env=env, cwd=str(ROOT))
        lines = [json.loads(ln) for ln in p.stdout.decode().splitlines() if ln.startswith("{")]
        done = {r["file"]: r for r in lines if "start" not in r}
        started = [r["start"] for r in lines if "start" in r]
        assert p.returncode == 0, "the replay of %s crashed (exit %d): %s" % (
            started[-1] if started else chunk[0], p.returncode, p.stderr.decode()[-2000:])
        return done

    with ThreadPoolExecutor(2) as pool:
        out = {}
        for part in pool.map(one, halves):
            out.update(part)
    return out


def reference(path, rows):
    """(packets, wire bytes, error text or None, opened) from an independent reader."""
    if "/erf/" in path or path.endswith(".erf"):
        ref = CORPUS / rows[path]["reference"].split(";")[0]
        recs = parse_pcap_bytes(ref.read_bytes())
        return len(recs), sum(r[2] for r in recs), None, True
    if path.endswith(".gz"):
        import gzip
        recs, err = tcpdump_ref(None, stdin=gzip.decompress(open(path, "rb").read()))
    elif path.endswith("libtrace__complex.pcapng"):
        ts = tshark_ref(path)                  # libpcap refuses its second link type
        return len(ts), sum(r[3] for r in ts), None, True
    else:
        recs, err = tcpdump_ref(path)
    if recs is None:
        return 0, 0, err, False
    return len(recs), sum(r[2] for r in recs), err, True


@needs_corpus
def test_every_corpus_file_is_read_or_rejected_with_file_and_offset():
    files = corpus_files()
    assert len(files) > 450
    results = run_workers(files)
    rows = manifest()
    with ThreadPoolExecutor(4) as pool:
        refs = dict(zip(files, pool.map(lambda p: reference(p, rows), files)))
    rejected = 0
    for path in files:
        r = results.get(path)
        assert r is not None, "no result for %s" % path
        n, wire, err, opened = refs[path]
        if "code" in r:
            rejected += 1
            assert r["code"] in (EFORMAT, ETRUNC), r
            assert r["where"]["file"] == path and isinstance(r["where"]["offset"], int), r
            assert path in r["msg"] and "offset" in r["msg"], r
            assert err is not None, "%s: we fail (%s) where the reference reads it" % (path, r["msg"])
            assert r["where"]["pcap_error"] == err, path
        else:
            assert err is None, "%s: the reference fails (%s), we do not" % (path, err)
        assert (r.get("stage") == "open") == (not opened), path
        if opened:
            assert (r["packets"], r["bytes"]) == (n, wire), path
        if path in rows and rows[path].get("packets") and opened and "code" not in r:
            assert r["packets"] == int(rows[path]["packets"]), path
    assert rejected >= 4                    # the corpus's invalid-version files and friends


# --- the corpus's deliberately malformed files --------------------------------------------------
MALFORMED = ["pcap/libpcap__pcap-invalid-version-1.pcap", "pcap/libpcap__pcap-invalid-version-2.pcap",
             "pcap/libpcap__pcapng-invalid-vers-1.pcapng", "pcap/libpcap__shb-option-too-long.pcapng",
             "pcap/libtrace__complex.pcapng"]


@needs_corpus
@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_corpus_files_fail_as_recorded(name):
    err_file = CORPUS / "reference" / (os.path.basename(name) + ".tcpdump.err")
    want = [ln for ln in err_file.read_text().splitlines() if not ln.startswith("reading from")][-1]
    want = want.replace("tcpdump: ", "", 1).replace("pcap_loop: ", "", 1)
    recs, err, _ = read_source(CORPUS / name, libpcap_compat=True)
    assert err is not None and err.where["pcap_error"] == want
    assert err.code == EFORMAT and "offset" in str(err) and err.where["file"] == str(CORPUS / name)
    assert not recs


# --- cut files ------------------------------------------------------------------------------------
CUT_FILES = ["pcap/PcapPlusPlus__4KHttpRequests.pcap", "pcap/PcapPlusPlus__file_heuristics__nanosecs.pcap",
             "tcpdump/pcap/pptp.pcap", "pcap/libtrace__100_packets.pcapng",
             "pcap/libpcap__rarp_req_reply.pcapng"]


def record_starts(data):
    """File offsets of the records of a classic pcap."""
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    pos, out = 24, []
    while pos + 16 <= len(data):
        out.append(pos)
        pos += 16 + struct.unpack(order + "I", data[pos + 8:pos + 12])[0]
    return out


@needs_corpus
@pytest.mark.parametrize("name", CUT_FILES)
def test_cut_file_gives_records_before_the_cut_then_an_error(tmp_path, name):
    data = (CORPUS / name).read_bytes()
    path = tmp_path / os.path.basename(name)
    rng = random.Random(name)
    for cut in sorted(rng.sample(range(1, len(data)), 6)) + [len(data) - 1]:
        path.write_bytes(data[:cut])
        ref, ref_err = tcpdump_ref(path)
        recs, err, _ = read_source(path)
        assert err is not None and err.where["offset"] <= cut, cut
        assert err.where["pcap_error"] == ref_err, cut
        assert err.code in (ETRUNC, EFORMAT)
        if ref is not None:
            assert records_of(recs) == ref, cut
        if name.endswith(".pcap") and cut > 24:
            starts = [s for s in record_starts(data) if s < cut]
            assert err.code == ETRUNC and err.where["offset"] == starts[-1] and len(recs) == len(starts) - 1


@needs_corpus
def test_cut_erf_and_results_stay_readable(tmp_path):
    src = CORPUS / "erf/libtrace__100_packets.erf"
    data = src.read_bytes()
    ref = parse_pcap_bytes((CORPUS / "reference/libtrace__100_packets.erf.libtrace-traceconvert.pcap")
                           .read_bytes())
    pos, starts = 0, []
    while pos < len(data):
        starts.append(pos)
        pos += struct.unpack(">H", data[pos + 10:pos + 12])[0]
    cut = starts[60] + 30
    path = tmp_path / "cut.erf"
    path.write_bytes(data[:cut])
    dev = mapi.create_offline_device(str(path))
    fd = mapi.create_flow(dev)
    cnt = mapi.apply_function(fd, "PKT_COUNTER")
    byt = mapi.apply_function(fd, "BYTE_COUNTER")
    buf = mapi.apply_function(fd, "TO_BUFFER")
    mapi.connect(fd)
    mapi.start_offline_device(dev)
    with pytest.raises(MapiError) as e:
        mapi.wait_offline_device(dev, timeout=30)
    assert e.value.code == ETRUNC and e.value.where["offset"] == starts[60] and str(path) in str(e.value)
    assert mapi.read_results(fd, cnt).value == 60
    assert mapi.read_results(fd, byt).value == sum(r[2] for r in ref[:60])
    got = []
    while True:
        p = mapi.get_next_pkt(fd, buf)
        if p is None:
            break
        got.append(p)
    assert [bytes(p.data) for p in got] == [r[3] for r in ref[:60]]
    assert str(path) in " ".join(mapi.get_device_info(dev)["errors"])
    mapi.delete_offline_device(dev)


# --- damaged headers and records, against tcpdump -----------------------------------------------
def damage_cases():
    """(name, bytes) of seeded damage to real files: header fields, record lengths, random bytes."""
    base = (CORPUS / "pcap/PcapPlusPlus__4KHttpRequests.pcap").read_bytes()
    starts = record_starts(base)
    rng = random.Random(20250101)
    cases = []
    for field, off, fmt in (("magic", 0, "<I"), ("major", 4, "<H"), ("minor", 6, "<H"),
                            ("snaplen", 16, "<I"), ("linktype", 20, "<I")):
        for value in (0, 1, 3, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF):
            value &= (1 << (8 * struct.calcsize(fmt))) - 1
            d = bytearray(base)
            d[off:off + struct.calcsize(fmt)] = struct.pack(fmt, value)
            cases.append(("%s=%#x" % (field, value), bytes(d)))
    for k in range(12):
        at = rng.choice(starts[1:])
        d = bytearray(base)
        which = rng.choice((8, 12))                       # caplen or wirelen
        d[at + which:at + which + 4] = struct.pack("<I", rng.choice(
            (0, 1, 15, 1000, 70000, 262144, 262145, 0x7FFFFFFF, rng.randrange(1 << 32))))
        cases.append(("record@%d+%d" % (at, which), bytes(d)))
    for k in range(8):
        d = bytearray(base)
        at = rng.randrange(24, len(d) - 64)
        d[at:at + 32] = bytes(rng.randrange(256) for _ in range(32))
        cases.append(("garbage@%d" % at, bytes(d)))
    ng = (CORPUS / "pcap/libtrace__100_packets.pcapng").read_bytes()
    for k in range(10):
        d = bytearray(ng)
        at = rng.randrange(0, len(d) - 4) & ~3
        d[at:at + 4] = struct.pack("<I", rng.choice((0, 3, 8, 13, 0xFFFF, 0x01000000, rng.randrange(1 << 32))))
        cases.append(("pcapng@%d" % at, bytes(d)))
    cases.append(("zeros", b"\0" * 4096))
    cases.append(("random", bytes(random.Random(7).randrange(256) for _ in range(4096))))
    cases.append(("text", b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n" * 20))
    return cases


def as_tcpdump_writes(recs, src):
    """Our raw (sec << 32 | frac) timestamps as `tcpdump --nano -w` writes them: libpcap keeps
    sec and frac as signed 32-bit values, scales a us fraction by 1000, and the writer keeps the
    low 32 bits -- so damaged fractions come out as they do there."""
    out = []
    for ts, cap, wire, data, _, _ in recs:
        raw = ts & 0xFFFFFFFFFFFFFFFF
        sec, frac = raw >> 32, raw & 0xFFFFFFFF
        if not src.nsec:
            frac = ((frac - (1 << 32) if frac & 0x80000000 else frac) * 1000) & 0xFFFFFFFF
        out.append((sec * 10 ** 9 + frac, cap, wire, data))
    return out


@needs_corpus
def test_damaged_files_fail_where_libpcap_fails(tmp_path):
    checked = 0
    base_ref = tcpdump_ref(CORPUS / "pcap/PcapPlusPlus__4KHttpRequests.pcap")
    for name, data in damage_cases():
        path = tmp_path / "damaged"
        path.write_bytes(data)
        ref, ref_err = tcpdump_ref(path)
        recs, err, src = read_source(path, libpcap_compat=True, raw_ts=True)
        if recs is not None and src.format == "pcap":
            recs = [r + (0, 0) for r in as_tcpdump_writes(recs, src)]
        if ref_err and ref_err.startswith("unknown data link type"):
            # tcpdump (not libpcap's reader) gives up on the link type: the records are intact
            ref, ref_err = base_ref
        if ref is None and recs is not None:
            # libpcap has no ERF reader: random bytes may pass for ERF records with us
            assert name in ("random", "zeros") or name.startswith("garbage"), name
            continue
        assert (ref is None) == (recs is None), (name, ref_err, err)
        if ref is not None:
            assert records_of(recs) == ref, name
        assert (err is None) == (ref_err is None), (name, ref_err, err)
        if err is not None:
            assert err.where["pcap_error"] == ref_err, name
            assert err.code == (ETRUNC if ref_err.startswith("truncated") else EFORMAT), name
            assert str(path) in str(err) and "offset" in str(err), name
        checked += 1
    assert checked > 50


def test_garbage_is_a_format_error(tmp_path):
    for data in (b"\0" * 100, b"not a trace\n" * 10, b"\x0a\x0d\x0d\x0a" + b"\xff" * 60,
                 b"\xd4\xc3\xb2\xa1\x02\x00"):
        path = tmp_path / "junk"
        path.write_bytes(data)
        with pytest.raises(MapiError) as e:
            mapi.create_offline_device(str(path))
        assert e.value.code in (EFORMAT, ETRUNC) and e.value.where["offset"] is not None
        assert str(path) in str(e.value)
