"""Sandboxed user functions: WebAssembly modules run by wasmtime over whole batches.

The ABI (docs/jobcontrol.md has it in full).  A module exports its linear memory "memory" and

    i32 scampi_abi_version()              1 or 2
    i32 scampi_snaplen()                  optional in version 1, needed (> 0) in version 2:
                                          bytes of each packet it needs (0: all)
    i32 scampi_fields()                   version 2, optional: the columns it reads besides
                                          caplen (1 wirelen, 2 index, 4 ts; absent: none)
    i32 scampi_buffer(i32 bytes)          an offset where `bytes` bytes of its memory are free for
                                          the server to write a batch into (it may grow memory)
    i32 scampi_filter_NAME(i32 at, i32 n) a filter NAME: writes the positions it keeps
                                          (ascending u32 < n) into the keep area, returns how many
    i32 scampi_count_NAME(i32 at, i32 n)  a function NAME that keeps every packet
    i64 scampi_result_NAME()              optional: NAME's result (read_results)

and imports nothing.  Version 1: at `at` the server writes u32 n, i32 linktype, u32 snap,
u32 data_off; n records of 24 bytes {u32 off (from at), u32 caplen (bytes copied), u32 wirelen,
u32 index (the packet's place in the engine's batch: the selection vector), i64 ts (ns)}; the
keep area (n u32) at at + 16 + 24n; then the packet bytes.  Version 2 (fixed slots: cheaper to
write and to read): a 40-byte header u32 n, i32 linktype, u32 snap, u32 stride, and the offsets
(from at; 0: not written) of the caplen column (u32 n), the wirelen (u32), index (u32) and ts
(i64) columns if asked for, the keep area (n u32) and the data: packet j's bytes at data_off +
j * stride.  Only the packets that reached the function's node are written, so a module sees
only the packets of the flows it is applied to.

The batch goes to the module in parts of about PART_BYTES (cache-sized: the module reads what
the server just wrote while it is still in the cache), packed and called from C (batchpack.c,
through wasmtime's C API: capi.py), one Python call per batch.  Each applied function is its own
instance (its own store and memory), limited to MEMORY bytes and to FUEL_BASE +
FUEL_PER_PACKET * n instructions per call of n packets.  A trap (out-of-bounds access,
unreachable, fuel exhausted) or an invalid selection removes the function from its flow: it
keeps every packet from then on (the flow runs on as if it were not there), its owner gets an
event (kind "REMOVED", value the reason) and read_results says why."""
import logging
import re
import threading

import wasmtime

from mapi import native
from mapi.descriptor import FunctionDescriptor, FunctionInstance
from mapi.errors import MapiError, EBADARG, EPLUGIN
from mapi.events import Event, EventQueue

from . import capi
from ._batchpack import ffi, lib

log = logging.getLogger("mapid.jobs.wasm")
ABI_VERSIONS = (1, 2)
EXPORT = re.compile(r"^scampi_(filter|count)_([A-Z][A-Z0-9_]*)$")
FIELDS = 7                        # version 2 columns besides caplen: wirelen 1, index 2, ts 4
PART_BYTES = 64 << 10             # a batch goes to the module in parts of about this much


class Limits:
    def __init__(self, memory=16 << 20, fuel_base=1_000_000, fuel_per_packet=20_000):
        self.memory = int(memory)
        self.fuel_base = int(fuel_base)
        self.fuel_per_packet = int(fuel_per_packet)


_engine = None
_engine_lock = threading.Lock()


def engine():
    global _engine
    with _engine_lock:
        if _engine is None:
            why = capi.check()
            if why:
                raise MapiError(EPLUGIN, "sandboxed code: " + why, argument="kind")
            cfg = wasmtime.Config()
            cfg.consume_fuel = True
            cfg.cranelift_opt_level = "speed"
            _engine = wasmtime.Engine(cfg)
        return _engine


