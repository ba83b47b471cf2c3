"""COOKING(chunk_size=65495, flush_timeout="1s", idle_timeout="60s", close_timeout="10s",
max_stream_bytes=1 MiB, max_bytes=256 MiB, max_connections=1048576, release="segment"): TCP
stream reassembly.

The functions after COOKING see stream chunks instead of packets: per connection and
direction, the bytes as the receiving application reads them -- retransmitted bytes once,
segments that came out of order in order, overlaps resolved -- and STR_SEARCH searches each
direction as one stream, so it finds a pattern split over segments or chunks.  TO_BUFFER hands
out chunks and TO_FILE writes them.  Packets that are not TCP (and IP fragments: put DEFRAG
first) go no further.

A chunk is a raw IP packet (link type 101, LINKTYPE_RAW) from the sending side: an IPv4 (20
bytes) or IPv6 (40 bytes) header, a 20-byte TCP header whose seq is the sequence number of the
chunk's first byte, then the stream bytes.  The IPv4 identification / IPv6 flow label hold
connection number << 1 | direction (0: from the side that opened the connection; the number
is cut to 15 / 19 bits); flags ACK|PSH,
plus FIN on the chunk that ends a direction closed by FIN (possibly empty) and RST after a
reset.  chunk_info() decodes one.

When chunks are released (`release`):
  "segment"       at once: a chunk is what a segment put in order (its bytes and the held ones
                  it let follow).  Nothing in order waits, so nothing is copied twice: the
                  fast choice for STR_SEARCH, counters and TO_FILE.
  "conversation"  in-order bytes of a direction wait until the other direction sends data, so
                  a chunk is a whole message of a request/response protocol (a request, a
                  reply) -- for functions that look at one chunk at a time, such as REGEXP, and
                  for readers of TO_BUFFER that want messages -- or until they reach
                  chunk_size, or their first byte has waited flush_timeout.
With either, at chunk_size bytes, at FIN/RST and at the end of the stream; chunks come in
conversation order.  Where segments overlap, the bytes that came first win.  Memory is
bounded: a direction holds at most max_stream_bytes out of order (then the gap is skipped and
counted), all connections together max_bytes and max_connections (then the oldest are released
and counted as flushed).  Idle connections are released after idle_timeout; closed ones are
remembered close_timeout to swallow retransmissions.  Timeouts run on packet time, and on a live
device also on its clock while no packets come.

Result: dict of counters: connections (seen), bytes (reassembled and handed on), chunks, gaps,
gap_bytes, overlaps, overlap_bytes, duplicates, out_of_order, flushed, idle_expired, truncated,
not_tcp, active, held_bytes, peak_bytes."""
import ipaddress
import struct
from collections import namedtuple

from mapi._engine import ffi, lib
from mapi.descriptor import Arg, FunctionInstance, filter_descriptor
from mapi.errors import MapiError, EBADARG

from .bucket import parse_interval

Chunk = namedtuple("Chunk", "connection direction src sport dst dport seq flags data")
STATS = ("connections", "bytes", "chunks", "gaps", "gap_bytes", "overlaps", "overlap_bytes",
         "duplicates", "out_of_order", "flushed", "idle_expired", "truncated", "out_of_window",
         "not_tcp", "packets", "segments", "active", "held_bytes", "peak_bytes")


def chunk_info(data):
    """Decode a chunk's bytes (a Packet's data from a TO_BUFFER after COOKING)."""
    if data[0] >> 4 == 6:
        label = struct.unpack_from("!I", data, 0)[0] & 0xFFFFF      # flow label: 19 bits of number
        src, dst, t = data[8:24], data[24:40], 40
    else:
        label = struct.unpack_from("!H", data, 4)[0]                 # identification: 15 bits
        src, dst, t = data[12:16], data[16:20], 20
    sport, dport, seq = struct.unpack_from("!HHI", data, t)
    return Chunk(label >> 1, label & 1, ipaddress.ip_address(bytes(src)), sport,
                 ipaddress.ip_address(bytes(dst)), dport, seq, data[t + 13], bytes(data[t + 20:]))


