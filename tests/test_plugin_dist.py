"""A third-party plugin distribution (plugins/example_dist) installed with pip adds a function
with its own C kernel and a backend, without touching the core: found through the same
entry-point group as the built-in plugins."""
import json
import os
import shutil
import subprocess
import sys

from helpers import CORPUS, ROOT, generated, tcpdump_records

FILES = [generated("mixed.pcap"), generated("slow.pcap")]

SCRIPT = r"""
import json, sys, mapi
from mapi.registry import get_registry
reg = get_registry()
dev = mapi.create_offline_device(sys.argv[1])          # a directory: the pcapdir backend probes it
fd = mapi.create_flow(dev)
mapi.apply_function(fd, "LEN_RANGE", 100, 500)
c = mapi.apply_function(fd, "PKT_COUNTER")
b = mapi.apply_function(fd, "BYTE_COUNTER")
mapi.connect(fd)
mapi.start_offline_device(dev)
mapi.wait_offline_device(dev)
try:
    mapi.apply_function(mapi.create_flow(dev), "LEN_RANGE", 5, 1)
    bad = None
except mapi.MapiError as e:
    bad = str(e)
print(json.dumps(dict(plugin=reg.functions["LEN_RANGE"].plugin, backend=mapi.get_device_info(dev)["backend"],
                      packets=mapi.read_results(fd, c).value, bytes=mapi.read_results(fd, b).value, bad=bad)))
"""


def test_pip_installed_plugin_adds_function_and_backend(tmp_path):
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                          "--no-build-isolation", "--target", str(target),
                          str(ROOT / "plugins" / "example_dist")], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr
    traces = tmp_path / "traces"
    traces.mkdir()
    for i, name in enumerate(FILES):
        shutil.copy(CORPUS / name, traces / ("%02d.pcap" % i))
    env = dict(os.environ, PYTHONPATH=str(target))
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(traces)], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    want_pkts = 0
    for name in FILES:
        recs, _ = tcpdump_records(CORPUS / name, "greater 100 and less 500")
        want_pkts += len(recs)
    assert got["plugin"] == "example"
    assert got["backend"] == "pcapdir"
    assert got["packets"] == want_pkts > 0
    assert "lo <= hi" in got["bad"]


def test_core_does_not_know_the_plugin():
    out = subprocess.run([sys.executable, "-c", "import mapi; from mapi.registry import get_registry; "
                          "print('LEN_RANGE' in get_registry().functions)"],
                         capture_output=True, text=True)
    assert out.stdout.strip() == "False"


PROBE = ("import sys, mapi; from mapi.registry import get_registry; reg = get_registry(); "
         "print('importlib.metadata' in sys.modules, 'FAKE_COUNT' in reg.functions)")


def test_entry_point_scan_is_cached_and_follows_installs(tmp_path):
    """The first start scans the installed distributions (importlib.metadata), the next ones
    read the cache; a distribution appearing on the path (its .dist-info) makes the next start
    scan again and find its plugin."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))

    def start(**extra):
        out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                             env=dict(env, **extra), timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    assert start() == ["True", "False"]          # scanned
    assert start() == ["False", "False"]         # cached: importlib.metadata never imported
    site = tmp_path / "site"
    (site / "fake_plugin-1.0.dist-info").mkdir(parents=True)
    (site / "fake_plugin-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-plugin\nVersion: 1.0\n")
    (site / "fake_plugin-1.0.dist-info" / "entry_points.txt").write_text(
        "[scampi]\nfake = fake_plugin\n")
    (site / "fake_plugin.py").write_text(
        "import mapi\nfrom mapi.descriptor import FunctionDescriptor\n"
        "from scampi.plugins.stdfuncs.pkt_counter import Counter\n"
        "from mapi._engine import lib\n"
        "@mapi.hookimpl\ndef scampi_functions():\n"
        "    return [FunctionDescriptor(name='FAKE_COUNT', args=(), result='u64', cost='free',\n"
        "            create=lambda ctx, args: Counter(lib.mapi_pkt_counter_kernel))]\n")
    assert start(PYTHONPATH=str(site)) == ["True", "True"]     # a new installation: scanned
    assert start(PYTHONPATH=str(site)) == ["False", "True"]    # and cached
