"""The plugin registry: the functions and backends the plugins of the ``scampi`` entry-point
group declare, and the probing hooks that say which backend opens a device.

A start imports only the plugins it uses.  The first start after an installation changed
*scans*: it loads every plugin into a pluggy PluginManager (which checks every hook
implementation against mapi.hookspecs), collects what they declare, reports broken plugins,
and writes an *index* beside the cached entry-point scan (mapi.discovery): which plugin
declares which name, which module holds a function's descriptor, which plugins implement the
probing hooks and in which order pluggy calls them.  The next starts read the index and import
a plugin (or one function module of it) when one of its names is first looked up, and call
the probing hooks of the plugins that implement them in pluggy's order -- without importing
pluggy.  Whatever needs every plugin (iterating ``functions`` or ``backends``, ``problems``,
``pm``, an unknown name, a plugin that does not load as the index says) makes the registry scan
in that process, so listings and error messages are always complete.
"""
import sys
import threading

from .errors import MapiError, EPLUGIN, EUNKNOWNFUNC, ENODEV
from .descriptor import declaration_problem
from . import discovery, lazylog

log = lazylog.getLogger("mapi.registry")
_lock = threading.Lock()
_registry = None

GROUP = "scampi"
PROBE_BYTES = 64
DECLARING = {"functions": "scampi_functions", "backends": "scampi_backends"}
ASKED = ("scampi_probe_offline", "scampi_claim_live")
HOOKS = tuple(DECLARING.values()) + ASKED


class Declared:
    """{name: descriptor} of what the plugins declare (``registry.functions``, ``.backends``).
    Looking a name up loads only the plugin that declares it; iterating loads every plugin."""

    def __init__(self, reg, kind):
        self._reg, self._kind = reg, kind

    def get(self, name, default=None):
        d = self._reg._lookup(self._kind, name)
        return default if d is None else d

    def __getitem__(self, name):
        d = self._reg._lookup(self._kind, name)
        if d is None:
            raise KeyError(name)
        return d

    def __contains__(self, name):
        return self._reg._declares(self._kind, name)

    def _all(self):
        return self._reg._everything(self._kind)

    def __iter__(self):
        return iter(list(self._all()))

    def __len__(self):
        return len(self._all())

    def keys(self):
        return self._all().keys()

    def values(self):
        return self._all().values()

    def items(self):
        return self._all().items()

    def __repr__(self):
        return "<%s declared: %s>" % (self._kind, ", ".join(sorted(self)))


