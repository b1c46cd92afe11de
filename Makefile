# MMSB build.
#
#   make                 libmmsb.a, libmmsb.so (soname libmmsb.so.1) and the mmsb tool
#   make test            installs missing packages, builds, runs the whole suite
#   make test-asan       the same suite under AddressSanitizer + UBSan
#   make demo            the main job: a demo workload in ./demo-store
#   make bench           the benchmark suite (bench/README.md)
#   make soak SEEDS=N    the crash-and-fault simulator at length (default 200 seeds)
#   make install PREFIX=/usr/local
#   make python          bundles the library into ffi/python/mmsb (then: pip install ./ffi/python)
#   make node            builds the Node.js addon into ffi/node (then: npm install ./ffi/node)
#   make deps            installs missing Debian packages (as root) or prints the command
#
# Knobs: GPU=auto|0|1 (CUDA kernels; auto = when nvcc is found), SAN=1, DEBUG=1,
# BUILD=dir, CC=..., NVCC=..., CUDA_HOME=...

ifeq ($(origin CC),default)
CC := gcc
endif
PREFIX ?= /usr/local
BUILD ?= build
SAN ?= 0
GPU ?= auto
CUDA_HOME ?= /usr/local/cuda
NVCC ?= $(shell command -v nvcc 2>/dev/null || { [ -x $(CUDA_HOME)/bin/nvcc ] && echo $(CUDA_HOME)/bin/nvcc; })

ifeq ($(GPU),auto)
GPU_ON := $(if $(NVCC),1,0)
else
GPU_ON := $(GPU)
endif

ABI_MAJOR := $(shell sed -n 's/^\#define MMSB_ABI_VERSION \([0-9]*\).*/\1/p' ffi/mmsb.h)
VERSION := $(shell sed -n 's/^\#define MMSB_VERSION_STRING "\(.*\)"/\1/p' ffi/mmsb.h)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wpointer-arith -Wformat=2 -Wvla -Wundef
CFLAGS_BASE := -std=c17 -D_GNU_SOURCE -O2 -g -fPIC -pthread $(WARN)
SANFLAGS :=
ifeq ($(SAN),1)
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
DEBUG ?= 1
endif
# DEBUG=1: extra self-checks that cost time on the hot path (every record
# the engine appends is decoded again); on in sanitizer builds.
ifeq ($(DEBUG),1)
SANFLAGS += -DMMSB_DEBUG_RECORDS
endif
CFLAGS_ALL := $(CFLAGS_BASE) $(SANFLAGS) $(CFLAGS)
LIB_CFLAGS := $(CFLAGS_ALL) -fvisibility=hidden -DMMSB_BUILDING_LIBRARY
LDLIBS_LIB := -pthread -luring -llmdb -lnats

ISA_AVX2 := -mavx2 -mbmi2 -mpopcnt
ISA_AVX512 := -mavx512f -mavx512bw -mavx512vl -mavx512vbmi2 -mbmi2 -mpopcnt

