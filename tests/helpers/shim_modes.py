"""The two ways the libpcap drop-in runs, for its tests: in-process (the embedded engine) and
server (MAPI_SERVER: the C client of a real mapid the test starts).  A test module takes the
`shim_server` fixture made here and passes it to testing.run(..., server=shim_server)."""
import shutil
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
