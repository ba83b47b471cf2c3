"""The development install's one extra line: make `scampi` a namespace over the repository.

    python tools/devinstall.py            # writes scampi-dev.pth into the interpreter's site-packages

`make venv` installs the project with `pip install -e . --config-settings editable_mode=compat`,
which puts the repository root on sys.path (a plain .pth line), so `mapi` imports from the
work tree exactly as from site-packages.  The folders installed under the project namespace
(backends/ -> scampi.backends, plugins/ -> scampi.plugins, libpcap_shim/ -> scampi.libpcap_shim)
need one more thing: a `scampi` package whose __path__ is the repository root.  This line does
that at interpreter start, before any import, at the cost of creating one module object.

setuptools' default editable mode does the same through an import hook whose module imports
pathlib, importlib.util and friends at every start (10-25 ms on this machine); a normal
`pip install .` copies the packages and needs neither.
"""
import os
import sys
import sysconfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PTH = "scampi-dev.pth"

# `import` lines of a .pth file are executed by site.py; one line, no other imports
# (_frozen_importlib is always loaded: its ModuleSpec is importlib.machinery.ModuleSpec).
LINE = ("import sys; s = sys.modules['_frozen_importlib'].ModuleSpec('scampi', None, is_package=True); "
        "s.submodule_search_locations = [%r]; m = type(sys)('scampi'); m.__spec__ = s; "
        "m.__path__ = s.submodule_search_locations; sys.modules.setdefault('scampi', m)\n")


def pth_text(root=ROOT):
    """The repository root (as compat mode's own .pth has it, so the tree imports without it
    too) and the namespace line."""
    return ("# written by tools/devinstall.py: mapi and scampi.* from the work tree\n%s\n" % root
            + LINE % root)


def main(argv=None):
    site = sysconfig.get_paths()["purelib"]
    path = os.path.join(site, PTH)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(pth_text())
    os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
