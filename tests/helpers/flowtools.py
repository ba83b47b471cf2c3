"""Running the stock NetFlow tools for the FLOW_REPORT tests: nfcapd/nfdump as the collector,
softflowd as the reference meter, tshark as the decoder of captured export datagrams."""
import collections
import re
import socket
import subprocess
import time

import dpkt

from . import free_port, need_tool
from .pktbuild import ether, udp4

NFDUMP_FMT = "fmt:%pr|%sa|%sp|%da|%dp|%pkt|%byt"


def free_udp_port():
    return free_port(socket.SOCK_DGRAM)


class Nfcapd:
    """An nfcapd on 127.0.0.1:port writing into `directory`; records() stops it and returns
    nfdump's view: a Counter of (proto, src, sport, dst, dport, packets, bytes)."""

    def __init__(self, directory):
        self.dir = directory
        self.dir.mkdir(exist_ok=True)
        self.port = free_udp_port()
        self.proc = subprocess.Popen([need_tool("nfcapd"), "-w", str(self.dir), "-b", "127.0.0.1",
                                      "-p", str(self.port), "-B", "8000000"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        time.sleep(0.5)

    def stop(self):
        if self.proc.poll() is None:
            time.sleep(0.5)                       # let the last datagrams in
            self.proc.terminate()
            self.log = self.proc.communicate(timeout=30)[0].decode(errors="replace")
        return self.log

    def records(self):
        self.stop()
        out = subprocess.run([need_tool("nfdump"), "-R", str(self.dir), "-q", "-N", "-6", "-o", NFDUMP_FMT],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        rows = collections.Counter()
        for line in out.stdout.splitlines():
            f = [x.strip() for x in line.split("|")]
            if len(f) == 7:
                rows[(int(f[0]), f[1], port(f[2]), f[3], port(f[4]), int(f[5]), int(f[6]))] += 1
        return rows


def port(text):
    """A port as nfdump prints it; ICMP's type.code is type * 256 + code (NetFlow's dport)."""
    t, _, c = text.partition(".")
    return int(t) * 256 + int(c) if c else int(t)


def softflowd(trace, port, version, timeouts):
    """softflowd reading `trace`, exporting to 127.0.0.1:port."""
    args = [need_tool("softflowd"), "-d", "-r", str(trace), "-n", "127.0.0.1:%d" % port,
            "-v", str(version)]
    for name, value in timeouts.items():
        args += ["-t", "%s=%s" % (name, value)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


class UdpSink:
    """A UDP socket the export goes to; pcap() wraps what arrived into a capture (one UDP
    datagram per message, to `port`) for tshark and the project's collector."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]

    def messages(self):
        out = []
        while True:
            try:
                out.append(self.sock.recv(65535))
            except socket.timeout:
                return out


def export_pcap(path, messages, port=4739, t0=1700000000.0):
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f, snaplen=262144)
        for i, m in enumerate(messages):
            w.writepkt(ether(udp4("192.0.2.1", "192.0.2.2", 50000, port, m, ident=i & 0xFFFF)),
                       ts=t0 + i * 0.001)
    return path


def tshark_cflow(pcap, port):
    """tshark's decode of export datagrams: (records seen, lines with an error or a malformed
    mark)."""
    out = subprocess.run([need_tool("tshark"), "-r", str(pcap), "-d", "udp.port==%d,cflow" % port, "-V"],
                         capture_output=True, text=True, timeout=300)
    text = out.stdout
    problems = [ln for ln in text.splitlines()
                if "Malformed" in ln or "Expert Info (Error" in ln or "Expert Info (Warn" in ln
                or "[Data (" in ln or "unknown" in ln.lower()]
    flows = sum(1 for ln in text.splitlines()
                if re.fullmatch(r"(Flow \d+|pdu \d+/\d+)", ln.strip()))
    return flows, problems, text
