__version__ = "0.3.0"  # the library version this package follows (ffi/mmsb.h MMSB_VERSION_STRING)
