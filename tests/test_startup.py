"""Start-up (issue 8): plugins are found once and loaded when used, a run imports only what it
uses, the development install's namespace line.  Each start is a fresh process with its own
cache directory; references are independent: tcpdump's counts, pluggy's own markers and call
order, the standard library's dataclasses, the logging module's own output."""
import dataclasses
import json
import os
import subprocess
import sys
import time

import pluggy
import pytest

from helpers import ROOT, generated, tcpdump_records

TRACE = str(generated("mixed.pcap"))

# One offline flow, as a user's script would run it; what it imported is taken before
# anything else is (json, or the registry's problems, which load every plugin).
CHILD = r"""
import sys
import mapi
spec = eval(sys.argv[1])
dev = mapi.create_offline_device(spec["trace"])
fd = mapi.create_flow(dev)
fids = [mapi.apply_function(fd, *f) for f in spec["functions"]]
mapi.connect(fd)
mapi.start_offline_device(dev)
try:
    mapi.wait_offline_device(dev)
except mapi.MapiError as exc:
    print("replay error:", exc, file=sys.stderr)
modules = sorted(sys.modules)
out = dict(modules=modules, results=[mapi.read_results(fd, f).value for f in fids],
           backend=mapi.get_device_info(dev)["backend"])
if spec.get("problems"):
    from mapi.registry import get_registry
    out["problems"] = get_registry().problems
import json
print(json.dumps(out))
"""
NOT_ON_THE_HOT_PATH = ("pluggy", "dataclasses", "typing", "inspect", "logging", "asyncio", "json",
                       "importlib.metadata", "socket")


def start(tmp_path, spec, pythonpath=None, **env):
    e = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), MAPI_BPF_JIT="0", **env)
    if pythonpath:
        e["PYTHONPATH"] = str(pythonpath)
    p = subprocess.run([sys.executable, "-c", CHILD, repr(spec)], capture_output=True, text=True,
                       env=e, timeout=120, cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.splitlines()[-1])


def scampi_modules(out):
    return {m for m in out["modules"] if m.startswith("scampi.")}


def test_a_run_imports_only_the_plugins_it_uses(tmp_path):
    spec = dict(trace=TRACE, functions=[("BPF_FILTER", "tcp port 80"), ("PKT_COUNTER",)])
    want = len(tcpdump_records(TRACE, "tcp port 80")[0])
    scan = start(tmp_path, spec)                  # a new cache: every plugin is loaded once
    assert scan["results"][1] == want > 0
    assert "pluggy" in scan["modules"] and "scampi.plugins.stdfuncs.top" in scan["modules"]
    cached = start(tmp_path, spec)
    assert cached["results"][1] == want and cached["backend"] == "savefile"
    assert scampi_modules(cached) == {
        "scampi.backends", "scampi.backends.savefile", "scampi.backends.savefile.streams",
        "scampi.plugins", "scampi.plugins.stdfuncs",
        "scampi.plugins.stdfuncs.bpf_filter", "scampi.plugins.stdfuncs.pkt_counter"}
    assert [m for m in NOT_ON_THE_HOT_PATH if m in cached["modules"]] == []


def cli(tmp_path, *args, pythonpath=None):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    p = subprocess.run([sys.executable, "-m", "mapi.cli", *args], capture_output=True, text=True,
                       env=env, timeout=120)
    return p.returncode, p.stdout, p.stderr


def test_listings_are_complete_in_a_cached_start(tmp_path):
    scanned = [cli(tmp_path, what, "--json") for what in ("functions", "devices")]
    cached = [cli(tmp_path, what, "--json") for what in ("functions", "devices")]
    assert [c[0] for c in scanned + cached] == [0] * 4
    assert cached == scanned
    names = [f["name"] for f in json.loads(cached[0][1])]
    assert {"BPF_FILTER", "PKT_COUNTER", "TOP", "THRESHOLD", "STR_SEARCH"} <= set(names)
    assert {"savefile", "ring", "nic"} <= {b["backend"] for b in json.loads(cached[1][1])["backends"]}


# --- plugins of distributions made here ---------------------------------------------------------
def distribution(site, name, entry_points, files):
    """A distribution as pip leaves it: its .dist-info (entry points) and its modules."""
    info = site / ("%s-1.0.dist-info" % name)
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: %s\nVersion: 1.0\n" % name)
    (info / "entry_points.txt").write_text(
        "[scampi]\n" + "".join("%s = %s\n" % kv for kv in entry_points.items()))
    for rel, text in files.items():
        write(site / rel, text)


