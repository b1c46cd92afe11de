#!/bin/sh
# Installs into a staging directory and builds the README quick start against
# the installed header and libraries through pkg-config: once against the
# shared library (soname, symbol visibility) and once against the static one
# (the mmsb-static module), which must run without LD_LIBRARY_PATH.
set -eu
build=${1:-build}
repo=$(pwd)
stage=$(mktemp -d "${TMPDIR:-/tmp}/mmsb-install-XXXXXX")
trap 'rm -rf "$stage"' EXIT
make --no-print-directory install DESTDIR="$stage" PREFIX=/usr/local >/dev/null
lib="$stage/usr/local/lib"
export PKG_CONFIG_PATH="$lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$stage"
src="$build/tests/quickstart.c"
cc -std=c17 -Wall -Werror -o "$stage/qs-shared" "$src" $(pkg-config --cflags --libs mmsb)
# The README's static recipe, as written: no libmmsb.so needed at run time.
cc -std=c17 -Wall -Werror -o "$stage/qs-static" "$src" $(pkg-config --cflags --libs mmsb-static)
if readelf -d "$stage/qs-static" | grep -q 'NEEDED.*libmmsb'; then
  echo "install: the mmsb-static recipe linked libmmsb.so"; exit 1
fi
readelf -d "$lib/libmmsb.so.1" | grep -q 'SONAME.*libmmsb.so.1'
exported=$(nm -D --defined-only "$lib/libmmsb.so.1" | awk '{print $3}' | grep -vc '^mmsb_' || true)
[ "$exported" = 0 ] || { echo "install: libmmsb.so exports symbols beyond mmsb_*"; exit 1; }
cd "$stage"
LD_LIBRARY_PATH="$lib" ./qs-shared >/dev/null
env -u LD_LIBRARY_PATH ./qs-static >/dev/null
"$stage/usr/local/bin/mmsb" version
cd "$repo"
# The Rust crate, copied out of the repository (so that its fallback to the
# repository's build cannot answer), links through pkg-config alone; with no
# mmsb.pc to find, its build says what it tried.
if command -v cargo >/dev/null 2>&1; then
  mkdir -p "$stage/crate" "$stage/empty"
  cp -r ffi/rust "$stage/crate/rust"
  rm -rf "$stage/crate/rust/target"
  manifest="$stage/crate/rust/Cargo.toml"
  (unset MMSB_LIB_DIR; CARGO_TARGET_DIR="$stage/rust-target" LD_LIBRARY_PATH="$lib" \
    cargo test -q --offline --manifest-path "$manifest" -- --test-threads=1 >/dev/null)
  if (unset MMSB_LIB_DIR; PKG_CONFIG_PATH= PKG_CONFIG_LIBDIR="$stage/empty" CARGO_TARGET_DIR="$stage/rust-none" \
      cargo build -q --offline --manifest-path "$manifest" --tests >"$stage/rust-none.log" 2>&1); then
    echo "install: the Rust crate linked with no library to find"; exit 1
  fi
  grep -q "cannot find libmmsb; tried: .*pkg-config.*build" "$stage/rust-none.log" || \
    { echo "install: the Rust build's failure does not say what it tried:"; cat "$stage/rust-none.log"; exit 1; }
  echo "install: the Rust crate links through pkg-config"
fi
echo "install: header, shared and static libraries, pkg-config and tool work"
