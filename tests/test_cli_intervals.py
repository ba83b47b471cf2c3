"""`mapi run --interval` on files: the rows equal tshark -z io,stat's (frames and bytes per
interval of packet time, for several filters at once), the tcpdump habits (-c, -w, -r -,
several -r, the filter as trailing words) equal tcpdump's results."""
import json
import re
import subprocess
import sys
import time

import pytest

from helpers import corpus_path, generated, need_tool, needs_corpus, sample, tcpdump_pcap
from helpers.cli import read_pty, run_cli, tcpdump_counts

MAPI = [sys.executable, "-m", "mapi.cli"]
MIXED = generated("mixed.pcap")
EXAMPLE = corpus_path("pcap", "PcapPlusPlus__example.pcap")   # its own dates are asserted
HTTP = generated("tcp4.pcap")
SLOW = generated("hundred.pcap")
DNS = sample("pcap/PcapPlusPlus__DnsPackets.pcap")

# (BPF filter for mapi, display filter for tshark): the same packets (BPF's tcp[] reads IPv4 only)
FILTERS = [("tcp", "tcp"), ("udp port 53", "udp.port==53"), ("tcp port 80", "tcp.port==80"),
           ("host 10.0.0.6", "ip.addr==10.0.0.6"), ("greater 1000", "frame.len>=1000"),
           ("tcp[tcpflags] & tcp-syn != 0", "ip && tcp.flags.syn==1"), ("arp", "arp")]


def tshark_io_stat(path, interval, dfilters):
    """[[(frames, bytes) per filter] per interval row] of tshark -q -z io,stat."""
    spec = "io,stat,%s,%s" % (interval, ",".join(dfilters))
    out = subprocess.run([need_tool("tshark"), "-n", "-r", str(path), "-q", "-z", spec],
                         capture_output=True, text=True, timeout=120).stdout
    rows = []
    for line in out.splitlines():
        if re.match(r"\|\s*[\d.]+\s*<>", line):
            cells = [c.strip() for c in line.strip().strip("|").split("|")][1:]
            nums = [int(c) for c in cells]
            rows.append([(nums[i], nums[i + 1]) for i in range(0, len(nums), 2)])
    assert rows, out
    return rows


def mapi_rows(path, interval, exprs, *extra):
    """([[(packets, bytes) per flow] per row], rows, final) of mapi run --interval --json."""
    flows = ['BPF_FILTER("%s") PKT_COUNTER BYTE_COUNTER' % e for e in exprs]
    code, out, err = run_cli("run", "-r", path, "--interval", interval, "--json", *extra, *flows)
    assert code == 0, err
    docs = [json.loads(line) for line in out.splitlines()]
    assert [d["type"] for d in docs] == ["interval"] * (len(docs) - 1) + ["final"]
    rows = docs[:-1]
    table = [[tuple(f["value"] for f in fl["functions"][1:]) for fl in r["flows"]] for r in rows]
    return table, rows, docs[-1]


@pytest.mark.parametrize("path, interval", [(MIXED, "1"), (HTTP, "0.1"), (SLOW, "10"), (DNS, "1")])
def test_interval_rows_equal_tshark_io_stat(path, interval):
    exprs = [b for b, _ in FILTERS]
    want = tshark_io_stat(path, interval, [d for _, d in FILTERS])
    got, rows, final = mapi_rows(path, interval + "s", exprs)
    assert got == want
    # the rows add up to the final results
    for fi, flow in enumerate(final["flows"]):
        assert sum(r[fi][0] for r in got) == flow["functions"][1]["result"]
        assert sum(r[fi][1] for r in got) == flow["functions"][2]["result"]
    # intervals start at the first packet (ISO 8601, UTC) and follow each other exactly
    first_ts = tcpdump_pcap(path, "")[0][0]
    assert rows[0]["start_ns"] == first_ts
    step = int(float(interval) * 1e9)
    assert all(b["start_ns"] - a["start_ns"] == step for a, b in zip(rows, rows[1:]))
    secs, frac = divmod(first_ts, 10 ** 9)
    assert rows[0]["start"].startswith(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)))
    assert rows[0]["start"].endswith("Z") and [r["partial"] for r in rows][-1] is True


@needs_corpus
def test_interval_table_text():
    code, out, err = run_cli("run", "-r", EXAMPLE, "--interval", "5s", "tcp port 80")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["INTERVAL", "START", "(UTC)", "1:BPF_FILTER", "1:PKT_COUNTER",
                                "1:BYTE_COUNTER"]
    want = tshark_io_stat(EXAMPLE, 5, ["tcp.port==80"])
    body = lines[1:1 + len(want)]
    assert [[int(x) for x in line.split()[1:4]] for line in body] == \
        [[w[0][0], w[0][0], w[0][1]] for w in want]
    assert body[0].split()[0] == "2013-05-02T20:20:33.491822Z" and body[-1].endswith("(partial)")
    assert "FLOW  FUNCTION" in out       # the final table follows


