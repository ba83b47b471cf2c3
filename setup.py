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
from setuptools.command.build_ext import build_ext

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



class build_ext_and_shim(build_ext):
    """The cffi modules, then (for a wheel or an install, not `make engine`'s --inplace build)
    the libpcap drop-in into the package: mapi-preload works without a compiler afterwards."""

    def run(self):
        super().run()
        if self.inplace or getattr(self, "editable_mode", False):
            return                         # a checkout: the Makefile's `make shim` builds it
        spec = importlib.util.spec_from_file_location("_shim_build", os.path.join(HERE, "libpcap_shim", "build.py"))
        shim = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(shim)
        target = os.path.join(self.build_lib, "scampi", "libpcap_shim", "lib", shim.SONAME)
        shim.build(target=os.path.abspath(target), tmpdir=os.path.abspath(os.path.join(self.build_temp, "libpcap_shim")))


setup(packages=packages, package_dir=package_dir, cffi_modules=cffi_modules,
      cmdclass={"build_ext": build_ext_and_shim})
