"""NetFlow/IPFIX exports as test inputs and nfdump as their reference: the corpus's export
groups (files in the manifest's replay order), their UDP payloads, a capture of them for an
offline collector device, and nfcapd + nfdump fed the same payloads."""
import csv
import functools
import re
import socket
import subprocess
import time

import dpkt

from . import CORPUS, need_tool
from .flowtools import Nfcapd, export_pcap


@functools.lru_cache(maxsize=None)
def corpus_groups():
    """{group: [corpus-relative files in replay order]} from the manifest, and the
    softflowd-derived captures as groups of one."""
    groups = {}
    with open(str(CORPUS / "manifest.tsv")) as f:
        for row in csv.reader(f, delimiter="\t"):
            if len(row) > 15 and "files replayed in order:" in row[10]:
                groups[row[15]] = ["netflow/" + x for x in row[10].split("files replayed in order:")[1].split()]
            elif row and row[0].startswith("derived/") and "softflowd" in row[0]:
                groups[row[0]] = [row[0]]
    return groups


def udp_payloads(files):
    """The UDP payloads (export messages) of corpus captures, in order."""
    out = []
    for name in files:
        with open(str(CORPUS / name), "rb") as f:
            for _, buf in dpkt.pcap.Reader(f):
                ip = dpkt.ethernet.Ethernet(buf).data
                if isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)) and isinstance(ip.data, dpkt.udp.UDP):
                    out.append(bytes(ip.data.data))
    return out


def nfcapd_of(messages, directory):
    """nfcapd fed `messages` from one socket (as the capture export_pcap makes shows them: one
    exporter); returns the directory nfdump reads."""
    cap = Nfcapd(directory)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i, m in enumerate(messages):
            s.sendto(m, ("127.0.0.1", cap.port))
            if i % 16 == 15:
                time.sleep(0.002)           # nfcapd reads one datagram at a time
    cap.stop()
    return directory


def captured(messages, path):
    """The messages as a capture for create_offline_device(path, backend="netflow")."""
    return export_pcap(path, messages)


def nfdump(directory, *args):
    out = subprocess.run([need_tool("nfdump"), "-R", str(directory), "-q", "-N"] + list(args),
                         capture_output=True, text=True, timeout=120)
    return out


def nfdump_select(directory, expr):
    """(records, packets, bytes) of the records nfdump's filter `expr` selects."""
    out = nfdump(directory, "-o", "fmt:%pkt %byt", expr)
    assert out.returncode == 0, (expr, out.stderr)
    rows = [ln.split() for ln in out.stdout.splitlines()
            if ln.split() and all(x.isdigit() for x in ln.split())]
    return len(rows), sum(int(p) for p, _ in rows), sum(int(b) for _, b in rows)


def nfdump_quirks(directory):
    """What of nfdump's view of these exports does not compare: "family" when templates carry
    both IPv4 and IPv6 addresses (nfdump keeps the IPv4 one as ::a.b.c.d and calls the record
    IPv6), "times" when its records end before they start or have no times."""
    out = nfdump(directory, "-o", "fmt:%sa %da %ts %te")
    quirks = set()
    for ln in out.stdout.splitlines():
        f = ln.split()
        if len(f) < 6:
            continue
        if any(a == "::" or re.fullmatch(r"::\d+\.\d+\.\d+\.\d+", a) for a in f[:2]):
            quirks.add("family")
        if " ".join(f[2:4]) > " ".join(f[4:6]) or f[2].startswith("1970-"):
            quirks.add("times")             # reversed, or times nfdump did not decode
    return quirks
