"""mapi-admin keygen, issue, attenuate, inspect: root keys and tokens (no server involved)."""
import os

import biscuit_auth as bis

from mapi.errors import MapiError, EBADARG
from mapi.jobcontrol import tokens
from mapi.jobcontrol.rights import rights_of

QUOTA_FLAGS = (("--flows", "flows"), ("--functions-per-flow", "functions_per_flow"),
               ("--buffer-bytes", "buffer_bytes"), ("--code-bytes", "code_bytes"))


def _rights_flags(p, narrowing):
    what = "keep only" if narrowing else "grant"
    p.add_argument("--device", action="append", help="%s this device (repeat; '*' every "
                   "device, 'offline' the client's own traces)" % what)
    p.add_argument("--function", action="append", help="%s this function by name" % what)
    p.add_argument("--class", dest="classes", action="append", choices=tokens.CLASSES + ("*",),
                   help="%s this class of functions" % what)
    p.add_argument("--filter", help="mandatory filter (pcap-filter) in front of every flow"
                   + ("; ANDed with the token's" if narrowing else ""))
    for flag, quota in QUOTA_FLAGS:
        p.add_argument(flag, type=int, dest=quota, help="limit: %s" % quota.replace("_", " "))
    p.add_argument("--expires", help="expiry: ISO date (2026-01-31T00:00:00Z) or duration "
                   "(30d, 12h, 90m)")
    p.add_argument("-o", "--output", help="write the token here (mode 0600) instead of stdout")


def add_token_commands(sub):
    p = sub.add_parser("keygen", help="make the root key pair")
    p.add_argument("-o", "--dir", default=".", help="directory for root.key and root.pub")
    p.set_defaults(run=keygen)

    p = sub.add_parser("issue", help="issue a principal's token, signed by the root key")
    p.add_argument("--key", required=True, help="the root private key file (root.key)")
    p.add_argument("--principal", required=True)
    p.add_argument("--load", action="append", choices=tokens.LOAD_KINDS,
                   help="may load code of this kind (sandboxed also needs --class code)")
    _rights_flags(p, False)
    p.set_defaults(run=issue)

    p = sub.add_parser("attenuate", help="narrow a token offline (needs only the root public key)")
    p.add_argument("token", help="the token, or @FILE")
    p.add_argument("--key", required=True, help="the root public key file (root.pub: public, "
                   "handed out with tokens)")
    p.add_argument("--no-plain", action="store_true", help="no plain code loading any more")
    _rights_flags(p, True)
    p.set_defaults(run=attenuate)

    p = sub.add_parser("inspect", help="show a token's blocks, ids and rights")
    p.add_argument("token", help="the token, or @FILE")
    p.add_argument("--key", help="verify against this root public key file (root.pub)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=inspect)


def keygen(args):
    private, public = tokens.new_keypair()
    os.makedirs(args.dir, exist_ok=True)
    key = os.path.join(args.dir, "root.key")
    pub = os.path.join(args.dir, "root.pub")
    if os.path.exists(key):
        raise MapiError(EBADARG, "%s exists; remove it first (every token it signed would stop "
                        "verifying)" % key, file=key)
    _write(key, private + "\n", 0o600)
    _write(pub, "ed25519/%s\n" % public, 0o644)
    return "root key pair: %s (private, 0600) and %s\nroot_public_key = \"ed25519/%s\"" % (
        key, pub, public)


def _limits(args):
    return {q: getattr(args, q) for _, q in QUOTA_FLAGS if getattr(args, q) is not None}


def issue(args):
    token = tokens.issue(tokens.read_key_file(args.key, private=True), args.principal,
                         devices=args.device or (), functions=args.function or (),
                         classes=args.classes or (), load=args.load or (), filter=args.filter,
                         limits=_limits(args), expires=args.expires)
    return _emit(token, args)


def attenuate(args):
    token = tokens.decode(_token_text(args.token), tokens.read_key_file(args.key))
    narrowed = tokens.attenuate(token, devices=args.device, functions=args.function,
                                classes=args.classes, drop_load=("plain",) if args.no_plain else (),
                                filter=args.filter, limits=_limits(args), expires=args.expires)
    return _emit(narrowed, args)


def inspect(args):
    text = _token_text(args.token)
    if args.key:
        token = tokens.decode(text, tokens.read_key_file(args.key))
        r = rights_of(token)
    else:
        token = bis.UnverifiedBiscuit.from_base64(text)
        r = rights_of(token)
    out = dict(verified=bool(args.key), rights=r.summary(),
               blocks=[dict(index=i, id=rid, source=token.block_source(i))
                       for i, rid in enumerate(token.revocation_ids)])
    if args.json:
        return out
    lines = ["principal %s, %d block(s)%s" % (r.principal, len(r.ids),
                                              ", signature verified" if args.key else "")]
    for b in out["blocks"]:
        lines.append("block %d  id %s" % (b["index"], b["id"]))
        lines.extend("    " + line for line in b["source"].strip().splitlines())
    s = r.summary()
    lines.append("effective: filter %r, limits %s, expires %s" % (s["filter"], s["limits"],
                                                                   s["expires"]))
    return "\n".join(lines)


def _token_text(value):
    return tokens.read_token(value if value.startswith("@") else value)


def _emit(token, args):
    text = token.to_base64()
    if args.output:
        _write(args.output, text + "\n", 0o600)
        return "token written to %s (id %s)" % (args.output, token.revocation_ids[-1])
    return text


def _write(path, text, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)
