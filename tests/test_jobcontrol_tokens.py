"""Tokens and mapi-admin without a server: keys, issuing, offline attenuation (narrowing only),
inspection, config checks, and the unrestricted embedded mode."""
import json
import os

import pytest

from helpers.jobs import Authority, admin, attenuate

from mapi.jobcontrol import tokens
from mapi.jobcontrol.config import JobConfigError, load
from mapi.jobcontrol.rights import rights_of


def test_issue_attenuate_inspect_through_mapi_admin(tmp_path):
    auth = Authority(tmp_path)
    assert oct(os.stat(auth.key).st_mode & 0o777) == "0o600"
    alice = auth.issue("alice", "--device", "eth0", "--class", "filter", "--filter",
                       "net 10.1.0.0/16", "--flows", "4", "--buffer-bytes", "1048576",
                       "--expires", "2030-01-01T00:00:00Z")
    bob = attenuate(auth, alice, "--filter", "tcp port 80", "--flows", "9", "--expires",
                    "2029-06-01T00:00:00Z", "--device", "eth0", "--device", "eth1")
    out = json.loads(admin("inspect", bob, "--key", str(auth.pub), "--json"))
    assert out["verified"] and len(out["blocks"]) == 2
    r = out["rights"]
    assert r["principal"] == "alice" and r["devices"] == ["eth0"]       # authority's only
    assert r["filter"] == "(net 10.1.0.0/16) and (tcp port 80)"
    assert r["limits"] == {"flows": 4, "buffer_bytes": 1048576}         # 9 cannot widen 4
    assert r["expires"].startswith("2029-06-01")
    assert "reject if device($d)" in out["blocks"][1]["source"]
    text = admin("inspect", bob)
    assert "principal alice, 2 block(s)" in text and out["blocks"][1]["id"] in text
    p = admin("attenuate", alice, "--key", str(auth.pub), check=False)
    assert p.returncode == 2 and "nothing to narrow" in p.stderr
    p = admin("issue", "--key", str(auth.pub), "--principal", "x", check=False)
    assert p.returncode == 2 and "is a public key" in p.stderr


def test_levels_and_wrong_key(tmp_path):
    private, public = tokens.new_keypair()
    root = tokens.private_key(private)
    t = tokens.issue(root, "carol", limits={"flows": 3})
    t2 = tokens.attenuate(t, limits={"flows": 1})
    r = rights_of(t2)
    assert r.limits == {"flows": [(0, 3), (1, 1)]} and r.limit("flows") == (1, 1)
    decoded = tokens.decode(t2.to_base64(), tokens.public_key(public))
    assert decoded.revocation_ids == t2.revocation_ids
    _, other = tokens.new_keypair()
    with pytest.raises(tokens.TokenError, match="does not verify against this server's root"):
        tokens.decode(t2.to_base64(), tokens.public_key(other))


def test_config_is_checked():
    cfg = load({"grants": {"1000": {"classes": ["filter"], "limits": {"flows": 2}}}})
    assert cfg["grants"]["0"] == "all" and cfg["grants"]["1000"]["limits"] == {"flows": 2}
    for bad, words in (({"grants": {"1000": {"classes": ["everything"]}}}, "unknown everything"),
                       ({"grants": {"bob": "all"}}, "must be a uid"),
                       ({"grants": {"1000": {"limits": {"flows": -1}}}}, "whole numbers"),
                       ({"capacity": {"cpu": 1}}, "unknown key(s) cpu"),
                       ({"root_public_key": "xyz"}, "not an Ed25519 key"),
                       ({"sandbox": {"memory": "big"}}, "must be a number"),
                       ({"revoked": ["abc"]}, "at least 16"),
                       ({"color": 1}, "unknown setting(s) color")):
        with pytest.raises(JobConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
            load(bad)


def test_embedded_mode_is_unrestricted(tmp_path):
    import mapi
    from mapi.jobcontrol import authenticate
    assert authenticate("anything") == dict(principal=None, mode="in-process", restricted=False)
    with pytest.raises(mapi.MapiError, match="cannot read"):
        mapi.load_library(tmp_path / "missing.wasm")
