#!/usr/bin/env python3
"""Build the example sandboxed modules: every examples/wasm/*.wat to its .wasm (wasmtime's own
WAT assembler), only when the source is newer.  `make wasm-example` runs it."""
import os
import sys

import wasmtime

HERE = os.path.dirname(os.path.abspath(__file__))


def build(directory=HERE):
    built = []
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".wat"):
            continue
        src = os.path.join(directory, name)
        dst = src[:-4] + ".wasm"
        if os.path.exists(dst) and os.path.getmtime(dst) >= os.path.getmtime(src):
            continue
        with open(src) as f:
            binary = wasmtime.wat2wasm(f.read())
        tmp = dst + ".part"
        with open(tmp, "wb") as f:
            f.write(binary)
        os.replace(tmp, dst)
        built.append(dst)
    return built


if __name__ == "__main__":
    for path in build(sys.argv[1] if len(sys.argv) > 1 else HERE):
        print("built", os.path.relpath(path))
