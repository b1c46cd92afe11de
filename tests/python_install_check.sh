#!/bin/sh
# Installs the Python package offline (pip --no-build-isolation, with the
# system's setuptools) into fresh virtual environments, and imports it from
# outside the repository with neither PYTHONPATH nor MMSB_LIBRARY set:
#   1. with the library bundled into the package by `make python`;
#   2. without it, the library installed under the environment's prefix
#      (`make install PREFIX="$VIRTUAL_ENV"`);
#   3. bundled, but with no working C compiler: the compiled fast path is
#      skipped and the package runs on ctypes alone.
# Each time it checks which library file was loaded and which path serves.
set -eu
build=${1:-build}
unset MMSB_LIBRARY PYTHONPATH
# A Python whose venv has pip and whose setuptools can build wheels offline
# (Debian: python3-venv, python3-setuptools, python3-wheel).
python=""
for candidate in python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c "import ensurepip, setuptools, wheel" 2>/dev/null; then
        python=$candidate
        break
    fi
done
[ -n "$python" ] || { echo "python_install_check: no python3 with venv, setuptools and wheel"; exit 1; }
stage=$(mktemp -d "${TMPDIR:-/tmp}/mmsb-python-XXXXXX")
trap 'rm -rf "$stage"' EXIT

use() { # $1: the venv, $2: where the library must come from, $3: 1 if the fast path must serve
    (cd "$stage" && "$1/bin/python" - "$2" "$3" <<'PY'
import os, pathlib, sys, tempfile
import mmsb
assert mmsb.__version__ == mmsb.version(), (mmsb.__version__, mmsb.version())
assert mmsb.FAST_PATH == (sys.argv[2] == "1"), mmsb.FAST_PATH
assert os.path.isfile(os.path.join(os.path.dirname(mmsb.__file__), "py.typed"))
if mmsb.FAST_PATH:
    from mmsb import _fast
    assert os.path.dirname(_fast.__file__) == os.path.dirname(mmsb.__file__), _fast.__file__
with open("/proc/self/maps") as maps:
    loaded = {line.split()[-1] for line in maps if "libmmsb" in line}
want = os.path.realpath(sys.argv[1])
assert loaded == {want}, (loaded, want)
with tempfile.TemporaryDirectory() as d:
    with mmsb.Engine(pathlib.Path(d) / "store", flags=mmsb.OPEN_CREATE) as e:
        page = e.page_create(64)
        e.write(page, 0, b"installed")
    with mmsb.Engine(pathlib.Path(d) / "store") as e:
        assert e.read(page, 0, 9) == b"installed"
        buffer = bytearray(9)
        e.read_into(page, 0, buffer)
        assert buffer == b"installed"
print("python_install_check:", mmsb.__version__, "with", want, "fast path" if mmsb.FAST_PATH else "ctypes")
PY
    )
}

venv() { # $1: the venv
    "$python" -m venv --system-site-packages "$1"
}

install() { # $1: the venv, $2: the package's source (a copy, without what the tests built in place)
    rm -f "$2"/mmsb/_fast*.so
    "$1/bin/python" -m pip install -q --no-cache-dir --no-build-isolation --no-index --no-deps "$2"
}

make --no-print-directory python BUILD="$build" >/dev/null
cp -r ffi/python "$stage/bundled"
venv "$stage/v1"
install "$stage/v1" "$stage/bundled"
use "$stage/v1" "$(ls -d "$stage"/v1/lib/python3*/site-packages/mmsb)/libmmsb.so.1" 1

# The header comes from the prefix too: the extension is built against it.
cp -r ffi/python "$stage/plain"
rm -f "$stage/plain/mmsb/libmmsb.so.1" "$stage/plain/mmsb/mmsb.h"
venv "$stage/v2"
make --no-print-directory install BUILD="$build" PREFIX="$stage/v2" >/dev/null
install "$stage/v2" "$stage/plain"
use "$stage/v2" "$stage/v2/lib/libmmsb.so.1" 1

cp -r ffi/python "$stage/nocc"
venv "$stage/v3"
CC=false install "$stage/v3" "$stage/nocc" 2>"$stage/nocc.log" || { cat "$stage/nocc.log"; exit 1; }
use "$stage/v3" "$(ls -d "$stage"/v3/lib/python3*/site-packages/mmsb)/libmmsb.so.1" 0
echo "python_install_check: the package installs offline, finds its library both ways, and without a compiler runs on ctypes"
