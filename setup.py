# The C engine is a cffi module; everything else is declared in setup.cfg.
from setuptools import setup

setup(cffi_modules=["mapi/_build_engine.py:ffibuilder"])
