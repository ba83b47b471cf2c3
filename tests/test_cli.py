"""The `mapi` command line: results equal the Python API's and the stock tools' (tcpdump,
capinfos); bad input gives one clear line and the documented exit code."""
import io
import json
import os
import pty
import subprocess
import sys
import time
from decimal import Decimal

import pytest

import mapi
from mapi import cli
from mapi.progress import render

from helpers.cli import read_pty, run_cli, tcpdump_counts
from helpers import ROOT, corpus_path, generated, inputs, need_tool, needs_corpus, sample, tcpdump_pcap

HTTP = generated("slow.pcap")
MIXED = generated("mixed.pcap")
EXPRS = ["tcp port 80", "udp", "ip6", "tcp[tcpflags] & tcp-syn != 0", "icmp or arp", "net 10.0.0.0/8"]


def api_counts(path, exprs):
    """[(packets, bytes)] per filter through the Python API, all flows on one device."""
    dev = mapi.create_offline_device(str(path))
    flows = []
    for e in exprs:
        fd = mapi.create_flow(dev)
        mapi.apply_function(fd, "BPF_FILTER", e)
        flows.append((fd, mapi.apply_function(fd, "PKT_COUNTER"), mapi.apply_function(fd, "BYTE_COUNTER")))
        mapi.connect(fd)
    mapi.start_offline_device(dev)
    mapi.wait_offline_device(dev)
    out = [(mapi.read_results(fd, p).value, mapi.read_results(fd, b).value) for fd, p, b in flows]
    mapi.delete_offline_device(dev)
    return out


# --- mapi run -----------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [HTTP, MIXED], ids=lambda p: p.name)
def test_run_equals_api_and_tcpdump(path):
    specs = ['BPF_FILTER("%s") PKT_COUNTER BYTE_COUNTER' % e for e in EXPRS]
    code, out, err = run_cli("run", "--json", "-r", path, *specs)
    assert code == 0, err
    report = json.loads(out)
    cli_counts = [(f["functions"][1]["result"], f["functions"][2]["result"]) for f in report["flows"]]
    assert cli_counts == api_counts(path, EXPRS)
    assert cli_counts == [tcpdump_counts(path, e) for e in EXPRS]
    assert [f["spec"] for f in report["flows"]] == specs
    # the filter's own row reports how many packets it let through of how many
    for flow, (n, _) in zip(report["flows"], cli_counts):
        filt = flow["functions"][0]
        assert (filt["name"], filt["pkts_out"]) == ("BPF_FILTER", n)
        assert filt["pkts_in"] == report["packets"] == tcpdump_counts(path, "")[0]


def test_run_table_shows_every_result():
    n80, b80 = tcpdump_counts(HTTP, "tcp port 80")
    total, _ = tcpdump_counts(HTTP, "")
    code, out, err = run_cli("run", "-r", HTTP, 'BPF_FILTER("tcp port 80") PKT_COUNTER BYTE_COUNTER',
                             "all=PKT_COUNTER")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["FLOW", "FUNCTION", "RESULT"]
    assert lines[1].split() == ["1", 'BPF_FILTER("tcp', 'port', '80")', "passed", str(n80), "of",
                                str(total), "packets"]
    assert lines[2].split() == ["1", "PKT_COUNTER", str(n80)]
    assert lines[3].split() == ["1", "BYTE_COUNTER", str(b80)]
    assert lines[4].split() == ["2", "all=PKT_COUNTER", str(total)]
    assert "%d packets read from %s" % (total, HTTP) in out