def write(path, text):
    """Write `text`, its mtime surely different from the file's previous one."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if path.stat().st_mtime_ns == before:
        os.utime(path, ns=(time.time_ns(), before + 1))


COUNTER = """from mapi.descriptor import FunctionDescriptor
from scampi.plugins.stdfuncs.pkt_counter import Counter
from mapi._engine import lib
DESCRIPTOR = FunctionDescriptor(name=%r, args=(), result="u64", cost="free",
                                create=lambda ctx, args: Counter(lib.mapi_pkt_counter_kernel))
"""
# a plugin package declaring its modules' DESCRIPTORs, as the standard library does
PACKAGE = """import importlib, pkgutil
import mapi
@mapi.hookimpl
def scampi_functions():
    return [importlib.import_module(__name__ + "." + m.name).DESCRIPTOR
            for m in pkgutil.iter_modules(__path__)]
"""


def test_a_plugin_edited_or_extended_is_scanned_again(tmp_path):
    site = tmp_path / "site"
    distribution(site, "counters", {"counters": "fakecounters"},
                 {"fakecounters/__init__.py": PACKAGE, "fakecounters/one.py": COUNTER % "FAKE_ONE",
                  "fakecounters/two.py": COUNTER % "FAKE_TWO"})
    want = sum(1 for _ in tcpdump_records(TRACE)[0])
    spec = dict(trace=TRACE, functions=[("FAKE_ONE",)])
    assert start(tmp_path, spec, site)["results"] == [want]
    cached = start(tmp_path, spec, site)
    assert cached["results"] == [want] and "pluggy" not in cached["modules"]
    assert "fakecounters.one" in cached["modules"] and "fakecounters.two" not in cached["modules"]
    # a module added to the package: found without reinstalling anything
    write(site / "fakecounters" / "three.py", COUNTER % "FAKE_THREE")
    assert start(tmp_path, dict(spec, functions=[("FAKE_THREE",)]), site)["results"] == [want]
    # a function renamed in its module: the old name is gone, the new one works
    write(site / "fakecounters" / "one.py", COUNTER % "FAKE_UNO")
    assert start(tmp_path, dict(spec, functions=[("FAKE_UNO",)]), site)["results"] == [want]
    p = subprocess.run([sys.executable, "-c", CHILD, repr(spec)], capture_output=True, text=True,
                       env=dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"),
                                PYTHONPATH=str(site)), timeout=120)
    assert p.returncode != 0 and "unknown function 'FAKE_ONE'" in p.stderr


def test_a_broken_plugin_is_reported_in_every_start(tmp_path):
    site = tmp_path / "site"
    distribution(site, "broken", {"broken": "broken_plugin"},
                 {"broken_plugin.py": "raise ImportError('needs libfoo')\n"})
    spec = dict(trace=TRACE, functions=[("PKT_COUNTER",)], problems=True)
    for _ in range(2):
        out = start(tmp_path, spec, site)
        assert out["results"] == [4631]                  # the others still work
        assert [p[0] for p in out["problems"]] == ["broken"]
        assert "ImportError: needs libfoo" in out["problems"][0][1]
    code, text, _ = cli(tmp_path, "devices", pythonpath=site)
    assert code == 0 and "problem in plugin broken: cannot load broken_plugin" in text


PROBE = """import mapi
from mapi.descriptor import BackendDescriptor
from mapi.registry import get_registry

def _open(path, fmt=None, options=None):
    return get_registry().backend("savefile").open_offline(path, fmt, {})

@mapi.hookimpl
def scampi_backends():
    return [BackendDescriptor(name=%(name)r, open_offline=_open)]

@mapi.hookimpl%(opts)s
def scampi_probe_offline(path):
    return %(name)r if path.endswith(".fk") else None
