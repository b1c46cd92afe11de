"""The C ABI of libmmsb as ctypes declarations: structs laid out exactly as
in mmsb.h, and argtypes/restype for every exported function (so no pointer
or 64-bit value is ever truncated to a C int).

This module only finds and loads the library and declares it; the Pythonic
API is in __init__.py.
"""
import ctypes
import os
import sys
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_int, c_size_t,
                    c_uint8, c_uint32, c_uint64, c_void_p)

ABI_VERSION = 1  # MMSB_ABI_VERSION of the header these declarations follow

u8p = POINTER(c_uint8)
u64p = POINTER(c_uint64)


class Options(Structure):
    _fields_ = [
        ("struct_size", c_uint32), ("abi_version", c_uint32), ("flags", c_uint32), ("kernel", c_uint32),
        ("arena_bytes_max", c_uint64), ("arena_grow_bytes", c_uint64), ("arena_prefault_bytes", c_uint64),
        ("page_bytes_max", c_uint64), ("pages_max", c_uint64), ("gpu", c_uint32), ("reserved0", c_uint32),
        ("durability", c_uint32), ("io_backend", c_uint32), ("segment_bytes", c_uint64),
        ("log_buffer_bytes", c_uint64), ("group_window_us", c_uint64), ("group_window_bytes", c_uint64),
        ("root_every_commits", c_uint32), ("propagation", c_uint32), ("commit_bytes_max", c_uint64),
        ("txn_bytes_max", c_uint64), ("checkpoint_log_bytes", c_uint64), ("checkpoint_map_bytes", c_uint64),
        ("checkpoint_map_bytes_max", c_uint64), ("checkpoint_readers", c_uint32), ("reserved2", c_uint32),
        ("replication_servers", c_char_p), ("replication_stream", c_char_p), ("replication_timeout_ms", c_uint64),
        ("replication_create", c_uint32), ("reserved3", c_uint32), ("gpu_threshold_bytes", c_uint64),
    ]


class EngineInfo(Structure):
    _fields_ = [
        ("struct_size", c_uint32), ("reserved0", c_uint32), ("kernel", c_char * 16), ("gpu", c_char * 96),
        ("pages_live", c_uint64), ("page_id_next", c_uint64), ("pages_max", c_uint64),
        ("page_bytes_max", c_uint64), ("arena_bytes_max", c_uint64), ("arena_bytes_used", c_uint64),
        ("arena_bytes_faulted", c_uint64), ("commit_seq", c_uint64),
        ("io_backend", c_char * 16), ("io_reason", c_char * 128), ("durability", c_uint32),
        ("recovery_flags", c_uint32), ("durable_seq", c_uint64), ("log_segment", c_uint64),
        ("log_bytes_written", c_uint64), ("log_writes", c_uint64), ("log_syncs", c_uint64),
        ("recovered_commits", c_uint64), ("recovered_records", c_uint64),
        ("recovery_dropped_records", c_uint64), ("recovery_dropped_bytes", c_uint64),
        ("recovery_detail", c_char * 256),
        ("commits", c_uint64), ("recomputes", c_uint64), ("skips", c_uint64), ("backdates", c_uint64),
        ("delta_propagations", c_uint64), ("aborts", c_uint64), ("derived_pages", c_uint64), ("edges", c_uint64),
        ("checkpoint_number", c_uint64), ("checkpoint_seq", c_uint64), ("checkpoints_written", c_uint64),
        ("checkpoint_stall_ns_last", c_uint64), ("checkpoint_stall_ns_max", c_uint64),
        ("checkpoint_map_bytes", c_uint64), ("log_segment_first", c_uint64), ("log_segments_removed", c_uint64),
        ("recovered_from_checkpoint", c_uint32), ("reserved1", c_uint32), ("checkpoint_detail", c_char * 160),
        ("replicated_seq", c_uint64), ("replication_lag_records", c_uint64), ("replication_messages", c_uint64),
        ("replication_bytes", c_uint64), ("replication", c_char * 200), ("replication_lag_bytes", c_uint64),
        ("gpu_device", c_char * 64), ("gpu_threshold_bytes", c_uint64), ("gpu_threshold_source", c_uint32),
        ("gpu_lost", c_uint32), ("gpu_pages", c_uint64), ("gpu_page_bytes", c_uint64), ("gpu_calls", c_uint64),
        ("gpu_fallbacks", c_uint64),
    ]


