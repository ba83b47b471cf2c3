"""Filters of the libpcap drop-in: compiling what pcap_compile() asks for, and deciding where a
program the application sets runs (a BPF_FILTER of its MAPI flow, or the C half).

Programs are remembered by their bytes at pcap_compile() time, so pcap_setfilter() knows the
expression behind them; a program MAPI's BPF_FILTER would compile to the very same instructions
runs in MAPI, anything else (hand-made programs, another netmask) runs in the C half."""
import os
import stat
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
    _precompile(code)


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


# --- native BPF ---------------------------------------------------------------------------------
def jit_setup():
    """BPF_FILTER's native code (mapi.bpf_jit) inside an application.  Its cache must stay
    readable after the application drops privileges (tcpdump runs as user "tcpdump" by the time
    the flow starts), so unless MAPI_CACHE_DIR says otherwise it lives in a directory of this
    user's that others may read but not write.  Programs are compiled at pcap_compile() time,
    before any privilege drop; BPF_FILTER later finds them loaded."""
    if os.environ.get("MAPI_BPF_JIT") == "0":
        return
    if "MAPI_CACHE_DIR" not in os.environ:
        d = os.path.join(os.environ.get("TMPDIR") or "/tmp", "scampi-pcap-shim-%d" % os.getuid())
        try:
            os.makedirs(d, mode=0o755, exist_ok=True)
            st = os.lstat(d)
        except OSError:
            os.environ["MAPI_BPF_JIT"] = "0"
            return
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
            os.environ["MAPI_BPF_JIT"] = "0"      # someone else's or writable by others: unsafe
            return
        os.environ["MAPI_CACHE_DIR"] = d
    os.environ.setdefault("MAPI_BPF_JIT", "sync")


def _precompile(code):
    if accepts_all(code) or os.environ.get("MAPI_BPF_JIT") == "0":
        return
    # imported at the first pcap_compile() of a real filter, which applications make before
    # they drop privileges (tcpdump: compile, then droproot, then setfilter)
    from mapi import bpf_jit
    if not bpf_jit.enabled():
        return
    insns = [struct.unpack_from("=HBBI", code, i) for i in range(0, len(code), 8)]
    try:
        bpf_jit.compile_native(insns)
    except Exception as exc:            # the interpreter runs it then
        import logging
        logging.getLogger("libpcap_shim").warning("native BPF precompile failed: %s", exc)
