"""Check the house rules of the tree: no import circles (Python modules, C #includes) and no
layer violations.  `make test` runs it; it exits 1 and names every offending edge.

    python tools/check_imports.py [--root DIR] [--exceptions FILE] [--graph]

The rooms and who may import whom (docs/architecture.md draws it):

    mapi (the core)        stdlib and third-party packages, mapi.proto, mapi.tracegen; never
                           the rooms above it, scampi.* or tools.  One exception by design:
                           the package itself (mapi/__init__.py, the facade every program
                           imports) hands the calls to mapi.client when a server is named
    mapi.proto             the core                   (the wire protocol's messages)
    mapi.tracegen          the core                   (the trace generator)
    mapi.jobcontrol        the core, proto, tracegen  (credentials, admission, user code)
    mapi.server            the core, proto, jobcontrol (mapid; .remote its gRPC listener)
    mapi.client            the core, proto            (Unix socket, gRPC, distributed flows)
    mapi.cli               the core, client, tracegen (the mapi command)
    mapi.admin             the core, jobcontrol, server (mapi-admin: its config, database)
    scampi.plugins         the core and itself        (functions)
    scampi.backends        the core and itself        (packet sources)
    scampi.libpcap_shim    the core, scampi.backends  (a client of the API)
    tools, tests           anything                   (never installed)

Nothing installed imports tools/.  Every import counts, also one inside a function: a lazy
import is still a dependency.  A module does not depend on its own parent package by being in
it, only by importing it (`from mapi import hookimpl` is an edge to the package `mapi`).

C: each .c/.h pair is one module; the engine (mapi/csrc) includes only its own headers;
backends and the shim may include the engine's.  Circles are found between modules, so a .c
that includes another module's header while that module includes its own is a circle even
when every header has its guard.

An exceptions file (tools/import_exceptions.txt) may list known edges, one `A -> B  # why`
per line, while the change that removes them is under way; an exception that no longer
matches anything is reported so it can be deleted.
"""
import argparse
import ast
import os
import re
import sys

# folder in the repository -> installed package name (as setup.py maps them)
ROOMS = {"mapi": "mapi", "backends": "scampi.backends", "plugins": "scampi.plugins",
         "libpcap_shim": "scampi.libpcap_shim", "tools": "tools"}
# installed room -> rooms it must not import (by package prefix; a room's own sub-rooms
# are rooms of their own: mapi.client is not part of "mapi" here)
_UPPER = ("mapi.jobcontrol", "mapi.server", "mapi.client", "mapi.cli", "mapi.admin")
_NOT_INSTALLED = ("scampi", "tools")
FORBIDDEN = {
    "mapi": _UPPER + _NOT_INSTALLED,
    "mapi.proto": _UPPER + ("mapi.tracegen",) + _NOT_INSTALLED,
    "mapi.tracegen": _UPPER + ("mapi.proto",) + _NOT_INSTALLED,
    "mapi.jobcontrol": ("mapi.server", "mapi.client", "mapi.cli", "mapi.admin") + _NOT_INSTALLED,
    "mapi.server": ("mapi.client", "mapi.cli", "mapi.admin") + _NOT_INSTALLED,
    "mapi.client": ("mapi.jobcontrol", "mapi.server", "mapi.cli", "mapi.admin") + _NOT_INSTALLED,
    "mapi.cli": ("mapi.jobcontrol", "mapi.server", "mapi.admin") + _NOT_INSTALLED,
    "mapi.admin": ("mapi.client", "mapi.cli") + _NOT_INSTALLED,
    "scampi.plugins": _UPPER + ("scampi.backends", "scampi.libpcap_shim", "tools"),
    "scampi.backends": _UPPER + ("scampi.plugins", "scampi.libpcap_shim", "tools"),
    "scampi.libpcap_shim": _UPPER + ("scampi.plugins", "tools"),
}
# by design, not a room: (importing module, room it may import although its room may not)
FACADE = {("mapi", "mapi.client")}
SKIP_DIRS = {"__pycache__", ".venv", "build", "lib", ".git"}
# C rooms: folder prefix -> folders whose headers it may include besides its own
C_ROOMS = {"mapi/csrc": (), "backends": ("mapi/csrc",), "libpcap_shim/csrc": ("mapi/csrc",),
           "tools/csrc": ("mapi/csrc",), "mapi/tracegen/csrc": (), "mapi/jobcontrol/wasm": ("mapi/csrc",)}
