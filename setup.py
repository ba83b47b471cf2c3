# The C engine is a cffi module; everything else is declared in setup.cfg.
#
# The repo's backends/, plugins/ and libpcap_shim/ folders install under one project namespace
# (scampi.backends, scampi.plugins, scampi.libpcap_shim), so their import names cannot collide
# with other distributions; `mapi` is the API's own name.
from setuptools import find_packages, setup

NAMESPACED = ("backends", "plugins", "libpcap_shim")
packages = find_packages(include=["mapi", "mapi.*"])
package_dir = {}
for top in NAMESPACED:
    package_dir["scampi." + top] = top
    for p in find_packages(include=[top, top + ".*"], exclude=["plugins.example_dist*"]):
        packages.append("scampi." + p)

setup(packages=packages, package_dir=package_dir,
      cffi_modules=["mapi/_build_engine.py:ffibuilder",
                    "mapi/tracegen/_build.py:ffibuilder"])
