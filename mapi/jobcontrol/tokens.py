"""Credentials: Biscuit tokens (biscuit-python), KeyNote's delegation with today's tools.

The administrator's root key pair signs a principal's token (`mapi-admin issue`): its authority
block states the rights as facts and the limits as checks::

    principal("alice");
    right("device", "eth0");          right("device", "*") for every device
    right("function", "TOP");         by name ...
    right("class", "filter");         ... or by class (filter, counter, packets, export, code)
    right("load", "plain");           loading plain (unsandboxed) code into mapid
    filter_prefix("net 10.1.0.0/16");   check if prefix_applied("net 10.1.0.0/16");
    limit("flows", 4);                  reject if request("flows", 0, $n), $n > 4;
    expires(2026-01-01T00:00:00Z);      check if time($t), $t <= 2026-01-01T00:00:00Z;

A holder narrows its token offline (`mapi-admin attenuate`) by appending a block of checks: a
list of devices or functions outside which requests are rejected, one more filter term (the
server installs every block's filter, ANDed), lower limits, an earlier expiry.  A block cannot
widen anything: the server trusts rights only from the authority block, and every earlier
block's checks stay.  Limits of block i are checked against the usage of everything held under
block i (`request(quota, i, amount)`, see policy.py), so a delegate's quota is carved out of its
delegator's.  Each block has a revocation id (hex); revoking a block's id revokes every token
derived from it.
"""
import datetime
import os
import re

import biscuit_auth as bis

from mapi.errors import MapiError, EBADARG, EPERM

CLASSES = ("filter", "counter", "packets", "export", "code")
QUOTAS = ("flows", "functions_per_flow", "buffer_bytes", "code_bytes")
LOAD_KINDS = ("sandboxed", "plain")
UTC = datetime.timezone.utc
NONE = ":none"          # stands for an empty set in a check (Biscuit sets are never empty)


class TokenError(MapiError):
    """A token that cannot be used at all (bad encoding, signature, root key, revoked...)."""

    def __init__(self, message):
        super().__init__(EPERM, message, argument="token")


# --- keys ---------------------------------------------------------------------------------------
def new_keypair():
    """(private key hex, public key hex) of a new Ed25519 root key pair."""
    kp = bis.KeyPair()
    return kp.private_key.to_bytes().hex(), kp.public_key.to_bytes().hex()


def _hex_key(text, cls, what):
    text = text.strip()
    if text.startswith("ed25519/"):
        text = text[len("ed25519/"):]
    try:
        raw = bytes.fromhex(text)
        return cls.from_bytes(raw, bis.Algorithm.Ed25519)
    except (ValueError, TypeError, Exception) as exc:
        raise MapiError(EBADARG, "%s is not an Ed25519 key in hex (64 hex digits): %s"
                        % (what, exc), argument=what) from None


def public_key(text, what="root_public_key"):
    return _hex_key(text, bis.PublicKey, what)


def private_key(text, what="root private key"):
    if text.strip().startswith("ed25519/"):     # root.pub's form: any 32 bytes would sign
        raise MapiError(EBADARG, "%s is a public key (ed25519/...), not the root private key "
                        "(root.key)" % what, argument=what)
    return _hex_key(text, bis.PrivateKey, what)