class ReplicaInfo(Structure):
    _fields_ = [
        ("struct_size", c_uint32), ("reserved0", c_uint32), ("commit_seq", c_uint64), ("commits", c_uint64),
        ("stream_seq", c_uint64), ("stream_last_seq", c_uint64), ("lag_records", c_uint64), ("lag_ns", c_uint64),
        ("messages", c_uint64), ("groups", c_uint64), ("bytes_written", c_uint64), ("tail_cut_bytes", c_uint64),
        ("lag_bytes", c_uint64),
    ]


class Digest(Structure):
    _fields_ = [("bytes", c_uint8 * 16)]


class PageInfo(Structure):
    _fields_ = [("struct_size", c_uint32), ("location", c_uint32), ("page_id", c_uint64), ("size_bytes", c_uint64),
                ("epoch", c_uint64), ("flags", c_uint32), ("reserved0", c_uint32)]


class DeviceView(Structure):
    _fields_ = [("struct_size", c_uint32), ("device", c_uint32), ("data", c_void_p), ("size_bytes", c_uint64),
                ("epoch", c_uint64), ("stream", c_uint64)]


class TransferInfo(Structure):
    _fields_ = [("struct_size", c_uint32), ("reserved", c_uint32), ("pages", c_uint64), ("derived", c_uint64),
                ("page_bytes", c_uint64), ("stream_bytes", c_uint64), ("commit_seq", c_uint64),
                ("page_id_next", c_uint64), ("state_root", Digest)]


class Change(Structure):
    _fields_ = [("epoch", c_uint64), ("bytes_changed", c_uint64), ("commit_seq", c_uint64)]


class Delta(Structure):
    _fields_ = [("page_id", c_uint64), ("offset", c_uint64), ("len", c_uint64), ("mask", u8p), ("payload", u8p),
                ("payload_len", c_uint64), ("expected_epoch", c_uint64), ("flags", c_uint32),
                ("reserved0", c_uint32)]


class CommitResult(Structure):
    _fields_ = [("struct_size", c_uint32), ("reserved0", c_uint32), ("commit_seq", c_uint64),
                ("pages_changed", c_uint64), ("bytes_changed", c_uint64), ("recomputes", c_uint64),
                ("skips", c_uint64), ("backdates", c_uint64), ("delta_propagations", c_uint64)]


class OpInput(Structure):
    _fields_ = [("child_id", c_uint64), ("parent_count", c_uint32), ("op_version", c_uint32),
                ("parent_ids", u64p), ("parent_epochs", u64p), ("parent_bytes", POINTER(u8p)),
                ("parent_sizes", u64p), ("params", u8p), ("params_len", c_uint64)]


class DeriveSpec(Structure):
    _fields_ = [("struct_size", c_uint32), ("op", c_uint32), ("parents", u64p), ("parent_count", c_uint32),
                ("flags", c_uint32), ("params", c_void_p), ("params_len", c_uint64)]


class DeriveInfo(Structure):
    _fields_ = [("struct_size", c_uint32), ("op", c_uint32), ("op_version", c_uint32), ("parent_count", c_uint32),
                ("child_count", c_uint32), ("params_len", c_uint32), ("signature", Digest)]


class Event(Structure):
    _fields_ = [("type", c_uint32), ("flags", c_uint32), ("commit_seq", c_uint64), ("page_id", c_uint64),
                ("epoch", c_uint64), ("bytes_changed", c_uint64)]


