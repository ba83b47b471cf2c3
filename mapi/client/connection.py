"""A client's connection to mapid: requests and their replies, pushes, and the end.

Calls may come from any thread: each sends its request and waits for its own reply (with the
descriptors that came along).  A waiting call reads the socket itself when nobody else does
(no hand-over between threads on the usual path); once the process reads shared rings or
events (need_reader), a background thread reads it the rest of the time, for pushed events and
for the end of the connection (a process that only makes calls has no thread woken with each
answer).  When the server goes away every waiting call, ring reader and event reader gets a
MapiError(ESERVER) at once."""
import itertools
import logging
import os
import select
import socket
import threading

from mapi.errors import MapiError, ESERVER
from mapi.proto import PROTOCOL_VERSION, pb
from mapi.proto.values import from_map
from mapi.proto.wire import FrameReader, ProtocolError, close_fds, envelope, send_frame

log = logging.getLogger("mapi.client")
CLIENT_NAME = "mapi-python 0.1.0"


def error_from(msg):
    return MapiError(msg.code, msg.message, **from_map(msg.where))


class _Waiter:
    __slots__ = ("event", "reply", "error", "fds")

    def __init__(self):
        self.event = threading.Event()
        self.reply = self.error = None
        self.fds = []


class Connection:
    def __init__(self, path, on_push, on_dead):
        self.path = path
        self.on_push = on_push                # (pb.Push, fds), reader thread
        self.on_dead = on_dead                # (MapiError), reader thread
        self.pid = os.getpid()
        self.dead = None
        self._ids = itertools.count(1)
        self._pending = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._io = threading.Condition()      # who reads the socket: a caller, or the thread
        self._leader = False
        self._reading = False
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self.sock.connect(path)
        except OSError as exc:
            self.sock.close()
            raise MapiError(ESERVER, "cannot reach the MAPI server at %s: %s (is mapid running? "
                            "MAPI_SERVER=unix:%s)" % (path, exc.strerror, path),
                            argument="MAPI_SERVER") from None
        self.reader = FrameReader()
        self.thread = None
        hello = pb.Request(hello=pb.Hello(version=PROTOCOL_VERSION, client=CLIENT_NAME))
        self.server = self.call(hello).hello

    def need_reader(self):
        """Something now waits for pushes or for the end of the connection outside a call (a
        ring or event reader): read the socket in the background from now on."""
        with self._io:
            if self.thread is not None or self.dead is not None:
                return
            self.thread = threading.Thread(target=self._read_loop, name="mapi-client",
                                           daemon=True)
            self.thread.start()

    def call(self, request, fds=()):
        """Send a Request; returns its Reply (the descriptors that came with it in .fds of the
        returned object's holder: use call_fds for those)."""
        return self.call_fds(request, fds)[0]

    def call_fds(self, request, fds=()):
        if self.dead is not None:
            raise self.dead
        w = _Waiter()
        with self._lock:
            rid = next(self._ids)
            self._pending[rid] = w
        env = envelope(rid, len(fds))
        env.request.CopyFrom(request)
        try:
            with self._send_lock:
                send_frame(self.sock, env, fds)
        except OSError as exc:
            with self._lock:
                self._pending.pop(rid, None)
            self._die("sending to the MAPI server at %s failed: %s" % (self.path, exc.strerror))
            raise self.dead from None
        self._await(w)
        if w.error is not None:
            close_fds(w.fds)
            raise w.error
        return w.reply, w.fds

    def _await(self, w):
        """Wait for w's reply, reading the socket in this thread when nobody else is."""
        with self._io:
            # another call or the background thread reads meanwhile: it hands the reply over,
            # or this call reads once that one got its own
            while not w.event.is_set() and (self._leader or self._reading):
                self._io.wait()
            if w.event.is_set():
                return
            self._leader = True
        try:
            while not w.event.is_set() and self.dead is None:
                if not self._receive(0):
                    break
        finally:
            with self._io:
                self._leader = False
                self._io.notify_all()
        w.event.wait()

    def _receive(self, flags):
        """Read and dispatch what the socket has; False once the connection is over."""
        try:
            more = self.reader.recv(self.sock, flags)
            for env, fds in self.reader.frames():
                self._dispatch(env, fds)
        except BlockingIOError:
            return True
        except (OSError, ProtocolError) as exc:
            self._die("the connection to the MAPI server at %s broke: %s" % (self.path, exc))
            return False
        if not more:
            self._die("the MAPI server at %s closed the connection (mapid stopped or was "
                      "killed)" % self.path)
        return more

    def _read_loop(self):
        """Pushes and the end of the connection while no call is reading."""
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        while self.dead is None:
            try:
                poller.poll()
            except OSError:
                pass
            with self._io:
                while self._leader:
                    self._io.wait()
                self._reading = True
            try:
                if not self._receive(socket.MSG_DONTWAIT):
                    return
            finally:
                with self._io:
                    self._reading = False
                    self._io.notify_all()       # a call waiting to read may now

    def _dispatch(self, env, fds):
        body = env.WhichOneof("body")
        if body == "push":
            try:
                self.on_push(env.push, fds)
            except Exception:
                log.exception("handling a push from the server failed")
            return
        with self._lock:
            w = self._pending.pop(env.id, None)
        if w is None:
            close_fds(fds)
            return
        w.fds = fds
        if body == "reply":
            w.reply = env.reply
        else:
            w.error = error_from(env.error) if body == "error" else MapiError(
                ESERVER, "the MAPI server answered with a %s" % body)
        with self._io:
            w.event.set()
            self._io.notify_all()

    def _die(self, reason):
        with self._lock:
            if self.dead is not None:
                return
            self.dead = MapiError(ESERVER, reason)
            pending, self._pending = self._pending, {}
        with self._io:
            for w in pending.values():
                w.error = self.dead
                w.event.set()
            self._io.notify_all()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.on_dead(self.dead)
        except Exception:
            log.exception("cleaning up after the server went away failed")

    def close(self):
        self._die("the connection to the MAPI server was closed by this process")
        if self.thread is not None and threading.current_thread() is not self.thread:
            self.thread.join(1.0)
        self.sock.close()
        self.reader.close()
