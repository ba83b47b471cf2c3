"""The MAPI wire protocol (mapi.proto): generated message classes, values, framing.

`make proto` (part of `make engine`) generates mapi_pb2.py (and mapi_pb2_grpc.py, the remote
transport's stubs: grpc_stubs()) next to the schema with grpcio-tools' protoc.  An installation
without them (a wheel built elsewhere, a fresh clone) generates the code once into
~/.cache/scampi/proto, keyed on the schema's hash, the first time it is imported.
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
    rc = protoc.main(["protoc", "-I" + HERE, "--python_out=" + outdir,
                      "--grpc_python_out=" + outdir, SCHEMA])
    if rc != 0:
        raise ImportError("mapi.proto: protoc failed (%d) on %s" % (rc, SCHEMA))
    stubs = os.path.join(outdir, "mapi_pb2_grpc.py")      # as `make proto`: a relative import
    with open(stubs) as f:
        text = f.read().replace("\nimport mapi_pb2 as", "\nfrom . import mapi_pb2 as")
    with open(stubs, "w") as f:
        f.write(text)


def _cached(name):
    digest = hashlib.sha256(open(SCHEMA, "rb").read()).hexdigest()[:16]
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                         "scampi", "proto", digest)
    path = os.path.join(cache, name + ".py")
    if not os.path.exists(path):
        _generate(cache)
    spec = importlib.util.spec_from_file_location(__name__ + "." + name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _load():
    try:
        from . import mapi_pb2
        return mapi_pb2
    except ImportError:
        return _cached("mapi_pb2")


def grpc_stubs():
    """The generated gRPC module (MapiStub, MapiServicer, add_MapiServicer_to_server); grpcio
    is imported only here, by the remote transport."""
    if pb.__name__ != __name__ + ".mapi_pb2" or not os.path.exists(
            os.path.join(HERE, "mapi_pb2_grpc.py")):
        return sys.modules.get(__name__ + ".mapi_pb2_grpc") or _cached("mapi_pb2_grpc")
    from . import mapi_pb2_grpc
    return mapi_pb2_grpc


pb = _load()
