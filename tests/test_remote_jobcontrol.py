"""Job control for remote clients (gRPC with mutual TLS) against a real mapid --listen and real
Biscuit tokens.  A remote client is named by its certificate: without a token it gets the
config's grant "cert:NAME" (or "cert:*", else nothing) -- never a local uid's, not even "*" =
"all"; a token presented over gRPC is honoured exactly as over the Unix socket: the same cases
give the same answer (code and words) on both transports, with an audit row for every refusal,
and the mandatory filter holds (tcpdump's count, no packet outside it), in a client process
with and without MAPI_TOKEN and in a distributed flow."""
import datetime
import re
from pathlib import Path

import pytest

import mapi
from helpers.jobs import (REPLAY_COUNTING_OUTSIDE_10_1, Authority, audit, jobs_config, mixed_trace,
                          run_client, tcpdump_count)
from helpers.remote import Certs, RemoteMapid
from helpers.server import open_dir
from mapi.client.remote import RemoteMapi
from mapi.jobcontrol import tokens

EPERM, ELIMIT = 1018, 1019
PREFIX = "net 10.1.0.0/16"
COSTS = "costs = { free = 1.0, low = 10.0, high = 40.0 }\n"
ROOT = Path(__file__).resolve().parent.parent


class Lab:
    def __init__(self, where):
        self.dir = where
        self.auth = Authority(where)
        self.key = tokens.read_key_file(str(self.auth.key), private=True)
        self.public = tokens.read_key_file(str(self.auth.pub))
        self.trace = mixed_trace(where / "mixed.pcap", packets=4000, seed=31)
        self.other = mixed_trace(where / "other.pcap", packets=1500, seed=32)
        self.pki = Certs(where)
        self.bob = self.pki.add_client("bob")              # no grant of its own
        self.tenant = self.tok("tenant", filter=PREFIX, limits={"flows": 2})
        self.revoked = self.tok("mallory")
        self.revoked_id = tokens.decode(self.revoked, self.public).revocation_ids[0]

    def tok(self, principal, **kw):
        kw.setdefault("devices", ("mixed", "other"))
        kw.setdefault("classes", ("filter", "counter"))
        return tokens.issue(self.key, principal, **kw).to_base64()

    def narrow(self, text, **kw):
        return tokens.attenuate(tokens.decode(text, self.public), **kw).to_base64()

    def config(self, database):
        # "*" = "all" gives every local uid everything: it must not reach remote clients
        grants = {"*": '"all"', "cert:alice": '{ devices = ["mixed"], classes = ["counter"] }'}
        return jobs_config(database, self.auth.public, grants=grants, revoked=[self.revoked_id],
                           devices={"mixed": self.trace, "other": self.other}, extra=COSTS)


@pytest.fixture(scope="module")
def lab():
    return Lab(open_dir("scampi-remote-jobs-"))


@pytest.fixture(scope="module")
def server(lab):
    d = lab.dir / "shared"
    d.mkdir()
    with RemoteMapid(d, lab.pki, config=lab.config(str(d / "mapid.db"))) as m:
        yield m


@pytest.fixture
def fresh(lab, tmp_path):
    """A mapid of its own (a replay of the offered device starts only once)."""
    with RemoteMapid(tmp_path, lab.pki, config=lab.config(str(tmp_path / "mapid.db"))) as m:
        yield m


def unix_client(server, lab, token):
    c = RemoteMapi(server.url)
    if token is not None:
        c.authenticate(token)
    return c


def grpc_client(server, lab, token, which=None):
    c = mapi.client.connect(server.remote_url, **lab.pki.tls(which or lab.bob))
    if token is not None:
        c.authenticate(token)
    return c


def outcome(make, server, lab, token, steps):
    """("ok", value) or ("refused", code, words) of steps(client) on a new connection (its
    authentication included), and the refusals the audit log gained meanwhile."""
    before = len(audit(server.database, decision="refuse"))
    c = None
    try:
        c = make(server, lab, token)
        got = ("ok", steps(c))
    except mapi.MapiError as exc:
        # descriptors and client numbers differ between connections, and so does the time
        # an expiry is checked at ("(now ...)"); the rest must not
        text = re.sub(r"(flow|client) \d+", r"\1 N", str(exc))
        got = ("refused", exc.code, re.sub(r"\(now [^)]*\)", "(now T)", text))
    finally:
        if c is not None:
            c.close()
    return got, audit(server.database, decision="refuse")[before:]


def flow(*functions, dev="mixed"):
    def run(c):
        fd = c.create_flow(dev)
        for f in functions:
            c.apply_function(fd, *f) if isinstance(f, tuple) else c.apply_function(fd, f)
        return [f["args"] for f in c.get_flow_info(fd)["functions"]]
    return run


