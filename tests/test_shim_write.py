"""The libpcap drop-in writes and compiles like libpcap: `tcpdump -r IN [EXPR] -w OUT` gives
byte-identical files (tcpdump drops to its own user before writing: the shim works on after the
privilege drop), and `tcpdump -d/-dd/-ddd` prints the same classic BPF as the stock libpcap."""
import concurrent.futures
import os
import shutil
import tempfile

import pytest

from helpers import CORPUS, corpus_marks, generated, name_of, sample
from helpers.shim_modes import shim_server_fixture
from scampi.libpcap_shim import testing

shim_server = shim_server_fixture()

FILES = [
    "pcap/PcapPlusPlus__4KHttpRequests.pcap",
    "pcap/PcapPlusPlus__DnsPackets.pcap",
    "pcap/PcapPlusPlus__VlanPackets.pcap",
    "pcap/PcapPlusPlus__file_heuristics__nanosecs.pcap",
    "pcap/PcapPlusPlus__ip6_fragments.pcap",
    "pcap/PcapPlusPlus__null_loopback.pcap",
    "pcap/PcapPlusPlus__raw_ip.pcap",
    "pcap/PcapPlusPlus__linktype_ipv6.pcap",
    "pcap/libpcap__arcnet-rfc1201-arp-icmp-http.pcap",
    "pcap/libpcap__rarp_req_reply.pcapng",
    "pcap/libtrace__100_packets.pcapng",
    "pcap/libtrace__100_packetsns.pcap",
    "pcap/libtrace__10_packets_radiotap.pcap",
    "pcap/libtrace__complex.pcapng",
    "pcap/libtrace__sll.pcap.gz",
    "pcap/zeek__mixed-vlan-mpls.pcap",
    "pcap/zeek__pppoe-over-qinq.pcap",
    "pcap/zeek__tunnels__gre-within-gre.pcap",
    "tcpdump/pcap/heap-overflow-2.pcap",
    "tcpdump/pcap/timestamp_invalid_nano.pcap",
    generated("slow.pcap"), generated("mixed-ns.pcap"), generated("mixed.pcapng"),
]
EXPRS = ["", "tcp or (udp and not port 53)", "ip6 or arp or vlan"]
WRITE_CASES = [(f, e, o) for f in FILES for e, o in zip(EXPRS[:2], ((), ("--nano",)))] + \
    [(f, EXPRS[2], ()) for f in FILES[:6]] + \
    [("pcap/PcapPlusPlus__ip6_fragments.pcap", "ip6 protochain 6 or ip6 protochain 17", ())]

DUMP_EXPRS = [
    "", "tcp port 80", "host 10.0.0.1 and not port 22", "udp dst portrange 1000-2000",
    "icmp[icmptype] == icmp-echo", "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0", "ip6 and tcp",
    "vlan 100 and ip", "mpls and udp", "ether broadcast", "ether host 00:11:22:33:44:55",
    "net 192.168.0.0/16", "ip proto 47", "len > 1000", "less 64", "ip[2:2] > 576",
    "ip6 protochain 6", "arp or rarp", "pppoes and ip", "geneve and ip", "ip multicast",
    "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420", "not (src net 10 or dst net 10)",
    "portrange 6000-6010 or port domain", "ip[6:2] & 0x1fff != 0", "greater 1500 and ip6",
    "ether proto 0x88cc", "udp port 4789 and ip",
]
DUMP_CASES = [([opt], e) for e, opt in zip(DUMP_EXPRS, ["-d", "-dd", "-ddd"] * 20)] + [
    (["-d", "-y", "LINUX_SLL"], "tcp port 80"),
    (["-dd", "-y", "RAW"], "udp"),
    (["-d", "-y", "IEEE802_11_RADIO"], "wlan host 00:11:22:33:44:55"),
    (["-ddd", "-y", "NULL"], "ip6"),
    (["-d", "-O"], "tcp port 80 or tcp port 443"),
    (["-d", "-s", "128"], "ip"),
    (["-d", "-r", str(sample("pcap/PcapPlusPlus__raw_ip.pcap"))], "tcp"),
    (["-d", "-r", str(CORPUS / "pcap/libtrace__100_sll.pcap")], "port 53"),
    (["-d"], "tcp port"),                      # syntax error
    (["-d"], "ether host nonsense.invalid"),   # unknown host
    (["-d", "-y", "RAW"], "ether host 00:11:22:33:44:55"),   # not on this link type
    (["-d", "-y", "NOSUCHDLT"], "ip"),
]


