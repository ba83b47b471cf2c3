"""The Mapi gRPC service (mapi.proto): Subscribe opens a session and streams its pushes, Call
runs one request in it, Packets streams a TO_BUFFER.  The requests and replies are the local
protocol's Envelopes; what differs is what a remote client cannot do: pass descriptors.  Its
traces and TO_FILE targets are the sensor's own files under the directories mapid was given
(--remote-traces, --remote-output), opened here and handed to the session as if passed."""
import logging
import threading

import grpc

from mapi.descriptor import passed_file
from mapi.errors import MapiError, EBADARG, EPERM, ETIMEOUT
from mapi.proto import grpc_stubs, pb
from mapi.proto.values import from_value
from mapi.proto.wire import close_fds, envelope
from mapi.registry import get_registry

from .packets import wire_end
from .sessions import open_under
from .tls import identity

log = logging.getLogger("mapid.remote")
SESSION_KEY = "mapi-session"
NO_DEADLINE_WAIT = 3600.0           # a call without a deadline still ends
PUSH_POLL = 0.5


def error_envelope(rid, exc):
    from mapi.server.session import error_message
    env = envelope(rid)
    error_message(exc, env.error)
    return env


def handlers(service):
    """The service's method handlers, as the generated add_MapiServicer_to_server makes them
    but for Packets, whose batches are their wire bytes already (packets.wire_batch)."""
    def as_is(data):
        return data
    return {
        "Call": grpc.unary_unary_rpc_method_handler(
            service.Call, request_deserializer=pb.Envelope.FromString,
            response_serializer=pb.Envelope.SerializeToString),
        "Subscribe": grpc.unary_stream_rpc_method_handler(
            service.Subscribe, request_deserializer=pb.Envelope.FromString,
            response_serializer=pb.Envelope.SerializeToString),
        "Packets": grpc.unary_stream_rpc_method_handler(
            service.Packets, request_deserializer=pb.PacketsRequest.FromString,
            response_serializer=as_is),
    }


class MapiService(grpc_stubs().MapiServicer):
    def __init__(self, table, traces=None, output=None):
        self.table = table
        self.traces = traces
        self.output = output

    # --- sessions -----------------------------------------------------------------------------
    def _session(self, context):
        value = dict(context.invocation_metadata()).get(SESSION_KEY)
        if value is None or not value.isdigit():
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no %s in the metadata: open a "
                          "session with Subscribe(hello) first" % SESSION_KEY)
        conn = self.table.get(int(value))
        if conn is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "session %s is over (its Subscribe stream "
                          "ended or mapid restarted)" % value)
        if conn.identity != identity(context)[0]:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "session %s belongs to another "
                          "client certificate" % value)
        return conn

    def Subscribe(self, request, context):
        if request.WhichOneof("body") != "request" or request.request.WhichOneof("call") != "hello":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Subscribe takes a hello request")
        conn = self.table.open(identity(context), context.peer())
        # the client went away: end the session at once, not at the next poll
        context.add_callback(lambda: threading.Thread(target=conn.close, daemon=True).start())
        try:
            rid = request.id
            got = conn.call(request, [], NO_DEADLINE_WAIT)
            if got is None:
                return
            env, fds = got
            close_fds(fds)
            env.id = rid
            yield env
            while context.is_active() and not conn.closed:
                push = conn.next_push(PUSH_POLL)
                if push is not None:
                    yield push
        finally:
            conn.close()

    # --- calls --------------------------------------------------------------------------------
    def Call(self, request, context):
        conn = self._session(context)
        rid = request.id
        call = request.request.WhichOneof("call") if request.WhichOneof("body") == "request" else None
        if call == "hello":
            return error_envelope(rid, MapiError(EBADARG, "hello opens a session: send it with "
                                                 "Subscribe", argument="call"))
        try:
            fds = self._files(request.request, call)
        except MapiError as exc:
            return error_envelope(rid, exc)
        remaining = context.time_remaining()
        got = conn.call(request, fds, NO_DEADLINE_WAIT if remaining is None else max(0.0, remaining - 0.05))
        if got is None:
            return error_envelope(rid, MapiError(ETIMEOUT, "%s: no answer within the call's "
                                                 "deadline" % call, argument="deadline"))
        env, fds = got
        body = env.reply.WhichOneof("result") if env.WhichOneof("body") == "reply" else None
        if body == "connected":
            conn.attach_rings(request.request.connect.fd, env.reply.connected, fds)
        elif body == "flow_with" and env.reply.flow_with.HasField("connected"):
            conn.attach_rings(env.reply.flow_with.fd, env.reply.flow_with.connected, fds)
        else:
            close_fds(fds)
            if call == "close_flow" and body == "done":
                conn.release_rings(request.request.close_flow.fd)
        env.id = rid
        return env

    def _files(self, req, call):
        """Descriptors the local protocol would pass: the sensor's own files, opened here."""
        if call == "create_offline_device":
            return [open_under(self.traces, req.create_offline_device.path, False)]
        if call == "apply_function":
            return self._function_files(req.apply_function)
        if call == "create_flow_with":
            fds = []
            try:
                for m in req.create_flow_with.functions:
                    fds.extend(self._function_files(m))
            except MapiError:
                close_fds(fds)
                raise
            return fds
        return []

    def _function_files(self, m):
        """The files of one ApplyFunction: its "w" arguments and a "file:NAME" destination,
        opened under --remote-output (a remote client has no descriptor on the sensor: an
        "fd:N" destination is refused)."""
        del m.file_args[:]
        try:
            desc = get_registry().function(m.name)
        except MapiError:
            return []                       # the session gives the error
        fds = []
        try:
            for i, a in enumerate(desc.args):
                if a.type != "w" and a.name != "destination":
                    continue
                if i < len(m.args):
                    where, value = str(i), from_value(m.args[i])
                elif a.name in m.kwargs:
                    where, value = a.name, from_value(m.kwargs[a.name])
                else:
                    continue
                if a.type != "w":
                    kind = passed_file(a.type, a.name, value)
                    if kind == "fd":
                        raise MapiError(EPERM, "%s: destination %r names a descriptor, which a "
                                        "remote client has none of on the sensor; use "
                                        "file:NAME (under --remote-output) or udp:HOST:PORT"
                                        % (desc.name, value), argument=a.name)
                    if kind != "file":
                        continue
                    fds.append(open_under(self.output, value.split(":", 1)[1], True))
                    m.file_args.append(where)
                    continue
                if not isinstance(value, str) or not value:
                    raise MapiError(EBADARG, "%s: argument %r must be a file name, got %r"
                                    % (desc.name, a.name, value), argument=a.name)
                fds.append(open_under(self.output, value, True))
                m.file_args.append(where)
        except MapiError:
            close_fds(fds)
            raise
        return fds

    # --- packets ------------------------------------------------------------------------------
    def Packets(self, request, context):
        conn = self._session(context)
        reader = conn.rings.get((request.fd, request.fid))
        if reader is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "flow %d has no connected TO_BUFFER with "
                          "id %d in this session" % (request.fd, request.fid))
        if not reader.streaming.acquire(blocking=False):
            context.abort(grpc.StatusCode.ALREADY_EXISTS, "function %d of flow %d is already "
                          "being streamed" % (request.fid, request.fd))
        try:
            while context.is_active():
                got = reader.batches(200, request.max_packets, request.max_bytes)
                if got is None:
                    yield wire_end(*reader.counters())
                    return
                yield from got                  # PacketBatch wire bytes (handlers(): as is)
        finally:
            reader.streaming.release()
