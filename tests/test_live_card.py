"""An emulated card on a live interface: combo6:IFNAME / dag:IFNAME capture through the ring
backend, place filters and counters on the card's units, and count what tcpdump selects from
the replayed file; only the packets software needs cross the emulated bus."""
import pytest

from helpers import generated, tcpdump_records, need_netns
from tools import netns

TRACE = str(generated("mixed.pcap"))


@pytest.mark.parametrize("card, unit", [("combo6", "LUP"), ("dag", "DSM")])
def test_card_on_a_live_interface(card, unit):
    need_netns("live card")
    icmp = len(tcpdump_records(TRACE, "icmp")[0])
    total = len(tcpdump_records(TRACE)[0])
    with netns.VethPair() as net:
        spec = dict(dev="%s:%s" % (card, net.rx_if), timeout=60,
                    flows=[{"functions": [["BPF_FILTER", "icmp"], ["PKT_COUNTER"]]},
                           {"functions": [["PKT_COUNTER"]]}],
                    until={"flow": 1, "fid": 0, "value": total}, settle=0.5)
        cap = net.capture(spec)
        net.replay(TRACE, pps=20000)
        out = cap.finish()
    assert "error" not in out, out
    assert out["reached"], out
    assert out["results"][0][1] == icmp and out["results"][1][0] == total
    hw = out["info"]["hardware"]
    nodes = {n["function"]: n for n in hw["nodes"]}
    assert nodes["BPF_FILTER"]["unit"] == unit and nodes["BPF_FILTER"]["pkts_out"] == icmp
    if card == "combo6":
        # both flows' work runs on the card (STU counters): only its clock packets cross
        assert hw["bus"]["packets"] == hw["bus"]["clock_packets"]
    else:
        # the DAG has no counters: flow 2 counts in software, so every packet must cross
        assert hw["deliver_all"] and hw["bus"]["packets"] >= total
