"""Intervals on the emulated cards: a counter placed on the card (COMBO6's STU) is read at
each interval's end exactly as the software counter is, because the device cuts each batch at
the tick boundaries before the card's units run.  `mapi run --interval` rows and the time-driven
functions of a card device equal the software path's on a generated trace."""
import json

import pytest

import mapi
from helpers import backends_fixture, generated
from helpers.cards import Ref, placements, run
from helpers.cli import run_cli

import scampi.backends.cards.combo6 as combo6
import scampi.backends.cards.dag as dag

TRACE = generated("mixed.pcap")               # 4631 packets over ~15 s
FLOWS = ['BPF_FILTER("tcp") PKT_COUNTER BYTE_COUNTER', 'BPF_FILTER("udp port 53") PKT_COUNTER',
         'PKT_COUNTER BYTE_COUNTER', 'BPF_FILTER("icmp or arp") BYTE_COUNTER']


cards_registered = backends_fixture(combo6, dag)


def interval_rows(*backend):
    code, out, err = run_cli("run", "-r", TRACE, *backend, "--interval", "200ms", "--json", *FLOWS)
    assert code == 0, err
    docs = [json.loads(line) for line in out.splitlines() if line.strip()]
    rows = [[(f["column"], f["value"], f["total"]) for fl in d["flows"] for f in fl["functions"]]
            for d in docs if d["type"] == "interval"]
    starts = [d["start_ns"] for d in docs if d["type"] == "interval"]
    return rows, starts, docs[-1]


@pytest.mark.parametrize("backend", ["combo6", "dag"])
def test_interval_rows_equal_the_software_path(backend):
    soft, soft_starts, soft_final = interval_rows()
    hard, hard_starts, hard_final = interval_rows("--backend", backend)
    assert len(soft) > 50
    assert hard_starts == soft_starts
    assert hard == soft
    # not all in the first interval: counts are spread over the trace
    assert sum(1 for row in soft if row[1][1]) > 40
    def results(final):
        return [(f["spec"], f["result"]) for fl in final["flows"] for f in fl["functions"]]
    assert results(hard_final) == results(soft_final)


def snapshots(backend=None):
    """Counters read by a packet-time clock every 200 ms (the CLI's CLI_CLOCK, which the card
    lets hold its counters): [(interval start, [values])], placements."""
    from mapi.cli import clock
    clock.register()
    dev = mapi.create_offline_device(str(TRACE), backend=backend)
    try:
        targets = []
        for steps in [[("BPF_FILTER", "tcp"), ("PKT_COUNTER",), ("BYTE_COUNTER",)],
                      [("PKT_COUNTER",), ("BYTE_COUNTER",)]]:
            fd = mapi.create_flow(dev)
            fids = [mapi.apply_function(fd, *step) for step in steps]
            mapi.connect(fd)
            targets += [(fd, fid) for fid in fids if fid != fids[0] or len(fids) == 2]
        snaps = []
        c = clock.Clock(targets, 200 * 10 ** 6, False, snaps.append)
        cfd = mapi.create_flow(dev)
        mapi.apply_function(cfd, clock.NAME, c.id)
        mapi.connect(cfd)
        where = [mapi.get_function_info(fd, fid).get("placement") for fd, fid in targets]
        mapi.start_offline_device(dev)
        mapi.wait_offline_device(dev)
        c.forget()
        return [(s.start_ns, s.repeat, [r.value for r in s.readings]) for s in snaps], where
    finally:
        mapi.delete_offline_device(dev)


def test_counters_on_the_card_are_read_at_each_boundary():
    """PKT_COUNTER and BYTE_COUNTER on COMBO6's STU, read at every interval end by a clock:
    each reading equals the software counter's at the same boundary."""
    soft, _ = snapshots()
    hard, where = snapshots("combo6")
    assert where == ["STU", "STU", "STU", "STU"]
    assert len(soft) > 50 and len({tuple(v) for _, _, v in soft}) == len(soft)
    assert hard == soft


def test_time_driven_functions_beside_card_counters_equal_software():
    jobs = [[("BPF_FILTER", "tcp"), ("PKT_COUNTER",), ("BYTE_COUNTER",)],
            [("PKT_COUNTER",), ("BYTE_COUNTER",)],
            [("BPF_FILTER", "udp"), ("PKT_RATE", "100ms"), ("BIT_RATE", "300ms")],
            [("STATS", Ref(2, 1), "250ms")],
            [("BPF_FILTER", "tcp port 80"), ("PKT_COUNTER",)],
            [("BUCKET", Ref(4, 1), "150ms", True)]]
    soft = run(TRACE, jobs)[0]
    hard, infos, _, _ = run(TRACE, jobs, backend="combo6")
    where = placements(infos)
    assert where[0] == ["LUP", "STU", "STU"] and where[1] == ["STU", "STU"]
    assert len(hard[2][1].history) > 100
    assert [list(r.history) for r in (hard[2][1], hard[2][2])] == \
        [list(r.history) for r in (soft[2][1], soft[2][2])]
    assert hard == soft
    assert sum(v for _, v in hard[5][0]) == hard[4][1]


def test_bucket_of_a_card_counter_equals_software_when_the_card_holds_it():
    """BUCKET reading a counter the card would hold: placed there or kept in software (the
    card's policy), its snapshots equal the software path's, interval by interval."""
    jobs = [[("BPF_FILTER", "ip"), ("BYTE_COUNTER",)], [("BUCKET", Ref(0, 1), "100ms", True)],
            [("BUCKET", Ref(0, 1), "330ms")]]
    soft = run(TRACE, jobs)[0]
    for backend in ("combo6", "dag"):
        hard = run(TRACE, jobs, backend=backend)[0]
        assert hard == soft, backend
        assert len(hard[1][0]) > 100 and sum(v for _, v in hard[1][0]) == hard[0][1]


def test_a_card_device_offline_is_still_packet_time():
    dev = mapi.create_offline_device(str(TRACE), backend="combo6")
    try:
        assert mapi.get_device_info(dev)["clock"] == "packet time"
    finally:
        mapi.delete_offline_device(dev)
