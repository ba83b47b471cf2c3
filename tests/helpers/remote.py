"""Remote MAPI for the tests: certificates (mapi-admin certs' functions), mapid processes that
listen with mutual TLS on loopback, and sensors: a mapid in its own network namespace that
captures a veth pair fed by tcpreplay and is reached over a second veth pair (a /30 of
198.19.0.0/16, a benchmarking range, inside namespaces the test made; nothing leaves the
machine)."""
import datetime
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from . import free_port
from .server import OPEN_JOBS, ROOT, Mapid, clean_env

from tools import netns                          # noqa: E402  (helpers.server put ROOT on the path)
from mapi.admin import certs

PORT = 7000


def wait_port(host, port, proc=None, timeout=30, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("mapid exited with %s:\n%s" % (proc.returncode,
                                                             log.read_text() if log else ""))
        try:
            socket.create_connection((host, port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on %s:%d after %d s" % (host, port, timeout))


class Certs:
    """A CA with a server certificate per address, a good client, and the bad ones: a client of
    another CA and an expired client of the right CA."""

    def __init__(self, directory, addresses=("127.0.0.1",)):
        self.dir = Path(directory) / "pki"
        certs.make_ca(str(self.dir))
        self.server = {}
        for addr in addresses:
            self.add_server(addr)
        self.client = certs.issue(str(self.dir), "alice", "client")
        other = Path(directory) / "other-pki"
        certs.make_ca(str(other), "Another CA")
        self.foreign = certs.issue(str(other), "mallory", "client")
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
        self.expired = certs.issue(str(self.dir), "expired", "client", days=1, not_before=past)
        self.ca = str(self.dir / "ca.pem")

    def add_client(self, name):
        """A client certificate of this CA for `name` (its common name: job control's
        grants name remote clients by it); (cert, key)."""
        return certs.issue(str(self.dir), name, "client")

    def add_server(self, addr):
        self.server[addr] = certs.issue(str(self.dir), "server-" + addr, "server", [addr])
        return self.server[addr]

    def tls(self, which=None):
        cert, key = which or self.client
        return dict(ca=self.ca, cert=cert, key=key)

    def env(self, which=None):
        t = self.tls(which)
        return dict(MAPI_TLS_CA=t["ca"], MAPI_TLS_CERT=t["cert"], MAPI_TLS_KEY=t["key"])

    def mapid_args(self, addr, port):
        cert, key = self.server[addr]
        return ["--listen", "%s:%d" % (addr, port), "--tls-cert", cert, "--tls-key", key,
                "--tls-client-ca", self.ca]


def pki_fixture():
    """A module-scoped `pki` fixture: the Certs of a new CA in a temporary directory."""
    @pytest.fixture(scope="module", name="pki")
    def pki(tmp_path_factory):
        return Certs(tmp_path_factory.mktemp("pki"))
    return pki


class RemoteMapid(Mapid):
    """A mapid on loopback that also listens remotely (127.0.0.1:port); `config` as Mapid's
    (by default job control open to every client)."""

    def __init__(self, directory, pki, traces=None, extra=(), port=None, config=None):
        self.port = port or free_port()
        args = pki.mapid_args("127.0.0.1", self.port) + list(extra)
        if traces:
            args += ["--remote-traces", str(traces)]
        super().__init__(directory, config=config, args=args)
        wait_port("127.0.0.1", self.port, self.proc, log=self.log)
        self.remote_url = "grpcs://127.0.0.1:%d" % self.port


class Sensor:
    """mapid in the rx namespace of a VethPair, capturing rx_if; reachable at self.addr."""

    def __init__(self, index, directory, pki):
        self.index = index
        self.dir = Path(directory) / ("sensor%d" % index)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.net = netns.VethPair(tag="%s%d-r%d" % (netns.PREFIX, os.getpid(), index))
        self.net.__enter__()
        try:
            self._control_link()
        except BaseException:
            self.net.destroy()
            raise
        self.pki = pki
        pki.add_server(self.addr)
        self.proc = None
        self.start()

    def _control_link(self):
        base = 4 * (self.index + 1)
        third = os.getpid() % 250
        self.host_addr = "198.19.%d.%d" % (third, base + 1)
        self.addr = "198.19.%d.%d" % (third, base + 2)
        suffix = self.net.tag.replace(netns.PREFIX, "")[-9:]
        self.host_if, self.ns_if = "ch%s" % suffix, "cs%s" % suffix
        run = netns._run
        run(["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if,
             "netns", self.net.ns_rx])
        run(["ip", "addr", "add", self.host_addr + "/30", "dev", self.host_if])
        run(["ip", "link", "set", self.host_if, "up"])
        self.net.ns_exec(self.net.ns_rx, ["ip", "addr", "add", self.addr + "/30", "dev", self.ns_if])
        self.net.ns_exec(self.net.ns_rx, ["ip", "link", "set", self.ns_if, "up"])

    def control_link(self, up):
        """The sensor's end of the control link up or down.  (Never this machine's end: with
        it down the route to the sensor would go and packets could leave by the default route.)"""
        self.net.ns_exec(self.net.ns_rx, ["ip", "link", "set", self.ns_if, "up" if up else "down"])

    @property
    def url(self):
        return "grpcs://%s:%d" % (self.addr, PORT)

    def device_url(self, backend="ring"):
        return "%s/%s:%s" % (self.url, backend, self.net.rx_if)

    def start(self):
        self.log = self.dir / "mapid.log"
        config = self.dir / "mapid.toml"          # job control open to every client
        config.write_text(OPEN_JOBS % (self.dir / "mapid.db"))
        cmd = [sys.executable, "-m", "mapi.server", "--socket", str(self.dir / "mapid.sock"),
               "--config", str(config), *self.pki.mapid_args(self.addr, PORT)]
        self._log = open(self.log, "ab")
        self.proc = self.net.spawn(self.net.ns_rx, cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                   env=clean_env(PYTHONFAULTHANDLER="1"), cwd=str(ROOT))
        wait_port(self.addr, PORT, self.proc, log=self.log)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def replay(self, path, pps=20000):
        return self.net.replay(path, pps=pps)

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if not self._log.closed:
            self._log.close()
        netns._run(["ip", "link", "del", self.host_if], check=False)
        self.net.destroy()


def client_env(pki, which=None, **extra):
    env = clean_env(**pki.env(which))
    env.update(extra)
    return env


__all__ = ["Certs", "RemoteMapid", "Sensor", "client_env", "free_port", "pki_fixture", "ROOT"]


def count_grpc_calls(monkeypatch):
    """The list that every gRPC Call of this process appends its call's name to (the
    client's requests, counted on the wire side of mapi.client.grpc_session)."""
    from mapi.client import grpc_session
    sent = []
    real = grpc_session.GrpcSession.call

    def counted(self, request, timeout=None):
        sent.append(request.WhichOneof("call"))
        return real(self, request, timeout)
    monkeypatch.setattr(grpc_session.GrpcSession, "call", counted)
    return sent