class WasmLibrary:
    """A compiled module and the functions it declares (nothing of it runs at load)."""

    def __init__(self, name, code, limits):
        self.name = name
        self.limits = limits
        try:
            self.module = wasmtime.Module(engine(), code)
        except wasmtime.WasmtimeError as exc:
            raise MapiError(EBADARG, "load_library %s: not a valid WebAssembly module: %s"
                            % (name, str(exc).splitlines()[0]), argument="path") from None
        if self.module.imports:
            raise MapiError(EBADARG, "load_library %s: the module imports %s; a sandboxed module "
                            "gets nothing from the server and must import nothing"
                            % (name, ", ".join("%s.%s" % (i.module, i.name)
                                               for i in self.module.imports)), argument="path")
        exports = {e.name: e.type for e in self.module.exports}
        for need in ("memory", "scampi_abi_version", "scampi_buffer"):
            if need not in exports:
                raise MapiError(EBADARG, "load_library %s: the module does not export %s (see the "
                                "ABI in docs/jobcontrol.md)" % (name, need), argument="path")
        self.functions = {}            # NAME -> (export, filters, result export or None)
        for export in exports:
            m = EXPORT.match(export)
            if m:
                if not capi.is_batch_function(exports[export]):
                    raise MapiError(EBADARG, "load_library %s: %s must take (i32 at, i32 n) and "
                                    "return i32 (see the ABI in docs/jobcontrol.md)"
                                    % (name, export), argument="path")
                result = "scampi_result_" + m.group(2)
                if result in exports and not capi.is_result_function(exports[result]):
                    raise MapiError(EBADARG, "load_library %s: %s must take nothing and return "
                                    "i64 (see the ABI in docs/jobcontrol.md)" % (name, result),
                                    argument="path")
                self.functions[m.group(2)] = (export, m.group(1) == "filter",
                                              result if result in exports else None)
        if not self.functions:
            raise MapiError(EBADARG, "load_library %s: the module exports no scampi_filter_NAME or "
                            "scampi_count_NAME function" % name, argument="path")
        self.size = len(code)

    def descriptors(self, plugin):
        out = []
        for fname, (export, filters, result) in sorted(self.functions.items()):
            out.append(FunctionDescriptor(
                name=fname, args=(), doc="%s of the sandboxed module %s (%s)"
                % ("filter" if filters else "function", self.name, export),
                create=lambda ctx, args, f=fname: WasmFunction(self, f, ctx),
                filters=filters, result="u64" if result else "none", cost="high",
                shareable=False, stateful=True, plugin=plugin))
        return out


