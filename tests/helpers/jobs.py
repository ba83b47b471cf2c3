"""Job control in the tests: a real root key pair and real Biscuit tokens, mapid configs with a
[jobcontrol] table, a mixed trace with chosen address ranges, clients that present a token, and
the resource database read back."""
import json
import os
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .server import ROOT, clean_env, client_script


class Authority:
    """A root key pair (through mapi-admin keygen) and the tokens it signs."""

    def __init__(self, directory):
        self.dir = Path(directory)
        admin("keygen", "-o", str(self.dir))
        self.key = self.dir / "root.key"
        self.pub = self.dir / "root.pub"
        self.public = self.pub.read_text().strip()

    def issue(self, principal, *flags):
        return admin("issue", "--key", str(self.key), "--principal", principal, *flags)


def admin(*args, check=True):
    """Run mapi-admin (the console script's module) and return its stdout."""
    p = subprocess.run([sys.executable, "-c", "import sys; from mapi.admin import main; "
                        "sys.exit(main(sys.argv[1:]))", *args], capture_output=True, text=True,
                       env=clean_env(), cwd=str(ROOT), timeout=60)
    if check and p.returncode != 0:
        raise AssertionError("mapi-admin %s failed (%d): %s" % (" ".join(args), p.returncode,
                                                               p.stderr))
    return p.stdout.strip() if check else p


def attenuate(authority, token, *flags):
    return admin("attenuate", token, "--key", str(authority.pub), *flags)


def block_ids(token):
    return [b["id"] for b in json.loads(admin("inspect", token, "--json"))["blocks"]]


def jobs_config(database, root_public="", grants=None, capacity="", revoked=(), devices=None,
                extra=""):
    """mapid.toml text: offered devices, then the [jobcontrol] table."""
    out = []
    for name, path in (devices or {}).items():
        out.append('[devices.%s]\nfile = "%s"\n' % (name, path))
    out.append('[jobcontrol]\ndatabase = "%s"\n' % database)
    if root_public:
        out.append('root_public_key = "%s"\n' % root_public)
    out.append("revoked = [%s]\n" % ", ".join('"%s"' % r for r in revoked))
    out.append(extra)
    out.append("[jobcontrol.grants]\n")
    for uid, grant in (grants or {}).items():
        out.append('"%s" = %s\n' % (uid, grant))
    out.append(capacity)
    return "".join(out)


def run_client(mapid, body, token=None, user=None, args=(), timeout=120, env=None):
    """A client process on mapid presenting `token` (MAPI_TOKEN); returns its emitted JSON."""
    extra = dict(MAPI_SERVER=mapid.url, HOME=tempfile.gettempdir())
    if token:
        extra["MAPI_TOKEN"] = token
    extra.update(env or {})
    p = subprocess.run([sys.executable, "-c", client_script(body, user), *args],
                       env=clean_env(**extra), capture_output=True, text=True,
                       cwd=tempfile.gettempdir(), timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("client failed (%d):\n%s\nmapid log:\n%s" % (
            p.returncode, p.stderr, mapid.log_text()))
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith(("{", "["))]


def audit(database, wait_for=None, timeout=5.0, **where):
    """Audit rows (dicts) matching where (column=value); waits up to timeout for `wait_for`
    rows (allowed decisions are committed within a fraction of a second)."""
    deadline = time.monotonic() + timeout
    while True:
        db = sqlite3.connect("file:%s?mode=ro" % database, uri=True)
        db.row_factory = sqlite3.Row
        sql = "SELECT * FROM audit"
        if where:
            sql += " WHERE " + " AND ".join("%s = ?" % k for k in where)
        rows = [dict(r) for r in db.execute(sql + " ORDER BY id", list(where.values()))]
        db.close()
        if wait_for is None or len(rows) >= wait_for or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def query(database, sql, *args):
    db = sqlite3.connect("file:%s?mode=ro" % database, uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(sql, args)]
    finally:
        db.close()


