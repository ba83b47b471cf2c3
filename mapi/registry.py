"""The plugin manager: loads every plugin of the ``scampi`` entry-point group, indexes the
functions and backends they declare, and asks the probing hooks which backend opens a device.

Discovering plugins means reading the metadata of every installed distribution, which costs
more than the rest of start-up together; so the scan is done once and cached (under
$XDG_CACHE_HOME/scampi), keyed on what it depends on: the interpreter, sys.path and, for each
path entry, the names (with versions) and modification times of the distributions installed
there.  Installing, upgrading or removing any distribution, or running with another
PYTHONPATH, changes the key and the next start scans again.
"""
import importlib
import logging
import marshal
import os
import sys
import threading
import zlib

import pluggy

from . import hookspecs
from .errors import MapiError, EPLUGIN, EUNKNOWNFUNC, ENODEV
from .descriptor import FunctionDescriptor, BackendDescriptor, ARG_TYPES, COST_CLASSES, RESULT_TYPES

log = logging.getLogger("mapi.registry")
_lock = threading.Lock()
_registry = None

GROUP = "scampi"
CACHE_FORMAT = 1
PROBE_BYTES = 64


class Registry:
    def __init__(self, load_entrypoints=True):
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.problems = []            # (plugin, message): plugins that failed, for `mapi info`
        if load_entrypoints:
            self._load_entrypoints(GROUP)
        self.functions = {}
        self.backends = {}
        self.refresh()

    def _load_entrypoints(self, group):
        """Load each plugin on its own: one broken plugin is reported, the others load."""
        for name, value in entry_points(group):
            if self.pm.get_plugin(name) is not None:
                continue
            try:
                self.pm.register(_load(value), name=name)
            except Exception as exc:           # a broken plugin must not take the platform down
                self._problem(name, "cannot load %s: %s: %s" % (value, type(exc).__name__, exc))

    def register(self, plugin, name=None):
        """Register a plugin object at run time (tests, embedded use)."""
        self.pm.register(plugin, name=name)
        self.refresh()

    def refresh(self):
        self.functions = self._collect("scampi_functions", "function", _check_function)
        self.backends = self._collect("scampi_backends", "backend", _check_backend)

    def _collect(self, hook, kind, check):
        """{name: descriptor} of what every plugin's `hook` declares: malformed ones and a name
        declared twice (the first one stays) are reported as the plugin's problems."""
        out = {}
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            pname = impl.plugin_name
            for d in self._call(impl, pname):
                problem = check(d)
                if problem:
                    self._problem(pname, problem)
                    continue
                d = _with_plugin(d, pname)
                if d.name in out:
                    self._problem(pname, "%s %s is already declared by plugin %s; ignored"
                                  % (kind, d.name, out[d.name].plugin))
                    continue
                out[d.name] = d
        return out

    def _call(self, impl, pname):
        try:
            out = impl.function()
        except Exception as exc:
            self._problem(pname, "hook %s raised %s: %s" % (impl.function.__name__, type(exc).__name__, exc))
            return []
        if out is None:
            return []
        try:
            return list(out)
        except TypeError:
            self._problem(pname, "hook %s returned %r, not a list" % (impl.function.__name__, out))
            return []

    def _problem(self, pname, msg):
        self.problems.append((pname, msg))
        log.error("plugin %s: %s", pname, msg)

    def function(self, name):
        base = name.split("!")[0].split(":")[-1]
        d = self.functions.get(base)
        if d is None:
            raise MapiError(EUNKNOWNFUNC, "unknown function %r; known functions: %s"
                            % (name, ", ".join(sorted(self.functions))), argument="name")
        return d

    def backend(self, name):
        d = self.backends.get(name)
        if d is None:
            raise MapiError(ENODEV, "unknown backend %r; installed backends: %s"
                            % (name, ", ".join(sorted(self.backends))), argument="backend")
        return d

    # --- which backend opens a device ---------------------------------------------------------
    def offline_backend(self, path, head=None):
        """The backend that replays `path`: the first answer of scampi_probe_offline.  `head`:
        the file's first PROBE_BYTES when the caller read them itself (mapid reads its
        client's descriptor and never opens the name); otherwise they are read from `path`."""
        from .compression import read_head
        if head is None:
            head = b"" if os.path.isdir(path) else read_head(path, PROBE_BYTES)
        name = self._ask("scampi_probe_offline", "which backend reads %s" % path,
                         path=path, head=head)
        if name is None:
            raise MapiError(ENODEV, "no installed backend reads %s" % path, file=path)
        desc = self._chosen(name, "file %s" % path)
        if desc.open_offline is None:
            raise MapiError(ENODEV, "backend %s (chosen for %s) cannot replay files" % (name, path),
                            file=path)
        return desc

    def live_backend(self, name):
        """(backend, device name it opens) for a live device: "backend:device" names the
        backend; a bare name goes to the first answer of scampi_claim_live."""
        if ":" in name:
            bname, device = name.split(":", 1)
            d = self.backends.get(bname)
            if d is not None:
                if d.open_live is None:
                    raise MapiError(ENODEV, "backend %s has no live devices" % bname, argument="dev")
                return d, device
        claimed = self._ask("scampi_claim_live", "which backend opens %r" % name, name=name)
        if claimed is None:
            raise MapiError(ENODEV, "no device %r: it is not an offline device of this process and "
                            "no installed backend opens it as a live device" % name, argument="dev")
        d = self._chosen(claimed, "device %r" % name)
        if d.open_live is None:
            raise MapiError(ENODEV, "backend %s (which claimed %r) has no live devices"
                            % (claimed, name), argument="dev")
        return d, name

    def _ask(self, hook, what, **kwargs):
        try:
            return getattr(self.pm.hook, hook)(**kwargs)
        except Exception as exc:       # a hook must not raise; say which question failed
            raise MapiError(EPLUGIN, "a plugin's %s failed asking %s: %s: %s"
                            % (hook, what, type(exc).__name__, exc)) from exc

    def _chosen(self, name, what):
        d = self.backends.get(name)
        if d is None:
            raise MapiError(EPLUGIN, "a plugin chose backend %r for %s, but no plugin declares it "
                            "(installed backends: %s)" % (name, what, ", ".join(sorted(self.backends))))
        return d


