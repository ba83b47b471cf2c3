"""Filter compilation, once for everybody: tcpdump's filter language compiled by the system
libpcap's own pcap_compile, against an in-memory savefile header as `tcpdump -r` does.

BPF_FILTER, the live backends' kernel filter, the card emulators' header-filter translation and
the libpcap drop-in all compile through here, so they agree instruction for instruction."""
import threading
from collections import OrderedDict

from ._engine import ffi, lib
from .errors import MapiError, EFILTER

PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
# programs compiled lately, by everything that makes them: a filter is compiled when it is
# applied (to check it) and again when its flow meets the link type, and clients keep applying
# the same few expressions; the programs are shared read-only
CACHED_PROGRAMS = 256
_cache = OrderedDict()
_cache_lock = threading.Lock()


def compile_filter(expr, linktype, snaplen, swapped=False, optimize=1, netmask=PCAP_NETMASK_UNKNOWN):
    """Classic BPF for `expr` on LINKTYPE `linktype`, exactly as `tcpdump -r` compiles it for a
    file with this link type, snaplen and byte order: (program cdata, length), or MapiError
    naming the expression and libpcap's message.  The program is shared: read it, never write
    it."""
    key = (expr, linktype, snaplen, bool(swapped), optimize, netmask)
    with _cache_lock:
        got = _cache.get(key)
        if got is not None:
            _cache.move_to_end(key)
            return got
    got = _compile(expr, linktype, snaplen, swapped, optimize, netmask)
    with _cache_lock:
        _cache[key] = got
        if len(_cache) > CACHED_PROGRAMS:
            _cache.popitem(last=False)
    return got


def _compile(expr, linktype, snaplen, swapped, optimize, netmask):
    prog = ffi.new("mapi_bpf_insn **")
    n = ffi.new("uint32_t *")
    err = ffi.new("char[512]")
    rc = lib.mapi_bpf_compile_savefile(ffi.NULL, linktype, snaplen or 262144, 1 if swapped else 0,
                                       expr.encode(), optimize, netmask, prog, n, err)
    if rc < 0:
        raise MapiError(EFILTER, "BPF_FILTER: invalid filter %r: %s" % (expr, ffi.string(err).decode()),
                        argument="expr")
    return ffi.gc(prog[0], lib.mapi_free), n[0]


def compile_insns(expr, linktype, snaplen, swapped=False):
    """The same program as a list of (code, jt, jf, k) tuples (for analysis and for units that
    load programs of their own)."""
    prog, n = compile_filter(expr, linktype, snaplen, swapped)
    return [(prog[j].code, prog[j].jt, prog[j].jf, prog[j].k) for j in range(n)]


def compile_for_dlt(expr, dlt, snaplen, optimize=1, netmask=PCAP_NETMASK_UNKNOWN):
    """The program libpcap compiles for `expr` on a capture handle of DLT `dlt` (a
    pcap_open_dead() handle: live captures, and BPF_FILTER's view of a device), as bytes, 8 per
    instruction in host order; MapiError naming the expression and libpcap's message."""
    if isinstance(expr, str):
        expr = expr.encode("latin-1")
    prog = ffi.new("mapi_bpf_insn **")
    n = ffi.new("uint32_t *")
    err = ffi.new("char[512]")
    if lib.mapi_bpf_compile(ffi.NULL, dlt, snaplen or 262144, expr, optimize, netmask, prog, n,
                            err) < 0:
        raise MapiError(EFILTER, "invalid filter %r: %s" % (expr.decode("latin-1"),
                                                            ffi.string(err).decode("utf-8", "replace")),
                        argument="expr", pcap_error=ffi.string(err).decode("utf-8", "replace"))
    try:
        return bytes(ffi.buffer(prog[0], n[0] * 8))
    finally:
        lib.mapi_free(prog[0])