class LogRecord(Structure):
    _fields_ = [("struct_size", c_uint32), ("type", c_uint32), ("seq", c_uint64), ("segment", c_uint64),
                ("offset", c_uint64), ("generation", c_uint32), ("payload_len", c_uint32), ("payload", u8p),
                ("page_id", c_uint64), ("size_bytes", c_uint64), ("epoch", c_uint64), ("offset_in_page", c_uint64),
                ("len", c_uint64), ("mask", u8p), ("bytes", u8p), ("bytes_len", c_uint64), ("first_seq", c_uint64),
                ("has_root", c_uint32), ("committed", c_uint32), ("chain", Digest), ("root", Digest)]


OP_FN = CFUNCTYPE(c_int, c_void_p, POINTER(OpInput), u8p, c_uint64)
EVENT_FN = CFUNCTYPE(None, c_void_p, POINTER(Event))

# name: (restype, argtypes), for every function mmsb.h exports
_SIGNATURES = {
    "mmsb_version": (c_char_p, [POINTER(c_int), POINTER(c_int), POINTER(c_int)]),
    "mmsb_abi_version": (c_int, []),
    "mmsb_strerror": (c_char_p, [c_int]),
    "mmsb_last_error": (c_char_p, []),
    "mmsb_options_init": (c_int, [POINTER(Options), c_uint32, c_uint32]),
    "mmsb_open": (c_int, [c_char_p, POINTER(Options), POINTER(c_void_p)]),
    "mmsb_close": (c_int, [c_void_p]),
    "mmsb_engine_info": (c_int, [c_void_p, POINTER(EngineInfo)]),
    "mmsb_page_create": (c_int, [c_void_p, c_uint64, c_uint32, u64p]),
    "mmsb_page_create_many": (c_int, [c_void_p, c_uint64, c_uint32, c_uint64, u64p]),
    "mmsb_page_free": (c_int, [c_void_p, c_uint64]),
    "mmsb_page_info": (c_int, [c_void_p, c_uint64, POINTER(PageInfo)]),
    "mmsb_page_read": (c_int, [c_void_p, c_uint64, c_uint64, c_void_p, c_uint64, u64p]),
    "mmsb_page_view": (c_int, [c_void_p, c_uint64, POINTER(c_void_p), u64p, u64p]),
    "mmsb_page_device_view": (c_int, [c_void_p, c_uint64, POINTER(DeviceView)]),
    "mmsb_write": (c_int, [c_void_p, c_uint64, c_uint64, c_void_p, c_uint64, POINTER(Change)]),
    "mmsb_apply": (c_int, [c_void_p, POINTER(Delta), POINTER(Change)]),
    "mmsb_apply_batch": (c_int, [c_void_p, POINTER(Delta), c_uint64, c_uint32, POINTER(CommitResult)]),
    "mmsb_txn_begin": (c_int, [c_void_p, POINTER(c_void_p)]),
    "mmsb_txn_write": (c_int, [c_void_p, c_uint64, c_uint64, c_void_p, c_uint64]),
    "mmsb_txn_apply": (c_int, [c_void_p, POINTER(Delta)]),
    "mmsb_txn_commit": (c_int, [c_void_p, c_uint32, POINTER(CommitResult)]),
    "mmsb_txn_abort": (c_int, [c_void_p]),
    "mmsb_op_register": (c_int, [c_void_p, c_uint32, c_uint32, OP_FN, c_void_p]),
    "mmsb_derive": (c_int, [c_void_p, c_uint64, POINTER(DeriveSpec), POINTER(CommitResult)]),
    "mmsb_underive": (c_int, [c_void_p, c_uint64, POINTER(CommitResult)]),
    "mmsb_edge_add": (c_int, [c_void_p, c_uint64, c_uint64, POINTER(CommitResult)]),
    "mmsb_edge_remove": (c_int, [c_void_p, c_uint64, c_uint64, POINTER(CommitResult)]),
    "mmsb_derive_info": (c_int, [c_void_p, c_uint64, POINTER(DeriveInfo), u64p, c_uint32]),
    "mmsb_subscribe": (c_int, [c_void_p, c_uint32, EVENT_FN, c_void_p, u64p]),
    "mmsb_unsubscribe": (c_int, [c_void_p, c_uint64]),
    "mmsb_sync": (c_int, [c_void_p]),
    "mmsb_wait_durable": (c_int, [c_void_p, c_uint64]),
    "mmsb_wait_replicated": (c_int, [c_void_p, c_uint64]),
    "mmsb_replica_open": (c_int, [c_char_p, c_char_p, c_char_p, POINTER(c_void_p)]),
    "mmsb_replica_poll": (c_int, [c_void_p, c_uint32, u64p]),
    "mmsb_replica_info_get": (c_int, [c_void_p, POINTER(ReplicaInfo)]),
    "mmsb_replica_open_with": (c_int, [c_char_p, c_char_p, c_char_p, POINTER(Options), POINTER(c_void_p)]),
    "mmsb_replica_engine": (c_int, [c_void_p, POINTER(c_void_p)]),
    "mmsb_replica_close": (c_int, [c_void_p]),
    "mmsb_promote": (c_int, [c_char_p, c_char_p, c_uint32]),
    "mmsb_set_durability": (c_int, [c_void_p, c_uint32]),
    "mmsb_checkpoint": (c_int, [c_void_p]),
    "mmsb_export": (c_int, [c_void_p, c_int, POINTER(TransferInfo)]),
    "mmsb_import": (c_int, [c_char_p, POINTER(Options), c_int, POINTER(TransferInfo)]),
    "mmsb_attach_open": (c_int, [c_char_p, POINTER(c_void_p)]),
    "mmsb_attach_page_info": (c_int, [c_void_p, c_uint64, POINTER(PageInfo)]),
    "mmsb_attach_read": (c_int, [c_void_p, c_uint64, c_uint64, c_void_p, c_uint64, u64p]),
    "mmsb_attach_close": (c_int, [c_void_p]),
    "mmsb_page_digest": (c_int, [c_void_p, c_uint64, POINTER(Digest)]),
    "mmsb_state_root": (c_int, [c_void_p, POINTER(Digest)]),
    "mmsb_digest_hex": (c_int, [POINTER(Digest), c_char_p, c_size_t]),
    "mmsb_log_open": (c_int, [c_char_p, c_uint32, POINTER(c_void_p)]),
    "mmsb_log_next": (c_int, [c_void_p, POINTER(LogRecord)]),
    "mmsb_log_close": (c_int, [c_void_p]),
}


