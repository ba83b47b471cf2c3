"""MAPI's standard function library: one small module per function, each declaring DESCRIPTOR.

Registered through the ``scampi`` entry-point group like any third-party plugin."""
import importlib
import logging
import pkgutil

from mapi import hookimpl

log = logging.getLogger("mapi.stdfuncs")
problems = []          # (module, message): modules that failed to load, for `mapi functions`


def descriptors():
    out = []
    for mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if mod.startswith("_"):
            continue
        try:
            module = importlib.import_module("%s.%s" % (__name__, mod))
        except Exception as exc:
            # one broken function must not hide the others
            msg = "%s: %s" % (type(exc).__name__, exc)
            if (mod, msg) not in problems:
                problems.append((mod, msg))
                log.error("standard function module %s cannot load: %s", mod, msg)
            continue
        desc = getattr(module, "DESCRIPTOR", None)
        if desc is not None:
            out.extend(desc if isinstance(desc, (list, tuple)) else [desc])
    return out


@hookimpl
def scampi_functions():
    return descriptors()