"""


def test_probing_asks_in_pluggys_order_cached_or_not(tmp_path):
    site = tmp_path / "site"
    plugins = {"probe_early": "(tryfirst=True)", "probe_plain": "", "probe_late": "(trylast=True)"}
    distribution(site, "probes", {n: n for n in plugins},
                 {n + ".py": PROBE % dict(name=n, opts=o) for n, o in plugins.items()})
    # the reference: pluggy itself, with these plugins registered in the same order
    sys.path.insert(0, str(site))
    try:
        from mapi import hookspecs
        pm = pluggy.PluginManager("scampi")
        pm.add_hookspecs(hookspecs)
        for n in plugins:
            pm.register(__import__(n), name=n)
        want = pm.hook.scampi_probe_offline(path="x.fk", head=b"")
    finally:
        sys.path.remove(str(site))
        for n in plugins:
            sys.modules.pop(n, None)
    assert want == "probe_early"
    fk = tmp_path / "trace.fk"
    fk.write_bytes(open(TRACE, "rb").read())
    spec = dict(trace=str(fk), functions=[("PKT_COUNTER",)])
    for _ in range(2):                                    # scanned, then from the index
        out = start(tmp_path, spec, site)
        assert (out["backend"], out["results"]) == (want, [4631])
    assert start(tmp_path, dict(spec, trace=TRACE), site)["backend"] == "savefile"


# --- the pieces ----------------------------------------------------------------------------------
def test_markers_set_what_pluggys_markers_set():
    import mapi
    from mapi.hookspecs import hookspec
    impl, spec = pluggy.HookimplMarker("scampi"), pluggy.HookspecMarker("scampi")
    for opts in ({}, dict(tryfirst=True), dict(trylast=True, optionalhook=True),
                 dict(hookwrapper=True), dict(wrapper=True, specname="scampi_functions")):
        ours, theirs = mapi.hookimpl(**opts)(lambda: None), impl(**opts)(lambda: None)
        assert ours.scampi_impl == theirs.scampi_impl
    for opts in ({}, dict(firstresult=True), dict(historic=True)):
        assert hookspec(**opts)(lambda: None).scampi_spec == spec(**opts)(lambda: None).scampi_spec
    assert mapi.hookimpl(lambda: None).scampi_impl == impl(lambda: None).scampi_impl


def test_descriptors_behave_as_the_dataclasses_they_were():
    from mapi.descriptor import Arg, BackendDescriptor, FunctionContext, REQUIRED

    @dataclasses.dataclass(frozen=True)
    class RefArg:
        name: str
        type: str
        default: object = REQUIRED
        doc: str = ""
        choices: object = None

    @dataclasses.dataclass
    class RefContext:
        device: object
        fd: int
        fid: int
        resolve: object = None
        log: object = None

    a, r = Arg("n", "i", doc="d"), RefArg("n", "i", doc="d")
    assert repr(a).split("(", 1)[1] == repr(r).split("(", 1)[1]
    assert a == Arg(name="n", type="i", doc="d") and a != Arg("n", "s") and hash(a) == hash(Arg("n", "i", doc="d"))
    assert a.replace(doc="e") == Arg("n", "i", doc="e") and a.doc == "d"
    for bad in (lambda: setattr(a, "name", "m"), lambda: delattr(a, "doc")):
        with pytest.raises(AttributeError):
            bad()
    for make in (Arg, RefArg):
        with pytest.raises(TypeError):
            make("n")                                # a required field missing
        with pytest.raises(TypeError):
            make("n", "i", colour=1)                 # no such field
        with pytest.raises(TypeError):
            make("n", "i", name="m")                 # given twice
    c, rc = FunctionContext(1, 2, 3), RefContext(1, 2, 3)
    c.fd = rc.fd = 5                                  # a context is not frozen, nor hashable
    assert repr(c).split("(", 1)[1] == repr(rc).split("(", 1)[1]
    for x in (c, rc):
        with pytest.raises(TypeError):
            hash(x)
    b1, b2 = BackendDescriptor(name="x"), BackendDescriptor(name="y")
    b1.capabilities["units"] = []
    assert b2.capabilities == {}                      # each its own default dict


def test_the_namespace_line_maps_scampi_onto_the_tree(tmp_path):
    sys.path.insert(0, str(ROOT))
    try:
        from tools.devinstall import LINE
    finally:
        sys.path.remove(str(ROOT))
    line = LINE % str(ROOT)
    code = ("import scampi.libpcap_shim.preload as p, scampi.backends as b; "
            "print(p.__file__); print(b.__path__[0])")
    p = subprocess.run([sys.executable, "-S", "-c", line + code], capture_output=True, text=True,
                       cwd=str(tmp_path), timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [str(ROOT / "libpcap_shim" / "preload.py"), str(ROOT / "backends")]
    p = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                       cwd=str(tmp_path), timeout=60)
    assert p.returncode != 0 and "No module named 'scampi'" in p.stderr


LOGGED = r"""
import logging, sys
import mapi
if sys.argv[2] == "before":
    logging.basicConfig(stream=sys.stdout, format="%(name)s %(levelname)s %(message)s")
dev = mapi.create_offline_device(sys.argv[1])
fd = mapi.create_flow(dev)
mapi.apply_function(fd, "PKT_COUNTER")
mapi.connect(fd)
if sys.argv[2] == "after":
    logging.basicConfig(stream=sys.stdout, format="%(name)s %(levelname)s %(message)s")
mapi.start_offline_device(dev)
try:
    mapi.wait_offline_device(dev)