def flows(n):
    def run(c):
        return [flow("PKT_COUNTER")(c) for _ in range(n)]
    return run


def cases(lab):
    """(name, token, steps, expected: "ok" or (code, words))."""
    t = lab.tenant
    counter_only = lab.narrow(t, classes=["counter"])
    stranger = tokens.issue(tokens.read_key_file(str(Authority(lab.dir / "stranger").key),
                                                 private=True), "tenant",
                            devices=["mixed"], classes=["counter"]).to_base64()
    past = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    return [
        ("prefix installed first", t, flow("PKT_COUNTER"), "ok"),
        ("own filter inside the prefix", t, flow(("BPF_FILTER", "tcp port 80"), "PKT_COUNTER"),
         "ok"),
        ("filter outside the prefix", t, flow(("BPF_FILTER", "ip6")),
         (EPERM, "outside the mandatory filter")),
        ("function outside the token", t, flow("TO_BUFFER"), (EPERM, "TO_BUFFER")),
        ("quota: two flows", t, flows(2), "ok"),
        ("quota exceeded by one", t, flows(3), (ELIMIT, "quota flows of tenant")),
        ("device outside the token", lab.tok("narrow", devices=["mixed"]), flow(dev="other"),
         (EPERM, "may not use device other")),
        ("attenuated", counter_only, flow("PKT_COUNTER"), "ok"),
        ("attenuated then widened", lab.narrow(counter_only, classes=["filter", "counter"]),
         flow(("BPF_FILTER", "tcp")), (EPERM, "block 1")),
        ("attenuated filter", lab.narrow(t, filter="tcp"), flow("PKT_COUNTER"), "ok"),
        ("signed by another root key", stranger, flow("PKT_COUNTER"), (EPERM, "root public key")),
        ("expired", lab.tok("old", expires=past), flow("PKT_COUNTER"), (EPERM, "expired")),
        ("revoked", lab.revoked, flow("PKT_COUNTER"), (EPERM, "revoked")),
        ("revoked, attenuated", lab.narrow(lab.revoked, limits={"flows": 1}),
         flow("PKT_COUNTER"), (EPERM, "revoked (block 0")),
    ]


def test_a_token_counts_the_same_over_grpc_and_the_socket(lab, server):
    for name, token, steps, expected in cases(lab):
        local, local_rows = outcome(unix_client, server, lab, token, steps)
        remote, remote_rows = outcome(grpc_client, server, lab, token, steps)
        assert remote == local, name
        if expected == "ok":
            assert remote[0] == "ok", (name, remote)
            assert remote_rows == [], (name, remote_rows)
            made = remote[1] if isinstance(remote[1][0][0], list) else [remote[1]]
            assert all(PREFIX in functions[0][0] for functions in made), (name, made)
        else:
            code, words = expected
            assert remote[:2] == ("refused", code) and words in remote[2], (name, remote)
            assert remote_rows and remote_rows[-1]["uid"] == 65534, (name, remote_rows)
            assert any(remote[2].split(": ", 1)[-1][:50] in r["reason"]
                       for r in remote_rows), (name, remote[2], remote_rows)


def test_certificates_are_granted_by_name(lab, server):
    """No token: alice's certificate has a grant (counters on mixed), bob's none; the local
    uids' "*" = "all" reaches neither."""
    ok, rows = outcome(lambda s, l, t: grpc_client(s, l, t, l.pki.client), server, lab, None,
                       flow("PKT_COUNTER"))
    assert ok == ("ok", [[]]) and rows == []
    for steps, words in ((flow(("BPF_FILTER", "tcp")), "BPF_FILTER"),
                         (flow(dev="other"), "may not use device other")):
        got, rows = outcome(lambda s, l, t: grpc_client(s, l, t, l.pki.client), server, lab,
                            None, steps)
        assert got[:2] == ("refused", EPERM) and words in got[2], got
        assert "certificate alice (no token)" in got[2]
        assert rows[-1]["principal"] == "cert:alice"
    got, rows = outcome(grpc_client, server, lab, None, flow("PKT_COUNTER"))
    assert got[:2] == ("refused", EPERM) and "certificate bob (no token)" in got[2], got
    assert rows[-1]["principal"] == "cert:bob" and rows[-1]["operation"] == "create_flow"
    # the same process over the socket is root: everything
    assert outcome(unix_client, server, lab, None, flow("TO_BUFFER"))[0][0] == "ok"


ISOLATED = """
try:
    fd = mapi.create_flow("mixed")
    mapi.apply_function(fd, "BPF_FILTER", "tcp or udp")
    c = mapi.apply_function(fd, "PKT_COUNTER")
    buf = mapi.apply_function(fd, "TO_BUFFER")
    mapi.connect(fd)
except mapi.MapiError as exc:
    emit({"refused": exc.code, "message": str(exc)})
    sys.exit(0)
""" + REPLAY_COUNTING_OUTSIDE_10_1


