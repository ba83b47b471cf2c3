"""Which plugins are installed and what each declares: found once, cached between starts.

Finding the plugins means reading the metadata of every installed distribution
(importlib.metadata), and knowing what they declare means importing all of them: together more
than the rest of a start.  Both answers are kept in one cache file per interpreter and path
(under $XDG_CACHE_HOME/scampi, marshal: read without importing anything), each with what it
depends on:

- the entry points of the ``scampi`` group: the interpreter, sys.path and, for each path entry,
  the names (with versions) and modification times of the distributions installed there.
  Installing, upgrading or removing any distribution, or another PYTHONPATH, changes that key
  and the next start scans again;
- the index (which plugin declares which function and backend, which module holds a
  function's descriptor, which plugins answer the probing hooks, in which order): also the
  modification times of the plugins' source files and package folders, so editing a plugin
  or adding a module to one (a new function in plugins/stdfuncs) makes the next start load
  every plugin again.  mapi.registry makes the index and uses it.
"""
import marshal
import os
import sys
import zlib

from .lazylog import getLogger

log = getLogger("mapi.registry")
CACHE_FORMAT = 2


class Cache:
    """The cache file of this interpreter and path, read once."""

    def __init__(self, group):
        self.group = group
        self.key = installation_key()
        self.path = _cache_path(self.key)
        data = _read(self.path)
        if not isinstance(data, dict) or data.get("key") != self.key:
            data = dict(key=self.key, groups={}, index={})
        self.data = data

    def entry_points(self):
        """[(name, "module:attr")] of the installed entry points of the group, first of each
        name, in importlib.metadata's order; scanned (and written) when not cached."""
        found = self.data["groups"].get(self.group)
        if found is None:
            found = scan(self.group)
            self.data["groups"][self.group] = [list(x) for x in found]
            self.data["index"].pop(self.group, None)
            _write(self.path, self.data)
        return [tuple(x) for x in found]

    def index(self, entries):
        """The index made from exactly these entry points, if none of its sources changed."""
        index = self.data["index"].get(self.group)
        if not isinstance(index, dict) or index.get("entries") != [list(e) for e in entries]:
            return None
        for path, mtime in index.get("sources", ()):
            if _mtime(path) != mtime:
                return None
        return index

    def save_index(self, entries, index, sources):
        """Keep `index` for the next starts, stamped with the sources' modification times."""
        index = dict(index, entries=[list(e) for e in entries],
                     sources=[[p, _mtime(p)] for p in sorted(set(sources))])
        self.data["index"][self.group] = index
        _write(self.path, self.data)


def scan(group):
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


def installation_key():
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


def module_sources(module):
    """The files whose change may change what `module` declares: its source and, for a
    package, its folders (a module added to the package changes the folder's mtime)."""
    out = []
    f = getattr(module, "__file__", None)
    if f:
        out.append(f)
    out.extend(p for p in (getattr(module, "__path__", None) or ()) if isinstance(p, str))
    return out


def _mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _cache_path(key):
    """One cache file per interpreter and path (the key holds the Python version, whose
    marshal format it is)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    tag = zlib.crc32(repr(key[:4] + [[e[0] for e in key[4]]]).encode())
    return os.path.join(base, "scampi", "entrypoints-%08x.marshal" % tag)


def _read(path):
    try:
        with open(path, "rb") as f:
            return marshal.load(f)
    except (OSError, EOFError, ValueError, TypeError):
        return None


def _write(path, data):
    """Best effort: an unwritable cache only costs the next start a scan."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = "%s.%d.tmp" % (path, os.getpid())
        with open(tmp, "wb") as f:
            marshal.dump(data, f)
        os.replace(tmp, path)
    except (OSError, ValueError) as exc:       # ValueError: something marshal cannot write
        log.debug("plugin cache %s not written: %s", path, exc)
