"""One session with a remote mapid: the Subscribe stream that opened it (pushes arrive there;
its end is the session's end), calls with a deadline each, and Packets streams.

A call that meets a dead or unreachable server raises MapiError(ESERVER) naming the server
and what happened, at once or at its deadline, never later; the session is then over (the
server closed its flows) and the owner opens a new one."""
import itertools
import threading

import grpc

from mapi.errors import MapiError, ESERVER, ETIMEOUT
from mapi.lazylog import getLogger
from mapi.proto import PROTOCOL_VERSION, grpc_stubs, pb
from mapi.proto.values import from_map
from mapi.proto.wire import envelope

from .grpc_channel import CHANNEL_OPTIONS
from .grpc_packets import read_batch

log = getLogger("mapi.client")   # a library does not print: "mapi" gets its NullHandler
CLIENT_NAME = "mapi-python 0.1.0 (grpc)"
SESSION_KEY = "mapi-session"
PACKETS_METHOD = "/scampi.mapi.v1.Mapi/Packets"
# the transport's word for "this server is not there (any more)"
GONE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.FAILED_PRECONDITION)


def _status(exc):
    code = exc.code() if hasattr(exc, "code") else None
    detail = exc.details() if hasattr(exc, "details") else str(exc)
    return code, detail


class GrpcSession:
    def __init__(self, url, target, credentials, deadline, on_push, on_dead):
        self.url = url
        self.deadline = deadline
        self.on_push = on_push                  # (pb.Push), the stream's thread
        self.on_dead = on_dead                  # (MapiError), once
        self.dead = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.channel = grpc.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
        self.stub = grpc_stubs().MapiStub(self.channel)
        # the generated stub's Packets but for the batches' deserializer (grpc_packets)
        self._packets = self.channel.unary_stream(
            PACKETS_METHOD, request_serializer=pb.PacketsRequest.SerializeToString,
            response_deserializer=read_batch)
        hello = envelope(next(self._ids))
        hello.request.hello.version = PROTOCOL_VERSION
        hello.request.hello.client = CLIENT_NAME
        self._stream = self.stub.Subscribe(hello)
        self._hello = None
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._read_pushes, daemon=True,
                                       name="mapi-grpc-%s" % target)
        self.thread.start()
        if not self._ready.wait(deadline) or self._hello is None:
            self._die("no session within %.3g s" % deadline if self.dead is None else None)
            self.close()
            raise self.dead
        self.server = self._hello
        self.metadata = ((SESSION_KEY, str(self._hello.you.client_id)),)

    def _read_pushes(self):
        try:
            for env in self._stream:
                if self._hello is None:
                    if env.WhichOneof("body") == "error":
                        self._die(env.error.message)
                    else:
                        self._hello = env.reply.hello
                    self._ready.set()
                    continue
                if env.WhichOneof("body") == "push":
                    try:
                        self.on_push(env.push)
                    except Exception:
                        log.exception("handling a push from %s failed", self.url)
            self._die("the server ended the session")
        except grpc.RpcError as exc:
            code, detail = _status(exc)
            self._die("%s (%s)" % (detail, code.name if code else "?"))
        finally:
            self._ready.set()

    def _die(self, reason):
        with self._lock:
            if self.dead is not None or reason is None:
                return
            self.dead = MapiError(ESERVER, "the MAPI server %s is unreachable or went away: %s"
                                  % (self.url, reason), server=self.url)
        try:
            self.on_dead(self.dead)
        except Exception:
            log.exception("cleaning up after %s went away failed", self.url)
        # a dead session's channel must not go on reconnecting by itself: the owner decides
        # when to try again (and stops trying once it has no flows there)
        threading.Thread(target=self.channel.close, daemon=True).start()

    def call(self, request, timeout=None):
        """The Reply to a Request (MapiError: the server's error, or ESERVER/ETIMEOUT)."""
        if self.dead is not None:
            raise self.dead
        env = envelope(next(self._ids))
        env.request.CopyFrom(request)
        deadline = self.deadline if timeout is None else timeout
        try:
            out = self.stub.Call(env, timeout=deadline, metadata=self.metadata)
        except grpc.RpcError as exc:
            code, detail = _status(exc)
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise MapiError(ETIMEOUT, "the MAPI server %s did not answer %s within %.3g s"
                                % (self.url, request.WhichOneof("call"), deadline),
                                server=self.url) from None
            if code in GONE:
                self._die("%s (%s)" % (detail, code.name))
                raise self.dead from None
            raise MapiError(ESERVER, "the MAPI server %s refused %s: %s (%s)"
                            % (self.url, request.WhichOneof("call"), detail,
                               code.name if code else "?"), server=self.url) from None
        except ValueError:
            raise self._closed_under_us() from None
        body = out.WhichOneof("body")
        if body == "error":
            raise MapiError(out.error.code, out.error.message, **from_map(out.error.where))
        if body != "reply":
            raise MapiError(ESERVER, "the MAPI server %s answered with a %s" % (self.url, body))
        return out.reply

    def packets(self, fd, fid):
        """The Packets stream of a connected TO_BUFFER (an iterator of PacketBatch; cancel()
        ends it)."""
        if self.dead is not None:
            raise self.dead
        try:
            return self._packets(pb.PacketsRequest(fd=fd, fid=fid), metadata=self.metadata)
        except ValueError:
            raise self._closed_under_us() from None

    def _closed_under_us(self):
        """grpc's ValueError for a call on a closed channel: the session died between the
        caller's look at it and the call (its channel is closed by _die's thread)."""
        self._die("its channel was closed")
        return self.dead

    def close(self):
        self._die("closed by this process")
        try:
            self._stream.cancel()
        except Exception:
            pass
        self.channel.close()
