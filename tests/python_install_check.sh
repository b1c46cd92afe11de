#!/bin/sh
# Installs the Python package offline (pip --no-build-isolation, with the
# system's setuptools) into fresh virtual environments, and imports it from
# outside the repository with neither PYTHONPATH nor MMSB_LIBRARY set:
#   1. with the library bundled into the package by `make python`;
#   2. without it, the library installed under the environment's prefix
#      (`make install PREFIX="$VIRTUAL_ENV"`).
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

use() { # $1: the venv, $2: where the library must come from; imports mmsb from $stage, uses a store
    (cd "$stage" && "$1/bin/python" - "$2" <<'PY'
import os, pathlib, sys, tempfile
import mmsb
assert mmsb.__version__ == mmsb.version(), (mmsb.__version__, mmsb.version())
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
print("python_install_check:", mmsb.__version__, "with", want)
PY
    )
}

install() { # $1: the venv, $2: the package's source
    "$python" -m venv --system-site-packages "$1"
    "$1/bin/python" -m pip install -q --no-build-isolation --no-index --no-deps "$2"
}

make --no-print-directory python BUILD="$build" >/dev/null
cp -r ffi/python "$stage/bundled"
install "$stage/v1" "$stage/bundled"
use "$stage/v1" "$(ls -d "$stage"/v1/lib/python3*/site-packages/mmsb)/libmmsb.so.1"

cp -r ffi/python "$stage/plain"
rm -f "$stage/plain/mmsb/libmmsb.so.1"
install "$stage/v2" "$stage/plain"
make --no-print-directory install BUILD="$build" PREFIX="$stage/v2" >/dev/null
use "$stage/v2" "$stage/v2/lib/libmmsb.so.1"
echo "python_install_check: the package installs offline and finds its library both ways"
