"""Classic BPF to native code, FFPF-style: each program becomes one C batch kernel (the loop over
the selection vector with the filter inlined), compiled by the system C compiler in the
background and cached on disk.  Until it is ready the interpreter runs; the swap is one pointer
store, so results never depend on whether native code was used.

Disable with MAPI_BPF_JIT=0; MAPI_BPF_JIT=sync compiles before the flow connects (benchmarks,
tests).  The cache lives in $MAPI_CACHE_DIR or ~/.cache/scampi/bpf.
"""
import os
import sys
import threading

from .lazylog import getLogger

log = getLogger("mapi.bpf_jit")

_loaded = {}              # path -> dlopen'd library (kept alive for the process)
_lock = threading.Lock()
_pending = {}             # digest -> lock serialising its compilation
CC = os.environ.get("CC", "cc")

PROLOGUE = r"""
#include <stdint.h>
#include <string.h>
typedef struct mapi_batch {
    const uint8_t *base; uint64_t *off; uint32_t *caplen; uint32_t *wirelen; int64_t *ts;
    uint16_t *ifindex; uint32_t n; uint32_t cap; int32_t linktype; uint32_t _pad; uint64_t first_seq;
    uint64_t *seq; uint64_t *tags;
} mapi_batch;
static inline uint32_t ld32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]; }
static inline uint32_t ld16(const uint8_t *p) { return ((uint32_t)p[0] << 8) | p[1]; }
uint32_t mapi_bpf_native(const mapi_batch *b, const uint32_t *sel, uint32_t nsel, uint32_t *out)
{
    uint32_t n = 0;
    const uint8_t *base = b->base;
    for (uint32_t j = 0; j < nsel; j++) {
        const uint32_t i = sel[j];
        if (j + 4 < nsel) __builtin_prefetch(base + b->off[sel[j + 4]]);
        const uint8_t *p = base + b->off[i];
        const uint64_t buflen = b->caplen[i];
        const uint32_t wirelen = b->wirelen[i];
        uint32_t A = 0, X = 0;
        uint32_t mem[16] = {0};   /* as the interpreter: zero, not undefined */
        (void)A; (void)X; (void)mem; (void)wirelen; (void)p; (void)buflen;
"""

EPILOGUE = r"""
    accept:
        out[n++] = i;
        continue;
    reject:
        continue;
    }
    return n;
}
"""


def _insn_c(i, code, jt, jf, k, n):
    """C statements for instruction i (of n); jumps go to labels L<target>."""
    def tgt(off):
        t = i + 1 + off
        return "L%d" % t if t < n else "reject"
    ret = lambda expr: "if (%s) goto accept; else goto reject;" % expr
    K = "%uu" % k
    s = {
        0x06: ret("%s != 0" % K),
        0x16: ret("A != 0"),
        0x20: "if (%du + 4 > buflen) goto reject; A = ld32(p + %d);" % (k, k) if k < 2 ** 31 else "goto reject;",
        0x28: "if (%du + 2 > buflen) goto reject; A = ld16(p + %d);" % (k, k) if k < 2 ** 31 else "goto reject;",
        0x30: "if (%du >= buflen) goto reject; A = p[%d];" % (k, k) if k < 2 ** 31 else "goto reject;",
        0x80: "A = wirelen;",
        0x81: "X = wirelen;",
        0x40: "{ uint64_t o = (uint64_t)X + %s; if (o + 4 > buflen) goto reject; A = ld32(p + o); }" % K,
        0x48: "{ uint64_t o = (uint64_t)X + %s; if (o + 2 > buflen) goto reject; A = ld16(p + o); }" % K,
        0x50: "{ uint64_t o = (uint64_t)X + %s; if (o >= buflen) goto reject; A = p[o]; }" % K,
        0xb1: "if (%du >= buflen) goto reject; X = (p[%d] & 0xf) << 2;" % (k, k) if k < 2 ** 31 else "goto reject;",
        0x00: "A = %s;" % K,
        0x01: "X = %s;" % K,
        0x60: "A = mem[%d];" % (k & 15),
        0x61: "X = mem[%d];" % (k & 15),
        0x02: "mem[%d] = A;" % (k & 15),
        0x03: "mem[%d] = X;" % (k & 15),
        0x05: _ja(i, k, n),
        0x0c: "A += X;", 0x1c: "A -= X;", 0x2c: "A *= X;",
        0x3c: "if (X == 0) goto reject; A /= X;",
        0x9c: "if (X == 0) goto reject; A %= X;",
        0x5c: "A &= X;", 0x4c: "A |= X;", 0xac: "A ^= X;",
        0x6c: "A = X < 32 ? A << X : 0;", 0x7c: "A = X < 32 ? A >> X : 0;",
        0x04: "A += %s;" % K, 0x14: "A -= %s;" % K, 0x24: "A *= %s;" % K,
        0x34: "A /= %s;" % K if k else "goto reject;",
        0x94: "A %%= %s;" % K if k else "goto reject;",
        0x54: "A &= %s;" % K, 0x44: "A |= %s;" % K, 0xa4: "A ^= %s;" % K,
        0x64: "A <<= %d;" % (k & 31),           # libpcap: raw amount, modulo 32 on x86
        0x74: "A >>= %d;" % (k & 31),
        0x84: "A = -A;",
        0x07: "X = A;", 0x87: "A = X;",
    }
    jumps = {0x25: "A > %s" % K, 0x35: "A >= %s" % K, 0x15: "A == %s" % K, 0x45: "(A & %s) != 0" % K,
             0x2d: "A > X", 0x3d: "A >= X", 0x1d: "A == X", 0x4d: "(A & X) != 0"}
    if code in jumps:
        return "if (%s) goto %s; else goto %s;" % (jumps[code], tgt(jt), tgt(jf))
    return s.get(code, "goto reject;")


