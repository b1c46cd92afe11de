__version__ = "0.4.0"  # the library version this package follows (ffi/mmsb.h MMSB_VERSION_STRING)
