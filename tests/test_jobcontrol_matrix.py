"""The authorisation matrix against a real mapid and real Biscuit tokens: every case that must
be refused is refused with a clear error (code and words) and leaves an audit row naming the
decision; its permitted neighbour (the same thing within the rights) is accepted."""
import base64
import os
import time

import pytest

from helpers.jobs import Authority, admin, audit, jobs_config, mixed_trace
from helpers.server import Mapid, nobody, open_dir, run_client

import mapi
from mapi.client.remote import RemoteMapi
from mapi.jobcontrol import tokens

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (clients run as nobody)")
EPERM, ELIMIT, EBADARG, ENOTSUP = 1018, 1019, 1005, 1020
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WASM = os.path.join(ROOT, "examples", "wasm", "tcp80.wasm")
PLAIN = '''
"""A plain plugin: PLAIN_PKTS counts packets with the engine's own counter kernel."""
import mapi
from mapi._engine import ffi, lib
from mapi.descriptor import FunctionDescriptor, FunctionInstance

class Count(FunctionInstance):
    def __init__(self):
        self.kernel = lib.mapi_pkt_counter_kernel
        self.c = ffi.new("mapi_counter *")
        self.state = self.c
    def result(self):
        return self.c.value, self.c.last_ts

@mapi.hookimpl
def scampi_functions():
    return [FunctionDescriptor(name="PLAIN_PKTS", args=(), create=lambda ctx, args: Count(),
                               result="u64", cost="free", stateful=True)]
'''


class Lab:
    def __init__(self, where):
        self.dir = where
        self.auth = Authority(where)                  # mapi-admin keygen
        self.key = tokens.read_key_file(str(self.auth.key), private=True)
        PUBLIC["key"] = tokens.read_key_file(str(self.auth.pub))
        self.trace = mixed_trace(where / "mixed.pcap", packets=3000)
        self.other = mixed_trace(where / "other.pcap", packets=500, seed=9)
        self.revoked = self.tok("mallory")
        self.revoked_id = tokens_ids(self.revoked)[0]
        self.plain = where / "plain_pkts.py"
        self.plain.write_text(PLAIN)
        os.chmod(self.plain, 0o644)
        os.system("make -s -C %s wasm-example >/dev/null" % ROOT)

    def tok(self, principal, devices=("shared",), classes=("filter", "counter"), **kw):
        return tokens.issue(self.key, principal, devices=devices, classes=classes,
                            **kw).to_base64()


def tokens_ids(text):
    import biscuit_auth as bis
    return list(bis.UnverifiedBiscuit.from_base64(text).revocation_ids)


PUBLIC = {}


def narrow(text, **kw):
    """Attenuate offline: only the root *public* key is needed (to read the token)."""
    token = tokens.decode(text, PUBLIC["key"])
    return tokens.attenuate(token, **kw).to_base64()


@pytest.fixture(scope="module")
def lab():
    return Lab(open_dir("scampi-jobs-matrix-"))


@pytest.fixture(scope="module")
def mapid(lab):
    grants = {str(nobody()[0]): '{ devices = ["shared"], classes = ["counter"], limits = { flows = 1 } }'}
    cfg = jobs_config(str(lab.dir / "mapid.db"), lab.auth.public, grants=grants,
                      revoked=[lab.revoked_id], devices={"shared": lab.trace, "other": lab.other},
                      extra="costs = { free = 1.0, low = 10.0, high = 40.0 }\n")
    with Mapid(lab.dir, config=cfg) as m:
        yield m


class Conn:
    """One client connection of this test process, optionally authenticated."""

    def __init__(self, mapid, token=None):
        self.c = RemoteMapi(mapid.url)
        self.db = str(mapid.database)
        self.id = self.c.connection().server.you.client_id
        self.auth_error = None
        if token is not None:
            try:
                self.c.authenticate(token)
            except mapi.MapiError as exc:
                self.auth_error = exc

    def __getattr__(self, name):
        return getattr(self.c, name)

    def flow(self, *functions, dev="shared"):
        fd = self.c.create_flow(dev)
        for f in functions:
            self.c.apply_function(fd, *f) if isinstance(f, tuple) else self.c.apply_function(fd, f)
        return fd

    def refusals(self):
        return [r for r in audit(self.db) if r["client"].endswith("/%d" % self.id)
                and r["decision"] == "refuse"]

    def close(self):
        self.c.close()