except mapi.MapiError as exc:
    print("raised", exc.code)
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_the_applications_logging_still_gets_mapis_records(tmp_path, when):
    """The device's warning about a cut file goes through a lazy logger: an application that
    configured logging (before or after creating the device) gets it as before."""
    import mapi
    cut = tmp_path / "cut.pcap"
    data = open(TRACE, "rb").read()
    cut.write_bytes(data[:len(data) // 2 + 5])
    p = subprocess.run([sys.executable, "-c", LOGGED, str(cut), when], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[-1] == "raised %d" % mapi.ETRUNC
    assert any(ln.startswith("mapi.device WARNING ") and "file ends inside the record" in ln
               for ln in lines), lines
    assert p.stderr == ""


def test_plugins_registered_at_run_time_join_a_cached_registry(tmp_path, monkeypatch):
    import mapi
    from mapi.descriptor import FunctionDescriptor
    from mapi.registry import Registry
    from scampi.plugins.stdfuncs.pkt_counter import DESCRIPTOR as COUNT
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    Registry()                                            # scans, keeps the index
    reg = Registry()                                      # from the index

    class Mine:
        @mapi.hookimpl
        def scampi_functions(self):
            return [FunctionDescriptor(name="MY_COUNT", args=(), create=COUNT.create, result="u64"),
                    FunctionDescriptor(name="PKT_COUNTER", args=(), create=COUNT.create)]

    reg.register(Mine(), name="mine")
    assert reg.function("MY_COUNT").plugin == "mine"
    assert reg.function("PKT_COUNTER").plugin == "functions-std"     # the first declared stays
    assert ("mine", "function PKT_COUNTER is already declared by plugin functions-std; ignored") \
        in reg.problems
    with pytest.raises(ValueError):
        Registry().register(Mine(), name="functions-std")
    assert "MY_COUNT" in reg.functions and "MY_COUNT" in list(reg.functions)


DROPPED = r"""
import sys
if sys.argv[1] == "app-logging":
    import logging
    logging.basicConfig(stream=sys.stdout, format="%(name)s %(message)s")
from mapi.lazylog import getLogger, quiet_everything
quiet_everything()                     # what the libpcap drop-in does inside an application
getLogger("mapi.device").warning("a warning")
print("logging" in sys.modules)
"""


@pytest.mark.parametrize("app, want", [("none", ["False"]), ("app-logging", ["mapi.device a warning", "True"])])
def test_the_drop_in_drops_records_unless_the_application_has_logging(app, want):
    """Inside an application (the libpcap drop-in) records go nowhere, and logging is not even
    loaded for them; an embedding application that configured logging still gets them."""
    p = subprocess.run([sys.executable, "-c", DROPPED, app], capture_output=True, text=True,
                       timeout=60)
    assert (p.returncode, p.stdout.splitlines(), p.stderr) == (0, want, "")


CLI_RUN = r"""
import sys
from mapi.cli import main
code = main(sys.argv[1:])
print("logging loaded:", "logging" in sys.modules, file=sys.stderr)
sys.exit(code)
"""


def test_the_command_loads_logging_only_to_print_a_warning_with_its_prefix(tmp_path):
    """`mapi run` configures logging (its "mapi: warning: " prefix) only when something loads
    it: a run that logs nothing never imports it; one that warns prints the line with the
    prefix.  The warning: a filter on Ethernet addresses meets a raw-IP interface, which
    libpcap refuses ("ethernet addresses supported only on ..."), so 0 of the 2 packets pass."""
    from helpers.savefile import ng_epb, ng_idb, ng_shb
    ip = bytes.fromhex("450000280000000040060000c0a80001c0a80002") + bytes(20)
    two = tmp_path / "two.pcapng"
    two.write_bytes(ng_shb() + ng_idb(1) + ng_idb(101) + ng_epb(bytes(12) + b"\x08\x00" + ip, 0)
                    + ng_epb(ip, 1))
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))

    def run(*args):
        p = subprocess.run([sys.executable, "-c", CLI_RUN, "run", "-r", str(two)] + list(args),
                           capture_output=True, text=True, env=env, timeout=120)
        assert p.returncode == 0, p.stderr
        return p.stdout, p.stderr.splitlines()

    run("PKT_COUNTER")                  # the first start loads every plugin (some log)
    out, err = run("PKT_COUNTER")
    assert err == ["logging loaded: False"] and "2 packets read" in out
    out, err = run('BPF_FILTER("ether host 1:2:3:4:5:6")')
    assert "passed 0 of 2 packets" in out
    assert err[-1] == "logging loaded: True"
    assert len(err) == 2 and err[0].startswith("mapi: warning: BPF_FILTER: invalid filter "
                                               "'ether host 1:2:3:4:5:6': ethernet addresses")
    assert err[0].endswith("(link type 101): its packets do not match")