def counters(get, ctype, c_obj, names):
    """Counters of a C stats struct as a dict (shared by the producers' result())."""
    st = ffi.new(ctype + " *")
    get(c_obj, st)
    return {n: getattr(st, n) for n in names}


RELEASE = {"segment": lib.MAPI_COOKING_SEGMENT, "conversation": lib.MAPI_COOKING_CONVERSATION}


def derive_chunks(linktype, args):
    """COOKING hands on raw IP chunks."""
    return lib.MAPI_COOKING_LINKTYPE, 65535


# What a function after COOKING may rely on (STR_SEARCH reads it): the chunks of a connection's
# direction continue each other, in order, until one carries FIN or RST; where bytes were never
# seen, the next chunk's seq jumps.
derive_chunks.stream_chunks = True


class Cooking(FunctionInstance):
    kernel = lib.mapi_cooking_kernel
    made_drain = lib.mapi_cooking_drain

    def __init__(self, chunk_size, flush, idle, close, max_stream, max_bytes, max_conns, release):
        cfg = ffi.new("mapi_cooking_config *", dict(
            chunk_size=chunk_size, max_stream=max_stream, max_bytes=max_bytes,
            max_conns=max_conns, flush_ns=flush, idle_ns=idle, close_ns=close,
            release=RELEASE[release]))
        c = lib.mapi_cooking_new(cfg)
        if c == ffi.NULL:
            raise MemoryError("COOKING: cannot allocate its tables")
        self.c = ffi.gc(c, lib.mapi_cooking_free)
        self.state = self.c
        self.made = lib.mapi_cooking_batch(self.c)
        self.args = dict(chunk_size=chunk_size, max_stream_bytes=max_stream, max_bytes=max_bytes,
                         max_connections=max_conns, release=release)

    def result(self):
        st = counters(lib.mapi_cooking_get_stats, "mapi_cooking_stats", self.c, STATS)
        return st, 0

    def info(self):
        d = dict(self.args)
        d.update(self.result()[0])
        return d


def check(ctx, args):
    chunk_size, flush, idle, close, max_stream, max_bytes, max_conns, release = args
    if not 1 <= chunk_size <= lib.MAPI_COOKING_MAX_CHUNK:
        raise MapiError(EBADARG, "COOKING: chunk_size must be 1..%d bytes, got %r"
                        % (lib.MAPI_COOKING_MAX_CHUNK, chunk_size), argument="chunk_size")
    for name, v, lo, hi in (("max_stream_bytes", max_stream, 0, 2 ** 31),
                            ("max_bytes", max_bytes, 1 << 16, 2 ** 44),
                            ("max_connections", max_conns, 1, 2 ** 30)):
        if not lo <= v <= hi:
            raise MapiError(EBADARG, "COOKING: %s must be %d..%d, got %r" % (name, lo, hi, v),
                            argument=name)
    return (chunk_size, parse_interval("COOKING", "flush_timeout", flush),
            parse_interval("COOKING", "idle_timeout", idle),
            parse_interval("COOKING", "close_timeout", close), max_stream, max_bytes, max_conns,
            release)


DESCRIPTOR = filter_descriptor(
    "COOKING", __doc__, Cooking, check, result="struct", cost="high", derives=derive_chunks,
    args=(Arg("chunk_size", "i", lib.MAPI_COOKING_MAX_CHUNK, doc="stream bytes per chunk at most"),
          Arg("flush_timeout", "t", "1s", doc="conversation: release bytes that waited this long"),
          Arg("idle_timeout", "t", "60s", doc="forget a connection silent this long"),
          Arg("close_timeout", "t", "10s", doc="remember a closed connection this long"),
          Arg("max_stream_bytes", "i", 1 << 20, doc="out-of-order bytes per direction"),
          Arg("max_bytes", "i", 256 << 20, doc="bytes all connections hold at most"),
          Arg("max_connections", "i", 1 << 20),
          Arg("release", "c", "segment", choices=tuple(RELEASE),
              doc="segment: chunks as bytes come in order; conversation: when the other side sends")))
