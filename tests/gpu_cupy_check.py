"""The device view read by CuPy through __cuda_array_interface__ (make
test-gpu): a device page's copy, read on the device without a copy, holds
the page's bytes; then the page changes and a new view shows the change.
Exits 0 with a sentence when CuPy is not installed or no CUDA device is in
use; 1 when a check fails."""
import os
import sys
import tempfile

import mmsb

try:
    import cupy  # type: ignore
except ImportError:
    print("gpu_cupy_check: CuPy is not installed; nothing run")
    sys.exit(0)

OPTS = dict(durability=mmsb.DURABILITY_NONE, gpu=mmsb.GPU_AUTO, arena_bytes_max=1 << 30,
            page_bytes_max=256 << 20, segment_bytes=64 << 20, gpu_threshold_bytes=1 << 20)


def main() -> int:
    with tempfile.TemporaryDirectory() as d, mmsb.Engine(os.path.join(d, "store"), **OPTS) as e:
        if not e.info()["gpu"].startswith("CUDA:"):
            print("gpu_cupy_check: no CUDA device in use (%s); nothing run" % e.info()["gpu"])
            return 0
        page = e.page_create(4 << 20, mmsb.PAGE_DEVICE)
        e.write(page, 4096, bytes(range(256)) * 16)
        with e.device_view(page) as v:
            assert v.device == mmsb.GPU_CUDA, v.device
            arr = cupy.asarray(v)  # no copy: CuPy wraps the device pointer
            assert arr.data.ptr == v.data, "CuPy copied the page"
            assert bytes(cupy.asnumpy(arr)) == e.read(page), "the device copy differs from the page"
        e.write(page, 0, b"\xff" * 64)
        with e.device_view(page) as v:
            first = cupy.asnumpy(cupy.asarray(v)[:64])
            assert bytes(first) == b"\xff" * 64, "a later view does not show the change"
    print("gpu_cupy_check: CuPy read a device page through __cuda_array_interface__ without a copy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