def _ja(i, k, n):
    """ja's offset is signed, as in libpcap's bpf_filter (ip6 protochain jumps backwards)."""
    off = k - (1 << 32) if k & 0x80000000 else k
    t = i + 1 + off
    return "goto L%d;" % t if 0 <= t < n else "goto reject;"


def generate_c(insns):
    """C source of the batch kernel for a program given as [(code, jt, jf, k), ...]."""
    n = len(insns)
    body = []
    for i, (code, jt, jf, k) in enumerate(insns):
        body.append("    L%d: %s" % (i, _insn_c(i, code, jt, jf, k, n)))
    body.append("    goto reject;")    # falling off the end: libpcap validation forbids it
    return PROLOGUE + "\n".join(body) + EPILOGUE


def cache_dir():
    d = os.environ.get("MAPI_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "scampi")
    return os.path.join(d, "bpf")


_cc_found = None


def enabled():
    global _cc_found
    if os.environ.get("MAPI_BPF_JIT", "1") == "0":
        return False
    if _cc_found is None:                 # one PATH search per process, not one per filter
        import shutil
        _cc_found = shutil.which(CC) is not None
    return _cc_found


def _load(path):
    # ctypes, not a cffi FFI: building a cffi parser costs every process ~0.15 s at start-up
    import ctypes
    with _lock:
        lib = _loaded.get(path)
        if lib is None:
            lib = ctypes.CDLL(path)
            _loaded[path] = lib
    return ctypes.cast(lib.mapi_bpf_native, ctypes.c_void_p).value


def _source_and_digest(insns):
    import hashlib
    src = generate_c(insns)
    return src, hashlib.sha256(src.encode()).hexdigest()[:32]


def cached(insns):
    """Address of the native kernel for `insns` if it is already built (in this process or in
    the cache directory), else None; never compiles."""
    _, digest = _source_and_digest(insns)
    so = os.path.join(cache_dir(), digest + ".so")
    with _lock:
        if so not in _loaded and not os.path.exists(so):
            return None
    try:
        return _load(so)
    except OSError:
        return None


def compile_native(insns):
    """Address of the native kernel for `insns` (compiling it if not cached), or None."""
    src, digest = _source_and_digest(insns)
    with _lock:
        lock = _pending.setdefault(digest, threading.Lock())
    try:
        with lock:                      # one compile per program at a time in this process
            return _compile_locked(src, digest)
    finally:
        with _lock:
            if _pending.get(digest) is lock:
                del _pending[digest]


def _compile_locked(src, digest):
    import subprocess                   # only a process that compiles pays for these
    import tempfile
    d = cache_dir()
    so = os.path.join(d, digest + ".so")
    if os.path.exists(so):
        try:
            return _load(so)
        except OSError:
            pass                        # a damaged cache entry: rebuild it
    try:
        os.makedirs(d, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=d) as tmp:
            c_path = os.path.join(tmp, "f.c")
            with open(c_path, "w") as f:
                f.write(src)
            tmp_so = os.path.join(tmp, "f.so")
            r = subprocess.run([CC, "-O2", "-shared", "-fPIC", "-o", tmp_so, c_path],
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                log.warning("native BPF compile failed, the interpreter stays: %s", r.stderr[-500:])
                return None
            os.replace(tmp_so, so)       # atomic: concurrent compilers are harmless
    except (OSError, subprocess.SubprocessError) as exc:
        if not sys.is_finalizing():
            log.warning("native BPF compile unavailable (%s); the interpreter stays", exc)
        return None
    return _load(so)


def compile_async(insns, install):
    """Call install(address) with the native kernel: at once when it is cached, else from a
    background thread once compiled (returned, for joining)."""
    if os.environ.get("MAPI_BPF_JIT", "1") == "0":
        return None
    addr = cached(insns)
    if addr:                            # no thread (and no thread stack) for a known program,
        install(addr)                   # nor the compiler's PATH search (shutil)
        return None
    if not enabled():
        return None

    def work():
        addr = compile_native(insns)
        if addr:
            install(addr)
    if os.environ.get("MAPI_BPF_JIT") == "sync":
        work()
        return None
    t = threading.Thread(target=work, name="mapi-bpf-jit", daemon=True)
    t.start()
    return t
