"""The two ways the libpcap drop-in runs, for its tests: in-process (the embedded engine) and
server (MAPI_SERVER: the C client of a real mapid the test starts).  A test module takes the
`shim_server` fixture made here and passes it to testing.run(..., server=shim_server).  The
probe programs of libpcap_shim/probe are built here too."""
import contextlib
import os
import shutil
import subprocess
import tempfile

import pytest

from .server import Mapid

MODES = ["in-process", "server"]


def shim_server_fixture():
    """A module-scoped fixture, parametrized over MODES: None, or the URL of a mapid started for
    the module (stopped with SIGTERM after it; its log shown if it did not stop cleanly)."""
    @pytest.fixture(scope="module", params=MODES)
    def shim_server(request):
        if request.param == "in-process":
            yield None
            return
        d = tempfile.mkdtemp(prefix="shim-mapid-")
        mapid = Mapid(d)
        try:
            yield mapid.url
        finally:
            rc = mapid.stop()
            log = mapid.log_text()
            shutil.rmtree(d, ignore_errors=True)
            assert rc == 0, "mapid exited with %s:\n%s" % (rc, log)
    return shim_server


@contextlib.contextmanager
def built_probe(name, libs=("-lpcap",)):
    """libpcap_shim/probe/NAME.c built against the system libpcap in a directory every user may
    read: yields (executable, directory), removed afterwards.  Skips without a C compiler or
    libpcap-dev."""
    from scampi.libpcap_shim import testing
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or not os.path.exists("/usr/include/pcap/pcap.h"):
        pytest.skip("a C compiler and libpcap-dev are needed to build the probe")
    testing.library()
    src = os.path.join(os.path.dirname(testing.__file__), "probe", name + ".c")
    d = tempfile.mkdtemp(prefix="shim-%s-" % name)
    os.chmod(d, 0o755)
    exe = os.path.join(d, name)
    try:
        subprocess.run([cc, "-O1", "-w", "-o", exe, src, *libs], check=True)
        yield exe, d
    finally:
        shutil.rmtree(d, ignore_errors=True)