class Registry:
    def __init__(self, load_entrypoints=True):
        self.functions = Declared(self, "functions")
        self.backends = Declared(self, "backends")
        self._problems = []         # (plugin, message): plugins that failed, for `mapi devices`
        self._lock = threading.RLock()
        self._found = {"functions": {}, "backends": {}}     # name -> descriptor, loaded
        self._index = {"functions": {}, "backends": {}}     # name -> [plugin, module], to load
        self._asked = {hook: [] for hook in ASKED}          # [[plugin, argnames]], pluggy's order
        self._where = {}            # function name -> module holding its descriptor, or None
        self._entries = {}          # plugin name -> entry point value, in scan order
        self._plugins = {}          # plugin name -> plugin object, once loaded
        self._runtime = []          # (name, plugin) registered at run time, in order
        self._pm = None             # the pluggy manager, once every plugin is loaded
        self._cache = None
        if load_entrypoints:
            self._cache = discovery.Cache(GROUP)
            self._entries = dict(self._cache.entry_points())
            index = self._cache.index(list(self._entries.items()))
            if index is not None:
                self._use(index)
                return
        self._load_all()

    # --- the index ------------------------------------------------------------------------------
    def _use(self, index):
        for kind in DECLARING:
            self._index[kind] = dict(index[kind])
        for hook in ASKED:
            self._asked[hook] = [list(x) for x in index["asked"][hook]]

    def _save_index(self, sources):
        """After a scan without problems: what the next starts need to load the entry-point
        plugins one by one.  Not kept when a plugin uses something only pluggy can call (a
        wrapper, a specname, tryfirst/trylast on a declaring hook)."""
        if self._cache is None or self._problems:
            return
        out = {"functions": {}, "backends": {}, "asked": {}}
        for hook in HOOKS:
            impls = [i for i in getattr(self._pm.hook, hook).get_hookimpls()
                     if i.plugin_name in self._entries]
            if any(i.wrapper or i.hookwrapper or i.function.__name__ != hook for i in impls):
                return None
            if hook in ASKED:       # get_hookimpls() order: pluggy calls them last to first
                out["asked"][hook] = [[i.plugin_name, list(i.argnames)] for i in impls]
            elif any(i.tryfirst or i.trylast for i in impls):
                return None         # who wins a name declared twice would depend on it
        for kind in DECLARING:
            for name, d in self._found[kind].items():
                if d.plugin in self._entries:
                    out[kind][name] = [d.plugin, self._where.get(name) or ""]
        self._cache.save_index(list(self._entries.items()), out, sources)

    # --- loading --------------------------------------------------------------------------------
    def _plugin(self, name):
        p = self._plugins.get(name)
        if p is None:
            p = self._plugins[name] = _load(self._entries[name])
        return p

    def _load_all(self):
        """Scan: every plugin into a pluggy manager, everything they declare collected, the
        index kept for the next starts."""
        with self._lock:
            if self._pm is not None:
                return
            import pluggy
            from . import hookspecs
            pm = pluggy.PluginManager(GROUP)
            pm.add_hookspecs(hookspecs)
            sources = []
            for name, value in self._entries.items():
                try:
                    plugin = self._plugin(name)
                    pm.register(plugin, name=name)
                except Exception as exc:           # a broken plugin must not take the platform down
                    self._problem(name, "cannot load %s: %s: %s" % (value, type(exc).__name__, exc))
                    continue
                sources += discovery.module_sources(sys.modules.get(value.partition(":")[0].strip()))
            for name, plugin in self._runtime:
                try:
                    pm.register(plugin, name=name)
                except Exception as exc:
                    self._problem(name, "cannot register: %s: %s" % (type(exc).__name__, exc))
            self._pm = pm
            self._index = {"functions": {}, "backends": {}}
            self.refresh()
            for module in self._where.values():
                if module:
                    sources += discovery.module_sources(sys.modules.get(module))
            self._save_index(sources)

    def refresh(self):
        """Ask every plugin again what it declares (after a scan or a pluggy registration)."""
        with self._lock:
            if self._pm is None:
                self._load_all()                 # (which refreshes)
                return
            self._where = {}
            self._found = {kind: self._collect(kind) for kind in DECLARING}

    def _collect(self, kind):
        """{name: descriptor} of what every plugin's declaring hook returns: malformed ones and
        a name declared twice (the first one stays) are reported as the plugin's problems."""
        out = {}
        before = self._found[kind]
        for impl in getattr(self._pm.hook, DECLARING[kind]).get_hookimpls():
            pname = impl.plugin_name
            for d in self._call(impl.function, pname):
                if not self._fits(kind, d, pname, out):
                    continue
                if kind == "functions":
                    self._where[d.name] = _home(d)
                old = before.get(d.name)        # a descriptor handed out before stays the one
                out[d.name] = old if old is not None and old.plugin == pname else _with_plugin(d, pname)
        return out

    def _fits(self, kind, d, pname, taken):
        problem = declaration_problem(kind, d)
        if problem is None and d.name in taken:
            problem = "%s %s is already declared by plugin %s; ignored" % (
                kind[:-1], d.name, taken[d.name].plugin)
        if problem:
            self._problem(pname, problem)
            return False
        return True

    def _call(self, function, pname):
        try:
            out = function()
        except Exception as exc:
            self._problem(pname, "hook %s raised %s: %s" % (function.__name__, type(exc).__name__, exc))
            return []
        if out is None:
            return []
        try:
            return list(out)
        except TypeError:
            self._problem(pname, "hook %s returned %r, not a list" % (function.__name__, out))
            return []

    def _problem(self, pname, msg):
        if (pname, msg) not in self._problems:
            self._problems.append((pname, msg))
            log.error("plugin %s: %s", pname, msg)

    # --- lookups ----------------------------------------------------------------------------------
    def _declares(self, kind, name):
        return name in self._found[kind] or name in self._index[kind]

    def _lookup(self, kind, name):
        d = self._found[kind].get(name)
        if d is not None or name not in self._index[kind]:
            return d
        with self._lock:
            if name in self._index[kind]:
                self._resolve(kind, name)
            if name not in self._found[kind]:      # the index was wrong: load everything
                self._load_all()
            return self._found[kind].get(name)

    def _resolve(self, kind, name):
        """Load what declares `name` (its function module, else its plugin) and take every
        name of that answer the index gives to the same place."""
        pname, module = self._index[kind][name]
        try:
            if module:
                __import__(module)
                lazylog.quiet()                  # the module may have imported logging
                answer = _descriptors_of(sys.modules[module])
            else:
                answer = self._call(getattr(self._plugin(pname), DECLARING[kind]), pname)
        except Exception as exc:                   # the scan will report it
            log.debug("loading %s for %s %s failed: %s", module or pname, kind, name, exc)
            return
        for d in answer:
            if self._index[kind].get(getattr(d, "name", None)) == [pname, module] and \
                    self._fits(kind, d, pname, self._found[kind]):
                self._found[kind][d.name] = _with_plugin(d, pname)
                del self._index[kind][d.name]

    def _everything(self, kind):
        self._load_all()
        return self._found[kind]

    @property
    def problems(self):
        """(plugin, message) of every plugin that failed; loads every plugin to know."""
        self._load_all()
        return self._problems

    @property
    def pm(self):
        """The pluggy PluginManager holding every plugin (loads them all)."""
        self._load_all()
        return self._pm

    def register(self, plugin, name=None):
        """Register a plugin object at run time (tests, embedded use, the CLI's own)."""
        name = name or str(id(plugin))
        with self._lock:
            impls = None if self._pm is not None else _plain_declarations(plugin)
            if impls is None:
                self._load_all()                 # pluggy checks it and calls what it implements
                self._pm.register(plugin, name=name)
                self._runtime.append((name, plugin))
                self.refresh()
                return
            if name in self._entries or name in dict(self._runtime):
                raise ValueError("Plugin name already registered: %s" % name)
            self._runtime.append((name, plugin))
            for kind, fn in impls.items():
                for d in self._call(fn, name):
                    taken = dict(self._found[kind])
                    taken.update((n, _Owner(p)) for n, (p, _) in self._index[kind].items())
                    if self._fits(kind, d, name, taken):
                        self._found[kind][d.name] = _with_plugin(d, name)

    def function(self, name):
        base = name.split("!")[0].split(":")[-1]
        d = self.functions.get(base)
        if d is None and self._pm is None:       # a function installed since the index was made?
            self._load_all()
            d = self.functions.get(base)
        if d is None:
            raise MapiError(EUNKNOWNFUNC, "unknown function %r; known functions: %s"
                            % (name, ", ".join(sorted(self.functions))), argument="name")
        return d

    def backend(self, name):
        d = self.backends.get(name)
        if d is None and self._pm is None:
            self._load_all()
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
        import os
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
            if self._pm is not None:
                return getattr(self._pm.hook, hook)(**kwargs)
            try:
                return self._ask_indexed(hook, kwargs)
            except _NotAsIndexed:
                self._load_all()
                return getattr(self._pm.hook, hook)(**kwargs)
        except Exception as exc:       # a hook must not raise; say which question failed
            raise MapiError(EPLUGIN, "a plugin's %s failed asking %s: %s: %s"
                            % (hook, what, type(exc).__name__, exc)) from exc

    def _ask_indexed(self, hook, kwargs):
        """A firstresult hook called as pluggy calls it, in the order the scan recorded."""
        for pname, argnames in reversed(self._asked[hook]):
            try:
                fn = getattr(self._plugin(pname), hook)
            except Exception as exc:
                raise _NotAsIndexed() from exc
            answer = fn(*[kwargs[a] for a in argnames])
            if answer is not None:
                return answer
        return None

    def _chosen(self, name, what):
        d = self.backends.get(name)
        if d is None:
            raise MapiError(EPLUGIN, "a plugin chose backend %r for %s, but no plugin declares it "
                            "(installed backends: %s)" % (name, what, ", ".join(sorted(self.backends))))
        return d