# The end of a client body (client_script) checking isolation on the "mixed" device: `fd` is
# connected with PKT_COUNTER `c` and TO_BUFFER `buf`.  It replays the device, reads every packet
# and emits the count, the packets delivered, how many of them have no IPv4 address (IP or ARP)
# in 10.1.0.0/16, and the arguments of the flow's first function (the mandatory prefix's).
REPLAY_COUNTING_OUTSIDE_10_1 = """
import ipaddress
outside, n = 0, 0
mapi.start_offline_device("mixed")
while True:
    p = mapi.get_next_pkt(fd, buf)
    if p is None:
        break
    n += 1
    ip = p.decode().data
    addrs = [ipaddress.ip_address(getattr(ip, k)) for k in ("src", "dst") if hasattr(ip, k)]
    if hasattr(ip, "spa"):
        addrs = [ipaddress.ip_address(ip.spa), ipaddress.ip_address(ip.tpa)]
    if not any(a in ipaddress.ip_network("10.1.0.0/16") for a in addrs if a.version == 4):
        outside += 1
mapi.wait_offline_device("mixed")
emit({"count": mapi.read_results(fd, c).value, "delivered": n, "outside": outside,
      "first": mapi.get_flow_info(fd)["functions"][0]["args"]})
"""


# --- a trace with chosen addresses --------------------------------------------------------------
NETS = ("10.1", "10.2", "192.0")       # /16 prefixes the mixed trace draws addresses from


def mixed_trace(path, packets=6000, seed=5):
    """A pcap of IPv4 TCP/UDP/ICMP and some IPv6 and ARP frames whose addresses come from
    10.1.0.0/16, 10.2.0.0/16 and 192.0.0.0/16 in every combination (so `net 10.1.0.0/16`
    matches some and not others), ports mixed among 80, 443, 53 and random ones."""
    import random
    rnd = random.Random(seed)
    out = [struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1)]
    t = 1704067200
    for i in range(packets):
        frame = _frame(rnd)
        t_us = i * 137
        out.append(struct.pack("<IIII", t + t_us // 1000000, t_us % 1000000, len(frame), len(frame)))
        out.append(frame)
    Path(path).write_bytes(b"".join(out))
    os.chmod(path, 0o644)
    return path


def _ip(rnd):
    net = rnd.choice(NETS)
    return bytes(int(x) for x in net.split(".")) + bytes((rnd.randrange(256), rnd.randrange(1, 255)))


def _frame(rnd):
    eth = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"
    kind = rnd.random()
    if kind < 0.03:                                    # ARP request
        body = struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1) + eth[6:] + _ip(rnd) + b"\0" * 6 + _ip(rnd)
        return eth + b"\x08\x06" + body
    if kind < 0.08:                                    # IPv6 TCP to port 80 or 443
        payload = struct.pack(">HHIIBBHHH", rnd.randrange(1024, 65535), rnd.choice((80, 443)),
                              1, 0, 0x50, 0x18, 512, 0, 0)
        ip6 = struct.pack(">IHBB", 0x60000000, len(payload), 6, 64) + bytes(15) + b"\1" + \
            bytes(15) + b"\2"
        return eth + b"\x86\xdd" + ip6 + payload
    proto = rnd.choice((6, 6, 17, 1))
    sport, dport = rnd.randrange(1024, 65535), rnd.choice((80, 80, 443, 53, rnd.randrange(1, 65535)))
    if rnd.random() < 0.5:
        sport, dport = dport, sport
    data = bytes(rnd.randrange(0, 200))
    if proto == 6:
        l4 = struct.pack(">HHIIBBHHH", sport, dport, rnd.randrange(1 << 32), 0, 0x50, 0x18, 512,
                         0, 0) + data
    elif proto == 17:
        l4 = struct.pack(">HHHH", sport, dport, 8 + len(data), 0) + data
    else:
        l4 = struct.pack(">BBHHH", 8, 0, 0, 1, 1) + data
    ip = struct.pack(">BBHHHBBH", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0) + _ip(rnd) + _ip(rnd)
    return eth + b"\x08\x00" + ip + l4


def tcpdump_count(path, expr):
    out = subprocess.run(["tcpdump", "-n", "-r", str(path), expr], capture_output=True, text=True)
    if out.returncode != 0:
        raise AssertionError("tcpdump %r: %s" % (expr, out.stderr))
    return len(out.stdout.splitlines())
