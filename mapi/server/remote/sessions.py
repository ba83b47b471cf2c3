"""Remote clients' sessions: each is mapid's ordinary Session (mapi.server.session) behind a
connection object that speaks gRPC instead of a Unix socket.  Replies go to the RPC waiting
for them, pushes to the session's Subscribe stream (bounded: beyond the backlog they are
dropped and counted, as for local clients).  A session belongs to the client certificate that
opened it; it ends, and its flows close, when its Subscribe stream ends."""
import itertools
import logging
import os
import threading
from collections import deque

from mapi.proto.wire import close_fds, encode

from .packets import RemoteRingReader

log = logging.getLogger("mapid.remote")
REMOTE_UID = 65534           # remote clients see only their own flows (as any uid but root)


class _Waiter:
    __slots__ = ("event", "env", "fds")

    def __init__(self):
        self.event = threading.Event()
        self.env = None
        self.fds = []


class RemoteConnection:
    """What a Session needs of its connection (id, send, lost_total), for one remote client."""

    def __init__(self, table, client_id, identity, peer):
        self.table = table
        self.id = client_id
        self.identity, self.name = identity
        self.peer = peer
        self.lock = threading.Lock()            # one call at a time, in the order they came
        self.closed = False
        self._waiters = {}
        self._wlock = threading.Lock()
        self._pushes = deque()
        self._push_bytes = 0
        self._push_cv = threading.Condition()
        self.lost = 0
        self.lost_total = 0
        self.rings = {}                         # (fd, fid) -> RemoteRingReader
        self._rids = itertools.count(1)
        self.session = table.make_session(self)
        self.session.program = "%s (remote, %s)" % (self.name, peer)

    # --- the Session's side -------------------------------------------------------------------
    def send(self, env, fds=(), push=False):
        if push or env.WhichOneof("body") == "push":
            self._push(env)
            close_fds(fds)
            return
        with self._wlock:
            w = self._waiters.pop(env.id, None)
        if w is None:
            close_fds(fds)
            return
        w.env, w.fds = env, list(fds)
        w.event.set()

    def _push(self, env):
        size = len(encode(env))
        with self._push_cv:
            if self.closed:
                return
            if self._push_bytes + size > self.table.max_backlog:
                self.lost += 1
                self.lost_total += 1
                return
            self._pushes.append(env)
            self._push_bytes += size
            self._push_cv.notify()

    # --- the RPCs' side -----------------------------------------------------------------------
    def call(self, env, fds, timeout):
        """Run one request in the session; its reply Envelope and descriptors, or None when no
        reply came within `timeout` seconds (a wait_offline_device that goes on)."""
        w = _Waiter()
        env.id = next(self._rids)          # the client's ids mean nothing across RPCs
        with self._wlock:
            self._waiters[env.id] = w
        with self.lock:
            if self.closed:
                close_fds(fds)
                return None
            self.session.handle(env, fds)
        if not w.event.wait(timeout):
            with self._wlock:
                self._waiters.pop(env.id, None)
            return None
        return w.env, w.fds

    def next_push(self, timeout):
        """The next push to stream (None: nothing within timeout); a Lost push when some had
        to be dropped."""
        with self._push_cv:
            if not self._pushes and not self.lost:
                self._push_cv.wait(timeout)
            if self._pushes:
                env = self._pushes.popleft()
                self._push_bytes -= len(encode(env))
                return env
            if self.lost:
                from mapi.proto.wire import envelope
                env = envelope()
                env.push.lost.messages, self.lost = self.lost, 0
                return env
            return None

    def attach_rings(self, fd, connected, fds):
        """The rings a connect reply passed: mapped here, streamed by Packets."""
        for i, b in enumerate(connected.buffers):
            reader = RemoteRingReader(fds[3 * i:3 * i + 3], b.mode, fd, b.fid)
            old = self.rings.pop((fd, b.fid), None)
            self.rings[(fd, b.fid)] = reader
            if old is not None:
                old.close()
        close_fds(fds[3 * len(connected.buffers):])

    def release_rings(self, fd=None):
        for key in [k for k in self.rings if fd is None or k[0] == fd]:
            self.rings.pop(key).close()

    def close(self):
        """The client is gone: its readers stop, then its flows close after its calls."""
        with self._push_cv:
            if self.closed:
                return
            self.closed = True
            self._pushes.clear()
            self._push_cv.notify_all()
        self.release_rings()
        with self._wlock:
            waiters, self._waiters = self._waiters, {}
        for w in waiters.values():
            w.event.set()
        with self.lock:
            try:
                self.session.cleanup()
            except Exception:
                log.exception("remote client %d: cleaning up", self.id)
        self.table.forget(self)
        log.info("remote client %d disconnected: %s", self.id, self.session.label())


class SessionTable:
    """Every remote session, by id."""

    def __init__(self, make_session, ids, max_backlog):
        self.make_session = make_session
        self.ids = ids
        self.max_backlog = max_backlog
        self.lock = threading.Lock()
        self.sessions = {}

    def open(self, identity, peer):
        conn = RemoteConnection(self, next(self.ids), identity, peer)
        with self.lock:
            self.sessions[conn.id] = conn
        log.info("remote client %d connected: %s", conn.id, conn.session.label())
        return conn

    def get(self, client_id):
        with self.lock:
            return self.sessions.get(client_id)

    def forget(self, conn):
        with self.lock:
            self.sessions.pop(conn.id, None)

    def all(self):
        with self.lock:
            return list(self.sessions.values())

    def close_all(self):
        for conn in self.all():
            conn.close()


def open_under(root, path, write):
    """A descriptor of `path` inside the directory `root` (a remote client names the sensor's
    own files): refused outside it, through a symbolic link out of it, or without a root."""
    from mapi.errors import MapiError, EPERM, EOPEN
    what = "written" if write else "replayed"
    if not root:
        raise MapiError(EPERM, "files on this sensor cannot be %s by remote clients (mapid "
                        "--remote-%s DIR allows a directory)" % (what, "output" if write
                                                                 else "traces"), file=path)
    real_root = os.path.realpath(root)
    full = os.path.realpath(os.path.join(real_root, path))
    if os.path.commonpath([real_root, full]) != real_root:
        raise MapiError(EPERM, "%s is outside the directory remote clients may use (%s)"
                        % (path, root), file=path)
    flags = (os.O_WRONLY | os.O_CREAT) if write else os.O_RDONLY    # TO_FILE truncates or appends
    try:
        return os.open(full, flags | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise MapiError(EOPEN, "cannot open %s on the sensor: %s" % (path, exc.strerror),
                        file=path) from None