class WasmFunction(FunctionInstance):
    """One applied sandboxed function: a node run from Python once per batch."""

    def __init__(self, library, fname, ctx):
        self.library = library
        self.fname = fname
        self.fd, self.fid = ctx.fd, ctx.fid
        export, self.filters, result = library.functions[fname]
        self.lock = threading.Lock()
        self.store = wasmtime.Store(engine())
        self.store.set_limits(memory_size=library.limits.memory)
        self.store.set_fuel(library.limits.fuel_base)
        try:
            inst = wasmtime.Instance(self.store, library.module, [])
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            raise MapiError(EPLUGIN, "%s: the module %s failed to start: %s"
                            % (fname, library.name, _first_line(exc)), argument="name") from None
        ex = inst.exports(self.store)
        self.memory = ex["memory"]
        self.call = ex[export]
        self.buffer_fn = ex["scampi_buffer"]
        self.result_fn = ex[result] if result else None
        self.snap = 0
        self.abi, self.fields = 1, 0
        self.failed = None
        self.value = 0
        self.last_ts = 0
        self.batches = 0
        self.events = EventQueue(ctx.fd, ctx.fid)
        self._run(lambda: self._check_abi(ex))
        self.run = ffi.new("scampi_wasm_run *")
        self._bind(self.run, self.call)

    def _bind(self, r, func):
        """The C runner's view of this instance: wasmtime's entries, handles and our limits."""
        for field, address in capi.entries().items():
            setattr(r, field, ffi.cast("void *", address))
        r.ctx = ffi.cast("void *", capi.context(self.store))
        r.func = ffi.cast("void *", capi.handle(func))
        r.memory = ffi.cast("void *", capi.handle(self.memory))
        if self.result_fn is not None:
            r.result_func = ffi.cast("void *", capi.handle(self.result_fn))
        # a call's part leaves the module room for itself within its memory
        r.part_bytes = min(PART_BYTES, self.library.limits.memory // 4)
        r.fuel_base = self.library.limits.fuel_base
        r.fuel_per_packet = self.library.limits.fuel_per_packet
        r.snap = self.snap
        r.abi, r.fields = self.abi, self.fields
        r.filters = 1 if self.filters else 0

    def _check_abi(self, ex):
        version = ex["scampi_abi_version"](self.store)
        if version not in ABI_VERSIONS:
            raise MapiError(EPLUGIN, "%s: the module speaks ABI version %r, the server %s"
                            % (self.fname, version, " or ".join(map(str, ABI_VERSIONS))),
                            argument="name")
        self.abi = version
        if "scampi_snaplen" in ex:
            self.snap = max(0, int(ex["scampi_snaplen"](self.store)))
        if version == 2 and not self.snap:
            raise MapiError(EPLUGIN, "%s: an ABI version 2 module must export scampi_snaplen() "
                            "> 0 (its packets go in fixed slots); version 1 takes whole packets"
                            % self.fname, argument="name")
        if version == 2 and "scampi_fields" in ex:
            self.fields = int(ex["scampi_fields"](self.store)) & FIELDS

    def _run(self, fn, packets=0):
        self.store.set_fuel(self.library.limits.fuel_base
                            + self.library.limits.fuel_per_packet * packets)
        return fn()

    # --- one batch -------------------------------------------------------------------------
    def process(self, batch, sel, nsel, out):
        with self.lock:
            if self.failed is None:
                try:
                    return self._process(batch, sel, nsel, out)
                except (wasmtime.Trap, wasmtime.WasmtimeError, _Invalid) as exc:
                    self._remove(batch, sel, nsel, exc)
        if self.filters:
            ffi.memmove(_u32(out), _u32(sel), 4 * nsel)
        return nsel

    def _process(self, batch, sel, nsel, out):
        r = self.run
        r.done = r.kept = 0
        # sel and out are the engine's uint32_t arrays; cffi shares primitive types between
        # modules, so they go to our C as they are (a cast through an integer costs a microsecond)
        b = native.plugin_pointer(ffi, batch)
        while True:
            why = lib.scampi_wasm_process(r, b, sel, nsel, out)
            if why == lib.SCAMPI_WASM_DONE:
                break
            if why != lib.SCAMPI_WASM_NEED_REGION:
                raise self._failure(why)
            self._region(r.need)
        if self.result_fn is not None:
            self.value = r.result
        self.batches += 1
        if nsel:
            self.last_ts = batch.ts[sel[nsel - 1]]
        return r.kept if self.filters else nsel

    def _failure(self, why):
        r = self.run
        if why == lib.SCAMPI_WASM_FAILED:
            error, trap = int(ffi.cast("uintptr_t", r.error)), int(ffi.cast("uintptr_t", r.trap))
            r.error = r.trap = ffi.NULL
            return capi.exception(error, trap)
        if why == lib.SCAMPI_WASM_BAD_REGION:
            return _Invalid("its buffer at %d (%d bytes) is no longer inside its memory"
                            % (r.at, r.region))
        if why == lib.SCAMPI_WASM_BAD_COUNT:
            return _Invalid("it returned %r kept packets of %d" % (r.answer, r.part))
        return _Invalid("its kept positions are not ascending positions below %d" % r.part)

    def _region(self, need):
        """Ask the module for a buffer of `need` bytes (the C runner checks it lies inside the
        module's memory before each part)."""
        at = self._run(lambda: self.buffer_fn(self.store, int(need)))
        size = self.memory.data_len(self.store)
        if not isinstance(at, int) or at < 0 or at + need > size:
            raise _Invalid("scampi_buffer(%d) answered %r, outside its %d bytes of memory"
                           % (need, at, size))
        self.run.at, self.run.region = at, need

    def _remove(self, batch, sel, nsel, exc):
        ts = batch.ts[sel[0]] if nsel else self.last_ts
        reason = "%s of module %s %s at batch %d: %s" % (
            self.fname, self.library.name, _kind(exc), self.batches + 1, _first_line(exc))
        self.failed = reason
        log.warning("flow %d: %s; removed from the flow", self.fd, reason)
        self.events.publish([Event(ts, reason, "REMOVED", None, None, self.fd, self.fid)])

    # --- lifecycle ---------------------------------------------------------------------------
    def result(self):
        if self.failed is not None:
            raise MapiError(EPLUGIN, "function %d of flow %d was removed: %s"
                            % (self.fid, self.fd, self.failed), argument="fid")
        return self.value, self.last_ts

    def end(self):
        self.events.end()

    def unblock(self):
        self.events.end()

    def close(self):
        self.events.end()

    def info(self):
        return dict(module=self.library.name, removed=self.failed, batches=self.batches,
                    snaplen=self.snap, memory_limit=self.library.limits.memory,
                    fuel_per_packet=self.library.limits.fuel_per_packet)


class _Invalid(Exception):
    pass


def _u32(p):
    return ffi.cast("uint32_t *", int(native.engine()[0].cast("uintptr_t", p)))


def _kind(exc):
    text = str(exc)
    if "fuel" in text:
        return "ran out of fuel"
    if isinstance(exc, _Invalid):
        return "returned an invalid answer"
    return "trapped"


def _first_line(exc):
    """The trap's cause (wasmtime puts it after a backtrace, under "Caused by:")."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    if "Caused by:" in lines and lines.index("Caused by:") + 1 < len(lines):
        return lines[lines.index("Caused by:") + 1]
    return lines[0] if lines else type(exc).__name__
