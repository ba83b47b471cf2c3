"""The MAPI wire protocol (mapi.proto): generated message classes, values, framing.

`make proto` (part of `make engine`) generates mapi_pb2.py next to the schema with grpcio-tools'
protoc.  An installation without it (a wheel built elsewhere, a fresh clone) generates the code
once into ~/.cache/scampi/proto, keyed on the schema's hash, the first time it is imported.
"""
import hashlib
import importlib.util
import os
import sys

PROTOCOL_VERSION = 1
HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA = os.path.join(HERE, "mapi.proto")


def _generate(outdir):
    try:
        from grpc_tools import protoc
    except ImportError:
        raise ImportError("mapi.proto: the generated mapi_pb2 module is missing and grpcio-tools "
                          "is not installed to generate it (pip install grpcio-tools, or make "
                          "proto)") from None
    os.makedirs(outdir, exist_ok=True)
    rc = protoc.main(["protoc", "-I" + HERE, "--python_out=" + outdir, SCHEMA])
    if rc != 0:
        raise ImportError("mapi.proto: protoc failed (%d) on %s" % (rc, SCHEMA))


def _load():
    try:
        from . import mapi_pb2
        return mapi_pb2
    except ImportError:
        pass
    digest = hashlib.sha256(open(SCHEMA, "rb").read()).hexdigest()[:16]
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                         "scampi", "proto", digest)
    path = os.path.join(cache, "mapi_pb2.py")
    if not os.path.exists(path):
        _generate(cache)
    spec = importlib.util.spec_from_file_location(__name__ + ".mapi_pb2", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


pb = _load()