# --- tcpdump habits --------------------------------------------------------------------------------
@pytest.mark.parametrize("words", [["tcp", "port", "80"], ["udp"], ["not", "ip"],
                                   ["host", "212.199.202.9", "and", "tcp"]])
def test_filter_as_trailing_words_equals_tcpdump(words):
    code, out, err = run_cli("run", "-r", MIXED, "--json", *words)
    assert code == 0, err
    funcs = json.loads(out)["flows"][0]["functions"]
    assert funcs[0]["spec"] == 'BPF_FILTER("%s")' % " ".join(words)
    expr = " ".join(words)
    lines = subprocess.run([need_tool("tcpdump"), "-n", "-r", str(MIXED), *words],
                           capture_output=True, text=True).stdout.count("\n")
    assert funcs[1]["result"] == lines == tcpdump_counts(MIXED, expr)[0]
    assert funcs[2]["result"] == tcpdump_counts(MIXED, expr)[1]


def test_flows_and_filter_words_mixed_is_an_error():
    code, out, err = run_cli("run", "-r", MIXED, "PKT_COUNTER", "tcp")
    assert code == 2 and "'tcp' is not a flow" in err and out == ""


@pytest.mark.parametrize("count, words", [(100, ["tcp", "port", "80"]), (7, []), (5000, ["udp"])])
def test_count_and_write_equal_tcpdump(tmp_path, count, words):
    mine, theirs = tmp_path / "mapi.pcap", tmp_path / "tcpdump.pcap"
    code, out, err = run_cli("run", "-r", MIXED, "-c", count, "-w", mine, "--json", *words)
    assert code == 0, err
    subprocess.run([need_tool("tcpdump"), "-r", str(MIXED), "-c", str(count), "-w", str(theirs)]
                   + words, check=True, capture_output=True)
    assert mine.read_bytes() == theirs.read_bytes()
    funcs = {f["name"]: f for f in json.loads(out)["flows"][0]["functions"]}
    n = len(tcpdump_pcap(theirs, ""))
    assert funcs["PKT_COUNTER"]["result"] == funcs["LIMIT"]["result"] == n
    assert n == min(count, tcpdump_counts(MIXED, " ".join(words))[0])


def test_count_stops_early_on_a_large_stream(tmp_path):
    # the file's packets repeated through stdin without end: only -c 10 can end the run
    # (a finite feed would race the count check against the end of the stream)
    feed = subprocess.Popen(["sh", "-c", "cat %s; while tail -c +25 %s; do :; done"
                             % (MIXED, MIXED)], stdout=subprocess.PIPE)
    out = subprocess.run([*MAPI, "run", "-r", "-", "-c", "10", "--json"],
                         stdin=feed.stdout, capture_output=True, text=True, timeout=120)
    feed.stdout.close()
    feed.kill()
    feed.wait()
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["flows"][0]["functions"][1]["result"] == 10
    assert doc["packets"] >= 10


