"""Framing on a Unix stream socket: a 4-byte little-endian length, then one Envelope; file
descriptors ride along as SCM_RIGHTS with the frame's first byte, `nfds` of them per frame."""
import array
import socket
import struct
import threading
from collections import deque

from . import PROTOCOL_VERSION, pb

HEADER = struct.Struct("<I")
MAX_MESSAGE = 16 << 20          # default bound on one frame (both sides)
MAX_FDS = 253                   # the kernel's SCM_MAX_FD
RECV_SIZE = 256 << 10
ANC_SPACE = socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)


class ProtocolError(Exception):
    """The peer sent something that is not a frame of this protocol."""


def envelope(id=0, nfds=0):
    return pb.Envelope(version=PROTOCOL_VERSION, id=id, nfds=nfds)


def encode(env):
    data = env.SerializeToString()
    return HEADER.pack(len(data)) + data


def send_frame(sock, env, fds=()):
    """Send one frame on a blocking socket, its descriptors with its first byte."""
    data = encode(env)
    if fds:
        sent = sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sent = sock.send(data)
    if sent < len(data):
        sock.sendall(data[sent:])


def close_fds(fds):
    import os
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


_local = threading.local()


def _scratch():
    """This thread's receive buffer: recvmsg(RECV_SIZE) would allocate (and fault in) 256 KiB
    for every read, however little came."""
    buf = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = memoryview(bytearray(RECV_SIZE))
    return buf


class FrameReader:
    """Bytes and descriptors received so far, cut into frames."""

    def __init__(self, max_message=MAX_MESSAGE):
        self.max_message = max_message
        self.buf = bytearray()
        self.fds = deque()

    def recv(self, sock, flags=0):
        """Read what the socket has; False at the end of the stream."""
        scratch = _scratch()
        n, anc, flags, _ = sock.recvmsg_into([scratch], ANC_SPACE, flags)
        data = scratch[:n]
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
                self.fds.extend(fds)
        if flags & socket.MSG_CTRUNC:
            raise ProtocolError("more descriptors than a frame may carry (%d)" % MAX_FDS)
        if not data:
            return False
        self.buf += data
        return True

    def frames(self):
        """Complete frames as (Envelope, [fds]); raises ProtocolError on a bad frame."""
        while len(self.buf) >= HEADER.size:
            (n,) = HEADER.unpack_from(self.buf)
            if n > self.max_message:
                raise ProtocolError("a frame of %d bytes exceeds the limit of %d" % (n, self.max_message))
            if len(self.buf) < HEADER.size + n:
                return
            raw = bytes(self.buf[HEADER.size:HEADER.size + n])
            del self.buf[:HEADER.size + n]
            try:
                env = pb.Envelope.FromString(raw)
            except Exception as exc:
                raise ProtocolError("a frame that is not an Envelope: %s" % exc) from None
            if env.nfds > len(self.fds):
                raise ProtocolError("a frame announces %d descriptors, %d arrived"
                                    % (env.nfds, len(self.fds)))
            yield env, [self.fds.popleft() for _ in range(env.nfds)]

    def close(self):
        close_fds(self.fds)
        self.fds.clear()