LIB_SRCS := $(wildcard engine/base/*.c) $(wildcard engine/*.c) $(wildcard tlog/*.c) $(wildcard tlog/checkpoint/*.c) \
            $(wildcard tlog/repl/*.c) gpu/gpu_emulate.c gpu/stage.c gpu/device.c
ifeq ($(GPU_ON),1)
GPU_OBJ := $(BUILD)/obj/gpu/gpu_cuda.o $(BUILD)/obj/gpu/gpu_cuda_dev.o $(BUILD)/obj/gpu/kernels.o
LDLIBS_LIB += -L$(CUDA_HOME)/lib64 -lcudart_static -ldl -lrt
# libmmsb.a already holds the CUDA runtime (folded in, its symbols local).
LIBS_PRIVATE := -pthread -luring -llmdb -lnats -ldl -lrt
else
LIBS_PRIVATE := -pthread -luring -llmdb -lnats
endif
ifneq ($(GPU_ON),1)
LIB_SRCS += gpu/gpu_none.c
GPU_OBJ :=
endif
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o) $(GPU_OBJ)
# The kernels against the host (tests/test_gpu.cu): built with the suite
# where CUDA is, so the kernels always compile; run only by make test-gpu.
GPU_TEST_BIN := $(if $(GPU_OBJ),$(BUILD)/tests/test_gpu)

BENCH_SRCS := $(wildcard bench/*.c)
BENCH_OBJS := $(BENCH_SRCS:%.c=$(BUILD)/obj/%.o)
BENCH_BIN := $(BUILD)/bin/mmsb-bench
TOOL_SRCS := $(wildcard tools/*.c)
TOOL_OBJS := $(TOOL_SRCS:%.c=$(BUILD)/obj/%.o)
TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%) $(BUILD)/tests/fuzz_log $(BUILD)/tests/fuzz_ckpt \
             $(BUILD)/tests/fuzz_export
TEST_UTIL := $(BUILD)/obj/tests/testutil.o

LIB_A := $(BUILD)/lib/libmmsb.a
LIB_SO := $(BUILD)/lib/libmmsb.so.$(ABI_MAJOR)
MMSB_BIN := $(BUILD)/bin/mmsb
# The Python package's compiled fast path, built in place (see its rule).
PYTHON ?= python3
PY_EXT_SUFFIX := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))' 2>/dev/null)
PY_INCLUDE := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null)
PY_FAST := ffi/python/mmsb/_fast$(PY_EXT_SUFFIX)
# The Node.js addon (ffi/node), built where node and its headers are.
NODE_INCLUDE ?= /usr/include/node
NODE_ON := $(shell command -v node >/dev/null 2>&1 && test -f $(NODE_INCLUDE)/node_api.h && echo 1)
NODE_ADDON := $(BUILD)/node/mmsb.node

DEB_PACKAGES := gcc make pkg-config binutils libxxhash-dev libcmocka-dev liburing-dev liblmdb-dev python3 \
                python3-dev python3-venv python3-setuptools python3-wheel \
                libnats-dev nats-server

.PHONY: all lib tools tests test test-asan test-emulate test-gpu run-tests demo install deps clean fuzz bench bench-python soak python node
# Keep intermediate objects, so a second make rebuilds nothing.
.SECONDARY:

all: lib tools

lib: $(LIB_A) $(LIB_SO) $(BUILD)/lib/libmmsb.so
tools: $(MMSB_BIN)
tests: $(TEST_BINS) $(BUILD)/tests/quickstart $(GPU_TEST_BIN)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(LIB_CFLAGS) -MMD -MP -c $< -o $@

# The kernels (and the XXH3 they inline) are built with -O3: GCC vectorises
# XXH3's accumulate loop there, nearly doubling its speed.
$(BUILD)/obj/engine/base/kern_portable.o: engine/base/kern_portable.c
	@mkdir -p $(@D)
	$(CC) $(LIB_CFLAGS) -O3 -MMD -MP -c $< -o $@

$(BUILD)/obj/engine/base/kern_avx2.o: engine/base/kern_avx2.c
	@mkdir -p $(@D)
	$(CC) $(LIB_CFLAGS) -O3 $(ISA_AVX2) -MMD -MP -c $< -o $@

$(BUILD)/obj/engine/base/kern_avx512.o: engine/base/kern_avx512.c
	@mkdir -p $(@D)
	$(CC) $(LIB_CFLAGS) -O3 $(ISA_AVX512) -MMD -MP -c $< -o $@

$(BUILD)/obj/gpu/gpu_cuda.o: gpu/gpu_cuda.cu gpu/gpu.h
	@mkdir -p $(@D)
	$(NVCC) -O2 -Xcompiler -fPIC,-fvisibility=hidden -c $< -o $@

# The CUDA backend of gpu/device.h is C over the CUDA runtime's C API.
$(BUILD)/obj/gpu/gpu_cuda_dev.o: gpu/gpu_cuda_dev.c
	@mkdir -p $(@D)
	$(CC) $(LIB_CFLAGS) -isystem $(CUDA_HOME)/include -MMD -MP -c $< -o $@

# The kernels: machine code for Hopper (the H200) and PTX that later GPUs
# compile at load. NVCC_ARCH=... for others.
NVCC_ARCH ?= -gencode arch=compute_90,code=[sm_90,compute_90]
NVCC_FLAGS := -O2 $(NVCC_ARCH) -Werror all-warnings -Xcompiler -fPIC,-fvisibility=hidden,-fno-threadsafe-statics,-fno-exceptions,-Wall,-Wextra,-Werror
$(BUILD)/obj/gpu/kernels.o: gpu/kernels.cu gpu/dev_logic.h gpu/gpu.h gpu/launch.h
	@mkdir -p $(@D)
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@

$(BUILD)/tests/test_gpu: tests/test_gpu.cu gpu/dev_logic.h $(BUILD)/obj/gpu/kernels.o
	@mkdir -p $(@D)
	$(NVCC) $(NVCC_FLAGS) -o $@ tests/test_gpu.cu $(BUILD)/obj/gpu/kernels.o

# The GPU check (tests/gpu_check.sh, gpu/README.md) on a machine with a
# CUDA device: the kernels against the host, the device location's tests on
# the device, CuPy through __cuda_array_interface__, the GPU benchmark rows.
# Exit 77 and a sentence when there is no device.
test-gpu:
	@test -n "$(NVCC)" || { echo "test-gpu: nvcc not found (CUDA toolkit, or NVCC=...)"; exit 1; }
	@$(MAKE) --no-print-directory GPU=1 $(BUILD)/tests/test_gpu $(BUILD)/tests/test_device $(LIB_SO) $(BENCH_BIN)
	sh tests/gpu_check.sh $(BUILD) $(BENCH_BIN)

# The static library is one relocatable object whose hidden symbols are made
# local, so nothing but the public API can clash with a program's names.
$(LIB_A): $(LIB_OBJS)
	@mkdir -p $(@D)
	ld -r -o $(BUILD)/lib/mmsb_all.o $(LIB_OBJS) \
	  $(if $(GPU_OBJ),-L$(CUDA_HOME)/lib64 --whole-archive -lcudart_static --no-whole-archive)
	objcopy --localize-hidden $(BUILD)/lib/mmsb_all.o
	rm -f $@ && ar rcs $@ $(BUILD)/lib/mmsb_all.o

$(LIB_SO): $(LIB_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -shared -Wl,-soname,libmmsb.so.$(ABI_MAJOR) -Wl,--no-undefined \
	  -o $@ $(LIB_OBJS) $(LDLIBS_LIB)

$(BUILD)/lib/libmmsb.so: $(LIB_SO)
	ln -sf libmmsb.so.$(ABI_MAJOR) $@

$(MMSB_BIN): $(TOOL_OBJS) $(LIB_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -o $@ $(TOOL_OBJS) $(LIB_OBJS) $(LDLIBS_LIB) -lm

$(BUILD)/obj/tools/%.o: tools/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/obj/bench/%.o: bench/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

# The device's kernel rows launch the kernels themselves where CUDA is.
$(BUILD)/obj/bench/b_gpu_kern.o: bench/b_gpu_kern.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(if $(GPU_OBJ),-isystem $(CUDA_HOME)/include -DMMSB_BENCH_CUDA) -MMD -MP -c $< -o $@

# The suite links the library's objects: it measures kernels and the graph
# directly too.
$(BENCH_BIN): $(BENCH_OBJS) $(LIB_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_LIB) -lm

# The benchmark suite: results as JSON, Markdown and plots in bench/, which
# a full run replaces (a partial run: build/bin/mmsb-bench --filter ...).
bench:
	@$(MAKE) --no-print-directory deps || exit 1
	-@$(MAKE) --no-print-directory deps DEB_EXTRA=gnuplot-nox # plots only: the figures do not need it
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	$(BENCH_BIN) --json bench/results.json --markdown bench/results.md --plot bench/plots $(BENCH_ARGS)
	@$(MAKE) --no-print-directory bench-python

# The Python rows (bench/python_bench.py): the package's fast path, ctypes
# alone, and py-lmdb beside them.
bench-python: $(LIB_SO) $(PY_FAST)
	-@$(MAKE) --no-print-directory deps DEB_EXTRA=python3-lmdb # the peer rows only
	MMSB_LIBRARY=$(abspath $(LIB_SO)) $(PYTHON) bench/python_bench.py \
	  --json bench/results-python.json --markdown bench/results-python.md

$(BUILD)/obj/tests/%.o: tests/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

# Tests link the library's objects directly so they can reach internals.
$(BUILD)/tests/test_%: $(BUILD)/obj/tests/test_%.o $(TEST_UTIL) $(LIB_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_LIB) -lcmocka -lm

# The tool's tests, the trust tests and the simulator run the mmsb program.
$(BUILD)/tests/test_tool $(BUILD)/tests/test_trust $(BUILD)/tests/test_sim $(BUILD)/tests/test_repl: | $(MMSB_BIN)


# The fuzz targets as plain programs: seeded mutations, run by make test.
$(BUILD)/tests/fuzz_%: tests/fuzz_%.c $(TEST_UTIL) $(LIB_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -DFUZZ_DRIVER -DCORPUS_DIR='"$(abspath tests/corpus/$*)"' -o $@ $^ $(LDLIBS_LIB) -lcmocka -lm

# Coverage-guided fuzzing with libFuzzer (clang), FUZZ_SECONDS per target:
# the log readers (fuzz_log), the checkpoint file's structure check
# (fuzz_ckpt) and the export stream's reader (fuzz_export).
# make fuzz FUZZ_SECONDS=60
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_SRCS_log := tests/fuzz_log.c tlog/scan.c tlog/format.c engine/base/crc32c.c tlog/chain.c \
                 engine/base/kern_portable.c engine/base/error.c
FUZZ_SRCS_ckpt := tests/fuzz_ckpt.c tlog/checkpoint/lmdb_check.c engine/base/error.c
FUZZ_SRCS_export := tests/fuzz_export.c tlog/export.c engine/base/crc32c.c engine/base/error.c
fuzz: $(BUILD)/tests/fuzz_log $(BUILD)/tests/fuzz_ckpt $(BUILD)/tests/fuzz_export
	@command -v $(FUZZ_CC) >/dev/null || { echo "fuzz: needs $(FUZZ_CC) and its fuzzer runtime (apt-get install clang libclang-rt-dev)"; exit 1; }
	@for t in log ckpt export; do \
	  mkdir -p build-fuzz/corpus-$$t || exit 1; \
	  srcs="$(FUZZ_SRCS_log)"; [ $$t = ckpt ] && srcs="$(FUZZ_SRCS_ckpt)"; \
	  [ $$t = export ] && srcs="$(FUZZ_SRCS_export)"; \
	  echo "== fuzz_$$t"; \
	  $(FUZZ_CC) -std=c17 -D_GNU_SOURCE -O1 -g -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -o build-fuzz/fuzz_$$t $$srcs || exit 1; \
	  $(BUILD)/tests/fuzz_$$t --write-seeds build-fuzz/corpus-$$t || exit 1; \
	  build-fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
	    build-fuzz/corpus-$$t tests/corpus/$$t || exit 1; \
	done

# The README's C quick start, extracted and built against the static library.
$(BUILD)/tests/quickstart.c: README.md
	@mkdir -p $(@D)
	awk '/^<!-- quickstart:begin -->/{on=1;next} /^<!-- quickstart:end -->/{on=0} on && !/^```/' README.md > $@
	@test -s $@ || { echo "README.md has no quick start block"; exit 1; }

$(BUILD)/tests/quickstart: $(BUILD)/tests/quickstart.c $(LIB_A)
	$(CC) $(CFLAGS_ALL) -Iffi -o $@ $< $(LIB_A) $(LDLIBS_LIB)

# The main job, small, as a test: exits non-zero unless both runs and both
# reopened stores reach the same state root and the store verifies.
$(BUILD)/tests/demo_check: $(MMSB_BIN)
	@mkdir -p $(@D)
	printf '#!/bin/sh\nset -e\nm="%s"\n"$$m" demo demo-store --ops 1000 --txns 500\n"$$m" verify demo-store/run-1\n"$$m" replay demo-store/run-1 --verify\n' "$(abspath $(MMSB_BIN))" > $@
	chmod +x $@

# The layering of the sources, as a test: no include points up a layer.
$(BUILD)/tests/layers_check: tests/layers_check.py
	@mkdir -p $(@D)
	printf '#!/bin/sh\nexec python3 "%s" "%s"\n' "$(abspath tests/layers_check.py)" "$(abspath .)" > $@
	chmod +x $@

# The benchmark suite, as a test: it lists its benchmarks and runs a cheap
# one (no timing is judged), and its JSON says it ran and checked out.
$(BUILD)/tests/bench_check: $(BENCH_BIN)
	@mkdir -p $(@D)
	printf '#!/bin/sh\nset -e\nb="%s"\n"$$b" --list | grep -q "^log/append/"\n"$$b" --quick --filter "pages/read/4KiB" --json bench.json --dir bench-store\ngrep -q "\\"name\\":\\"pages/read/4KiB\\",\\"unit\\":\\"ns\\",\\"ok\\":true" bench.json\n' "$(abspath $(BENCH_BIN))" > $@
	chmod +x $@

# The Python package's compiled fast path (ffi/python/mmsb/_fast.c), built
# in place for the tests with the project's warnings; pip builds its own
# (ffi/python/setup.py). Needs Python's headers (python3-dev).
$(PY_FAST): ffi/python/mmsb/_fast.c ffi/mmsb.h
	@test -f "$(PY_INCLUDE)/Python.h" || { echo "python: no Python.h in '$(PY_INCLUDE)' (apt install python3-dev)"; exit 1; }
	$(CC) $(CFLAGS_BASE) -fvisibility=hidden -shared -isystem "$(PY_INCLUDE)" -Iffi $< -o $@

# The Python binding's tests (unittest) against this build's shared
# library; not under sanitizers (the interpreter is not instrumented). They
# run twice: through the compiled fast path (which they must find), and
# through ctypes alone, the path of an install without a C compiler.
PY_CHECK := $(if $(filter 1,$(SAN)),,$(BUILD)/tests/python_check)
$(BUILD)/tests/python_check: $(LIB_SO) $(PY_FAST)
	@mkdir -p $(@D)
	printf '#!/bin/sh\nset -e\ncd "%s"\nexport MMSB_LIBRARY="%s"\n' "$(abspath .)" "$(abspath $(LIB_SO))" > $@
	printf 'MMSB_TEST_EXPECT_FAST=1 %s -m unittest discover -s ffi/python/tests\n' "$(PYTHON)" >> $@
	printf 'MMSB_PYTHON_FAST=0 %s -m unittest discover -s ffi/python/tests\n' "$(PYTHON)" >> $@
	printf '%s bench/python_bench.py --quick >/dev/null\n' "$(PYTHON)" >> $@
	chmod +x $@

# The Rust crate's tests (cargo test, offline: the crate has no
# dependencies), when cargo is installed; skipped with a message otherwise.
# The Node.js binding's tests (node --test), where node and its headers are;
# skipped with a message otherwise (MMSB_REQUIRE_NODE=1, as CI sets, makes
# that a failure). In the sanitizer build the addon and the library are
# instrumented and node runs with the sanitizers' runtimes preloaded (node
# itself is not instrumented: leak reports are off).
NODE_CHECK := $(BUILD)/tests/node_check
NODE_PRELOAD := $(if $(filter 1,$(SAN)),$(shell $(CC) -print-file-name=libasan.so) \
                  $(shell $(CC) -print-file-name=libubsan.so))
$(BUILD)/tests/node_check: $(if $(NODE_ON),$(NODE_ADDON))
	@mkdir -p $(@D)
	printf '#!/bin/sh\nif [ -z "%s" ]; then\n  echo "node_check: node or its headers (%s/node_api.h) are missing: the Node.js binding is not tested (apt-get install nodejs libnode-dev)"\n  [ "$$MMSB_REQUIRE_NODE" = 1 ] && exit 1\n  exit 0\nfi\ncd "%s"\n' "$(NODE_ON)" "$(NODE_INCLUDE)" "$(abspath .)" > $@
	printf 'LD_PRELOAD="%s" ASAN_OPTIONS=detect_leaks=0 MMSB_NODE_ADDON="%s" exec node --expose-gc --test ffi/node/test/\n' "$(strip $(NODE_PRELOAD))" "$(abspath $(NODE_ADDON))" >> $@
	chmod +x $@

# The addon: libmmsb.a linked in, so that it loads with no library path.
$(NODE_ADDON): ffi/node/mmsb_node.c ffi/mmsb.h $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -fvisibility=hidden -shared -DNODE_GYP_MODULE_NAME=mmsb -isystem "$(NODE_INCLUDE)" -Iffi \
	  $< $(LIB_A) $(LIBS_PRIVATE) -o $@

RUST_CHECK := $(if $(filter 1,$(SAN)),,$(BUILD)/tests/rust_check)
# One test at a time: the replication test forks a nats-server, and a child
# between fork and exec still holds the store locks of the other tests'
# engines (flock follows the open file), so a close-then-reopen could meet
# MMSB_EBUSY.
$(BUILD)/tests/rust_check: $(LIB_SO) $(BUILD)/lib/libmmsb.so
	@mkdir -p $(@D)
	printf '#!/bin/sh\nif ! command -v cargo >/dev/null 2>&1; then echo "rust_check: cargo is not installed: the Rust crate is not tested (apt-get install cargo)"; exit 0; fi\ncd "%s"\nMMSB_LIB_DIR="%s" LD_LIBRARY_PATH="%s" CARGO_TARGET_DIR="%s" exec cargo test --offline --manifest-path ffi/rust/Cargo.toml -- --test-threads=1\n' "$(abspath .)" "$(abspath $(BUILD)/lib)" "$(abspath $(BUILD)/lib)" "$(abspath $(BUILD)/rust-target)" > $@
	chmod +x $@

# Every test program runs once per log I/O backend: automatic (io_uring
# where the kernel allows it) and forced pwrite (MMSB_IO=sync). The crash
# simulator runs SIM_SEEDS seeds per backend here (make soak runs more).
SIM_SEEDS ?= $(if $(filter 1,$(SAN)),3,10)
run-tests: tests $(BUILD)/tests/demo_check $(BUILD)/tests/bench_check $(BUILD)/tests/layers_check $(PY_CHECK) \
           $(RUST_CHECK) $(NODE_CHECK)
	@echo "== log I/O backend: automatic"
	@MMSB_SIM_SEEDS=$(SIM_SEEDS) TEST_LOG_TAG=auto sh tests/run.sh $(TEST_BINS) $(BUILD)/tests/quickstart \
	  $(BUILD)/tests/demo_check $(BUILD)/tests/bench_check $(BUILD)/tests/layers_check $(PY_CHECK) $(RUST_CHECK) \
	  $(NODE_CHECK)
	@echo "== log I/O backend: MMSB_IO=sync (replication's scenarios run once, above: they test the stream)"
	@MMSB_SIM_SEEDS=$(SIM_SEEDS) MMSB_SIM_SEED_FIRST=1001 MMSB_IO=sync TEST_LOG_TAG=sync sh tests/run.sh \
	  $(filter-out $(BUILD)/tests/test_repl,$(TEST_BINS)) $(BUILD)/tests/demo_check

# The crash-and-fault simulator at length (tests/test_sim.c): SEEDS seeds
# from SEED_FIRST, half with each log I/O backend, in two processes. A
# failure names its seed; MMSB_SIM_SEED=S build/tests/test_sim replays it.
SEEDS ?= 200
SEED_FIRST ?= 1
soak: $(BUILD)/tests/test_sim
	@half=$$(( ($(SEEDS) + 1) / 2 )); \
	MMSB_SIM_SEED_FIRST=$(SEED_FIRST) MMSB_SIM_SEEDS=$$half \
	  $(BUILD)/tests/test_sim > $(BUILD)/tests/soak-auto.log 2>&1 & a=$$!; \
	MMSB_IO=sync MMSB_SIM_SEED_FIRST=$$(( $(SEED_FIRST) + half )) MMSB_SIM_SEEDS=$$(( $(SEEDS) - half )) \
	  $(BUILD)/tests/test_sim > $(BUILD)/tests/soak-sync.log 2>&1 & b=$$!; \
	wait $$a; ra=$$?; wait $$b; rb=$$?; \
	grep -h "^simulator\|^ERROR" $(BUILD)/tests/soak-auto.log $(BUILD)/tests/soak-sync.log; \
	if [ $$ra -ne 0 ] || [ $$rb -ne 0 ]; then tail -n 30 $(BUILD)/tests/soak-auto.log $(BUILD)/tests/soak-sync.log; exit 1; fi

test:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory run-tests

test-asan:
	@$(MAKE) --no-print-directory BUILD=build-asan SAN=1 test

# The suite on the emulated device (MMSB_GPU=emulate: the tests' pages of
# 4 KiB and up take the device path, gpu/README.md), in a build without
# CUDA, which it shows builds and passes too.
test-emulate:
	@MMSB_GPU=emulate $(MAKE) --no-print-directory BUILD=build-nogpu GPU=0 run-tests

# The main job: the demo, then the proof that its store is exactly what its
# log says (every CRC, the chain, the checkpoint; a replay from genesis that
# re-runs every built-in derivation and compares every recorded root).
demo:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all
	@echo "== the demo, with a Python reader attached to run 1 from another process"
	@mkdir -p demo-store && rm -f demo-store/reader-attached
	@PYTHONPATH=ffi/python MMSB_LIBRARY=$(abspath $(LIB_SO)) python3 ffi/python/examples/attach.py \
	  demo-store/run-1 demo-store/reader-attached & reader=$$!; \
	  $(MMSB_BIN) demo demo-store --wait-reader demo-store/reader-attached; status=$$?; \
	  wait $$reader; reader_status=$$?; \
	  if [ $$reader_status -ne 0 ]; then echo "demo: the attached reader failed"; fi; \
	  [ $$status -eq 0 ] && [ $$reader_status -eq 0 ]
	$(MMSB_BIN) verify demo-store/run-1
	$(MMSB_BIN) replay demo-store/run-1 --verify

install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 0644 ffi/mmsb.h $(DESTDIR)$(PREFIX)/include/mmsb.h
	install -m 0644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/libmmsb.a
	install -m 0755 $(LIB_SO) $(DESTDIR)$(PREFIX)/lib/libmmsb.so.$(ABI_MAJOR)
	ln -sf libmmsb.so.$(ABI_MAJOR) $(DESTDIR)$(PREFIX)/lib/libmmsb.so
	install -m 0755 $(MMSB_BIN) $(DESTDIR)$(PREFIX)/bin/mmsb
	for pc in mmsb mmsb-static; do \
	  sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' \
	      -e 's|@LIBS_PRIVATE@|$(LIBS_PRIVATE)|' ffi/$$pc.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/$$pc.pc; \
	done

# The Python package with the library inside it, for `pip install ./ffi/python`,
# and the header its compiled fast path is built with; its version must be
# the library's.
python: $(LIB_SO)
	@grep -q '^__version__ = "$(VERSION)"' ffi/python/mmsb/_version.py || \
	  { echo "python: ffi/python/mmsb/_version.py does not say $(VERSION)"; exit 1; }
	cp -L $(LIB_SO) ffi/python/mmsb/libmmsb.so.$(ABI_MAJOR)
	cp ffi/mmsb.h ffi/python/mmsb/mmsb.h

# The Node.js package with its addon inside, for `npm install ./ffi/node`
# (or `npm pack ffi/node`); its version must be the library's.
node: $(NODE_ADDON)
	@grep -q '"version": "$(VERSION)"' ffi/node/package.json || \
	  { echo "node: ffi/node/package.json does not say $(VERSION)"; exit 1; }
	cp $(NODE_ADDON) ffi/node/mmsb.node

# Idempotent: checks each package and installs only what is missing.
deps:
	@missing=""; \
	if ! command -v dpkg-query >/dev/null 2>&1; then \
	  echo "deps: not a Debian system; install: $(DEB_PACKAGES)"; exit 0; fi; \
	for p in $(DEB_PACKAGES) $(DEB_EXTRA); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "deps: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
	  echo "deps: missing packages:$$missing"; \
	  echo "deps: run: sudo apt-get install -y$$missing"; exit 1; \
	fi

clean:
	rm -rf build build-asan build-nogpu build-fuzz demo-store bench-store
	rm -f ffi/python/mmsb/_fast*.so ffi/python/mmsb/libmmsb.so.* ffi/python/mmsb/mmsb.h ffi/node/mmsb.node

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
