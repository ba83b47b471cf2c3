"""Isolation by the mandatory filter: a principal limited to net 10.1.0.0/16 receives, on a
trace mixing 10.1/16, 10.2/16 and 192.0/16 addresses, exactly what tcpdump counts for
`net 10.1.0.0/16 and <its own filter>` -- in its counters and in the packets its TO_BUFFER
hands over, none of them outside the prefix -- while an unrestricted client on the same device
sees everything; identical prefixes share one node."""
import os

import pytest

from helpers.jobs import (REPLAY_COUNTING_OUTSIDE_10_1, Authority, jobs_config, mixed_trace, run_client,
                          tcpdump_count)
from helpers.server import Mapid, open_dir

from mapi.jobcontrol import tokens

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mapid's database under a root dir")

CLIENT = """
fd = mapi.create_flow("mixed")
mapi.apply_function(fd, "BPF_FILTER", sys.argv[1])
c = mapi.apply_function(fd, "PKT_COUNTER")
buf = mapi.apply_function(fd, "TO_BUFFER")
mapi.connect(fd)
emit({"ready": True})
sys.stdin.readline() if len(sys.argv) > 2 else None
""" + REPLAY_COUNTING_OUTSIDE_10_1


@pytest.fixture(scope="module")
def setup():
    where = open_dir("scampi-jobs-iso-")
    auth = Authority(where)
    trace = mixed_trace(where / "mixed.pcap", packets=8000, seed=21)
    key = tokens.read_key_file(str(auth.key), private=True)
    token = tokens.issue(key, "tenant", devices=["mixed"], classes=["filter", "counter", "packets"],
                         filter="net 10.1.0.0/16").to_base64()
    return where, auth, trace, token


@pytest.mark.parametrize("own", ["tcp port 80", "udp", "ip or arp", "src net 10.1.7.0/24 or tcp"])
def test_prefix_principal_gets_exactly_its_share(setup, own):
    where, auth, trace, token = setup
    cfg = jobs_config(str(where / ("db-%d" % abs(hash(own)))), auth.public,
                      devices={"mixed": trace}, extra="costs = { free = 1.0, low = 10.0, high = 40.0 }\n")
    d = where / ("run-%d" % abs(hash(own)))
    d.mkdir(exist_ok=True)
    with Mapid(d, config=cfg) as m:
        got = run_client(m, CLIENT, token=token, args=[own])[-1]
    expect = tcpdump_count(trace, "net 10.1.0.0/16 and (%s)" % own)
    everything = tcpdump_count(trace, own)
    assert got["count"] == expect == got["delivered"] > 0
    assert got["outside"] == 0
    assert everything > expect                     # the filter alone would have seen more
    assert got["first"] == ["net 10.1.0.0/16"]


def test_unrestricted_neighbour_and_shared_prefix(setup):
    """Two tenants with the same prefix and root on the same replay: root counts everything its
    filter matches, the tenants their share; the tenants' prefix is one node owned by both."""
    where, auth, trace, token = setup
    cfg = jobs_config(str(where / "db-shared"), auth.public, devices={"mixed": trace},
                      extra="costs = { free = 1.0, low = 10.0, high = 40.0 }\n")
    d = where / "run-shared"
    d.mkdir(exist_ok=True)
    body = """
        fd = mapi.create_flow("mixed")
        mapi.apply_function(fd, "BPF_FILTER", "tcp")
        c = mapi.apply_function(fd, "PKT_COUNTER")
        mapi.connect(fd)
        emit({"fd": fd})
        sys.stdin.readline()
        mapi.wait_offline_device("mixed")
        emit({"count": mapi.read_results(fd, c).value,
              "nodes": [[n["function"], n["args"], len(n["owners"])] for n in mapi.explain_data("mixed")["nodes"]]})
        sys.stdin.readline()
    """
    from helpers.server import clean_env
    import json
    import subprocess
    import sys
    import tempfile
    from helpers.server import client_script
    with Mapid(d, config=cfg) as m:
        procs = []
        for tok in (token, token, None):
            env = clean_env(MAPI_SERVER=m.url, HOME=tempfile.gettempdir(),
                            **({"MAPI_TOKEN": tok} if tok else {}))
            p = subprocess.Popen([sys.executable, "-c", client_script(body)], env=env,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            json.loads(p.stdout.readline())
            procs.append(p)
        run_client(m, 'mapi.start_offline_device("mixed")')
        outs = []
        for p in procs:
            p.stdin.write("\n")
            p.stdin.flush()
            outs.append(json.loads(p.stdout.readline()))
        for p in procs:
            p.stdin.write("\n")
            p.stdin.flush()
            p.wait(60)
    share = tcpdump_count(trace, "net 10.1.0.0/16 and tcp")
    assert [o["count"] for o in outs] == [share, share, tcpdump_count(trace, "tcp")]
    root_view = outs[2]["nodes"]
    assert ["BPF_FILTER", ["net 10.1.0.0/16"], 2] in root_view      # one node, two tenants
