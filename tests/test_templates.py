"""The skeletons a plugin author copies build, load and work: the function template
(plugins/stdfuncs/_template.py + mapi/csrc/fn/_template.[ch]) against tcpdump's length filter,
and the backend template (backends/_template/: every hook, every PacketSource op, its own C,
a function of its own) against tcpdump reading what it produced."""
import importlib
import time

import pytest

import mapi
from mapi.errors import EBADARG, EFORMAT
from mapi.registry import get_registry
from helpers import ROOT, tcpdump_records

import sys
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tools.gentrace import write_trace  # noqa: E402


class FunctionTemplate:
    """The template's DESCRIPTOR as a plugin (the library skips modules named _*)."""

    @mapi.hookimpl
    def scampi_functions(self):
        return [importlib.import_module("scampi.plugins.stdfuncs._template").DESCRIPTOR]


@pytest.fixture(scope="module", autouse=True)
def templates():
    reg = get_registry()
    if "TEMPLATE_BAND" not in reg.functions:
        reg.register(FunctionTemplate(), name="template-function")
    if "template" not in reg.backends:
        reg.register(importlib.import_module("scampi.backends._template"), name="backend-template")


def run(dev, functions):
    fd = mapi.create_flow(dev)
    fids = [mapi.apply_function(fd, *f) for f in functions]
    mapi.connect(fd)
    return fd, fids


def test_function_template_equals_tcpdumps_length_filter(tmp_path):
    trace = tmp_path / "t.pcap"
    write_trace(str(trace), packets=5000, seed=7)
    dev = mapi.create_offline_device(str(trace))
    fd, (band, count) = run(dev, [("TEMPLATE_BAND", 100, 500), ("PKT_COUNTER",)])
    mapi.start_offline_device(dev)
    mapi.wait_offline_device(dev)
    recs, err = tcpdump_records(trace, "greater 100 and less 500")
    assert recs is not None, err
    got = mapi.read_results(fd, band).value
    assert got == dict(packets=len(recs), bytes=sum(r[1] for r in recs), seen=5000)
    assert mapi.read_results(fd, count).value == len(recs) > 0      # it filters
    assert mapi.get_function_info(fd, band)["name"] == "TEMPLATE_BAND"
    with pytest.raises(mapi.MapiError) as exc:
        mapi.apply_function(mapi.create_flow(dev), "TEMPLATE_BAND", 600, 100)
    assert exc.value.code == EBADARG and "lo <= hi" in str(exc.value)
    mapi.delete_offline_device(dev)


def test_backend_template_offline_is_probed_and_equals_tcpdump(tmp_path):
    spec = tmp_path / "gen.tpl"
    spec.write_bytes(b"#!scampi-template 5000 200\n")
    out = tmp_path / "out.pcap"
    dev = mapi.create_offline_device(str(spec))              # scampi_probe_offline claims it
    assert mapi.get_device_info(dev)["backend"] == "template"
    fd, fids = run(dev, [("PKT_COUNTER",), ("BYTE_COUNTER",), ("TO_FILE", mapi.MFF_PCAP, str(out)),
                         ("TEMPLATE_UDP",), ("PKT_COUNTER",)])
    mapi.start_offline_device(dev)
    mapi.wait_offline_device(dev)
    res = [mapi.read_results(fd, f).value for f in fids]
    mapi.delete_offline_device(dev)
    everything = tcpdump_records(out)[0]
    udp = tcpdump_records(out, "udp port 53")[0]
    tcp = tcpdump_records(out, "tcp port 80 and tcp[13] = 0x18")[0]
    assert res[0] == len(everything) == 5000 and res[1] == 5000 * 200
    assert res[3] == dict(packets=len(udp), bytes=200 * len(udp)) and res[4] == len(udp)
    assert len(udp) + len(tcp) == 5000 and len(tcp) == 1250


def test_backend_template_live_bare_name_and_errors(tmp_path):
    fd, (count,) = run("template", [("PKT_COUNTER",)])        # scampi_claim_live claims it
    dev = mapi.get_flow_info(fd)["device"]
    assert mapi.get_device_info(dev)["backend"] == "template"
    deadline = time.time() + 20
    while mapi.read_results(fd, count).value < 1000 and time.time() < deadline:
        time.sleep(0.02)
    assert mapi.read_results(fd, count).value == 1000
    assert mapi.stats(dev)["generated"] == 1000
    mapi.close_flow(fd)
    with pytest.raises(mapi.MapiError) as exc:
        mapi.create_flow("template:12")
    assert exc.value.code == EBADARG and "COUNTxSIZE" in str(exc.value)
    bad = tmp_path / "bad.tpl"
    bad.write_bytes(b"hello")
    with pytest.raises(mapi.MapiError) as exc:
        mapi.create_offline_device(str(bad), backend="template")
    assert exc.value.code == EFORMAT and exc.value.where["file"] == str(bad)