def test_stdin_and_several_files(tmp_path):
    with open(MIXED, "rb") as f:
        out = subprocess.run([*MAPI, "run", "-r", "-", "--json", "udp"],
                             stdin=f, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["flows"][0]["functions"][1]["result"] == tcpdump_counts(MIXED, "udp")[0]
    # in turn: the results of both files; merged: the same totals, packets in time order
    a, b = tcpdump_counts(MIXED, "tcp"), tcpdump_counts(HTTP, "tcp")
    for extra in ([], ["--merge"]):
        code, out, err = run_cli("run", "-r", MIXED, "-r", HTTP, "--json", *extra, "tcp")
        assert code == 0, err
        doc = json.loads(out)
        assert doc["files"] == [str(MIXED), str(HTTP)]
        funcs = doc["flows"][0]["functions"]
        assert (funcs[1]["result"], funcs[2]["result"]) == (a[0] + b[0], a[1] + b[1])


def test_merge_equals_mergecap_order(tmp_path):
    """--merge -w writes the packets of both files in time order: the same records as
    mergecap's merge of the two (then filtered by tcpdump)."""
    merged = tmp_path / "merged.pcap"
    subprocess.run([need_tool("mergecap"), "-F", "pcap", "-w", str(merged), str(MIXED), str(HTTP)],
                   check=True, capture_output=True)
    mine = tmp_path / "mine.pcap"
    code, _, err = run_cli("run", "-r", MIXED, "-r", HTTP, "--merge", "-w", mine, "tcp port 80")
    assert code == 0, err
    want = [(ts // 1000, wl, data) for ts, wl, data in tcpdump_pcap(merged, "tcp port 80")]
    got = [(ts // 1000, wl, data) for ts, wl, data in tcpdump_pcap(mine, "")]
    assert got == want and len(got) > 100


def test_bad_options():
    code, _, err = run_cli("run", "-r", MIXED, "--interval", "fast", "PKT_COUNTER")
    assert code == 2 and "--interval: 'fast' is not a duration" in err
    code, _, err = run_cli("run", "PKT_COUNTER")
    assert code == 2 and "give a trace file (-r FILE" in err
    code, _, err = run_cli("run", "-r", MIXED, "-r", "/nonexistent.pcap", "PKT_COUNTER")
    assert code == 2 and "/nonexistent.pcap" in err


def test_version():
    out = subprocess.run([*MAPI, "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert re.fullmatch(r"mapi \(scampi\) \d+\.\d+\.\d+", lines[0])
    assert any(l.startswith("libpcap version 1.") for l in lines)


@needs_corpus
def test_interval_table_redraws_on_a_terminal():
    """On a terminal the interval table is redrawn in place (top-like), then the final table
    stays below it."""
    import os
    import pty
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, MAPI + ["run", "-r", str(EXAMPLE), "--interval", "1s", "udp"])
    text = read_pty(fd)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, text
    frames = text.split("\x1b[H\x1b[2J")
    assert len(frames) == 17          # one redraw per interval (16 of them)
    last = frames[-1].splitlines()
    assert last[0].split()[:3] == ["INTERVAL", "START", "(UTC)"]
    assert last[16].startswith("2013-05-02T20:20:48.491822Z") and "FLOW  FUNCTION" in frames[-1]
    assert "passed %d of 4631 packets" % tcpdump_counts(EXAMPLE, "udp")[0] in frames[-1]


def test_duration_on_a_file_is_packet_time():
    recs = tcpdump_pcap(MIXED, "")
    first = recs[0][0]
    want = [r for r in recs if r[0] < first + 5 * 10 ** 9]
    code, out, err = run_cli("run", "-r", MIXED, "--duration", "5s", "--json")
    assert code == 0, err
    funcs = json.loads(out)["flows"][0]["functions"]
    assert funcs[0]["spec"] == 'STARTSTOP("", "+5000000000ns")'
    assert [f["result"] for f in funcs[1:]] == [len(want), sum(r[1] for r in want)]


@needs_corpus
def test_a_long_silence_is_one_row(tmp_path):
    """Three packets, the third three days later: 1 s rows would be 259,202 empty ones; they
    come out as one row that says so (and the sums stay right)."""
    import struct
    src = EXAMPLE.read_bytes()
    pos, recs = 24, []
    for _ in range(3):
        sec, usec, incl, orig = struct.unpack("<IIII", src[pos:pos + 16])
        recs.append([sec, usec, incl, orig, src[pos + 16:pos + 16 + incl]])
        pos += 16 + incl
    recs[2][0] += 3 * 86400
    gap = tmp_path / "gap.pcap"
    gap.write_bytes(src[:24] + b"".join(struct.pack("<IIII", *r[:4]) + r[4] for r in recs))
    code, out, err = run_cli("run", "-r", gap, "--interval", "1s", "--json", "PKT_COUNTER")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()][:-1]
    assert [r["flows"][0]["functions"][0]["value"] for r in rows] == [2, 0, 1]
    assert rows[1]["empty_intervals"] == 3 * 86400 + 2      # 20:20:34.49 .. 3 days + 20:20:36.49
    assert rows[1]["end_ns"] == rows[2]["start_ns"] and rows[2]["partial"]


def test_times_in_results_are_iso_8601_with_the_raw_value_in_json():
    """BUCKET's snapshots and EXPIRED_FLOWS' flow times: ISO 8601 UTC in the table, both forms
    in JSON; the snapshots equal tcpdump's packets counted per 5 s from the first one."""
    ts = [t for t, _, _ in tcpdump_pcap(MIXED, "")]
    step = 5 * 10 ** 9
    starts = list(range(ts[0], ts[-1] + 1, step))
    want = [(s, sum(t < s + step for t in ts)) for s in starts]

    def iso(ns):
        secs, frac = divmod(ns, 10 ** 9)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".%06dZ" % (frac // 1000)
    flows = ['c=PKT_COUNTER BUCKET(c, "5s")', 'FLOW_REPORT("ipfix", "") EXPIRED_FLOWS']
    code, out, err = run_cli("run", "-r", MIXED, "--json", *flows)
    assert code == 0, err
    doc = json.loads(out)
    snaps = doc["flows"][0]["functions"][1]["result"]
    assert [(e["start"], e["value"]) for e in snaps] == want
    assert [e["start_time"] for e in snaps] == [iso(s) for s, _ in want]
    expired = doc["flows"][1]["functions"][1]["result"]
    assert expired and all(e["first_time"] == iso(e["first_ns"]) and e["last_time"] == iso(e["last_ns"])
                           for e in expired)
    code, out, err = run_cli("run", "-r", MIXED, *flows)
    assert code == 0, err
    for i, (s, v) in enumerate(want):
        assert "%d. start=%s, value=%d" % (i + 1, iso(s), v) in out
    assert "first_ns=%s, last_ns=%s" % (iso(expired[0]["first_ns"]), iso(expired[0]["last_ns"])) in out
    assert str(want[0][0]) not in out
