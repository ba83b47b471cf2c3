"""Job control (the paper's §4.3): who may do what on a shared MAPI server, whether a new job
fits, what each holds, and user code.

    tokens.py      Biscuit credentials: root keys, issuing, offline attenuation, verification
    rights.py      what a verified token allows, read from its blocks
    policy.py      authorising one operation (Biscuit's authorizer over the request's facts)
    admission.py   per-principal quotas and each device's CPU capacity
    calibrate.py   the cost classes in ns/packet, measured at mapid's start
    resourcedb.py  the SQLite resource database: principals, revocations, reservations, audit
    usercode.py    load_library: sandboxed (wasm/) and plain code, registered, not run
    control.py     the layer mapid's transports call once per operation
    config.py      mapid's [jobcontrol] configuration

In the embedded (in-process) mode nothing is restricted: the process already has its own
rights.  The calls below are that mode's; with a MAPI server in use (MAPI_SERVER) the client's
methods of the same names take their place."""
import os


def authenticate(token):
    """Present credentials to the MAPI server (once per connection; every later call is
    authorised against them).  In-process there is nothing to authorise: the process's own
    rights apply; the token is not even read."""
    return dict(principal=None, mode="in-process", restricted=False)


def load_library(path, kind="sandboxed", place="host", name=None):
    """Register the functions of a library without running any: kind "sandboxed" (a
    WebAssembly module) or "plain" (a plugin module); place "host".  Returns {"library",
    "functions", "kind", "place"}.  Apply its functions with apply_function as any other."""
    from mapi.errors import MapiError, EOPEN
    from .usercode import embedded
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            code = f.read()
    except OSError as exc:
        raise MapiError(EOPEN, "load_library: cannot read %s: %s" % (path, exc.strerror),
                        file=path) from None
    lib = embedded().load(name, kind, place, code, filename=path)
    return dict(library=lib.name, functions=list(lib.functions), kind=lib.kind, place=lib.place)
