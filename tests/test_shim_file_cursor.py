"""pcap_file() through the drop-in is the read cursor, as in libpcap: ftell() after each record
gives the offset of the next one (the file size at the end), and an fseek() to an offset ftell()
gave makes the next read deliver the record there (libpcap_shim/probe/file_cursor.c prints both;
its output through the drop-in must equal its output on the stock libpcap).  nfpcapd -r, which
peeks at the first packet and rewinds, then gives the same flows as natively."""
import os
import subprocess

import pytest

from helpers import CORPUS, generated, needs_corpus
from helpers.shim_modes import built_probe, shim_server_fixture
from scampi.libpcap_shim import testing

shim_server = shim_server_fixture()

WIKIPEDIA = "pcap/zeek__wikipedia.pcap"


@pytest.fixture(scope="module")
def probe():
    with built_probe("file_cursor") as (exe, _):
        yield exe


MIXED, MIXED_NG, MIXED_NS = (generated("mixed.pcap"), generated("mixed.pcapng"),
                             generated("mixed-ns.pcap"))


@pytest.mark.parametrize("args", [
    [MIXED], ["-f", MIXED], ["-e", "tcp", MIXED], ["-e", "tcp port 80", MIXED],
    [MIXED_NG], ["-f", MIXED_NG], [MIXED_NS],
    pytest.param([WIKIPEDIA], marks=needs_corpus), pytest.param(["-f", WIKIPEDIA], marks=needs_corpus),
    pytest.param(["-e", "tcp", WIKIPEDIA], marks=needs_corpus),
    pytest.param(["-e", "tcp port 80", "pcap/PcapPlusPlus__4KHttpRequests.pcap"], marks=needs_corpus),
    pytest.param(["pcap/libtrace__100_packets.pcapng"], marks=needs_corpus),
    pytest.param(["-f", "pcap/libtrace__100_packets.pcapng"], marks=needs_corpus),
    pytest.param(["pcap/PcapPlusPlus__file_heuristics__nanosecs.pcap"], marks=needs_corpus),
], ids=["pcap", "fopen", "filter", "filter-in-mapi", "pcapng", "pcapng-fopen", "nanoseconds",
        "corpus-pcap", "corpus-fopen", "corpus-filter", "corpus-filter-in-mapi", "corpus-pcapng",
        "corpus-pcapng-fopen", "corpus-nanoseconds"])
def test_ftell_and_fseek_follow_the_records(probe, args, shim_server):
    argv = [probe] + [str(a) for a in args[:-1]] + [str(CORPUS / args[-1])]
    stock = testing.run(argv, False)
    shim = testing.run(argv, True, server=shim_server)
    assert stock.returncode == 0 and shim.returncode == 0, (stock, shim)
    lines = stock.stdout.decode().splitlines()
    # the reference itself: the cursor moves record by record and ends at the file size, and
    # every seek to a record's offset delivered that very record
    end = next(l for l in lines if l.startswith("end ")).split()
    assert end[-3] == end[-1] and int(end[4]) > 0, end
    seeks = [l for l in lines if l.startswith("seek ")]
    assert len(seeks) == 5 and all(" same 1 " in l for l in seeks), seeks
    assert shim.stdout == stock.stdout
    assert shim.reports and all(r["device_backend"] == "savefile" for r in shim.reports)
    testing.in_mode(shim, shim_server)


@needs_corpus
def test_nfpcapd_reads_the_first_packet_too(tmp_path, shim_server):
    """nfpcapd -r reads the first packet for its start time and fseek()s back to it."""
    for tool in ("nfpcapd", "nfdump"):
        if testing.tool(tool) is None:
            pytest.skip("%s is not installed (make test installs nfdump)" % tool)
    flows = {}
    for preload in (False, True):
        out = tmp_path / ("shim" if preload else "stock")
        out.mkdir()
        run = testing.run([testing.tool("nfpcapd"), "-r", str(CORPUS / WIKIPEDIA), "-w", str(out)],
                          preload, server=shim_server)
        assert run.returncode == 0, run
        assert b"Processed: 136," in run.stdout + run.stderr, run
        csv = subprocess.run([testing.tool("nfdump"), "-R", str(out), "-q", "-o", "csv"],
                             capture_output=True, text=True, check=True).stdout.splitlines()
        # every field but the last (when nfpcapd received the record)
        flows[preload] = sorted(l.rsplit(",", 1)[0] for l in csv if l.strip())
    assert len(flows[False]) == 57
    assert flows[True] == flows[False]