def _candidates():
    """Where the library is looked for, in order."""
    env = os.environ.get("MMSB_LIBRARY")
    if env:
        return [env]
    here = os.path.dirname(os.path.abspath(__file__))
    return [os.path.join(here, "libmmsb.so.1"),               # bundled by `make python`
            os.path.join(sys.prefix, "lib", "libmmsb.so.1"),  # `make install PREFIX=$VIRTUAL_ENV`
            "libmmsb.so.1"]                                   # the system's loader


def load():
    tried = []
    lib = None
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            break
        except OSError as err:
            tried.append("%s (%s)" % (path, err))
    if lib is None:
        raise ImportError("mmsb: cannot load libmmsb; tried: " + "; ".join(tried) +
                          ". Bundle it with `make python` before `pip install`, install it (make install), "
                          "or set MMSB_LIBRARY to the path of libmmsb.so.1 (make builds it in build/lib/).")
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    abi = lib.mmsb_abi_version()
    if abi != ABI_VERSION:
        raise ImportError("mmsb: the library's ABI is %d, this binding speaks ABI %d" % (abi, ABI_VERSION))
    probe = Options()
    rc = lib.mmsb_options_init(ctypes.byref(probe), ctypes.sizeof(Options), ABI_VERSION)
    if rc != 0:
        raise ImportError("mmsb: the library refuses this binding's options struct (%d bytes): %s"
                          % (ctypes.sizeof(Options), lib.mmsb_last_error().decode()))
    return lib
