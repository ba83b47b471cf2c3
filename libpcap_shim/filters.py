"""Filters of the libpcap drop-in: compiling what pcap_compile() asks for, and deciding where a
program the application sets runs (a BPF_FILTER of its MAPI flow, or the C half).

Programs are remembered by their bytes at pcap_compile() time, so pcap_setfilter() knows the
expression behind them; a program MAPI's BPF_FILTER would compile to the very same instructions
runs in MAPI, anything else (hand-made programs, another netmask) runs in the C half."""
import struct
import threading

from mapi.bpf import compile_for_dlt, PCAP_NETMASK_UNKNOWN
from mapi.errors import MapiError

_lock = threading.Lock()
_programs = {}         # compiled program bytes -> (expr, optimize)


def accepts_all(code):
    """A one-instruction `ret #k` with k > 0 (tcpdump's empty filter)."""
    if len(code) != 8:
        return False
    op, _, _, k = struct.unpack("=HBBI", code)
    return op == 0x06 and k != 0


def remember(code, expr, optimize):
    with _lock:
        _programs[code] = (expr, optimize)


def _compiles_to(expr, dlt, snaplen, optimize):
    try:
        return compile_for_dlt(expr, dlt, snaplen, optimize, PCAP_NETMASK_UNKNOWN), None
    except MapiError as exc:
        return None, exc.where.get("pcap_error") or str(exc)


def choose(h, code):
    """Where the handle's program runs: sets h.filter_expr / h.filter_where / h.notes and
    returns 1 when the C half must run it on what the flow delivers."""
    h.filter_expr = None
    if accepts_all(code):
        h.filter_where = "none"
        return 0
    with _lock:
        known = _programs.get(code)
    if known is None:
        h.filter_where = "shim"
        h.notes.append("program not compiled by pcap_compile; run in the shim")
        return 1
    expr, optimize = known
    # BPF_FILTER compiles with optimisation on, an unknown netmask, the device's snaplen and a
    # pcap_open_dead() handle.  The same instructions: the flow's filter is the application's.
    # Only the optimisation flag differs: the same packets pass, and the C half re-checks.
    # Anything else (netmask, savefile-specific code): the C half runs the program alone.
    snaplen = h.dev_snaplen or 262144
    mine, err = _compiles_to(expr, h.dlt, snaplen, 1)
    if mine is not None and mine != code and optimize != 1:
        plain, _ = _compiles_to(expr, h.dlt, snaplen, optimize)
        where = "mapi+shim" if plain == code else "shim"
    else:
        where = "mapi" if mine == code else "shim"
    if where == "shim":
        h.notes.append("BPF_FILTER would not run this very program (%s); run in the shim"
                       % (err or "libpcap compiles it differently for this handle"))
    else:
        h.filter_expr = expr
    h.filter_where = where
    return 0 if where == "mapi" else 1