def _with_plugin(d, pname):
    import dataclasses
    return dataclasses.replace(d, plugin=pname)


def _check_backend(d):
    if not isinstance(d, BackendDescriptor) or not d.name:
        return "scampi_backends returned %r, not a BackendDescriptor" % (d,)
    return None


def _check_function(d):
    if not isinstance(d, FunctionDescriptor):
        return "scampi_functions returned %r, not a FunctionDescriptor" % (d,)
    if not d.name or not d.name.replace("_", "").isalnum() or d.name.upper() != d.name:
        return "function name %r must be upper case letters, digits and _" % d.name
    for a in d.args:
        if a.type not in ARG_TYPES:
            return "function %s: argument %s has unknown type %r" % (d.name, a.name, a.type)
    if d.cost not in COST_CLASSES:
        return "function %s: cost class %r is not one of %s" % (d.name, d.cost, COST_CLASSES)
    if d.result not in RESULT_TYPES:
        return "function %s: result type %r is not one of %s" % (d.name, d.result, RESULT_TYPES)
    if not callable(d.create):
        return "function %s: create is not callable" % d.name
    return None


def get_registry():
    global _registry
    with _lock:
        if _registry is None:
            _registry = Registry()
        return _registry


# --- entry points, scanned once ---------------------------------------------------------------
def entry_points(group):
    """[(name, "module:attr")] of the installed entry points of `group`, first of each name,
    in importlib.metadata's order; from the cache when the installation has not changed."""
    key = _installation_key()
    path = _cache_path(key)
    cached = _read_cache(path, key, group)
    if cached is not None:
        return cached
    found = _scan(group)
    _write_cache(path, key, group, found)
    return found


def _scan(group):
    from importlib.metadata import entry_points as installed
    try:
        eps = installed(group=group)
    except TypeError:                          # Python < 3.10
        eps = installed().get(group, [])
    out, seen = [], set()
    for ep in eps:
        if ep.name not in seen:
            seen.add(ep.name)
            out.append((ep.name, ep.value))
    return out


def _installation_key():
    """What importlib.metadata's answer depends on: the interpreter and, per sys.path entry, the
    distributions there (.dist-info / .egg-info names carry the version) with their mtimes."""
    entries = []
    for entry in sys.path:
        where = entry or os.getcwd()
        dists = []
        try:
            with os.scandir(where) as it:
                for d in it:
                    if d.name.endswith((".dist-info", ".egg-info")):
                        dists.append([d.name, d.stat().st_mtime_ns])
        except OSError:                        # a zip, an egg, a missing directory
            try:
                dists.append(["", os.stat(where).st_mtime_ns])
            except OSError:
                pass
        entries.append([entry, sorted(dists)])   # "" (the current directory) by name
    return [CACHE_FORMAT, sys.version, sys.prefix, sys.executable, entries]


def _cache_path(key):
    """One cache file per interpreter and path (marshal: read without importing anything; the
    key holds the Python version, whose marshal format it is)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    tag = zlib.crc32(repr(key[:4] + [[e[0] for e in key[4]]]).encode())
    return os.path.join(base, "scampi", "entrypoints-%08x.marshal" % tag)


def _read_cache(path, key, group):
    try:
        with open(path, "rb") as f:
            data = marshal.load(f)
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not isinstance(data, dict) or data.get("key") != key or group not in data.get("groups", {}):
        return None
    return [tuple(x) for x in data["groups"][group]]


def _write_cache(path, key, group, found):
    """Best effort: an unwritable cache only costs the next start a scan."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = "%s.%d.tmp" % (path, os.getpid())
        with open(tmp, "wb") as f:
            marshal.dump(dict(key=key, groups={group: [list(x) for x in found]}), f)
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("entry-point cache %s not written: %s", path, exc)


def _load(value):
    """The object an entry point value ("module" or "module:attr.attr") names."""
    module, _, attrs = value.partition(":")
    obj = importlib.import_module(module.strip())
    for attr in attrs.split("[")[0].strip().split("."):
        if attr:
            obj = getattr(obj, attr)
    return obj