@pytest.fixture(scope="module")
def outdir():
    # tcpdump writes as user "tcpdump" after dropping root
    d = tempfile.mkdtemp(prefix="shim-write-")
    os.chmod(d, 0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _write(args):
    (path, expr, opts), outdir, preload, server = args
    tag = "%s-%s-%d-%d" % (os.path.basename(path), abs(hash((expr, tuple(opts)))), preload,
                           bool(server))
    out = os.path.join(outdir, tag)
    argv = ["tcpdump", "-r", str(sample(path)), "-w", out] + list(opts) + ([expr] if expr else [])
    run = testing.run(argv, preload, env={"LC_ALL": "C"}, server=server)
    data = open(out, "rb").read() if os.path.exists(out) else None
    return run, data


@pytest.fixture(scope="module")
def written(outdir, shim_server):
    if testing.tool("tcpdump") is None:
        pytest.skip("tcpdump is not installed (make test installs it)")
    testing.library()
    jobs = [(c, outdir, p, shim_server) for c in WRITE_CASES for p in (False, True)]
    with concurrent.futures.ThreadPoolExecutor(max(2, min(4, os.cpu_count() or 2))) as pool:
        res = list(pool.map(_write, jobs))
    return {(c, p): r for (c, _, p, _), r in zip(jobs, res)}


@pytest.mark.parametrize("case", [pytest.param(c, marks=corpus_marks(c[0])) for c in WRITE_CASES],
                         ids=["%s[%s]%s" % (name_of(f), e, "".join(o)) for f, e, o in WRITE_CASES])
def test_write_identical(written, case, shim_server):
    (stock, stock_data), (shim, shim_data) = written[(case, False)], written[(case, True)]
    assert stock.returncode == shim.returncode, (stock, shim)
    assert stock.stderr == shim.stderr
    assert shim_data == stock_data
    if stock.returncode == 0:
        testing.in_mode(shim, shim_server)
        rep = shim.reports[0]
        ring = next(f for f in rep["functions"] if f["name"] == "TO_BUFFER")
        assert ring["ring"]["delivered"] == rep["shim_seen"] >= rep["shim_delivered"]
        if rep["filter_where"] in ("mapi", "none"):
            assert rep["shim_delivered"] == rep["shim_seen"]
        if case[1] and rep["filter_where"] == "shim":
            # libpcap compiles savefile-specific code BPF_FILTER cannot reproduce (DLT_NULL)
            assert rep["notes"] and rep["filter"] is None
        elif case[1]:
            assert rep["filter"] == case[1] and rep["filter_where"] in ("mapi", "mapi+shim")
            assert testing.function_counts(rep, "BPF_FILTER")[1] == ring["pkts_in"]


def _dump(args):
    (opts, expr), preload, server = args
    return testing.run(["tcpdump"] + opts + ([expr] if expr else []), preload, env={"LC_ALL": "C"},
                       server=server)


@pytest.fixture(scope="module")
def dumped(shim_server):
    if testing.tool("tcpdump") is None:
        pytest.skip("tcpdump is not installed (make test installs it)")
    testing.library()
    jobs = [(c, p, shim_server) for c in DUMP_CASES for p in (False, True)]
    with concurrent.futures.ThreadPoolExecutor(max(2, min(4, os.cpu_count() or 2))) as pool:
        res = list(pool.map(_dump, jobs))
    return {(tuple(c[0]), c[1], p): r for (c, p, _), r in zip(jobs, res)}


@pytest.mark.parametrize("case", [pytest.param(c, marks=corpus_marks(c[0][-1]) if "-r" in c[0] else ())
                                  for c in DUMP_CASES],
                         ids=["%s[%s]" % (" ".join(o), e) for o, e in DUMP_CASES])
def test_bpf_dump_identical(dumped, case):
    stock = dumped[(tuple(case[0]), case[1], False)]
    shim = dumped[(tuple(case[0]), case[1], True)]
    assert shim.returncode == stock.returncode
    assert shim.stdout == stock.stdout
    assert shim.stderr == stock.stderr
    if case[1] == "tcp port 80" and case[0] == ["-d"]:
        assert len(stock.stdout.splitlines()) == 20     # pitfall 2: libpcap's optimised program


@pytest.mark.parametrize("opts", [["-C", "1"], ["-C", "1", "-Z", "nobody"], ["-Z", "root"]],
                         ids=["rotate", "rotate-as-nobody", "stay-root"])
def test_write_after_privilege_drop(outdir, opts, shim_server):
    """tcpdump -C opens every file after the new one with pcap_dump_open once it runs as its
    own unprivileged user, and calls pcap_dump_ftell64 per packet; -Z picks that user."""
    src = str(generated("mixed.pcap"))       # 2.2 MB of TCP: three files of 1 MB with -C 1
    files = {}
    for preload in (False, True):
        d = os.path.join(outdir, "rot-%s-%d-%d" % ("".join(opts), preload, bool(shim_server)))
        os.mkdir(d)
        os.chmod(d, 0o777)
        run = testing.run(["tcpdump", "-r", src, "-w", os.path.join(d, "out")] + opts + ["tcp"],
                          preload, server=shim_server)
        assert run.returncode == 0, run
        files[preload] = {n: open(os.path.join(d, n), "rb").read() for n in sorted(os.listdir(d))}
        if preload:
            assert run.reports and run.reports[0]["shim_delivered"] > 0
            testing.in_mode(run, shim_server)
    if "-C" in opts:
        assert len(files[False]) == 3              # out, out1, out2
    assert files[True] == files[False]
