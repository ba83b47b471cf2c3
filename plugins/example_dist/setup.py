from setuptools import setup

setup(cffi_modules=["scampi_example/_build.py:ffibuilder"])