def refused(conn, fn, code, *words):
    """fn() must fail with `code`, its message holding `words`, and an audit row must say so."""
    with pytest.raises(mapi.MapiError) as info:
        fn()
    exc = info.value
    assert exc.code == code, (exc.code, str(exc))
    for w in words:
        assert w in str(exc), (w, str(exc))
    rows = conn.refusals()
    assert rows and any(str(exc).split(": ", 1)[-1][:60] in r["reason"] for r in rows), \
        (str(exc), rows)
    return exc


def auth_refused(mapid, token, *words):
    conn = Conn(mapid, token)
    try:
        exc = conn.auth_error
        assert exc is not None and exc.code == EPERM, exc
        for w in words:
            assert w in str(exc), (w, str(exc))
        assert any(r["operation"] == "authenticate" for r in conn.refusals())
    finally:
        conn.close()


def accepted(mapid, token, fn):
    conn = Conn(mapid, token)
    try:
        assert conn.auth_error is None, conn.auth_error
        return fn(conn)
    finally:
        conn.close()


# --- the token itself --------------------------------------------------------------------------
def test_token_validity(lab, mapid, tmp_path):
    alice = lab.tok("alice-v")
    ok = lambda c: c.flow("PKT_COUNTER")                        # noqa: E731
    raw = bytearray(base64.urlsafe_b64decode(alice + "=" * (-len(alice) % 4)))
    raw[-10] ^= 0x5a                                            # inside the last signature
    forged = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    auth_refused(mapid, forged, "signature does not verify")
    other = Authority(tmp_path)
    stranger = other.issue("alice-v", "--device", "shared", "--class", "counter")
    auth_refused(mapid, stranger, "root public key")
    auth_refused(mapid, "hello", "not a Biscuit")
    auth_refused(mapid, alice[: len(alice) // 2], "not a Biscuit")
    auth_refused(mapid, lab.tok("old", expires="2020-01-01T00:00:00Z"), "expired at 2020-01-01")
    auth_refused(mapid, lab.revoked, "revoked", tokens.short_id(lab.revoked_id))
    auth_refused(mapid, narrow(lab.revoked, limits={"flows": 1}), "revoked (block 0")
    auth_refused(mapid, narrow(alice, expires="2020-01-01T00:00:00Z"), "expired")
    auth_refused(mapid, narrow(narrow(alice, expires="2020-01-01T00:00:00Z"),
                               expires="2035-01-01T00:00:00Z"), "expired")
    # the neighbours: the genuine token, a fresh one, a later expiry, a harmless attenuation
    for good in (alice, lab.tok("mallory2"), lab.tok("old", expires="1d"),
                 narrow(alice, limits={"flows": 1}), narrow(alice, expires="1h")):
        assert accepted(mapid, good, ok) > 0


def test_expiry_and_revocation_during_a_connection(lab, mapid):
    soon = lab.tok("brief", expires="3s")
    conn = Conn(mapid, soon)
    conn.flow("PKT_COUNTER")                                    # before: accepted
    time.sleep(3.5)
    refused(conn, lambda: conn.create_flow("shared"), EPERM, "expired")
    refused(conn, lambda: conn.get_flow_info(1 + 0), EPERM, "expired")
    conn.close()
    victim = lab.tok("victim")
    conn = Conn(mapid, victim)
    fd = conn.flow("PKT_COUNTER")
    admin("revoke", tokens_ids(victim)[0][:20], "--db", str(mapid.database))
    refused(conn, lambda: conn.read_results(fd, 1), EPERM, "revoked")
    refused(conn, lambda: conn.create_flow("shared"), EPERM, "revoked")
    conn.close()
    assert accepted(mapid, lab.tok("victim"), lambda c: c.flow("PKT_COUNTER")) > 0


def test_authenticate_comes_first(lab, mapid):
    conn = Conn(mapid)
    conn.flow("PKT_COUNTER")
    refused(conn, lambda: conn.authenticate(lab.tok("late")), EBADARG, "before creating flows")
    conn.close()
    assert accepted(mapid, lab.tok("late"), lambda c: c.flow("PKT_COUNTER")) > 0


# --- devices -----------------------------------------------------------------------------------
def test_devices(lab, mapid):
    alice = lab.tok("alice-d")
    bob = lab.tok("bob-d", devices=("*",), classes=("*",))
    cases = [
        (alice, lambda c: c.create_flow("other"), "may not use device other"),
        (narrow(bob, devices=["shared"]), lambda c: c.create_flow("other"), "outside the devices"),
        (narrow(narrow(bob, devices=["shared"]), devices=["shared", "other"]),
         lambda c: c.create_flow("other"), "outside the devices"),
        (alice, lambda c: c.create_offline_device(str(lab.other)), "may not use device offline"),
        (alice, lambda c: c.create_flow("ring:lo"), "may not use device lo"),
    ]
    for token, fn, words in cases:
        conn = Conn(mapid, token)
        refused(conn, lambda: fn(conn), EPERM, words)
        assert conn.create_flow("shared") > 0                   # the neighbour: its own device
        conn.close()
    own = lab.tok("carl-d", devices=("offline",))
    assert accepted(mapid, own, lambda c: c.create_flow(c.create_offline_device(str(lab.other))))


# --- functions and filters ---------------------------------------------------------------------
def test_functions(lab, mapid):
    alice = lab.tok("alice-f", filter="net 10.1.0.0/16")
    bob = lab.tok("bob-f", devices=("*",), classes=("*",))
    dave = lab.tok("dave-f", classes=(), functions=("PKT_COUNTER",))
    cases = [  # (token, refused apply, words, permitted neighbour)
        (alice, ("TO_BUFFER",), "may not apply TO_BUFFER (of class packets", ("PKT_COUNTER",)),
        (alice, ("TO_FILE", mapi.MFF_PCAP, "/tmp/x.pcap"), "of class export", ("BYTE_COUNTER",)),
        (dave, ("BYTE_COUNTER",), "may not apply BYTE_COUNTER", ("PKT_COUNTER",)),
        (narrow(bob, functions=["PKT_COUNTER"]), ("BPF_FILTER", "tcp"), "outside the functions",
         ("PKT_COUNTER",)),
        (narrow(narrow(bob, functions=["PKT_COUNTER"]), classes=["*"]), ("BPF_FILTER", "tcp"),
         "outside the functions", ("PKT_COUNTER",)),
        (narrow(bob, classes=["counter"]), ("TO_BUFFER",), "outside the functions", ("BYTE_COUNTER",)),
        (alice, ("BPF_FILTER", "ip6"), "outside the mandatory filter", ("BPF_FILTER", "tcp port 80")),
        (alice, ("BPF_FILTER", "src net 10.2.0.0/16 and dst net 10.3.0.0/16"),
         "outside the mandatory filter", ("BPF_FILTER", "src net 10.1.2.0/24")),
        (narrow(alice, filter="tcp"), ("BPF_FILTER", "udp"), "outside the mandatory filter",
         ("BPF_FILTER", "port 80")),
    ]
    for token, bad, words, good in cases:
        conn = Conn(mapid, token)
        fd = conn.create_flow("shared")
        refused(conn, lambda: conn.apply_function(fd, *bad), EPERM, words)
        assert conn.apply_function(fd, *good) > 0
        conn.close()
    # every block's filter is in front of the flow, ANDed; a later block cannot take one away
    token = narrow(narrow(alice, filter="tcp"), filter="ip or not ip")
    info = accepted(mapid, token, lambda c: c.get_flow_info(c.flow("PKT_COUNTER")))
    assert info["functions"][0]["args"] == ["(net 10.1.0.0/16) and (tcp) and (ip or not ip)"]


# --- quotas ------------------------------------------------------------------------------------
def test_quotas_exceeded_by_one(lab, mapid):
    def exceed(token, fill, then, words):
        conn = Conn(mapid, token)
        held = [fill(conn) for _ in range(then)]                # up to the limit: accepted
        refused(conn, lambda: fill(conn), ELIMIT, *words)
        conn.close()
        return held
    exceed(lab.tok("q1", limits={"flows": 2}), lambda c: c.create_flow("shared"), 2,
           ["quota flows", "would make it 3", "allows 2"])
    exceed(narrow(lab.tok("q2", limits={"flows": 2}), limits={"flows": 1}),
           lambda c: c.create_flow("shared"), 1, ["quota flows", "block 1 allows 1"])
    exceed(narrow(narrow(lab.tok("q3", limits={"flows": 3}), limits={"flows": 1}),
                  limits={"flows": 5}), lambda c: c.create_flow("shared"), 1,
           ["would make it 2", "block 1 allows 1"])
    conn = Conn(mapid, lab.tok("q4", limits={"functions_per_flow": 2}, filter="ip"))
    fd = conn.create_flow("shared")
    conn.apply_function(fd, "PKT_COUNTER")
    conn.apply_function(fd, "BYTE_COUNTER")                     # 2 of 2 (the prefix is free)
    refused(conn, lambda: conn.apply_function(fd, "PKT_COUNTER"), ELIMIT,
            "quota functions_per_flow", "would make it 3")
    conn.close()
    conn = Conn(mapid, narrow(lab.tok("q5", devices=("*",), classes=("*",)),
                              limits={"functions_per_flow": 1}))
    fd = conn.create_flow("shared")
    conn.apply_function(fd, "PKT_COUNTER")
    refused(conn, lambda: conn.apply_function(fd, "BYTE_COUNTER"), ELIMIT, "block 1")
    conn.close()
    conn = Conn(mapid, lab.tok("q6", classes=("packets",), limits={"buffer_bytes": 3 << 20}))
    fd = conn.create_flow("shared")
    refused(conn, lambda: conn.apply_function(fd, "TO_BUFFER", mapi.WAIT, 4 << 20), ELIMIT,
            "quota buffer_bytes", "would make it %d" % (4 << 20), "allows %d" % (3 << 20))
    conn.apply_function(fd, "TO_BUFFER", mapi.WAIT, 2 << 20)   # the neighbour: within
    fd2 = conn.create_flow("shared")
    refused(conn, lambda: conn.apply_function(fd2, "TO_BUFFER", mapi.WAIT, 2 << 20), ELIMIT,
            "would make it %d" % (4 << 20))
    conn.apply_function(fd2, "TO_BUFFER", mapi.WAIT, 1 << 20)
    conn.close()


def test_quota_is_the_principals_and_a_delegates_comes_out_of_it(lab, mapid):
    a1 = lab.tok("pooled", limits={"flows": 2})
    a2 = lab.tok("pooled", limits={"flows": 2})                 # another token, same principal
    delegate = narrow(a1, limits={"flows": 2})
    first, second = Conn(mapid, a1), Conn(mapid, a2)
    fd = first.create_flow("shared")
    second.create_flow("shared")
    refused(second, lambda: second.create_flow("shared"), ELIMIT, "quota flows", "allows 2")
    first.close_flow(fd)
    assert second.create_flow("shared") > 0                     # freed: admitted again
    d = Conn(mapid, delegate)
    refused(d, lambda: d.create_flow("shared"), ELIMIT, "authority block allows 2")
    for c in (first, second, d):
        c.close()


# --- other principals' objects -----------------------------------------------------------------
def test_another_principals_flow(lab, mapid):
    owner = Conn(mapid, lab.tok("owner"))
    fd = owner.flow("PKT_COUNTER")
    owner.connect(fd)
    intruder = Conn(mapid, lab.tok("intruder"))
    mine = intruder.flow("PKT_COUNTER")
    for fn in (lambda: intruder.read_results(fd, 1), lambda: intruder.close_flow(fd),
               lambda: intruder.connect(fd), lambda: intruder.get_flow_info(fd),
               lambda: intruder.apply_function(mine, "THRESHOLD", mapi.GREATER, (fd, 1), 5)):
        refused(intruder, fn, EPERM, "belongs to another client")
    assert owner.read_results(fd, 1).value == 0                 # the neighbour: the owner
    own = owner.flow("PKT_COUNTER")
    owner.connect(own)
    watcher = owner.create_flow("shared")
    assert owner.apply_function(watcher, "THRESHOLD", mapi.GREATER, (own, 1), 5) > 0
    owner.close()
    intruder.close()


# --- code loading ------------------------------------------------------------------------------
def test_code_loading(lab, mapid):
    size = os.path.getsize(WASM)
    carol = lab.tok("carol", classes=("filter", "counter", "code"), limits={"code_bytes": size})
    bob = lab.tok("bob-c", devices=("*",), classes=("*",), load=("plain",))
    conn = Conn(mapid, lab.tok("alice-c"))
    refused(conn, lambda: conn.load_library(WASM), EPERM, "may not load code")
    conn.close()
    conn = Conn(mapid, lab.tok("carol-small", classes=("code",), limits={"code_bytes": size - 1}))
    refused(conn, lambda: conn.load_library(WASM), ELIMIT, "quota code_bytes",
            "would make it %d" % size, "allows %d" % (size - 1))
    conn.close()
    loader = Conn(mapid, carol)
    refused(loader, lambda: loader.load_library(str(lab.plain), kind="plain"), EPERM,
            "may not load plain code")
    refused(loader, lambda: loader.load_library(WASM, place="combo6"), ENOTSUP,
            "no card unit", "advertises code hosting")
    lib = loader.load_library(WASM)                             # the neighbour: sandboxed, host
    assert sorted(lib["functions"]) == ["WASM_PACKETS", "WASM_TCP80"]
    other = Conn(mapid, bob)
    ofd = other.create_flow("shared")
    refused(other, lambda: other.apply_function(ofd, "WASM_TCP80"), EPERM, "loaded by carol")
    fd = loader.create_flow("shared")
    assert loader.apply_function(fd, "WASM_TCP80") > 0
    no_plain = Conn(mapid, narrow(bob, drop_load=["plain"]))
    refused(no_plain, lambda: no_plain.load_library(str(lab.plain), kind="plain"), EPERM,
            "excluded")
    no_plain.close()
    plain = other.load_library(str(lab.plain), kind="plain")    # the neighbour: granted
    assert plain["functions"] == ["PLAIN_PKTS"]
    other.close()
    loader.close()


# --- clients without a token -------------------------------------------------------------------
def test_uid_grants(lab, mapid):
    out, _ = run_client(mapid, """
        out = {}
        def attempt(name, fn):
            try:
                out[name] = ["ok", fn()]
            except mapi.MapiError as exc:
                out[name] = [exc.code, str(exc)]
        attempt("other", lambda: mapi.create_flow("other"))
        fd = mapi.create_flow("shared")
        attempt("filter", lambda: mapi.apply_function(fd, "BPF_FILTER", "tcp"))
        attempt("counter", lambda: mapi.apply_function(fd, "PKT_COUNTER"))
        attempt("second_flow", lambda: mapi.create_flow("shared"))
        emit(out)
    """, user=nobody())
    got = out[0]
    assert got["other"][0] == EPERM and "uid %d (no token) may not use device other" % nobody()[0] \
        in got["other"][1]
    assert got["filter"][0] == EPERM and "may not apply BPF_FILTER" in got["filter"][1]
    assert got["counter"][0] == "ok"
    assert got["second_flow"][0] == ELIMIT and "allows 1" in got["second_flow"][1]
    out, _ = run_client(mapid, """
        try:
            mapi.create_flow("shared"); emit({"ok": True})
        except mapi.MapiError as exc:
            emit({"code": exc.code, "text": str(exc)})
    """, user=(1, 1))                                          # daemon: granted nothing
    assert out[0]["code"] == EPERM and "uid 1 (no token) may not use device shared (granted: none)" \
        in out[0]["text"]
    rows = audit(str(mapid.database), decision="refuse", uid=1)
    assert rows and rows[-1]["operation"] == "create_flow"


def test_every_refusal_is_audited_with_its_reason(lab, mapid):
    rows = audit(str(mapid.database), decision="refuse")
    assert len(rows) >= 40
    assert all(r["reason"] and r["principal"] and r["operation"] for r in rows)
    allowed = audit(str(mapid.database), wait_for=1, decision="allow")
    assert {"authenticate", "create_flow", "apply_function"} <= {r["operation"] for r in allowed}