C_INCLUDE_PATH = ("mapi/csrc", "mapi/csrc/fn")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


# --- Python --------------------------------------------------------------------------------
def _separate_distribution(root, path):
    """A folder under a room with its own setup.py/pyproject.toml is another distribution
    (plugins/example_dist): a third-party plugin, not part of the house."""
    d = os.path.dirname(path)
    while d and os.path.abspath(d) != os.path.abspath(root):
        if os.path.exists(os.path.join(d, "setup.py")) or os.path.exists(os.path.join(d, "pyproject.toml")):
            return True
        d = os.path.dirname(d)
    return False


def python_modules(root):
    """{module name: file path} of every Python file in the rooms."""
    mods = {}
    for folder, package in ROOMS.items():
        base = os.path.join(root, folder)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for fn in sorted(filenames):
                if not fn.endswith(".py"):
                    continue
                path = os.path.join(dirpath, fn)
                if _separate_distribution(root, path):
                    continue
                rel = os.path.relpath(path, base)[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                mods[".".join([package] + rel)] = path
    return mods


def _is_package(mods, name):
    return mods.get(name, "").endswith("__init__.py")


def _resolve(mods, importer, level, module):
    """Absolute name of `from <level dots><module> import ...` inside `importer`."""
    if level == 0:
        return module
    parts = importer.split(".")
    if not _is_package(mods, importer):
        parts = parts[:-1]
    parts = parts[:len(parts) - (level - 1)] if level > 1 else parts
    return ".".join(parts + ([module] if module else []))


def python_edges(mods):
    """[(importer, imported, line)], one per imported module and line.  A name that is not a
    file of the tree (a compiled extension such as mapi._engine, a third-party module) is
    kept as written: it has no edges of its own, and its prefix still says its room."""
    edges, seen = [], set()
    for name, path in sorted(mods.items()):
        with open(path, encoding="utf-8") as f:
            try:
                tree = ast.parse(f.read(), path)
            except SyntaxError as exc:
                edges.append((name, "<syntax error: %s>" % exc, exc.lineno or 0))
                continue
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(mods, name, node.level, node.module or "")
                for a in node.names:
                    full = base + "." + a.name if base else a.name
                    # `from pkg import mod` depends on pkg.mod; `from pkg import name`, on pkg
                    targets.append(full if full in mods else base)
            for t in targets:
                if t and (name, t, node.lineno) not in seen:
                    seen.add((name, t, node.lineno))
                    edges.append((name, t, node.lineno))
    return edges


def _room_of(name, rooms, sep):
    """The longest of `rooms` that is `name` or a prefix of it up to `sep`, or None."""
    for room in sorted(rooms, key=len, reverse=True):
        if name == room or name.startswith(room + sep):
            return room
    return None


def _within(name, prefix):
    return name == prefix or name.startswith(prefix + ".")


def layer_violations(edges, mods):
    out = []
    for a, b, line in edges:
        room = _room_of(a, FORBIDDEN, ".")
        if room is None or _room_of(b, FORBIDDEN, ".") == room:
            continue
        for bad in FORBIDDEN[room]:
            if _within(b, bad) and (a, bad) not in FACADE:
                out.append((a, b, "%s:%d: %s imports %s (%s must not import %s)"
                            % (os.path.relpath(mods[a]), line, a, b, room, bad)))
                break
    return out


# --- C -------------------------------------------------------------------------------------
def c_files(root):
    out = []
    for folder in C_ROOMS:
        base = os.path.join(root, folder)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for fn in sorted(filenames):
                if fn.endswith((".c", ".h", ".inc")):
                    out.append(os.path.relpath(os.path.join(dirpath, fn), root))
    return out


def _c_module(rel):
    return os.path.splitext(rel)[0]


def c_edges(root, files):
    """[(module, included module, file, line)] for quoted includes that resolve in the tree."""
    known = set(files)
    edges = []
    for rel in files:
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            text = f.read()
        for m in INCLUDE_RE.finditer(text):
            inc = m.group(1)
            line = text.count("\n", 0, m.start()) + 1
            here = os.path.dirname(rel)
            for d in (here,) + C_INCLUDE_PATH:
                cand = os.path.normpath(os.path.join(d, inc))
                if cand in known:
                    if _c_module(cand) != _c_module(rel):
                        edges.append((_c_module(rel), _c_module(cand), rel, line))
                    break
    return edges


def c_violations(edges):
    out = []
    for a, b, rel, line in edges:
        ra, rb = _room_of(a, C_ROOMS, "/"), _room_of(b, C_ROOMS, "/")
        if ra is None or rb is None or rb == ra or rb in C_ROOMS[ra]:
            continue
        out.append((a, b, "%s:%d: %s includes %s (%s may include only its own headers%s)"
                    % (rel, line, a, b, ra, "".join(" and " + x + "'s" for x in C_ROOMS[ra]))))
    return out


# --- circles -------------------------------------------------------------------------------
def circles(graph):
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _cycle_path(graph, comp):
    """One concrete circle through the component, as a list of nodes (first == last)."""
    members = set(comp)
    start = comp[0]
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph.get(v, ())):
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if w in members and w not in prev:
                prev[w] = v
                queue.append(w)
    return comp + [comp[0]]


