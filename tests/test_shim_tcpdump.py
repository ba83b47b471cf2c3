"""The libpcap drop-in under Debian's tcpdump: every case of the corpus's tcpdump test list gives
the stdout and exit code recorded with the stock libpcap, and every packet came through MAPI:
the in-process engine, and a real mapid (server mode: the drop-in's C client, no Python in
tcpdump).

The cases run in a small worker pool once per mode (tcpdump start-up dominates); each case is
then its own test."""
import concurrent.futures
import csv
import os
import re
import shlex

import pytest

from helpers import CORPUS, parametrize_from_corpus
from helpers.shim_modes import shim_server_fixture
from scampi.libpcap_shim import testing

shim_server = shim_server_fixture()

TSV = CORPUS / "tcpdump_tests.tsv"
PACKET_NUMBER = re.compile(rb"^ *(\d+)  ", re.M)


def _cases():
    with open(TSV, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _argv(case):
    return ["tcpdump", "-#", "-n", "-r", case["pcap"]] + shlex.split(case["effective_args"])


@pytest.fixture(scope="module")
def results(request, shim_server):
    if testing.tool("tcpdump") is None:
        pytest.skip("tcpdump is not installed (make test installs it)")
    testing.library()
    env = {"TZ": "GMT0", "LC_ALL": "C"}

    def one(case):
        return case["test"], testing.run(_argv(case), True, cwd=str(CORPUS), env=env,
                                         server=shim_server)

    # only the cases this session runs (-k), all at once in a small pool
    wanted = {}
    for item in request.session.items:
        if getattr(item, "originalname", "") == "test_tcpdump_case":
            case = item.callspec.params["case"]
            wanted[case["test"]] = case
    wanted = list(wanted.values())
    workers = max(2, min(4, os.cpu_count() or 2))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return dict(pool.map(one, wanted))


@parametrize_from_corpus("case", _cases, ids=lambda c: c["test"])
def test_tcpdump_case(results, case, shim_server):
    run = results[case["test"]]
    expected = (CORPUS / case["stdout"]).read_bytes()
    assert run.returncode == int(case["exit_code"]), run
    assert run.stdout == expected, "stdout differs from the stock libpcap's\n%r" % run
    if run.returncode != 0 and not run.reports:
        return                        # tcpdump refused its options before opening the file
    # the packets came through a MAPI flow: one offline device, a TO_BUFFER ring that handed
    # tcpdump exactly the packets it printed (numbered by -#)
    assert len(run.reports) == 1, run.reports
    testing.in_mode(run, shim_server)
    rep = run.reports[0]
    assert rep["kind"] == "offline" and rep["device_backend"] == "savefile"
    ring = next(f for f in rep["functions"] if f["name"] == "TO_BUFFER")
    numbers = [int(n) for n in PACKET_NUMBER.findall(expected)]
    printed = max(numbers) if numbers else 0
    if any(a.startswith("-c") for a in shlex.split(case["effective_args"])):
        assert rep["shim_delivered"] == printed <= ring["ring"]["delivered"]
    else:
        assert rep["shim_delivered"] == printed == ring["ring"]["delivered"] == rep["shim_seen"]
    if rep["filter"]:
        assert testing.function_counts(rep, "BPF_FILTER")[1] == ring["pkts_in"]
