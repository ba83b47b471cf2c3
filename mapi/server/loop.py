"""mapid's I/O loop: one thread owns every socket (accept, read, write, non-blocking); the calls
of each client run in order on a small worker pool, so a slow call of one client (a connect
waiting for the engine's batch to end) never holds up another client's calls.  Workers and
engine threads hand work back to the loop with post(); pushes to a client that does not read its
socket are bounded (dropped and counted, never buffered without limit)."""
import array
import errno
import heapq
import itertools
import logging
import os
import selectors
import socket
import struct
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from mapi.proto.wire import FrameReader, ProtocolError, close_fds, encode, envelope

from .priority import control_priority

log = logging.getLogger("mapid")
UCRED = struct.Struct("3i")


class Connection:
    """One client's socket, its output queue and its queue of calls."""

    def __init__(self, server, sock, client_id):
        self.server = server
        self.sock = sock
        self.id = client_id
        self.reader = FrameReader(server.max_message)
        self.out = deque()              # [memoryview of a frame, fds not yet sent]
        self.out_bytes = 0
        self.lost = 0                   # pushes dropped since the last Lost push
        self.lost_total = 0
        self.calls = deque()
        self.calls_lock = threading.Lock()
        self.busy = False
        self.closed = False
        self.writing = False            # registered for EVENT_WRITE (output waits)
        pid, uid, gid = UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                     UCRED.size))
        self.session = server.make_session(self, pid, uid, gid)

    # --- input (loop thread) ------------------------------------------------------------------
    def on_readable(self):
        try:
            more = self.reader.recv(self.sock)
            frames = list(self.reader.frames())
        except (ProtocolError, OSError) as exc:
            log.warning("client %d (%s): %s; disconnecting", self.id, self.session.label(), exc)
            self.server.drop(self)
            return
        for env, fds in frames:
            if env.WhichOneof("body") != "request":
                close_fds(fds)
                continue
            with self.calls_lock:
                idle = not self.busy and not self.calls
            if idle and self.session.quick(env.request):
                self.session.handle(env, fds)       # quick: no hand-off to a worker
            else:
                self.enqueue((env, fds))
        if not more:
            self.server.drop(self)

    def enqueue(self, item):
        with self.calls_lock:
            self.calls.append(item)
            if self.busy:
                return
            self.busy = True
        self.server.pool.submit(self._work)

    def _work(self):
        """Run this client's calls in order (one worker at a time per client)."""
        while True:
            with self.calls_lock:
                if not self.calls:
                    self.busy = False
                    return
                item = self.calls.popleft()
            if item is None:                    # the connection ended: clean up after the calls
                self.session.cleanup()
                continue
            env, fds = item
            try:
                self.session.handle(env, fds)
            except Exception:
                log.exception("client %d: call %s failed", self.id, env.request.WhichOneof("call"))

    # --- output -------------------------------------------------------------------------------
    def send(self, env, fds=(), push=False):
        """Queue a frame (any thread); pushes beyond the client's backlog limit are dropped."""
        data = encode(env)
        if self.server.on_loop():
            self._queue(data, list(fds), push)      # a quick call's reply goes out at once
        else:
            self.server.post(lambda: self._queue(data, list(fds), push))

    def _queue(self, data, fds, push):
        if self.closed:
            close_fds(fds)
            return
        if push and self.out_bytes + len(data) > self.server.max_backlog:
            self.lost += 1
            self.lost_total += 1
            close_fds(fds)
            return
        self.out.append([memoryview(data), fds])
        self.out_bytes += len(data)
        self.flush()

    def flush(self):
        try:
            while self.out:
                chunk = self.out[0]
                data, fds = chunk
                if fds:
                    sent = self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                       array.array("i", fds))])
                    close_fds(fds)
                    chunk[1] = []
                else:
                    sent = self.sock.send(data)
                self.out_bytes -= sent
                if sent < len(data):
                    chunk[0] = data[sent:]
                    break
                self.out.popleft()
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET):
                log.warning("client %d: %s", self.id, exc)
            self.server.drop(self)
            return
        if self.lost and not self.out:
            lost, self.lost = self.lost, 0
            env = envelope()
            env.push.lost.messages = lost
            self._queue(encode(env), [], False)
            return
        self.server.want_write(self, bool(self.out))

    def close(self):
        self.closed = True
        for data, fds in self.out:
            close_fds(fds)
        self.out.clear()
        self.reader.close()
        try:
            self.sock.close()
        except OSError:
            pass


