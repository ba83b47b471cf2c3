"""The libpcap drop-in under mapid's job control (docs/jobcontrol.md): the C client presents the
environment's token (MAPI_TOKEN, MAPI_TOKEN_FILE) as the Python client does.  A tcpdump whose
token carries a mandatory filter prints exactly what the stock tcpdump prints for that filter
ANDed with its own; without a token it gets its uid's grant (here: none, so the open fails with
mapid's refusal in libpcap's shape); a token that is not one is refused by name."""
import os
import subprocess

import pytest

from helpers.jobs import Authority, jobs_config, mixed_trace
from helpers.server import Mapid, open_dir
from scampi.libpcap_shim import testing

from mapi.jobcontrol import tokens

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mapid's database under a root dir")


@pytest.fixture(scope="module")
def lab():
    if testing.tool("tcpdump") is None:
        pytest.skip("tcpdump is not installed (make test installs it)")
    testing.library()
    where = open_dir("shim-jobs-")
    auth = Authority(where)
    trace = mixed_trace(where / "mixed.pcap", packets=4000, seed=9)
    key = tokens.read_key_file(str(auth.key), private=True)
    token = tokens.issue(key, "tenant", devices=["offline"], classes=["filter", "packets"],
                         filter="net 10.1.0.0/16").to_base64()
    # root gets nothing without a token: what the drop-in can do comes from the token alone
    cfg = jobs_config(str(where / "mapid.db"), auth.public, grants={"0": '"none"'},
                      extra="costs = { free = 1.0, low = 10.0, high = 40.0 }\n")
    mapid = Mapid(where, config=cfg)
    yield mapid, trace, token, where
    assert mapid.stop() == 0, mapid.log_text()


def _tcpdump(mapid, argv, **token):
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "MAPI_SERVER", "MAPI_TOKEN", "MAPI_TOKEN_FILE")}
    env.update(testing.preload_env(testing.library()), MAPI_SERVER=mapid.url, **token)
    return subprocess.run(["tcpdump", "-n"] + argv, capture_output=True, env=env, timeout=120)


def _stock(argv):
    return subprocess.run(["tcpdump", "-n"] + argv, capture_output=True, timeout=120)


@pytest.mark.parametrize("own", [None, "tcp port 80", "udp or arp"])
def test_token_filter_is_anded_with_the_tools(lab, own):
    mapid, trace, token, _ = lab
    mine = [own] if own else []
    shim = _tcpdump(mapid, ["-r", str(trace)] + mine, MAPI_TOKEN=token)
    want = "net 10.1.0.0/16" + (" and (%s)" % own if own else "")
    stock = _stock(["-r", str(trace), want])
    everything = _stock(["-r", str(trace)] + mine)
    assert shim.returncode == 0, (shim.stderr, mapid.log_text()[-3000:])
    assert stock.stdout.count(b"\n") > 100
    assert stock.stdout.count(b"\n") < everything.stdout.count(b"\n")    # the token narrowed it
    assert shim.stdout == stock.stdout


def test_token_file(lab):
    mapid, trace, token, where = lab
    f = where / "tenant.token"
    f.write_text("\n  %s\n" % token)
    shim = _tcpdump(mapid, ["-r", str(trace), "-c", "50"], MAPI_TOKEN_FILE=str(f))
    stock = _stock(["-r", str(trace), "-c", "50", "net 10.1.0.0/16"])
    assert shim.returncode == 0, shim.stderr
    assert shim.stdout == stock.stdout and stock.stdout.count(b"\n") == 50


def test_without_a_token_the_uid_grant_applies(lab):
    mapid, trace, _, _ = lab
    shim = _tcpdump(mapid, ["-r", str(trace)])
    assert shim.returncode == 1 and shim.stdout == b""
    assert shim.stderr == (b"tcpdump: %s: create_offline_device on offline: uid 0 (no token) may "
                           b"not use device offline (granted: none)\n" % str(trace).encode())


def test_bad_token_and_unreadable_token_file(lab):
    mapid, trace, _, where = lab
    shim = _tcpdump(mapid, ["-r", str(trace)], MAPI_TOKEN="not-a-token")
    assert shim.returncode == 1 and shim.stdout == b""
    assert b"the MAPI server refused the token: " in shim.stderr, shim.stderr
    missing = where / "no-such.token"
    shim = _tcpdump(mapid, ["-r", str(trace)], MAPI_TOKEN_FILE=str(missing))
    assert shim.returncode == 1
    assert (b"cannot read the token file %s: No such file or directory" % str(missing).encode()
            in shim.stderr), shim.stderr
