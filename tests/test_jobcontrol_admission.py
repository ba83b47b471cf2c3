"""Admission control on a real mapid: the cost classes are measured at start-up, flows are
admitted until the device's CPU budget, the next is refused with the numbers, a flow whose
nodes are all shared costs nothing, closing a flow admits the refused one; the resource
database keeps principals and revocations across a kill -9 and drops the dead clients'
reservations."""
import os
import re
import signal
import time

import pytest

from helpers.jobs import Authority, jobs_config, query
from helpers.server import Mapid, open_dir, trace

import mapi
from mapi.client.remote import RemoteMapi
from mapi.jobcontrol import tokens

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mapid's database under a root dir")
ELIMIT = 1019


def config(where, auth, path, budget=100.0, rate=1e6, revoked=()):
    cap = ("[jobcontrol.capacity]\ncpu_budget = 100.0\n[jobcontrol.capacity.devices.gen]\n"
           "cpu_budget = %r\npacket_rate = %r\n" % (budget, rate))
    return jobs_config(str(where / "mapid.db"), auth.public, devices={"gen": path},
                       grants={"0": '"all"'}, capacity=cap, revoked=revoked)


def reload(m, text):
    m.config.write_text(text)
    before = m.log_text().count("configuration reloaded")
    m.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while m.log_text().count("configuration reloaded") == before:
        assert time.monotonic() < deadline, m.log_text()
        time.sleep(0.05)


def flow(c, port):
    fd = c.create_flow("gen")
    c.apply_function(fd, "BPF_FILTER", "port %d" % port)
    c.apply_function(fd, "PKT_COUNTER")
    return fd


def test_budget_refusal_sharing_release_and_restart(tmp_path):
    where = open_dir("scampi-jobs-adm-")
    auth = Authority(where)
    path = trace(where, 20000, seed=4)
    m = Mapid(where, config=config(where, auth, path))
    try:
        costs = {r["class"]: r["ns_per_packet"] for r in
                 query(m.database, "SELECT * FROM calibration")}
        assert set(costs) == {"free", "low", "high"} and 0 < costs["low"] < costs["high"]
        per_flow_ns = costs["low"] + costs["free"]          # a BPF_FILTER and a PKT_COUNTER
        rate = 0.1e9 / per_flow_ns                          # so each flow needs 0.100 CPU
        reload(m, config(where, auth, path, budget=0.35, rate=rate))
        c = RemoteMapi(m.url)
        fds = [flow(c, 1000 + i) for i in range(4)]
        for fd in fds[:3]:
            c.connect(fd)                                   # 0.1, 0.2, 0.3 of 0.35
        with pytest.raises(mapi.MapiError) as info:
            c.connect(fds[3])
        text = str(info.value)
        assert info.value.code == ELIMIT
        assert "capacity of device gen exceeded" in text
        assert "adds 2 nodes (BPF_FILTER (low, %.1f ns/pkt), PKT_COUNTER (free, %.1f ns/pkt))" \
            % (costs["low"], costs["free"]) in text
        assert re.search(r"costing 0\.100 CPU at \d+ packets/s; 0\.300 of the device's budget of "
                         r"0\.350 CPU is in use, 0\.050 is left", text), text
        rows = query(m.database, "SELECT * FROM audit WHERE decision = 'refuse'")
        assert rows[-1]["operation"] == "connect" and "capacity gen" in rows[-1]["reason"]
        twin = flow(c, 1000)                                # every node shared: costs nothing
        c.connect(twin)
        c.close_flow(fds[1])                                # 0.1 freed
        c.connect(fds[3])                                   # now admitted
        held = query(m.database, "SELECT * FROM reservations WHERE kind = 'flow'")
        assert len(held) == 4 and sum('"cpu": 0.1' in r["amounts"] for r in held) == 3
        # credentials and a revocation the database must keep
        key = tokens.read_key_file(str(auth.key), private=True)
        tok = tokens.issue(key, "keeper", devices=["gen"], classes=["counter"]).to_base64()
        c2 = RemoteMapi(m.url)
        c2.authenticate(tok)
        c2.create_flow("gen")
        admin_revoked = tokens.issue(key, "gone", classes=["counter"]).revocation_ids[0]
        reload(m, config(where, auth, path, budget=0.35, rate=rate, revoked=[admin_revoked]))
        m.kill()                                            # kill -9: no clean-up at all
        assert len(query(m.database, "SELECT * FROM reservations")) == 5
        m = Mapid(where)                                    # restarted on the same config
        assert "dropped 5 reservations of clients of an earlier mapid" in m.log_text()
        assert query(m.database, "SELECT * FROM reservations") == []
        assert [r["name"] for r in query(m.database, "SELECT * FROM principals")] == ["keeper"]
        assert {r["token_id"] for r in query(m.database, "SELECT * FROM revocations")} == \
            {admin_revoked}
        c = RemoteMapi(m.url)
        fd = flow(c, 2000)
        c.connect(fd)                                       # the budget is free again
        assert len(query(m.database, "SELECT * FROM reservations")) == 1
    finally:
        m.stop() if m.proc.poll() is None else None