class Server:
    def __init__(self, path, make_session, workers=4, max_message=16 << 20, max_backlog=64 << 20,
                 socket_mode=0o666):
        self.path = path
        self.make_session = make_session
        self.max_message = max_message
        self.max_backlog = max_backlog
        self.sel = selectors.DefaultSelector()
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mapid-call",
                                       initializer=control_priority)
        self.posted = deque()
        self.timers = []
        self._timer_seq = itertools.count()
        self.connections = {}
        self._ids = itertools.count(1)
        self.stopping = False
        self.loop_ident = None
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.sel.register(self.wake_r, selectors.EVENT_READ, None)
        self.listener = self._listen(path, socket_mode)
        self.sel.register(self.listener, selectors.EVENT_READ, self)

    @staticmethod
    def _listen(path, mode):
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o755, exist_ok=True)
        if os.path.exists(path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)            # a stale socket of a mapid that died
            else:
                probe.close()
                raise SystemExit("mapid: another mapid is listening on %s" % path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.bind(path)
        os.chmod(path, mode)
        sock.listen(128)
        sock.setblocking(False)
        return sock

    # --- cross-thread ---------------------------------------------------------------------------
    def on_loop(self):
        return threading.get_ident() == self.loop_ident

    def post(self, fn):
        """Run fn() on the loop thread (from any thread)."""
        self.posted.append(fn)
        try:
            os.write(self.wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def call_later(self, seconds, fn):
        """On the loop thread only: run fn() after `seconds`; returns a handle for cancel()."""
        entry = [time.monotonic() + seconds, next(self._timer_seq), fn]
        heapq.heappush(self.timers, entry)
        return entry

    @staticmethod
    def cancel(entry):
        entry[2] = None

    def want_write(self, conn, on):
        if conn.closed or conn.writing == on:
            return
        conn.writing = on
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if on else 0)
        try:
            self.sel.modify(conn.sock, events, conn)
        except (KeyError, ValueError):
            pass

    # --- the loop -----------------------------------------------------------------------------
    def run(self):
        self.loop_ident = threading.get_ident()
        control_priority()
        while not self.stopping:
            timeout = None
            if self.timers:
                timeout = max(0.0, self.timers[0][0] - time.monotonic())
            for key, mask in self.sel.select(timeout):
                target = key.data
                if target is None:
                    try:
                        while os.read(self.wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                elif target is self:
                    self._accept()
                else:
                    try:
                        if mask & selectors.EVENT_WRITE and not target.closed:
                            target.flush()
                        if mask & selectors.EVENT_READ and not target.closed:
                            target.on_readable()
                    except Exception:
                        # a bug met while serving one client costs that client, not mapid
                        log.exception("client %d (%s): internal error; disconnecting",
                                      target.id, target.session.label())
                        self.drop(target)
            self._run_posted()
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                fn = heapq.heappop(self.timers)[2]
                if fn is not None:
                    fn()

    def _run_posted(self):
        while self.posted:
            fn = self.posted.popleft()
            try:
                fn()
            except Exception:
                log.exception("posted work failed")

    def _accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("accept: %s", exc)
                return
            sock.setblocking(False)
            conn = Connection(self, sock, next(self._ids))
            self.connections[conn.id] = conn
            self.sel.register(sock, selectors.EVENT_READ, conn)
            log.info("client %d connected: %s", conn.id, conn.session.label())

    def drop(self, conn):
        """The client went away (or broke the protocol): close its socket, then clean up its
        flows after the calls it already sent."""
        if conn.closed:
            return
        try:
            self.sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.close()
        self.connections.pop(conn.id, None)
        log.info("client %d disconnected: %s", conn.id, conn.session.label())
        conn.enqueue(None)

    def stop(self):
        self.stopping = True
        self.post(lambda: None)

    def shutdown(self):
        """After run(): disconnect every client, clean up their sessions, remove the socket."""
        for conn in list(self.connections.values()):
            self.drop(conn)
        self.pool.shutdown(wait=True)
        try:
            self.sel.unregister(self.listener)
        except (KeyError, ValueError):
            pass
        self.listener.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.wake_r)
        os.close(self.wake_w)
