"""Packets of a remote TO_BUFFER: a thread takes the Packets stream's batches into a short
queue (when it is full the thread stops taking, gRPC's flow control stops the server, and the
server stops reading its ring), and readers cut batches into mapi.Packet as they ask.  The
records have the shared ring's layout (docs/protocol.md section 5).

The same reader object serves get_next_pkt/loop, drain/drain_all (counting in bulk) and
read_results' ts, like a mapped ring; when its server goes away a waiting read raises that
server's MapiError, and a new session's stream (the flow re-created there) can be attached."""
import queue
import threading
from collections import deque

import grpc

from mapi.constants import NOWAIT
from mapi.errors import MapiError, ESERVER
from mapi.packet import Packet
from mapi.proto import pb
from mapi.ring import DrainAll, parse_records

QUEUE_BATCHES = 8
_END = object()


def read_batch(data):
    """A PacketBatch from its wire bytes (the Packets stream's deserializer): the records are
    a view into `data` when they come first, as mapid sends them, saving protobuf's copy of
    every packet's bytes; the few small fields are parsed by protobuf."""
    records = b""
    if data[:1] == b"\x0a":                 # field 1, length-delimited: its length follows
        size = shift = 0
        pos = 1
        while pos < len(data) and pos < 11:
            byte = data[pos]
            size |= (byte & 0x7f) << shift
            shift += 7
            pos += 1
            if not byte & 0x80:
                if pos + size <= len(data):
                    records = memoryview(data)[pos:pos + size]
                    data = data[pos + size:]
                break
    batch = pb.PacketBatch.FromString(data)
    if batch.records or not records:         # records again later: the last one counts
        return batch
    return batch, records


class StreamReader(DrainAll):
    def __init__(self, mode, fd, fid):
        self.mode = mode
        self.fd, self.fid = fd, fid
        self.q = queue.Queue(QUEUE_BATCHES)
        self.current = deque()
        self.last_ts = 0
        self.error = None
        self.ended = False
        self.counts = dict(written=0, dropped=0, delivered=0)
        self._stream = None
        self._gen = 0
        self._lock = threading.Lock()

    # --- the feeding side ---------------------------------------------------------------------
    def attach(self, session, server_fd):
        """Stream function fid of the server's flow server_fd of `session` from now on."""
        with self._lock:
            self._gen += 1
            gen = self._gen
            old, self._stream = self._stream, session.packets(server_fd, self.fid)
            self.error = None
        if old is not None:
            old.cancel()
        threading.Thread(target=self._pull, args=(self._stream, gen, session), daemon=True,
                         name="mapi-packets-%d.%d" % (self.fd, self.fid)).start()

    def _pull(self, stream, gen, session):
        try:
            for batch in stream:
                if gen != self._gen:
                    return
                if isinstance(batch, tuple):        # read_batch: records as a view
                    batch, records = batch
                else:
                    records = batch.records
                self.counts["written"], self.counts["dropped"] = batch.written, batch.dropped
                if batch.count:
                    self.q.put((records, batch.count, batch.bytes, batch.last_ts))
                if batch.end:
                    self.q.put(_END)
                    return
            if gen == self._gen:            # over without its end message: fail, never wait on
                self.q.put(session.dead or MapiError(
                    ESERVER, "the packet stream of function %d of flow %d from %s ended without "
                    "its end message" % (self.fid, self.fd, session.url)))
        except grpc.RpcError as exc:
            # our own cancels (close, attach) moved _gen first: any other end fails the reader
            if gen == self._gen:
                self.q.put(session.dead or MapiError(
                    ESERVER, "the packet stream of function %d of flow %d from %s broke: %s %s"
                    % (self.fid, self.fd, session.url, exc.code().name, exc.details())))
        except Exception as exc:            # a bug here must fail the reader, not strand it
            if gen == self._gen:
                self.q.put(MapiError(ESERVER, "reading the packet stream of function %d of flow "
                                     "%d from %s failed: %r" % (self.fid, self.fd, session.url,
                                                                exc)))

    def fail(self, error):
        """The server went away: a waiting reader gets `error` (unless packets are queued)."""
        try:
            self.q.put_nowait(error)
        except queue.Full:
            pass

    def close(self):
        with self._lock:
            self._gen += 1
            stream, self._stream = self._stream, None
        if stream is not None:
            stream.cancel()
        self.ended = True
        try:
            self.q.put_nowait(_END)
        except queue.Full:
            pass

    # --- the reading side ---------------------------------------------------------------------
    def _take(self, timeout):
        """The next batch into self.current; False on timeout; None at the end."""
        if self.ended:
            return None
        try:
            item = self.q.get(timeout=timeout) if timeout != 0 else self.q.get_nowait()
        except queue.Empty:
            return False
        if item is _END:
            self.ended = True
            return None
        if isinstance(item, MapiError):
            raise item
        records = item[0]
        if isinstance(records, memoryview):     # packets hold bytes of their own
            records = records.tobytes()
        self.current.extend(parse_records(records, item[1]))
        return True

    def next_packet(self, timeout=None):
        if self.mode == NOWAIT:
            timeout = 0
        while not self.current:
            got = self._take(timeout)
            if not got:
                return None
        pkt = self.current.popleft()
        self.counts["delivered"] += 1
        self.last_ts = pkt.ts
        return pkt

    def next_batch(self, timeout=None):
        """Every packet queued (at least one, waiting up to timeout); [] on timeout, None at
        the end of the stream."""
        if not self.current:
            got = self._take(timeout)
            if got is None:
                return None
            if not got:
                return []
        out = list(self.current)
        self.current.clear()
        self.counts["delivered"] += len(out)
        self.last_ts = out[-1].ts
        return out

    def drain(self, timeout=0.2):
        """(packets, captured bytes) taken without making packets; None at the end."""
        if self.ended and not self.current:
            return None     # the end came with the last call's batches: nothing more comes
        packets = sum(1 for _ in self.current)
        nbytes = sum(p.caplen for p in self.current)
        self.current.clear()
        while True:
            try:
                item = self.q.get(timeout=timeout) if not packets else self.q.get_nowait()
            except queue.Empty:
                break
            if item is _END:
                self.ended = True
                if not packets:
                    return None
                break
            if isinstance(item, MapiError):
                raise item
            _, count, size, self.last_ts = item
            packets += count
            nbytes += size
        self.counts["delivered"] += packets
        return packets, nbytes

    def stats(self):
        return dict(self.counts)

    def interrupt(self):
        self.fail(MapiError(ESERVER, "interrupted"))
