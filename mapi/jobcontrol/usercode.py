"""User code: load is not apply.

load_library registers a library's functions in the registry (under the plugin name
"usercode:LIBRARY") without running any of them; applying one is a separate, separately
authorised apply_function.  Two kinds:

* "sandboxed": a WebAssembly module (mapi.jobcontrol.wasm), run by wasmtime over whole batches
  with a fuel and a memory limit; a module that traps is removed from its flow, nothing else is
  touched.
* "plain": a plugin module (Python source, or a built C extension module) imported into the
  server's own process, with the powers of any plugin (docs/plugins.md); only for principals
  whose credentials grant right("load", "plain").

`place` says where the code may run: "host" (the server's CPU).  A card unit would run it only
if it advertised code hosting; none of the emulated cards (COMBO6, DAG, the router) does, so any
other place is refused, naming the places there are."""
import importlib.util
import os
import re
import sys
import threading

import pluggy

from mapi.errors import MapiError, EBADARG, ENOTSUP, EPERM
from mapi.registry import get_registry

PLACES = ("host",)
KINDS = ("sandboxed", "plain")
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
hookimpl = pluggy.HookimplMarker("scampi")


class Library:
    def __init__(self, name, kind, place, owner, size, functions, plugin_name):
        self.name = name
        self.kind = kind
        self.place = place
        self.owner = owner                # principal name ("" in the embedded mode)
        self.size = size
        self.functions = functions        # function names it declared
        self.plugin_name = plugin_name


class _Declares:
    """The pluggy plugin through which a sandboxed library's functions reach the registry."""

    def __init__(self, descriptors):
        self._descriptors = descriptors

    @hookimpl
    def scampi_functions(self):
        return list(self._descriptors)


class Libraries:
    """Every library loaded into this process."""

    def __init__(self, code_dir=None, limits=None):
        self.code_dir = code_dir
        self.limits = limits
        self.lock = threading.Lock()
        self.loaded = {}                  # library name -> Library
        self.owner_of = {}                # function name -> Library

    def load(self, name, kind, place, code, filename="", owner=""):
        """Register the functions of `code` (bytes); returns the Library."""
        name = name or os.path.splitext(os.path.basename(filename or ""))[0]
        if not NAME.match(name or ""):
            raise MapiError(EBADARG, "load_library: library name %r must be letters, digits, "
                            "'_', '.', '-' (at most 64)" % (name,), argument="name")
        if kind not in KINDS:
            raise MapiError(EBADARG, "load_library: kind must be one of %s, not %r"
                            % (", ".join(KINDS), kind), argument="kind")
        if place not in PLACES:
            raise MapiError(ENOTSUP, "load_library: place %r: code runs on %s only; no card "
                            "unit of this installation advertises code hosting (COMBO6, DAG and "
                            "router units run their fixed functions)" % (place, ", ".join(PLACES)),
                            argument="place")
        plugin_name = "usercode:%s" % name
        with self.lock:
            if name in self.loaded:
                raise MapiError(EBADARG, "load_library: a library %s is already loaded (by %s)"
                                % (name, self.loaded[name].owner or "this process"),
                                argument="name")
            if kind == "sandboxed":
                plugin, functions = self._sandboxed(name, code, plugin_name)
            else:
                plugin, functions = self._plain(name, code, filename)
            registry = get_registry()
            taken = sorted(f for f in functions if f in registry.functions)
            if taken:
                raise MapiError(EBADARG, "load_library %s: function name(s) %s are already "
                                "declared (by %s); rename them" % (name, ", ".join(taken),
                                ", ".join(sorted({registry.functions[f].plugin for f in taken}))),
                                argument="path")
            registry.register(plugin, name=plugin_name)
            lib = Library(name, kind, place, owner, len(code), functions, plugin_name)
            self.loaded[name] = lib
            for f in functions:
                self.owner_of[f] = lib
            return lib

    def _sandboxed(self, name, code, plugin_name):
        from .wasm.runner import WasmLibrary
        wl = WasmLibrary(name, code, self.limits or _default_limits())
        descs = wl.descriptors(plugin_name)
        return _Declares(descs), [d.name for d in descs]

    def _plain(self, name, code, filename):
        """Import a plugin module from its source (.py) or built extension (.so)."""
        suffix = ".so" if filename.endswith(".so") or code[:4] == b"\x7fELF" else ".py"
        if suffix == ".py" and not code.strip():
            raise MapiError(EBADARG, "load_library %s: the plain module is empty" % name,
                            argument="path")
        directory = self.code_dir or os.path.join(os.path.expanduser("~"), ".cache", "scampi",
                                                  "code")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        stem = os.path.splitext(os.path.basename(filename))[0] if suffix == ".so" else \
            "scampi_usercode_%s" % re.sub(r"\W", "_", name)
        path = os.path.join(directory, stem + suffix)
        with open(path, "wb") as f:
            f.write(code)
        spec = importlib.util.spec_from_file_location(stem, path)
        if spec is None:
            raise MapiError(EBADARG, "load_library %s: cannot import %s" % (name, filename),
                            argument="path")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise MapiError(EBADARG, "load_library %s: importing the plain module failed: %s: %s"
                            % (name, type(exc).__name__, exc), argument="path") from None
        sys.modules[stem] = module
        declare = getattr(module, "scampi_functions", None)
        if declare is None:
            raise MapiError(EBADARG, "load_library %s: the module has no scampi_functions hook "
                            "(a plugin module of docs/plugins.md)" % name, argument="path")
        return module, [d.name for d in declare()]

    def unload(self, name):
        """Forget a library: its functions leave the registry (flows already using them keep
        their instances until they close)."""
        with self.lock:
            lib = self.loaded.pop(name, None)
            if lib is None:
                return
            for f in lib.functions:
                self.owner_of.pop(f, None)
            registry = get_registry()
            plugin = registry.pm.get_plugin(lib.plugin_name)
            if plugin is not None:
                registry.pm.unregister(plugin)
                registry.refresh()

    def library_of(self, function):
        with self.lock:
            return self.owner_of.get(function)

    def check_owner(self, function, principal):
        lib = self.library_of(function)
        if lib is not None and lib.owner and lib.owner != principal:
            raise MapiError(EPERM, "function %s belongs to library %s, loaded by %s; only its "
                            "loader may apply it" % (function, lib.name, lib.owner),
                            argument="name")
        return lib


def _default_limits():
    from .wasm.runner import Limits
    return Limits()


_embedded = None


def embedded():
    """The libraries of the in-process (embedded) mode."""
    global _embedded
    if _embedded is None:
        _embedded = Libraries()
    return _embedded