# --- main ----------------------------------------------------------------------------------
def read_exceptions(path):
    out = {}
    if path and os.path.exists(path):
        for n, line in enumerate(open(path, encoding="utf-8"), 1):
            text = line.split("#", 1)[0].strip()
            if text:
                a, _, b = text.partition("->")
                out[(a.strip(), b.strip())] = n
    return out


def check(root, exceptions_path=None):
    """(problems, notes): problems fail the check."""
    mods = python_modules(root)
    edges = python_edges(mods)
    files = c_files(root)
    cedges = c_edges(root, files)
    allowed = read_exceptions(exceptions_path)
    used = set()

    def allowed_edge(a, b):
        if (a, b) in allowed:
            used.add((a, b))
            return True
        return False

    problems = []
    for a, b, msg in layer_violations(edges, mods) + c_violations(cedges):
        if not allowed_edge(a, b):
            problems.append("layer: " + msg)
    for kind, graph_edges in (("python", [(a, b) for a, b, _ in edges if b in mods and a != b]),
                              ("C", [(a, b) for a, b, _, _ in cedges])):
        graph = {}
        for a, b in graph_edges:
            if not allowed_edge(a, b):
                graph.setdefault(a, set()).add(b)
        for comp in circles(graph):
            problems.append("circle (%s): %s" % (kind, " -> ".join(_cycle_path(graph, comp))))
    notes = ["exception no longer needed (line %d of %s): %s -> %s" % (n, exceptions_path, a, b)
             for (a, b), n in sorted(allowed.items(), key=lambda x: x[1]) if (a, b) not in used]
    return problems, notes


def main(argv=None):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=here, help="repository root (default: this checkout)")
    ap.add_argument("--exceptions", default=None,
                    help="known edges, one 'A -> B  # why' per line (default: "
                         "ROOT/tools/import_exceptions.txt)")
    ap.add_argument("--graph", action="store_true", help="print every edge found")
    args = ap.parse_args(argv)
    exceptions = args.exceptions or os.path.join(args.root, "tools", "import_exceptions.txt")
    if args.graph:
        mods = python_modules(args.root)
        for a, b, line in python_edges(mods):
            if b in mods:
                print("%s -> %s  (line %d)" % (a, b, line))
        for a, b, rel, line in c_edges(args.root, c_files(args.root)):
            print("%s -> %s  (%s:%d)" % (a, b, rel, line))
    problems, notes = check(args.root, exceptions)
    for n in notes:
        print("check_imports: note: " + n)
    for p in problems:
        print("check_imports: " + p)
    if problems:
        print("check_imports: %d problem(s); see docs/architecture.md for the rules" % len(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
