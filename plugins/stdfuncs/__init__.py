"""MAPI's standard function library: one small module per function, each declaring DESCRIPTOR.

Registered through the ``scampi`` entry-point group like any third-party plugin."""
import importlib
import pkgutil

from mapi import hookimpl


def descriptors():
    out = []
    for mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if mod.startswith("_"):
            continue
        module = importlib.import_module("%s.%s" % (__name__, mod))
        desc = getattr(module, "DESCRIPTOR", None)
        if desc is not None:
            out.extend(desc if isinstance(desc, (list, tuple)) else [desc])
    return out


@hookimpl
def scampi_functions():
    return descriptors()
