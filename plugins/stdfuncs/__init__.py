"""MAPI's standard function library: one small module per function, each declaring DESCRIPTOR.

Registered through the ``scampi`` entry-point group like any third-party plugin.  A module's
DESCRIPTOR is its function's whole declaration, so once the registry has indexed the library
(at the scan, which imports every module here), a run imports the modules of the functions it
uses and no other (mapi.registry)."""
from mapi import hookimpl

problems = []          # (module, message): modules that failed to load, for `mapi functions`


def descriptors():
    import importlib
    import logging
    import pkgutil
    log = logging.getLogger("mapi.stdfuncs")
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
