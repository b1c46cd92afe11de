#!/bin/sh
# The GPU check (make test-gpu): on a machine with a CUDA device, the
# kernels against the host, the device location's tests on the CUDA device
# (with the GPU on/off determinism workload at 100,000 steps), CuPy reading
# a page through __cuda_array_interface__ where CuPy is installed, and the
# GPU benchmark rows. Exits 77 with a sentence when there is no device.
# Arguments: the build directory, the benchmark binary.
set -u
build="$1"
bench="$2"
"$build/tests/test_gpu"
rc=$?
if [ "$rc" -eq 77 ]; then exit 77; fi
[ "$rc" -eq 0 ] || { echo "gpu_check: the kernels differ from the host"; exit 1; }
MMSB_TEST_DEVICE=cuda MMSB_TEST_STEPS=100000 "$build/tests/test_device" || {
    echo "gpu_check: the device location's tests failed on the CUDA device"; exit 1; }
MMSB_LIBRARY="$build/lib/libmmsb.so.1" PYTHONPATH=ffi/python python3 tests/gpu_cupy_check.py || {
    echo "gpu_check: CuPy's read of a device page failed"; exit 1; }
scratch=$(mktemp -d)
"$bench" --quick --filter 'gpu/*' --dir "$scratch" --json "$scratch/gpu.json"
rc=$?
cp "$scratch/gpu.json" "$build/gpu-bench.json" 2>/dev/null
rm -rf "$scratch"
[ "$rc" -eq 0 ] || { echo "gpu_check: a GPU benchmark row failed"; exit 1; }
echo "gpu_check: passed"
