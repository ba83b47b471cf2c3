# make demo  -- run the main job on a generated trace
# make test  -- run the test suite
# Both install what they need (Debian packages, a virtualenv, the C engine) and are idempotent.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
APT_PACKAGES := build-essential python3-venv python3-dev pkg-config libpcap-dev libhyperscan-dev \
	libpcre2-dev libssl-dev tcpdump ngrep tshark nfdump softflowd tcpreplay tcpflow p0f argus-server argus-client \
	pmacct sngrep libtrace-tools xz-utils bzip2 iproute2 gzip protobuf-c-compiler libprotobuf-c-dev
# the engine and every backend's own C (cffi modules: setup.py's cffi_modules)
ENGINE_SOURCES := $(wildcard mapi/csrc/*.[ch] mapi/csrc/fn/*.[ch] backends/*/*.[ch] backends/*/_build.py) \
	mapi/_build_engine.py mapi/cbuild.py setup.py
ENGINE_SOURCES += $(wildcard mapi/tracegen/csrc/*.[ch]) mapi/tracegen/_build.py   # built with the engine
ENGINE_SOURCES += $(wildcard mapi/jobcontrol/wasm/*.[ch]) mapi/jobcontrol/wasm/_build.py  # sandboxed code's host side
PROTO_OUT := mapi/proto/mapi_pb2.py mapi/proto/mapi_pb2_grpc.py
SHIM_SOURCES := $(wildcard libpcap_shim/csrc/*.[ch] libpcap_shim/csrc/*.inc libpcap_shim/pysrc/*.c) libpcap_shim/build.py \
	$(wildcard mapi/csrc/*.[ch]) \
	mapi/proto/mapi.proto   # the shim compiles the engine's readers, BPF and ring reader in, and its protoc-c code

.PHONY: demo test bench deps venv pyc engine shim proto clean check-imports test-asan fuzz fuzz-smoke \
	sanitizer-deps wasm-example

deps: .deps.stamp
.deps.stamp:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@touch $@

# The work tree is installed in "compat" editable mode (the repository root on sys.path) plus
# one .pth line that makes `scampi` a namespace over it (tools/devinstall.py): imports cost
# what they cost from a normal install, without setuptools' import hook at every start.
venv: $(VENV)/.installed
$(VENV)/.installed: .deps.stamp setup.cfg setup.py pyproject.toml tools/devinstall.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip setuptools wheel cffi
	@# compat mode is "transitional" in setuptools; without it the default mode still works
	@$(PY) -m pip install -q -e '.[plot,metrics]' pytest --config-settings editable_mode=compat \
	  || $(PY) -m pip install -q -e '.[plot,metrics]' pytest
	@$(PY) tools/devinstall.py
	@rm -rf scampi.egg-info   # a stale copy in the work tree would shadow the entry points
	@$(MAKE) --no-print-directory pyc
	@touch $@

# Byte-code for the tree: PYTHONDONTWRITEBYTECODE (set on some machines) keeps Python from
# writing .pyc files, so without this every start compiles every module again.  compileall
# only rewrites what changed; a .pyc whose source changed since is never used (its header
# holds the source's mtime and size), so an edit is never shadowed, only compiled per start
# until the next `make pyc` (test, bench and demo run it).
PYC_DIRS := mapi backends plugins libpcap_shim tools tests
pyc:
	@$(PY) -m compileall -q -j 0 $(PYC_DIRS) >/dev/null

engine: $(VENV)/.engine $(PROTO_OUT)
$(VENV)/.engine: $(VENV)/.installed $(ENGINE_SOURCES)
	@# flock: several shells may rebuild at once; the build must not interleave
	@flock /tmp/scampi-engine-build.lock $(PY) setup.py -q build_ext --inplace 2>&1 \
	  | grep -v -E '^(running|copying|creating|WARNING: the)' || true
	@rm -rf scampi.egg-info
	@$(PY) -c "import mapi._engine" && touch $@

# the wire protocol's message classes (mapid and its clients) and the gRPC stubs of the remote
# transport, generated with grpcio-tools (the stubs import the messages relatively)
proto: $(PROTO_OUT)
$(PROTO_OUT) &: mapi/proto/mapi.proto $(VENV)/.installed
	@$(PY) -m grpc_tools.protoc -Imapi/proto --python_out=mapi/proto --grpc_python_out=mapi/proto \
	  mapi/proto/mapi.proto
	@sed -i 's/^import mapi_pb2 as/from . import mapi_pb2 as/' mapi/proto/mapi_pb2_grpc.py

shim: libpcap_shim/lib/libpcap.so.0.8
libpcap_shim/lib/libpcap.so.0.8: $(VENV)/.engine $(SHIM_SOURCES)
	@flock /tmp/scampi-libpcap-shim-build.lock $(PY) -m scampi.libpcap_shim.build >/dev/null

demo: engine shim pyc
	@$(PY) -m mapi.demo

# the example sandboxed module (examples/wasm/*.wat -> .wasm, only when the source changed)
wasm-example: $(VENV)/.installed
	@$(PY) examples/wasm/build.py

# make test: the tests, then the fuzz smoke (FUZZ_SMOKE_SECONDS per target; 0 leaves it out,
# e.g. for one test file).  clang is installed first: the replays of the fuzzers' findings
# (tests/test_regress_fuzz.py) run their sanitized targets too, on a fresh clone as well.
test: engine shim pyc check-imports wasm-example sanitizer-deps
	@$(PY) -m pytest -q $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory fuzz-smoke

# no import circles (Python, C includes), no layer violations (docs/architecture.md)
check-imports:
	@$(PYTHON) tools/check_imports.py

bench: engine shim pyc wasm-example
	@$(PY) tools/bench.py $(BENCH_ARGS)
	@$(PY) tools/bench_cooking.py $(BENCH_COOKING_ARGS)
	@$(PY) tools/bench_server.py $(BENCH_SERVER_ARGS)
	@$(PY) tools/bench_shim_server.py $(BENCH_SHIM_ARGS)
	@$(PY) tools/bench_wasm.py
	@$(PY) tools/bench_remote.py $(BENCH_REMOTE_ARGS)

clean:
	rm -rf build $(VENV) mapi/_engine*.so mapi/_engine.c mapi/_engine.o .deps.stamp
	rm -f backends/*/_*.so backends/*/_*.c backends/*/_*.o
	rm -f mapi/tracegen/_gentrace*.so mapi/tracegen/_gentrace.c mapi/tracegen/_gentrace.o

# --- sanitizers and fuzzing (clang; installed here, idempotently) -------------------------------
SANITIZER_PACKAGES := clang libclang-rt-14-dev
sanitizer-deps: build/.sanitizer-deps.stamp
build/.sanitizer-deps.stamp:
	@dpkg-query -W -f='$${Status}\n' $(SANITIZER_PACKAGES) 2>/dev/null | grep -c "ok installed" \
	  | grep -qx $(words $(SANITIZER_PACKAGES)) || { echo "installing Debian packages: $(SANITIZER_PACKAGES)"; \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && \
	  apt-get install -y -qq --no-install-recommends $(SANITIZER_PACKAGES) >/dev/null; }
	@mkdir -p build && touch $@

# make test-asan: the engine and the shim built with clang -fsanitize=address (LeakSanitizer on)
# into build/asan, their tests run there; 0 errors and 0 leaks or it fails (tools/asan.py).
test-asan: engine shim sanitizer-deps
	@$(PY) tools/asan.py $(ASAN_ARGS)

# make fuzz SECONDS=N: every fuzz target for N seconds each (fuzz/run.py); a crash fails it
# and prints the reproducer's path.  fuzz-smoke (run by make test, so by CI on every clean
# clone): 10 s per target, about 2 min with building the targets on 2 cores.
SECONDS ?= 30
FUZZ_SMOKE_SECONDS ?= 10
fuzz: engine sanitizer-deps
	@$(PY) -c "import atheris" 2>/dev/null || $(PY) -m pip install -q atheris
	@$(PY) fuzz/run.py --seconds $(SECONDS) $(FUZZ_ARGS)

fuzz-smoke:
	@if [ "$(FUZZ_SMOKE_SECONDS)" != 0 ]; then \
	  echo "fuzz smoke: $(FUZZ_SMOKE_SECONDS) s per target"; \
	  $(MAKE) --no-print-directory fuzz SECONDS=$(FUZZ_SMOKE_SECONDS); fi
