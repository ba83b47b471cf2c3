# The C is cffi modules: the engine (mapi/_build_engine.py) and each backend's own
# (backends/*/_build.py, built against the engine's headers like a third-party plugin's);
# everything else is declared in setup.cfg.
#
# The repo's backends/, plugins/ and libpcap_shim/ folders install under one project namespace
# (scampi.backends, scampi.plugins, scampi.libpcap_shim), so their import names cannot collide
# with other distributions; `mapi` is the API's own name.
import glob
import importlib.util
import os
import sys

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
NAMESPACED = ("backends", "plugins", "libpcap_shim")
packages = find_packages(include=["mapi", "mapi.*"])
package_dir = {}
for top in NAMESPACED:
    package_dir["scampi." + top] = top
    for p in find_packages(include=[top, top + ".*"], exclude=["plugins.example_dist*"]):
        packages.append("scampi." + p)

# The build scripts import mapi.cbuild exactly as a third-party plugin's do.  `mapi` itself
# cannot be imported yet (its engine is what this run builds), so the helper module, which
# imports nothing else of mapi, is loaded on its own.
_spec = importlib.util.spec_from_file_location("mapi.cbuild", os.path.join(HERE, "mapi", "cbuild.py"))
if "mapi.cbuild" not in sys.modules:
    sys.modules["mapi.cbuild"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["mapi.cbuild"])

os.chdir(HERE)
cffi_modules = ["mapi/_build_engine.py:ffibuilder", "mapi/tracegen/_build.py:ffibuilder",
                "mapi/jobcontrol/wasm/_build.py:ffibuilder"] + \
    ["%s:ffibuilder" % p for p in sorted(glob.glob("backends/*/_build.py"))]

setup(packages=packages, package_dir=package_dir, cffi_modules=cffi_modules)