def test_run_lists_and_list_results():
    # a list argument (STR_SEARCH's patterns) and a list result (TOP's entries), by value
    import dpkt
    frames = tcpdump_pcap(MIXED, "")
    hits = [f for f in frames if b"HTTP/1.1" in f[2] or b"\r\nHost:" in f[2]]
    code, out, err = run_cli("run", "--json", "-r", MIXED, 'STR_SEARCH(["HTTP/1.1", "|0d 0a|Host:"]) PKT_COUNTER',
                             'BPF_FILTER("ip") TOP(3, "ip.src")')
    assert code == 0, err
    flows = json.loads(out)["flows"]
    assert [f["result"] for f in flows[0]["functions"]] == [len(hits), len(hits)]
    count = {}
    for _, wire, data in tcpdump_pcap(MIXED, "ip"):
        ip = dpkt.ethernet.Ethernet(data).data     # dpkt steps over VLAN tags itself
        assert isinstance(ip, dpkt.ip.IP)
        p, b = count.get(ip.src, (0, 0))
        count[ip.src] = (p + 1, b + wire)
    best = sorted(count.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[:3]
    assert flows[1]["functions"][1]["result"] == [
        dict(value=".".join(map(str, a)), packets=p, bytes=b) for a, (p, b) in best]


def test_run_drains_to_buffer_instead_of_stalling():
    # an offline TO_BUFFER is lossless: nobody reading it would hold the replay forever
    total, wire = tcpdump_counts(MIXED, "")
    code, out, err = run_cli("run", "--json", "-r", MIXED, "TO_BUFFER(WAIT, 1048576) PKT_COUNTER")
    assert code == 0, err
    f = json.loads(out)["flows"][0]["functions"]
    assert f[0]["taken_by_cli"]["packets"] == total
    assert f[1]["result"] == total


def test_console_script_and_json_parse(tmp_path):
    exe = ROOT / ".venv" / "bin" / "mapi"
    if not exe.exists():
        pytest.fail("%s is missing: run `make engine` (pip install -e . makes the script)" % exe)
    proc = subprocess.run([str(exe), "run", "--json", "-r", str(HTTP), "PKT_COUNTER"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["flows"][0]["functions"][0]["result"] == tcpdump_counts(HTTP, "")[0]
    # not a terminal: no progress bar, nothing on stderr
    assert proc.stderr == ""
    proc = subprocess.run([str(exe), "run", "-r", str(tmp_path / "nope.pcap"), "PKT_COUNTER"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("mapi: cannot open %s" % (tmp_path / "nope.pcap"))


def test_run_threshold_on_a_labelled_counter():
    # THRESHOLD's flow comes first on the command line, but watches a flow given after it
    web = tcpdump_pcap(HTTP, "tcp port 80")
    every = tcpdump_pcap(HTTP, "")
    code, out, err = run_cli("run", "--json", "-r", HTTP, "THRESHOLD(GREATER, web, 100)",
                             'BPF_FILTER("tcp port 80") web=PKT_COUNTER')
    assert code == 0, err
    rep = json.loads(out)
    th = rep["flows"][0]["functions"][0]
    assert (th["name"], th["result"], len(th["events"])) == ("THRESHOLD", 1, 1)
    ev = th["events"][0]
    crossing = web[100]                        # the 101st web packet takes the count above 100
    assert (ev["value"], ev["ts"]) == (101, crossing[0])
    assert every[ev["seq"]] == crossing
    assert rep["flows"][1]["functions"][1]["result"] == len(web)
    code, out, _ = run_cli("run", "-r", HTTP, "THRESHOLD(GREATER, web, 100)", 'BPF_FILTER("tcp port 80") web=PKT_COUNTER')
    assert "101 > 100 at " in out and "(packet index %d)" % ev["seq"] in out


def test_run_label_errors_between_flows():
    code, _, err = run_cli("run", "-r", HTTP, "c=PKT_COUNTER THRESHOLD(GREATER, c, 10)")
    assert code == 2 and "THRESHOLD watches 'c', which is in the same flow" in err
    code, _, err = run_cli("run", "-r", HTTP, "a=THRESHOLD(GREATER, b, 1)", "b=THRESHOLD(GREATER, a, 1)")
    assert code == 2 and "cycle: flow 1 -> flow 2 -> flow 1" in err
    code, _, err = run_cli("run", "-r", HTTP, "THRESHOLD(GREATER, nowhere, 1)")
    assert code == 2 and err.startswith("mapi: flow 1, column 20: 'nowhere' is neither a constant nor a label")


def test_run_imports_only_what_it_uses(tmp_path):
    # start-up: `mapi run` on a one-packet file loads neither the other commands nor json or
    # asyncio; --json brings json in
    from mapi.tracegen import write_trace
    one = tmp_path / "one.pcap"
    write_trace(one, 1, seed=1)
    probe = ("import sys; from mapi.cli import main; code = main(sys.argv[1:]); "
             "sys.stderr.write(' '.join(sorted(sys.modules)) + '\\n'); sys.exit(code)")
    seen = {}
    for extra in ([], ["--json"]):
        proc = subprocess.run([sys.executable, "-c", probe, "run", "-r", str(one), "PKT_COUNTER"] + extra,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        seen[bool(extra)] = set(proc.stderr.split())
    plain = seen[False]
    assert "mapi.cli.commands.run" in plain and "mapi.cli.flowspec" in plain
    others = {"mapi.cli.commands." + c for c in ("explain", "info", "devices", "functions")}
    assert not plain & (others | {"json", "asyncio", "mapi.linktypes", "mapi.tracegen"})
    assert "json" in seen[True]


# --- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, col, words", [
    ('BPF_FILTER("tcp" PKT_COUNTER', 18, ["expected ',' or ')'", "'PKT_COUNTER'"]),
    ('BPF_FILTER("tcp) PKT_COUNTER', 12, ["no closing"]),
    ('BPF_FILTER(tcp)', 12, ["'tcp'", 'needs quotes: "tcp"']),
    ('BPF_FILTER(Tcp)', 12, ["unknown constant 'Tcp'"]),
    ('PKT_COUNTER )', 13, ["expected a function name", "')'"]),
    ('SAMPLE(10s)', 8, ["'10s' is not a number"]),
    ('c=', 3, ["expected a function name", "end of the flow"]),
    ('C=PKT_COUNTER', 1, ["label 'C'", "lower-case"]),
    ('PKT_COUNTER(', 13, ["expected a value", "end of the flow"]),
    ('BPF_FILTER(expr="tcp", "udp")', 24, ["positional argument after a named one"]),
    ('x=PKT_COUNTER BPF_FILTER(x)', 26, ["argument 'expr' of BPF_FILTER takes a string", "'x'"]),
    ('BPF_FILTER(later) later=PKT_COUNTER', 12, ["argument 'expr' of BPF_FILTER"]),
    ('PKT_COUNTER @', 13, ["unexpected character '@'"]),
])
def test_spec_syntax_errors(spec, col, words):
    code, out, err = run_cli("run", "-r", HTTP, spec)
    assert code == 2 and out == ""
    assert err.startswith("mapi: flow 1, column %d: " % col), err
    assert err.count("\n") == 1
    for w in words:
        assert w in err


def test_label_used_twice_and_unknown_label():
    code, _, err = run_cli("run", "-r", HTTP, "c=PKT_COUNTER", "c=BYTE_COUNTER")
    assert code == 2 and err.startswith("mapi: flow 2, column 1: label 'c' is already used in flow 1")


def test_missing_file(tmp_path):
    missing = tmp_path / "missing.pcap"
    code, out, err = run_cli("run", "-r", missing, "PKT_COUNTER")
    assert (code, out) == (2, "")
    assert err == "mapi: cannot open %s: No such file or directory [MAPI error 1010: cannot open file]\n" % missing


def test_invalid_filter_gives_libpcaps_message():
    code, out, err = run_cli("run", "-r", HTTP, "PKT_COUNTER", 'BPF_FILTER("tcp prt 80") PKT_COUNTER')
    assert (code, out) == (2, "")
    assert err.startswith("mapi: flow 2, column 1 (BPF_FILTER(\"tcp prt 80\")): BPF_FILTER: invalid filter")
    assert "syntax error" in err and "[MAPI error 1009: invalid filter]" in err
    assert err.count("\n") == 1


def test_unknown_function_and_bad_argument_type():
    code, _, err = run_cli("run", "-r", HTTP, "PKT_COUNTER NO_SUCH_FN")
    assert code == 2
    assert err.startswith("mapi: flow 1, column 13 (NO_SUCH_FN): unknown function 'NO_SUCH_FN'")
    assert "PKT_COUNTER" in err and "[MAPI error 1004" in err
    code, _, err = run_cli("run", "-r", HTTP, "BPF_FILTER(80)")
    assert code == 2 and "argument 'expr' must be a string, got 80" in err and "[MAPI error 1005" in err


def test_no_flow_counts_everything_and_not_a_trace(tmp_path):
    # as tcpdump without a filter: every packet, counted by one default flow
    code, out, err = run_cli("run", "-r", HTTP, "--json")
    assert code == 0, err
    funcs = json.loads(out)["flows"][0]["functions"]
    assert [(f["name"], f["result"]) for f in funcs] == \
        [("PKT_COUNTER", tcpdump_counts(HTTP, "")[0]), ("BYTE_COUNTER", tcpdump_counts(HTTP, "")[1])]
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"hello, this is not a capture file at all\n")
    code, _, err = run_cli("run", "-r", junk, "PKT_COUNTER")
    assert code == 2 and "not a pcap, pcapng or ERF file" in err and "[MAPI error 1011" in err


def _cut_copy(tmp_path, src, cut):
    data = src.read_bytes()[:cut]
    dst = tmp_path / "cut.pcap"
    dst.write_bytes(data)
    return dst


def test_truncated_file_prints_results_then_error(tmp_path):
    cut = _cut_copy(tmp_path, HTTP, 200000)
    n, wire = tcpdump_counts(cut, "tcp port 80")     # tcpdump keeps every record before the cut
    code, out, err = run_cli("run", "--json", "-r", cut, 'BPF_FILTER("tcp port 80") PKT_COUNTER BYTE_COUNTER')
    assert code == 1
    rep = json.loads(out)
    assert [f["result"] for f in rep["flows"][0]["functions"][1:]] == [n, wire]
    assert rep["error"]["code"] == 1012
    assert err.startswith("mapi: %s: file ends inside the record at offset" % cut)
    assert err.count("\n") == 1
    code, out, err = run_cli("run", "-r", cut, "PKT_COUNTER")
    assert code == 1 and out.splitlines()[1].split() == ["1", "PKT_COUNTER", str(tcpdump_counts(cut, "")[0])]


# --- flow spec parser ---------------------------------------------------------------------------
def test_parse_flow_values():
    text = ('BPF_FILTER("tcp port 80") s=SAMPLE(10, PERIODIC), '
            "STR_SEARCH(['GET /', \"|0d 0a|Host:\"], offset=0x10, depth=1e3) "
            r'REGEXP("a\"b\\c\d") TO_BUFFER THRESHOLD(GREATER, s, -2.5, flag=true)')
    steps = cli.parse_flow(text)
    assert [s.name for s in steps] == ["BPF_FILTER", "SAMPLE", "STR_SEARCH", "REGEXP", "TO_BUFFER", "THRESHOLD"]
    assert steps[0].args == ["tcp port 80"]
    assert (steps[1].label, steps[1].args, steps[1].text) == ("s", [10, mapi.PERIODIC], "s=SAMPLE(10, PERIODIC)")
    assert steps[2].args == [["GET /", "|0d 0a|Host:"]]
    assert steps[2].kwargs == {"offset": 16, "depth": 1000.0}
    assert steps[3].args == ['a"b\\c\\d']      # only the quote and the backslash are escapes
    assert (steps[4].args, steps[4].kwargs) == ([], {})
    assert steps[5].args == [mapi.GREATER, cli.Ref("s", text.index("GREATER, s") + 10), -2.5] and steps[5].kwargs == {"flag": True}


# --- mapi info ----------------------------------------------------------------------------------
INFO_FILES = inputs([HTTP, MIXED, generated("mixed-ns.pcap"), generated("mixed.pcapng"),
                     corpus_path("pcap", "libtrace__100_packetsns.pcap"),
                     corpus_path("pcap", "libtrace__sll.pcap.gz"), sample("tcpdump/pcap/pptp.pcap"),
                     corpus_path("pcap", "libtrace__100_packets.pcapng")])


def capinfos(path):
    """packets, earliest and latest time (ns) as capinfos reports them."""
    out = subprocess.run([need_tool("capinfos"), "-T", "-M", "-r", "-c", "-a", "-e", "-S", str(path)],
                         capture_output=True, text=True, timeout=60).stdout
    _, n, first, last = out.strip().split("\t")
    ns = lambda s: int(Decimal(s) * 10 ** 9)   # noqa: E731
    return int(n), ns(first), ns(last)


@pytest.mark.parametrize("path", INFO_FILES, ids=lambda p: p.name)
def test_info_equals_capinfos_and_tcpdump(path):
    code, out, err = run_cli("info", "--json", path)
    assert code == 0, err
    info = json.loads(out)
    n, first, last = capinfos(path)
    assert (info["packets"], info["first_ts"], info["last_ts"]) == (n, first, last)
    assert info["duration_ns"] == last - first
    assert (info["packets"], info["wire_bytes"]) == tcpdump_counts(path, "")
    assert info["file_size"] == os.path.getsize(path)


@needs_corpus
def test_info_erf_equals_capinfos_and_libtrace():
    erf = corpus_path("erf", "libtrace__100_packets.erf")
    code, out, err = run_cli("info", "--json", erf)
    assert code == 0, err
    info = json.loads(out)
    assert (info["format"], info["precision"]) == ("erf", "ns")
    assert (info["packets"], info["first_ts"], info["last_ts"]) == capinfos(erf)
    # wire length without the FCS, as libtrace's conversion to pcap has it
    converted = corpus_path("reference", "libtrace__100_packets.erf.libtrace-traceconvert.pcap")
    assert (info["packets"], info["wire_bytes"]) == tcpdump_counts(converted, "")


@needs_corpus
def test_info_text_names_format_and_link_type():
    code, out, err = run_cli("info", corpus_path("pcap", "libtrace__sll.pcap.gz"))
    assert code == 0, err
    rows = dict(line.split(":", 1) for line in out.splitlines())
    rows = {k: v.strip() for k, v in rows.items()}
    assert rows["format"] == "pcap 2.4, little-endian, gzip-compressed"
    assert rows["link type"] == "113 LINUX_SLL (Linux cooked v1)"
    assert rows["packets"] == "100"
    _, first, last = capinfos(corpus_path("pcap", "libtrace__sll.pcap.gz"))
    secs, us = divmod(first // 1000, 10 ** 6)
    assert rows["first packet"] == "%s.%06dZ (%d.%06d)" % (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)), us, secs, us)
    assert rows["duration"] == "%.9f s" % ((last - first) / 1e9)


def test_info_truncated_file(tmp_path):
    cut = _cut_copy(tmp_path, HTTP, 200000)
    code, out, err = run_cli("info", "--json", cut)
    assert code == 1
    info = json.loads(out)
    n, first, last = capinfos(cut)          # capinfos counts the complete records, too
    assert (info["packets"], info["first_ts"], info["last_ts"]) == (n, first, last)
    assert "file ends inside the record" in err and err.count("\n") == 1


def test_linktype_table_equals_libpcap_and_the_shims():
    # one table: every DLT_ value names as the system libpcap names it, and the shim's C table
    # is the same rows
    import ctypes
    import re
    from mapi import linktypes
    lib = ctypes.CDLL(linktypes.SYSTEM_LIBPCAP)
    for fn in ("pcap_datalink_val_to_name", "pcap_datalink_val_to_description"):
        getattr(lib, fn).restype = ctypes.c_char_p
    named = 0
    for dlt in range(1 << 16):
        name = lib.pcap_datalink_val_to_name(dlt)
        if name is None:
            assert linktypes.lookup(dlt) is None, dlt
            continue
        named += 1
        desc = lib.pcap_datalink_val_to_description(dlt)
        assert linktypes.lookup(dlt) == (name.decode(), desc.decode())
        lib.pcap_datalink_name_to_val.argtypes = [ctypes.c_char_p]
        assert linktypes.dlt_of(name.decode().lower()) == lib.pcap_datalink_name_to_val(name.lower())
    assert named == len(linktypes.TABLE) > 100
    inc = (ROOT / "libpcap_shim" / "csrc" / "dlt_table.inc").read_text()
    rows = re.findall(r'^\{ (\d+), "((?:[^"\\]|\\.)*)", "((?:[^"\\]|\\.)*)" \},$', inc, re.M)
    assert [(int(d), n, desc) for d, n, desc in rows] == list(linktypes.TABLE)
    assert linktypes.c_include().splitlines()[1:] == inc.splitlines()[1:]


# --- mapi devices / functions -------------------------------------------------------------------
def test_devices_lists_installed_backends():
    code, out, _ = run_cli("devices", "--json")
    assert code == 0
    rep = json.loads(out)
    reg = mapi.registry.get_registry()
    assert [b["backend"] for b in rep["backends"]] == sorted(reg.backends)
    sf = next(b for b in rep["backends"] if b["backend"] == "savefile")
    assert sf["offline"] is True and sf["plugin"] == "backend-pcapfile"
    code, out, _ = run_cli("devices")
    assert code == 0
    assert any(line.startswith("savefile  (plugin backend-pcapfile; offline)  pcap, pcapng and ERF")
               for line in out.splitlines())


def test_functions_lists_every_descriptor():
    reg = mapi.registry.get_registry()
    code, out, _ = run_cli("functions", "--json")
    assert code == 0
    rep = json.loads(out)
    assert [f["name"] for f in rep] == sorted(reg.functions)
    for f in rep:
        d = reg.functions[f["name"]]
        assert (f["filters"], f["result"], f["cost"], f["shareable"], f["plugin"]) == \
            (d.filters, d.result, d.cost, d.shareable, d.plugin)
        assert [a["name"] for a in f["args"]] == [a.name for a in d.args]
    code, out, _ = run_cli("functions", "BPF_FILTER")
    assert out.splitlines()[0] == "BPF_FILTER(expr: string)"
    assert "filters" in out.splitlines()[1]
    code, out, err = run_cli("functions", "NOPE")
    assert code == 2 and "unknown function 'NOPE'" in err


# --- progress bar -------------------------------------------------------------------------------
def test_render_progress_line():
    line = render(offset=50 << 20, total=100 << 20, packets=1234567, elapsed=2.0, width=80)
    assert line.startswith(" 50% [") and "1.2 Mpkts" not in line
    assert "1.2 M pkts" in line and "26.2 MB/s" in line and "ETA 0:02" in line
    assert len(line) <= 79
    assert render(10, None, 5000, 2.0) == "5.0 k pkts  2.5 k pkts/s  0:02"


def test_progress_bar_only_on_a_terminal_or_when_asked():
    # a pty as stderr: forced bar draws frames with \r and ends at 100 %
    master, slave = pty.openpty()
    exe = ROOT / ".venv" / "bin" / "python"
    try:
        proc = subprocess.run([str(exe), "-m", "mapi.cli", "run", "--progress", "always", "-r", str(MIXED),
                               "PKT_COUNTER"], stdout=subprocess.PIPE, stderr=slave, timeout=60)
        os.close(slave)
        slave = None
        err = read_pty(master)
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)

    assert proc.returncode == 0
    assert "\r100% [" in err and "4.6 k pkts" in err
    # not a terminal, default mode: nothing
    proc = subprocess.run([str(exe), "-m", "mapi.cli", "run", "-r", str(MIXED), "PKT_COUNTER"],
                          capture_output=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == b""


def test_ranked_entries_print_alike_named_or_not():
    """TOP's rows: the key's name when it has one (443 https), else its value; then the counts,
    the same numbers as in JSON."""
    flow = 'TOP(6, "port.dst", by="bytes")'
    code, out, err = run_cli("run", "-r", MIXED, "--json", flow)
    assert code == 0, err
    entries = json.loads(out)["flows"][0]["functions"][0]["result"]
    assert any("text" in e for e in entries) and any("text" not in e for e in entries)
    code, out, err = run_cli("run", "-r", MIXED, flow)
    assert code == 0, err
    for i, e in enumerate(entries):
        assert "%d. %s  packets=%d  bytes=%d" % (i + 1, e.get("text", e["value"]), e["packets"],
                                                 e["bytes"]) in out
