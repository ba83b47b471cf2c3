"""The plugin manager: loads every plugin of the ``scampi`` entry-point group and indexes the
functions and backends they declare."""
import logging
import threading

import pluggy

from . import hookspecs
from .errors import MapiError, EPLUGIN, EUNKNOWNFUNC, ENODEV
from .descriptor import FunctionDescriptor, BackendDescriptor, ARG_TYPES, COST_CLASSES, RESULT_TYPES

log = logging.getLogger("mapi.registry")
_lock = threading.Lock()
_registry = None


class Registry:
    def __init__(self, load_entrypoints=True):
        self.pm = pluggy.PluginManager("scampi")
        self.pm.add_hookspecs(hookspecs)
        self.problems = []            # (plugin, message): plugins that failed, for `mapi info`
        if load_entrypoints:
            self._load_entrypoints("scampi")
        self.functions = {}
        self.backends = {}
        self.refresh()

    def _load_entrypoints(self, group):
        """Load each plugin on its own: one broken plugin is reported, the others load."""
        from importlib.metadata import entry_points
        try:
            eps = entry_points(group=group)
        except TypeError:                      # Python < 3.10
            eps = entry_points().get(group, [])
        seen = set()
        for ep in eps:
            if ep.name in seen or self.pm.get_plugin(ep.name) is not None:
                continue
            seen.add(ep.name)
            try:
                plugin = ep.load()
                self.pm.register(plugin, name=ep.name)
            except Exception as exc:           # a broken plugin must not take the platform down
                self._problem(ep.name, "cannot load %s: %s: %s" % (ep.value, type(exc).__name__, exc))

    def register(self, plugin, name=None):
        """Register a plugin object at run time (tests, embedded use)."""
        self.pm.register(plugin, name=name)
        self.refresh()

    def refresh(self):
        functions, backends = {}, {}
        for impl in self.pm.hook.scampi_functions.get_hookimpls():
            pname = impl.plugin_name
            for d in self._call(impl, pname):
                problem = _check_function(d)
                if problem:
                    self._problem(pname, problem)
                    continue
                d = _with_plugin(d, pname)
                if d.name in functions:
                    self._problem(pname, "function %s is already declared by plugin %s; ignored"
                                  % (d.name, functions[d.name].plugin))
                    continue
                functions[d.name] = d
        for impl in self.pm.hook.scampi_backends.get_hookimpls():
            pname = impl.plugin_name
            for d in self._call(impl, pname):
                if not isinstance(d, BackendDescriptor) or not d.name:
                    self._problem(pname, "scampi_backends returned %r, not a BackendDescriptor" % (d,))
                    continue
                d = _with_plugin(d, pname)
                if d.name in backends:
                    self._problem(pname, "backend %s is already declared by plugin %s; ignored"
                                  % (d.name, backends[d.name].plugin))
                    continue
                backends[d.name] = d
        self.functions, self.backends = functions, backends

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


def _with_plugin(d, pname):
    import dataclasses
    return dataclasses.replace(d, plugin=pname)


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
