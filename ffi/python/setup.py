"""The compiled part of the mmsb package (pyproject.toml has the rest).

mmsb/_fast.c, the fast path of the per-change and per-read calls, is built
when a C compiler and the library's header, mmsb.h, are at hand. It is an
optional extension: when either is missing, or the compile fails, the
package still installs and runs on ctypes alone (mmsb.FAST_PATH is False).
The extension does not link libmmsb; it calls the library that the package
loads at import.
"""
import os
import sys

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def header_dir():
    """The first directory holding mmsb.h: MMSB_INCLUDE_DIR, the copy that
    `make python` puts in the package, the repository's ffi/, then the
    installed prefixes."""
    env = os.environ.get("MMSB_INCLUDE_DIR")
    candidates = ([env] if env else []) + [
        os.path.join(HERE, "mmsb"), os.path.dirname(HERE), os.path.join(sys.prefix, "include"),
        "/usr/local/include", "/usr/include"]
    for directory in candidates:
        if os.path.isfile(os.path.join(directory, "mmsb.h")):
            return directory
    return None


include = header_dir()
extensions = []
if include is None:
    print("mmsb: no mmsb.h found (set MMSB_INCLUDE_DIR, or run `make python` first): "
          "the package installs without its compiled fast path and uses ctypes alone", file=sys.stderr)
else:
    extensions.append(Extension("mmsb._fast", ["mmsb/_fast.c"], include_dirs=[include],
                                extra_compile_args=["-std=c17", "-O2"], optional=True))

setup(ext_modules=extensions)