def read_key_file(path, private=False):
    """A key written by `mapi-admin keygen` (hex on one line)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        raise MapiError(EBADARG, "cannot read key file %s: %s" % (path, exc.strerror),
                        file=path) from None
    return private_key(text, path) if private else public_key(text, path)


# --- issuing and attenuating ---------------------------------------------------------------------
def parse_expiry(value, now=None):
    """A datetime (UTC) from a datetime, an ISO 8601 text or a duration ("30d", "12h", "90m",
    "3600s") counted from now."""
    if value is None or isinstance(value, datetime.datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
    now = now or datetime.datetime.now(tz=UTC)
    m = re.fullmatch(r"(\d+)([smhd])", str(value).strip())
    if m:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        return now + datetime.timedelta(seconds=int(m.group(1)) * unit)
    try:
        t = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise MapiError(EBADARG, "expiry %r is neither a date (2026-01-31T00:00:00Z) nor a "
                        "duration (30d, 12h, 90m, 3600s)" % (value,), argument="expires") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _check_lists(classes, limits):
    bad = sorted(set(classes or ()) - set(CLASSES) - {"*"})
    if bad:
        raise MapiError(EBADARG, "unknown function class(es) %s (classes: %s)"
                        % (", ".join(bad), ", ".join(CLASSES)), argument="classes")
    for q, n in (limits or {}).items():
        if q not in QUOTAS:
            raise MapiError(EBADARG, "unknown limit %r (limits: %s)" % (q, ", ".join(QUOTAS)),
                            argument="limits")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise MapiError(EBADARG, "limit %s must be a whole number >= 0, not %r" % (q, n),
                            argument="limits")


def _limit_code(index, limits, out, params):
    for k, (q, n) in enumerate(sorted((limits or {}).items())):
        params["lq%d" % k], params["ln%d" % k] = q, n
        out.append("limit({lq%d}, {ln%d});" % (k, k))
        out.append("reject if request({lq%d}, %d, $n), $n > {ln%d};" % (k, index, k))


def _filter_code(expr, out, params):
    if expr:
        params["flt"] = expr
        out.append("filter_prefix({flt}); check if prefix_applied({flt});")


def _expiry_code(expires, out, params):
    if expires is not None:
        params["exp"] = expires
        out.append("expires({exp}); check if time($t), $t <= {exp};")


def issue(root_private, principal, devices=("*",), functions=(), classes=(), load=(),
          filter=None, limits=None, expires=None):
    """A new token for `principal` signed with the root private key (a PrivateKey or hex)."""
    if isinstance(root_private, str):
        root_private = private_key(root_private)
    if not principal or not isinstance(principal, str):
        raise MapiError(EBADARG, "a token needs a principal name", argument="principal")
    _check_lists(classes, limits)
    bad = sorted(set(load or ()) - set(LOAD_KINDS))
    if bad:
        raise MapiError(EBADARG, "unknown code kind(s) %s (kinds: %s)" % (", ".join(bad),
                        ", ".join(LOAD_KINDS)), argument="load")
    params = {"p": principal}
    code = ["principal({p});"]
    for kind, values in (("device", devices), ("function", functions), ("class", classes),
                         ("load", load)):
        for i, v in enumerate(values or ()):
            key = "%s%d" % (kind[0], i)
            params[key] = v
            code.append('right("%s", {%s});' % (kind, key))
    _filter_code(filter, code, params)
    _limit_code(0, limits, code, params)
    _expiry_code(parse_expiry(expires), code, params)
    return bis.BiscuitBuilder("\n".join(code), params).build(root_private)


def attenuate(token, devices=None, functions=None, classes=None, drop_load=(), filter=None,
              limits=None, expires=None):
    """The token with one more block narrowing it.  devices/functions/classes: when given, the
    only ones left (requests outside are rejected); drop_load: code kinds no longer loadable;
    filter: one more filter term; limits: lower limits; expires: an earlier expiry."""
    _check_lists(classes, limits)
    index = token.block_count()
    params = {}
    code = []
    # "*" keeps everything the token already has: no check (a block cannot widen anyway)
    if devices is not None and "*" not in devices:
        params["devs"] = set(devices) or {NONE}
        code.append("reject if device($d), !{devs}.contains($d);")
    if (functions is not None or classes is not None) and "*" not in (classes or ()):
        params["fns"] = set(functions or ()) or {NONE}
        params["cls"] = set(classes or ()) or {NONE}
        code.append("reject if function($f), class($c), !{fns}.contains($f), "
                    "!{cls}.contains($c);")
    for kind in drop_load or ():
        params["k_" + kind] = kind
        code.append("reject if kind({k_%s});" % kind)
    _filter_code(filter, code, params)
    _limit_code(index, limits, code, params)
    _expiry_code(parse_expiry(expires), code, params)
    if not code:
        if devices is None and functions is None and classes is None:
            raise MapiError(EBADARG, "attenuate: nothing to narrow (give devices, functions, "
                            "classes, a filter, limits or an expiry)")
        code.append("widened(false);")     # asked only for what it has: the block adds nothing
    return token.append(bis.BlockBuilder("\n".join(code), params))


# --- verifying -------------------------------------------------------------------------------------
def decode(text, root_public):
    """The Biscuit a client presented (base64 text), its signatures checked against the root
    public key; TokenError naming what is wrong."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    text = (text or "").strip()
    if not text:
        raise TokenError("empty token")
    try:
        unverified = bis.UnverifiedBiscuit.from_base64(text)
    except Exception:
        raise TokenError("the token is not a Biscuit (base64 of its bytes expected, %d "
                         "characters came)" % len(text)) from None
    try:
        return bis.Biscuit.from_base64(text, root_public)
    except Exception:
        raise TokenError("the token's signature does not verify against this server's root "
                         "public key (signed by another root key, or altered; %d blocks, first "
                         "block id %s)" % (unverified.block_count(),
                                           short_id(unverified.revocation_ids[0]))) from None


def short_id(rid):
    return rid[:16]


def read_token(value):
    """A token from a string: the token itself, or @PATH / a path to a file holding it."""
    value = value.strip()
    path = value[1:] if value.startswith("@") else value
    if value.startswith("@") or (os.path.sep in value and os.path.exists(path)):
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError as exc:
            raise MapiError(EBADARG, "cannot read token file %s: %s" % (path, exc.strerror),
                            file=path) from None
    return value
