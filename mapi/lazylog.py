"""Loggers that import logging when they are first used.

Importing logging (and re, enum, traceback, tokenize under it) costs a one-packet run or a
preloaded tool's first pcap call more than the rest of its imports, and most runs log nothing.
``getLogger(name)`` returns a stand-in for ``logging.getLogger(name)``: its first attribute
use (``log.warning(...)``, ``log.isEnabledFor``...) imports logging and from then on it forwards
to the real logger, so an application's configuration applies as before.

A library does not print: without a handler of the application's, records under "mapi" would
reach logging's last-resort handler (stderr).  ``quiet()`` gives "mapi" its NullHandler once
logging is loaded -- called when mapi is imported, when a stand-in first logs and when the
registry has imported a plugin (which may import logging itself).  ``quiet_everything()``
(the libpcap drop-in, inside an application) does the same for the root logger, and, when
logging is not loaded yet, makes the stand-ins drop their records without loading it: nothing
could print them then, and a tool that dropped its privileges may no longer be able to read
the interpreter's files to import logging.
"""
import sys

_ROOTS = ["mapi"]
_dropping = False
_RECORDING = frozenset(("debug", "info", "warning", "warn", "error", "exception", "critical",
                        "fatal", "log"))


def _drop(*args, **kwargs):
    pass


class Logger:
    """logging.getLogger(name), made when first used."""

    __slots__ = ("name", "_real")

    def __init__(self, name):
        self.name = name
        self._real = None

    def __getattr__(self, attr):
        real = self._real
        if real is None and _dropping and attr in _RECORDING:
            return _drop
        if real is None:
            import logging
            quiet()
            real = self._real = logging.getLogger(self.name)
        return getattr(real, attr)

    def __repr__(self):
        return "<lazy logger %s>" % self.name


def getLogger(name):
    return Logger(name)


def quiet():
    """A NullHandler on "mapi" (and the root logger after quiet_everything()), once logging
    is loaded; nothing (and no import) before."""
    logging = sys.modules.get("logging")
    if logging is None:
        return
    for name in _ROOTS:
        lg = logging.getLogger(name or None)
        if not any(isinstance(h, logging.NullHandler) for h in lg.handlers):
            lg.addHandler(logging.NullHandler())


def quiet_everything():
    """The root logger gets its NullHandler too, whenever logging loads (the libpcap drop-in:
    MAPI's log lines would be output the application never printed)."""
    global _dropping
    if "" not in _ROOTS:
        _ROOTS.append("")
    _dropping = "logging" not in sys.modules     # else the application may have its handlers
    quiet()


def when_loaded(configure):
    """configure(logging) as soon as logging is imported, by whoever imports it (at once when it
    already is): an application's settings -- the mapi command's prefix -- without importing
    logging for the runs that never log."""
    logging = sys.modules.get("logging")
    if logging is not None:
        configure(logging)
        return
    _configure.append(configure)
    if not any(isinstance(f, _WatchLogging) for f in sys.meta_path):
        sys.meta_path.insert(0, _WatchLogging())


_configure = []


class _WatchLogging:
    """A finder that answers for `logging` only: it finds it as the rest of sys.meta_path does
    and has the when_loaded() calls run once logging's module has run, then steps aside."""

    def find_spec(self, name, path=None, target=None):
        if name != "logging":
            return None
        sys.meta_path[:] = [f for f in sys.meta_path if f is not self]
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _ThenConfigure(spec.loader)
                return spec
        return None


class _ThenConfigure:
    """logging's own loader, with the configuration run after the module; the module keeps
    its own loader."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, attr):
        return getattr(self._loader, attr)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        module.__loader__ = self._loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._loader
        pending = list(_configure)
        _configure.clear()
        for configure in pending:
            configure(module)