def test_client_process_with_and_without_a_token(lab, fresh):
    """A program unchanged but for MAPI_SERVER=grpcs://...: refused without a token (its
    certificate has no grant), exactly tcpdump's share of the prefix with MAPI_TOKEN."""
    env = dict(MAPI_SERVER=fresh.remote_url, **lab.pki.env(lab.bob))
    bare = run_client(fresh, ISOLATED, env=env)[-1]
    assert bare["refused"] == EPERM and "certificate bob (no token)" in bare["message"], bare
    token = lab.tok("tenant-p", classes=("filter", "counter", "packets"), filter=PREFIX)
    got = run_client(fresh, ISOLATED, token=token, env=env)[-1]
    expect = tcpdump_count(lab.trace, "%s and (tcp or udp)" % PREFIX)
    assert got["count"] == got["delivered"] == expect > 0, got
    assert got["outside"] == 0 and got["first"] == [PREFIX]
    assert tcpdump_count(lab.trace, "tcp or udp") > expect
    rows = audit(fresh.database, wait_for=1, principal="tenant-p", operation="authenticate")
    assert rows and rows[0]["decision"] == "allow" and rows[0]["uid"] == 65534


def test_distributed_flow_presents_its_token(lab, fresh):
    """token= of a distributed flow reaches every sensor: both devices of the scope count
    under the mandatory filter; without it the sensor's refusal names the sensor."""
    scope = "%s/mixed, %s/other" % (fresh.remote_url, fresh.remote_url)
    with pytest.raises(mapi.MapiError) as info:
        mapi.create_flow(scope, **lab.pki.tls(lab.bob))
    assert info.value.code == EPERM and "on sensor" in str(info.value), info.value
    fd = mapi.create_flow(scope, token=lab.tenant, **lab.pki.tls(lab.bob))
    try:
        cnt = mapi.apply_function(fd, "PKT_COUNTER")
        mapi.connect(fd)
        for dev in ("mixed", "other"):
            run_client(fresh, 'mapi.start_offline_device("%s"); '
                       'mapi.wait_offline_device("%s")' % (dev, dev))
        r = mapi.read_results(fd, cnt)
        want = [tcpdump_count(p, PREFIX) for p in (lab.trace, lab.other)]
        assert not r.partial and r.value == sum(want)
        assert [r.sensors["%s/%s" % (fresh.remote_url, d)].value for d in ("mixed", "other")] == want
    finally:
        mapi.close_flow(fd)


WASM = ROOT / "examples" / "wasm" / "tcp80.wasm"


def test_user_code_over_grpc(lab, fresh):
    """load_library over gRPC: refused without class code; with it the module is registered
    (nothing runs), applying it is authorised on its own (its loader only), and the sandboxed
    filter counts tcpdump's `tcp port 80` under the mandatory filter."""
    import subprocess
    import sys
    subprocess.run([sys.executable, str(ROOT / "examples" / "wasm" / "build.py")], check=True,
                   capture_output=True)
    got, rows = outcome(grpc_client, fresh, lab, lab.tenant, lambda c: c.load_library(str(WASM)))
    assert got[:2] == ("refused", EPERM) and "load" in got[2] and rows, got
    coder = grpc_client(fresh, lab, lab.tok("coder", classes=("filter", "counter", "code"),
                                            filter=PREFIX))
    other = unix_client(fresh, lab, lab.tok("other", classes=("filter", "counter", "code")))
    try:
        lib = coder.load_library(str(WASM))
        assert sorted(lib["functions"]) == ["WASM_PACKETS", "WASM_TCP80"]
        fd = coder.create_flow("mixed")
        web = coder.apply_function(fd, "WASM_TCP80")
        cnt = coder.apply_function(fd, "PKT_COUNTER")
        coder.connect(fd)
        ofd = other.create_flow("mixed")
        with pytest.raises(mapi.MapiError) as info:
            other.apply_function(ofd, "WASM_TCP80")
        assert info.value.code == EPERM and "loaded by coder" in str(info.value)
        run_client(fresh, 'mapi.start_offline_device("mixed"); mapi.wait_offline_device("mixed")')
        assert web == 2                               # behind the mandatory filter (fid 1)
        assert coder.read_results(fd, cnt).value == \
            tcpdump_count(lab.trace, "%s and tcp port 80" % PREFIX) > 0
    finally:
        coder.close()
        other.close()
    ops = {(r["principal"], r["operation"], r["decision"]) for r in audit(fresh.database)}
    assert {("coder", "load_library", "allow"), ("coder", "apply_function", "allow"),
            ("other", "apply_function", "refuse")} <= ops