class _NotAsIndexed(Exception):
    """A plugin the index names does not load: the registry scans instead."""


class _Owner:
    def __init__(self, plugin):
        self.plugin = plugin


def _plain_declarations(plugin):
    """{kind: hook implementation} when the plugin only declares names, with plain
    implementations (the registry takes those without pluggy); None for anything else, which
    is registered through pluggy."""
    out = {}
    for attr in dir(plugin):
        fn = getattr(plugin, attr, None) if attr.startswith("scampi_") else None
        opts = getattr(fn, "scampi_impl", None)
        if not isinstance(opts, dict):
            continue
        kind = {hook: kind for kind, hook in DECLARING.items()}.get(attr)
        if kind is None or any(opts.get(k) for k in ("wrapper", "hookwrapper", "tryfirst",
                                                     "trylast", "specname")):
            return None
        out[kind] = fn
    return out


def _home(d):
    """The module whose DESCRIPTOR `d` is (or is in), when `create` lives there too: importing
    that module alone gives the descriptor back."""
    module = sys.modules.get(getattr(d.create, "__module__", None) or "")
    return module.__name__ if module is not None and any(x is d for x in _descriptors_of(module)) else None


def _descriptors_of(module):
    desc = getattr(module, "DESCRIPTOR", None)
    if desc is None:
        return []
    return list(desc) if isinstance(desc, (list, tuple)) else [desc]


def _with_plugin(d, pname):
    return d.replace(plugin=pname)


def get_registry():
    global _registry
    with _lock:
        if _registry is None:
            _registry = Registry()
        return _registry


def entry_points(group):
    """[(name, "module:attr")] of the installed entry points of `group` (cached)."""
    return discovery.Cache(group).entry_points()


def _load(value):
    """The object an entry point value ("module" or "module:attr.attr") names."""
    module, _, attrs = value.partition(":")
    module = module.strip()
    __import__(module)              # (not importlib.import_module: -X importtime shows this one)
    lazylog.quiet()                 # a plugin may import logging itself
    obj = sys.modules[module]
    for attr in attrs.split("[")[0].strip().split("."):
        if attr:
            obj = getattr(obj, attr)
    return obj
