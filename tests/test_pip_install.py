"""pip install just works: the sdist of this tree installed with pip into a fresh virtualenv
outside the source tree builds the engine, the backends, the trace generator and the libpcap
drop-in; `mapi run`, `mapi-preload tcpdump -r`, `mapi demo` and a plugin built against the
installed headers work from there, with a dummy `tools` and `backends` package beside it; the
wheel is tagged abi3 and every extension is built for the stable ABI; LICENSE is in it.

The sdist is cached under build/pip-test/<digest of the sources>, and pip's wheel cache there
(the first run builds the wheel: about a minute; later runs install the cached one)."""
import hashlib
import os
import re
import subprocess
import sys
import tarfile

import pytest

from helpers import ROOT, generated, need_tool, tcpdump_records

CACHE = ROOT / "build" / "pip-test"


def _sources_digest():
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=str(ROOT),
                           capture_output=True, text=True).stdout.split()
    h = hashlib.sha256()
    for name in sorted(files):
        if name.startswith(("tests/", "build/")) or not os.path.isfile(ROOT / name):
            continue
        h.update(name.encode() + b"\0" + (ROOT / name).read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="module")
def sdist():
    here = CACHE / _sources_digest()
    found = list(here.glob("scampi-*.tar.gz"))
    if not found:
        here.mkdir(parents=True, exist_ok=True)
        out = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(here)], cwd=str(ROOT),
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        found = list(here.glob("scampi-*.tar.gz"))
    return found[0]


@pytest.fixture(scope="module")
def venv(sdist, tmp_path_factory):
    """A fresh virtualenv (outside the tree) with the sdist installed, and a dummy `tools` and
    `backends` package in its site-packages."""
    base = tmp_path_factory.mktemp("pipvenv")
    env_dir = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=120)
    env = dict(os.environ, PIP_CACHE_DIR=str(CACHE / "pip-cache"), PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)
    out = subprocess.run([str(env_dir / "bin" / "pip"), "install", "-q", str(sdist)], cwd=str(base),
                         capture_output=True, text=True, timeout=1200, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    site = next((env_dir / "lib").glob("python3*/site-packages"))
    for dummy in ("tools", "backends"):
        (site / dummy).mkdir()
        (site / dummy / "__init__.py").write_text("raise ImportError('the dummy %s package of "
                                                  "another distribution')\n" % dummy)
    work = base / "work"
    work.mkdir()
    return env_dir, site, work, env


def run(venv, *argv, timeout=300):
    env_dir, _, work, env = venv
    exe = argv[0] if os.path.isabs(argv[0]) else str(env_dir / "bin" / argv[0])
    return subprocess.run([exe] + [str(a) for a in argv[1:]], cwd=str(work), capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_sdist_carries_sources_and_license(sdist):
    names = tarfile.open(str(sdist)).getnames()
    for want in ("LICENSE", "libpcap_shim/csrc/shim.h", "libpcap_shim/csrc/python.c",
                 "mapi/csrc/flowrec.h", "mapi/csrc/mapi_plugin.h", "mapi/tracegen/csrc",
                 "backends/netflow/iana_ie.h", "setup.py", "pyproject.toml"):
        assert any(n.split("/", 1)[-1].startswith(want) for n in names), want
    assert not [n for n in names if n.endswith(".so") or "/tools/" in n]


def test_installed_wheel_is_abi3_with_headers(venv):
    _, site, _, _ = venv
    dist = next(site.glob("scampi-*.dist-info"))
    assert re.search(r"^Tag: cp3\d+-abi3-linux_\w+$", (dist / "WHEEL").read_text(), re.M)
    assert "BSD 3-Clause" in next(dist.rglob("LICENSE")).read_text()
    # extension modules; the drop-in's libraries in libpcap_shim/lib are none (its Python half
    # embeds the interpreter it was built with, as libpcap.so.0.8 did before it was split)
    shim_lib = site / "scampi" / "libpcap_shim" / "lib"
    exts = [p for p in list(site.joinpath("mapi").rglob("*.so")) + list(site.joinpath("scampi").rglob("*.so"))
            if p.parent != shim_lib]
    assert len(exts) >= 7 and all(p.name.endswith(".abi3.so") for p in exts), exts
    for header in ("engine.h", "flowrec.h", "engine_api.h", "mapi_plugin.h", "byteorder.h"):
        assert (site / "mapi" / "csrc" / header).exists(), header
    assert (shim_lib / "libpcap.so.0.8").exists() and (shim_lib / "libpcap_shim_python.so").exists()
    assert (site / "scampi" / "libpcap_shim" / "csrc" / "shim.h").exists()
    assert not (site / "scampi" / "tools").exists()


def test_mapi_run_from_the_install(venv):
    trace = generated("mixed.pcap")
    r = run(venv, "mapi", "run", "-r", trace, "tcp", "port", "80", "--json")
    assert r.returncode == 0, r.stderr
    import json
    got = json.loads(r.stdout)["flows"][0]["functions"]
    assert got[1]["result"] == len(tcpdump_records(trace, "tcp port 80")[0])
    v = run(venv, "mapi", "--version")
    assert v.returncode == 0 and "scampi" in v.stdout


def test_mapi_preload_tcpdump_from_the_install(venv):
    tcpdump = need_tool("tcpdump")
    trace = generated("mixed.pcap")
    path = run(venv, "mapi-preload", "--print-path")
    assert path.returncode == 0 and path.stdout.strip().endswith("site-packages/scampi/libpcap_shim/lib/libpcap.so.0.8"), \
        path.stdout + path.stderr
    r = run(venv, "mapi-preload", "--report", "stderr", tcpdump, "-nr", trace, "udp port 53")
    stock = subprocess.run([tcpdump, "-nr", str(trace), "udp port 53"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == stock.stdout and r.stdout.count("\n") > 10
    assert '"filter": "udp port 53"' in r.stderr          # the shim's report: it ran on MAPI


def test_mapi_demo_from_the_install(venv):
    r = run(venv, "mapi", "demo", "--packets", "20000", "--json", timeout=600)
    assert r.returncode == 0, r.stderr
    assert '"error": null' in r.stdout and "talkers" in r.stdout


def test_plugin_builds_against_the_installed_headers(venv):
    env_dir = venv[0]
    r = run(venv, str(env_dir / "bin" / "pip"), "install", "-q", "setuptools>=64", "wheel")
    assert r.returncode == 0, r.stderr[-3000:]
    r = run(venv, str(env_dir / "bin" / "pip"), "install", "-q", "--no-build-isolation",
            ROOT / "plugins" / "example_dist", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    f = run(venv, "mapi", "functions", "LEN_RANGE")
    assert f.returncode == 0 and "LEN_RANGE" in f.stdout, f.stderr
