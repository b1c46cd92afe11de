"""MMSB for Python: a deterministic shared-memory page engine with a
transaction log, over the library's C ABI (ctypes, standard library only).

    import mmsb
    with mmsb.Engine("store", durability=mmsb.DURABILITY_NONE) as e:
        page = e.page_create(4096)
        e.write(page, 0, b"hello")
        print(e.read(page, 0, 5), e.state_root())

Every failure raises an MMSBError subclass (one per library error code)
carrying the code and the library's detail message; bad Python arguments
raise TypeError or ValueError before the library is called. The library is
found through the MMSB_LIBRARY environment variable, else next to this
package, else by the system's loader.

The calls made per change and per read (Engine.write, read,
read_with_epoch, read_into, Transaction.write) go through a compiled
extension, mmsb._fast, when pip could build it (FAST_PATH is then True);
everything else, and everything when it could not, goes through ctypes.
Both paths take the same arguments and raise the same errors. Setting
MMSB_PYTHON_FAST=0 in the environment before the import keeps to ctypes.
"""
import ctypes as _ctypes
import os as _os
import warnings as _warnings
import weakref as _weakref
from ctypes import byref as _byref, c_uint64 as _c_uint64, c_void_p as _c_void_p
from dataclasses import dataclass as _dataclass
from typing import (Any as _Any, Callable as _Callable, Dict as _Dict, Iterable as _Iterable, Iterator as _Iterator,
                    List as _List, NamedTuple as _NamedTuple, Optional as _Optional, Tuple as _Tuple,
                    TypeVar as _TypeVar, Union as _Union)

from . import _capi
from ._version import __version__

_lib = _capi.load()

# Types of arguments, for the annotations (the package ships py.typed).
PathArg = _Union[str, bytes, "_os.PathLike[str]", "_os.PathLike[bytes]"]
import sys  # noqa: E402 - as `sys`, so that type checkers read the version test
if sys.version_info >= (3, 12):
    from collections.abc import Buffer as BytesLike  # any object with the buffer protocol
else:
    BytesLike = _Union[bytes, bytearray, memoryview]  # and any other object with the buffer protocol
del sys
WritableBuffer = _Union[bytearray, memoryview, BytesLike]  # must be writable at run time
_Self = _TypeVar("_Self", bound="_Handle")

__all__ = ["Engine", "DeviceView", "Change", "Transfer", "import_store", "CommitResult", "PageInfo", "Event", "OpInput", "Transaction", "Delta", "Attach",
           "LogReader", "Record", "Replica", "promote", "version", "abi_version", "strerror", "MMSBError",
           "InvalidArgument", "NotFound", "Conflict", "NoSpace", "IOFailure", "Corrupt", "VersionMismatch", "Busy",
           "NotSupported", "OutOfMemory", "CycleError", "OperationFailed", "ReadOnly", "HasDependents", "InCallback",
           "ReplicationError", "Fenced"]

# ---- constants (mmsb.h) -------------------------------------------------------------------------

OPEN_CREATE, OPEN_SALVAGE, OPEN_KEEP_LOG, OPEN_READONLY = 0x1, 0x2, 0x4, 0x8
DURABILITY_NONE, DURABILITY_GROUP, DURABILITY_SYNC, DURABILITY_REPLICATED = 1, 2, 3, 4
PROPAGATE_INCREMENTAL, PROPAGATE_FULL = 0, 1
GPU_AUTO, GPU_OFF, GPU_EMULATE = 0, 1, 2
GPU_CUDA = 3  # a device's kind (DeviceView.device), never an option
GPU_THRESHOLD_NONE, GPU_THRESHOLD_OPTION, GPU_THRESHOLD_DEFAULT, GPU_THRESHOLD_CALIBRATED = 0, 1, 2, 3
PAGE_HOST, PAGE_DEVICE = 0x1, 0x2
DELTA_SPARSE, DELTA_EXPECT_EPOCH = 0x1, 0x2
OP_COPY, OP_CONCAT, OP_XOR, OP_SUM_U32, OP_SUM_U64, OP_MAX_U8, OP_MAX_U32, OP_MAX_U64 = range(1, 9)
OP_USER_FIRST = 0x10000
EVENT_PAGE_CHANGED, EVENT_DERIVED, EVENT_COMMIT = 0x1, 0x2, 0x4
EVENT_TRUNCATED = 0x1
LOC_HOST, LOC_DEVICE = 1, 2
REC_END = 0
REC_NAMES = {1: "PAGE_CREATE", 2: "PAGE_FREE", 3: "DELTA", 4: "COMMIT", 5: "SEAL", 6: "DERIVE", 7: "UNDERIVE",
             8: "EDGE_ADD", 9: "EDGE_REMOVE", 10: "DERIVED", 11: "ABORT", 12: "CHECKPOINT"}

U64_MAX = (1 << 64) - 1
U32_MAX = (1 << 32) - 1

# ---- errors --------------------------------------------------------------------------------------


class MMSBError(Exception):
    """A library call failed: .code (negative MMSB_E* or errno), .detail."""

    code = 0

    def __init__(self, code: int, detail: str) -> None:
        self.code = code
        self.detail = detail
        super().__init__("%s: %s" % (_lib.mmsb_strerror(code).decode(), detail))


class InvalidArgument(MMSBError, ValueError):
    code = -32001


class NotFound(MMSBError, LookupError):
    code = -32002


class Conflict(MMSBError):
    code = -32003


class NoSpace(MMSBError):
    code = -32004


class IOFailure(MMSBError, OSError):
    code = -32005


class Corrupt(MMSBError):
    code = -32006


class VersionMismatch(MMSBError):
    code = -32007


class Busy(MMSBError):
    code = -32008


class NotSupported(MMSBError):
    code = -32009


class OutOfMemory(MMSBError, MemoryError):
    code = -32010


class CycleError(MMSBError):
    code = -32011


class OperationFailed(MMSBError):
    """A derivation operation failed; for a Python operation, __cause__ is
    its exception."""
    code = -32012


class ReadOnly(MMSBError):
    code = -32013


class HasDependents(Busy):
    """Derived pages still read the page (free it after removing those
    edges). A Busy, as it was before it had a code of its own."""
    code = -32014


class InCallback(Busy):
    """A writing call from an event callback. A Busy, as it was before it
    had a code of its own."""
    code = -32015


class ReplicationError(MMSBError):
    """The replication stream did not store it (servers unreachable, no
    quorum); the writer keeps trying, and a later wait may succeed."""
    code = -32016


class Fenced(ReplicationError):
    """Another writer took the replication stream over: this engine's
    writing calls fail until it is reopened."""
    code = -32017


_ERRORS = {cls.code: cls for cls in (InvalidArgument, NotFound, Conflict, NoSpace, IOFailure, Corrupt,
                                     VersionMismatch, Busy, NotSupported, OutOfMemory, CycleError,
                                     OperationFailed, ReadOnly, HasDependents, InCallback, ReplicationError,
                                     Fenced)}


def _check(rc, cause=None):
    if rc == 0:
        return
    err = _ERRORS.get(rc, MMSBError)(rc, _lib.mmsb_last_error().decode(errors="replace"))
    if cause is not None:
        raise err from cause
    raise err


def strerror(code: int) -> str:
    """The library's one-line text for an MMSB_E* code (or errno)."""
    return _lib.mmsb_strerror(int(code)).decode()


def version() -> str:
    """The library's version string."""
    return _lib.mmsb_version(None, None, None).decode()


def abi_version() -> int:
    """The library's ABI version (MMSB_ABI_VERSION); this binding speaks 1."""
    return _lib.mmsb_abi_version()

# ---- the compiled fast path ---------------------------------------------------------------------


def _bind_fast():
    """mmsb._fast bound to the functions ctypes loaded, or None: not built
    (no compiler when pip ran), turned off by MMSB_PYTHON_FAST=0, or built
    for another ABI (a warning says so)."""
    if _os.environ.get("MMSB_PYTHON_FAST", "1") == "0":
        return None
    try:
        from . import _fast
    except ImportError:
        return None
    try:
        _fast.bind({name: _ctypes.cast(getattr(_lib, name), _c_void_p).value for name in _fast.FUNCTIONS},
                   _capi.ABI_VERSION)
    except (ImportError, AttributeError) as err:
        _warnings.warn("mmsb: the compiled fast path is not used: %s" % err, RuntimeWarning, stacklevel=2)
        return None
    return _fast


_fast_module = _bind_fast()
FAST_PATH = _fast_module is not None


def _raiser(engine_ref):
    """The fast path's error function for one engine: raises what _check
    raises. It holds the engine weakly, so an Engine dropped without
    close() is still closed at once by its __del__."""
    def fail(rc):
        engine = engine_ref()
        _check(rc, engine._take_op_error() if engine is not None else None)
    return fail

# ---- argument checks --------------------------------------------------------------------------


def _path(path, name="path"):
    """A store path as the C library takes it: str, bytes or os.PathLike
    (pathlib.Path), encoded the way the OS encodes file names."""
    if not isinstance(path, (str, bytes, _os.PathLike)):
        raise TypeError("%s must be a str, bytes or os.PathLike, not %s" % (name, type(path).__name__))
    encoded = _os.fsencode(path)
    if len(encoded) == 0 or b"\0" in encoded:
        raise ValueError("%s must be non-empty and hold no NUL byte" % name)
    return encoded


def _uint(value, name, limit=U64_MAX):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("%s must be an int, not %s" % (name, type(value).__name__))
    if value < 0 or value > limit:
        raise ValueError("%s is %d, outside 0..%d" % (name, value, limit))
    return value


def _buffer(data, name):
    """A read-only view of any bytes-like object, and a pointer to it that
    stays valid while the returned owner lives."""
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError("%s must be bytes-like, not %s" % (name, type(data).__name__)) from None
    view = view.cast("B") if view.ndim == 1 and view.format != "B" else view
    if view.ndim != 1 or not view.contiguous:
        raise ValueError("%s must be a contiguous one-dimensional buffer" % name)
    if view.nbytes == 0:
        return None, 0, None
    if isinstance(data, bytes):
        owner = data  # its buffer is immutable and stays put while it lives
        ptr = _ctypes.cast(_ctypes.c_char_p(owner), _c_void_p)
    elif view.readonly:
        owner = bytes(view)  # ctypes takes addresses of writable buffers only: copy
        ptr = _ctypes.cast(_ctypes.c_char_p(owner), _c_void_p)
    else:
        owner = (_ctypes.c_uint8 * view.nbytes).from_buffer(view)
        ptr = _ctypes.cast(owner, _c_void_p)
    return ptr, view.nbytes, owner

def _writable_buffer(data, name):
    """A pointer to a writable, contiguous one-dimensional buffer (no copy)
    and its size in bytes; the caller keeps `data` alive meanwhile."""
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError("%s must be bytes-like, not %s" % (name, type(data).__name__)) from None
    if view.readonly:
        raise TypeError("%s must be a writable bytes-like object, not %s" % (name, type(data).__name__))
    if view.ndim != 1 or not view.contiguous:
        raise ValueError("%s must be a contiguous one-dimensional buffer" % name)
    if view.nbytes == 0:
        return _ctypes.create_string_buffer(1), 0
    return (_ctypes.c_uint8 * view.nbytes).from_buffer(view.cast("B")), view.nbytes

# ---- results ------------------------------------------------------------------------------------


class Transfer(_NamedTuple):
    """What Engine.export wrote or import_store read (mmsb_transfer_info):
    live pages, derived pages among them, their bytes, the stream's length,
    the source's last record the state holds, the next page id, and the
    state root as 32 hex digits."""
    pages: int
    derived: int
    page_bytes: int
    stream_bytes: int
    commit_seq: int
    page_id_next: int
    state_root: str


def _transfer(t):
    return Transfer(t.pages, t.derived, t.page_bytes, t.stream_bytes, t.commit_seq, t.page_id_next,
                    _hex(t.state_root))


def _fileno(file, name):
    """A file descriptor from an int or a file object (flushed first: the
    library writes past Python's buffer)."""
    if isinstance(file, int) and not isinstance(file, bool):
        return file
    fileno = getattr(file, "fileno", None)
    if fileno is None:
        raise TypeError("%s must be a file descriptor or a file object with fileno()" % name)
    flush = getattr(file, "flush", None)
    if flush is not None:
        flush()
    return fileno()


class Change(_NamedTuple):
    """What a write or apply did: the page's epoch after it, the bytes whose
    value changed (0: nothing changed, no commit) and the commit's sequence
    number (0 when unchanged). A named tuple: `epoch, n, seq = e.write(...)`."""
    epoch: int
    bytes_changed: int
    commit_seq: int


@_dataclass(frozen=True)
class CommitResult:
    commit_seq: int
    pages_changed: int
    bytes_changed: int
    recomputes: int
    skips: int
    backdates: int
    delta_propagations: int


@_dataclass(frozen=True)
class PageInfo:
    page_id: int
    size: int
    epoch: int
    location: int
    flags: int


@_dataclass(frozen=True)
class Event:
    type: int
    flags: int
    commit_seq: int
    page_id: int
    epoch: int
    bytes_changed: int


@_dataclass(frozen=True)
class OpInput:
    """What a Python derivation operation receives: its parents' bytes (as
    bytes), ids, epochs and sizes, in the order they were given."""
    child_id: int
    op_version: int
    parent_ids: _Tuple[int, ...]
    parent_epochs: _Tuple[int, ...]
    parents: _Tuple[bytes, ...]
    params: bytes


def _commit_result(r):
    return CommitResult(r.commit_seq, r.pages_changed, r.bytes_changed, r.recomputes, r.skips, r.backdates,
                        r.delta_propagations)


def _new_result():
    r = _capi.CommitResult()
    r.struct_size = _ctypes.sizeof(r)
    return r


@_dataclass
class Delta:
    """An explicit change of one page: the bytes [offset, offset + len) whose
    mask bit is set take new values from payload (dense: len bytes; sparse:
    only the masked ones, with sparse=True). mask None: every byte."""
    page_id: int
    offset: int
    payload: BytesLike
    mask: _Optional[BytesLike] = None
    length: _Optional[int] = None
    sparse: bool = False
    expected_epoch: _Optional[int] = None

    def _c(self):
        """The C struct and the objects that keep its buffers alive."""
        page = _uint(self.page_id, "page_id")
        offset = _uint(self.offset, "offset")
        pay, pay_len, pay_owner = _buffer(self.payload, "payload")
        length = pay_len if self.length is None else _uint(self.length, "length")
        if self.mask is None:
            if self.sparse:
                raise ValueError("a sparse delta needs a mask")
            mask_bytes = b"\xff" * ((length + 7) // 8)
            if length % 8:
                mask_bytes = mask_bytes[:-1] + bytes([(1 << (length % 8)) - 1])
        else:
            mask_bytes = self.mask
        mask, mask_len, mask_owner = _buffer(mask_bytes, "mask")
        if mask_len < (length + 7) // 8:  # the library would read past it
            raise ValueError("mask has %d bytes; a delta of %d bytes needs %d" % (mask_len, length, (length + 7) // 8))
        d = _capi.Delta(page_id=page, offset=offset, len=length, payload_len=pay_len)
        d.mask = _ctypes.cast(mask, _capi.u8p)
        d.payload = _ctypes.cast(pay, _capi.u8p)
        d.flags = (DELTA_SPARSE if self.sparse else 0)
        if self.expected_epoch is not None:
            d.expected_epoch = _uint(self.expected_epoch, "expected_epoch")
            d.flags |= DELTA_EXPECT_EPOCH
        return d, (pay_owner, mask_owner, mask_bytes)

# ---- the engine ------------------------------------------------------------------------------------


def _options(options):
    """mmsb_options from keyword arguments, and the bytes its strings point
    to (keep them alive until the call that takes the options returns)."""
    o = _capi.Options()
    _check(_lib.mmsb_options_init(_byref(o), _ctypes.sizeof(o), _capi.ABI_VERSION))
    fields = {name: ftype for name, ftype in _capi.Options._fields_ if name not in ("struct_size", "abi_version")}
    keep = []
    for key, value in options.items():
        if key not in fields:
            raise TypeError("unknown option %r (the fields of mmsb_options)" % key)
        if fields[key] is _ctypes.c_char_p:
            if not isinstance(value, (str, bytes)):
                raise TypeError("%s must be str or bytes" % key)
            keep.append(value.encode() if isinstance(value, str) else value)
            setattr(o, key, keep[-1])
            continue
        setattr(o, key, _uint(value, key, U32_MAX if fields[key] is _ctypes.c_uint32 else U64_MAX))
    return o, keep


class Engine:
    """An open store. Use as a context manager (or call close()).

    Options are the fields of mmsb_options as keyword arguments, for
    example Engine(dir, durability=DURABILITY_NONE, flags=OPEN_CREATE)."""

    def __init__(self, path: PathArg, **options: _Union[int, str, bytes]) -> None:
        path_b = _path(path)
        o, keep = _options(options)
        handle = _c_void_p()
        self._h = None
        self._core = None    # the fast path's calls on this engine, when FAST_PATH
        self._path = _os.fsdecode(path_b)
        self._borrowed = False  # a replica's pages: its Replica closes them
        self._ops: _Dict[int, _Any] = {}   # op -> its ctypes callback (the library keeps calling it)
        self._subs: _Dict[int, _Any] = {}  # subscription -> its ctypes callback
        self._op_error: _Optional[BaseException] = None
        # exceptions raised in event callbacks (a commit cannot fail then)
        self.callback_errors: _List[BaseException] = []
        self._views: _Dict[int, int] = {}  # page id -> open views
        _check(_lib.mmsb_open(path_b, _byref(o), _byref(handle)))
        self._h = handle
        self._attach_core()

    def _attach_core(self):
        if _fast_module is not None:
            self._core = _fast_module.Core(self._h.value, Change, _raiser(_weakref.ref(self)))

    def _handle(self):
        if self._h is None:
            raise ValueError("the engine is closed")
        return self._h

    def __repr__(self) -> str:
        return "<mmsb.Engine %r %s>" % (self._path, "closed" if self._h is None else "open")

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_h", None) is not None:
            self.close()

    @classmethod
    def _borrow(cls, handle):
        """An Engine over a handle another object owns (a replica's pages)."""
        e = cls.__new__(cls)
        e._h, e._borrowed, e._ops, e._subs, e._op_error, e.callback_errors, e._views, e._core = (
            handle, True, {}, {}, None, [], {}, None)
        e._path = "(a replica's pages)"
        e._attach_core()
        return e

    def close(self) -> None:
        """Closes the engine: the log is synced and, when anything was committed,
        a checkpoint and a last commit record the state root. Raises Busy while
        page views are open; a second close does nothing."""
        if self._h is None:
            return
        if any(self._views.values()):
            raise Busy(-32008, "close: page views are still open; leave their with-blocks first")
        h, self._h = self._h, None
        if self._core is not None:
            self._core.detach()
        if not self._borrowed:
            _check(_lib.mmsb_close(h))

    # -- pages --

    def page_create(self, size: int, flags: int = 0) -> int:
        """Creates a zero page of `size` bytes in a commit of its own; returns its id.
        flags: 0 (placed by size), PAGE_HOST or PAGE_DEVICE."""
        out = _c_uint64()
        _check(_lib.mmsb_page_create(self._handle(), _uint(size, "size"), _uint(flags, "flags", U32_MAX),
                                     _byref(out)))
        return out.value

    def page_create_many(self, size: int, count: int, flags: int = 0) -> range:
        """Creates `count` zero pages of `size` bytes in one commit; returns
        their ids as a range (consecutive). All of them or none."""
        out = _c_uint64()
        _check(_lib.mmsb_page_create_many(self._handle(), _uint(size, "size"), _uint(flags, "flags", U32_MAX),
                                          _uint(count, "count"), _byref(out)))
        return range(out.value, out.value + count)

    def page_free(self, page_id: int) -> None:
        """Frees the page in a commit of its own (Busy while a view of it is open)."""
        if self._views.get(page_id):
            raise Busy(-32008, "page_free: page %d has an open view" % page_id)
        _check(_lib.mmsb_page_free(self._handle(), _uint(page_id, "page_id")))

    def page_info(self, page_id: int) -> PageInfo:
        """The page's PageInfo: id, size, epoch, location (LOC_*), flags."""
        info = _capi.PageInfo(struct_size=_ctypes.sizeof(_capi.PageInfo))
        _check(_lib.mmsb_page_info(self._handle(), _uint(page_id, "page_id"), _byref(info)))
        return PageInfo(info.page_id, info.size_bytes, info.epoch, info.location, info.flags)

    def read(self, page_id: int, offset: int = 0, length: _Optional[int] = None) -> bytes:
        """A consistent copy of bytes of the page (all of one epoch) as bytes:
        [offset, offset + length), by default to the page's end."""
        if self._core is not None:
            return self._core.read(page_id, offset, length)
        data, _ = self.read_with_epoch(page_id, offset, length)
        return data

    def read_with_epoch(self, page_id: int, offset: int = 0, length: _Optional[int] = None) -> _Tuple[bytes, int]:
        """(bytes, epoch) of [offset, offset + length) of the page (default: to
        its end), all of that one epoch."""
        if self._core is not None:
            return self._core.read_with_epoch(page_id, offset, length)
        if length is None:
            size = self.page_info(page_id).size
            if _uint(offset, "offset") > size:
                raise ValueError("offset %d is past the end of page %d (%d bytes)" % (offset, page_id, size))
            length = size - offset
        buf = _ctypes.create_string_buffer(_uint(length, "length") or 1)
        epoch = _c_uint64()
        _check(_lib.mmsb_page_read(self._handle(), _uint(page_id, "page_id"), _uint(offset, "offset"), buf, length,
                                   _byref(epoch)))
        return buf.raw[:length], epoch.value

    def read_into(self, page_id: int, offset: int, buffer: WritableBuffer) -> int:
        """Fills the writable bytes-like `buffer` (bytearray, memoryview,
        array, numpy array, ...) with the page's bytes from `offset` on, all
        of one epoch, without another copy; returns that epoch."""
        if self._core is not None:
            return self._core.read_into(page_id, offset, buffer)
        page, offset = _uint(page_id, "page_id"), _uint(offset, "offset")
        dst, n = _writable_buffer(buffer, "buffer")
        epoch = _c_uint64()
        _check(_lib.mmsb_page_read(self._handle(), page, offset, dst, n, _byref(epoch)))
        return epoch.value

    def view(self, page_id: int) -> "_View":
        """A zero-copy, read-only memoryview of the page, for a with-block:
        while it is open the page cannot be freed nor the engine closed, and
        it is released at the end of the block. The bytes change in place
        when the page is written (it is not a snapshot)."""
        return _View(self, _uint(page_id, "page_id"))

    def device_view(self, page_id: int) -> "DeviceView":
        """A device page's copy in device memory, for a with-block (as view):
        a DeviceView whose __cuda_array_interface__ lets CuPy, PyTorch or
        Numba read it without a copy. NotSupported for a host page."""
        return DeviceView(self, _uint(page_id, "page_id"))

    # -- changes --

    def write(self, page_id: int, offset: int, data: BytesLike) -> Change:
        """Writes the bytes-like `data` at `offset` as one commit; returns the
        Change (new epoch, bytes changed, commit sequence number)."""
        if self._core is not None:
            return self._core.write(page_id, offset, data)
        ptr, n, owner = _buffer(data, "data")
        ch = _capi.Change()
        _check(_lib.mmsb_write(self._handle(), _uint(page_id, "page_id"), _uint(offset, "offset"), ptr, n,
                               _byref(ch)), self._take_op_error())
        del owner
        return Change(ch.epoch, ch.bytes_changed, ch.commit_seq)

    def apply(self, delta: "Delta") -> Change:
        """Applies one Delta (dense or sparse, optionally with an expected
        epoch) as one commit; returns the Change."""
        if not isinstance(delta, Delta):
            raise TypeError("apply takes a Delta")
        d, keep = delta._c()
        ch = _capi.Change()
        _check(_lib.mmsb_apply(self._handle(), _byref(d), _byref(ch)), self._take_op_error())
        del keep
        return Change(ch.epoch, ch.bytes_changed, ch.commit_seq)

    def apply_batch(self, deltas: _Iterable["Delta"], durability: int = 0) -> CommitResult:
        """Applies the Deltas as one commit, all or none; returns the
        CommitResult (durability 0: the engine's mode)."""
        deltas = list(deltas)
        if not all(isinstance(d, Delta) for d in deltas):
            raise TypeError("apply_batch takes Delta objects")
        arr = (_capi.Delta * max(len(deltas), 1))()
        keep = []
        for i, d in enumerate(deltas):
            arr[i], k = d._c()
            keep.append(k)
        res = _new_result()
        _check(_lib.mmsb_apply_batch(self._handle(), arr, len(deltas), _uint(durability, "durability", 4),
                                     _byref(res)), self._take_op_error())
        return _commit_result(res)

    def transaction(self) -> "Transaction":
        """A Transaction: commits at the end of a with-block, aborts if the
        block raises."""
        t = _c_void_p()
        _check(_lib.mmsb_txn_begin(self._handle(), _byref(t)))
        return Transaction(self, t)

    # -- derived pages --

    def derive(self, child: int, op: int, parents: _Iterable[int], params: BytesLike = b"") -> CommitResult:
        """Makes `child` derived by operation `op` (OP_* or a registered user
        op) from 1..65536 `parents`, with optional params bytes; the child is
        computed in the same commit. Returns the CommitResult."""
        parents = [_uint(p, "parent") for p in parents]
        if not parents or len(parents) > 65536:
            raise ValueError("a derived page needs 1..65536 parents")
        arr = (_c_uint64 * len(parents))(*parents)
        pptr, plen, owner = _buffer(params, "params")
        spec = _capi.DeriveSpec(struct_size=_ctypes.sizeof(_capi.DeriveSpec), op=_uint(op, "op", U32_MAX),
                                parent_count=len(parents), params=pptr, params_len=plen)
        spec.parents = _ctypes.cast(arr, _capi.u64p)
        res = _new_result()
        _check(_lib.mmsb_derive(self._handle(), _uint(child, "child"), _byref(spec), _byref(res)),
               self._take_op_error())
        del owner
        return _commit_result(res)

    def underive(self, child: int) -> CommitResult:
        """Makes a derived page plain again (its bytes stay); returns the CommitResult."""
        res = _new_result()
        _check(_lib.mmsb_underive(self._handle(), _uint(child, "child"), _byref(res)), self._take_op_error())
        return _commit_result(res)

    def edge_add(self, parent: int, child: int) -> CommitResult:
        """Adds `parent` to a derived page's parents and recomputes it; returns the CommitResult."""
        res = _new_result()
        _check(_lib.mmsb_edge_add(self._handle(), _uint(parent, "parent"), _uint(child, "child"), _byref(res)),
               self._take_op_error())
        return _commit_result(res)

    def edge_remove(self, parent: int, child: int) -> CommitResult:
        """Removes `parent` from a derived page's parents and recomputes it; returns the CommitResult."""
        res = _new_result()
        _check(_lib.mmsb_edge_remove(self._handle(), _uint(parent, "parent"), _uint(child, "child"), _byref(res)),
               self._take_op_error())
        return _commit_result(res)

    def derive_info(self, page_id: int) -> _Dict[str, _Any]:
        """(op, op_version, parent ids, child count, params length, signature hex)."""
        info = _capi.DeriveInfo(struct_size=_ctypes.sizeof(_capi.DeriveInfo))
        parents = (_c_uint64 * 65536)()
        _check(_lib.mmsb_derive_info(self._handle(), _uint(page_id, "page_id"), _byref(info), parents, 65536))
        return {"op": info.op, "op_version": info.op_version, "parents": list(parents[:info.parent_count]),
                "child_count": info.child_count, "params_len": info.params_len,
                "signature": bytes(info.signature.bytes).hex()}

    def register_op(self, op: int, version: int, fn: _Callable[[OpInput], BytesLike]) -> None:
        """Registers fn(OpInput) -> bytes (exactly the child's size) as user
        operation `op` (>= OP_USER_FIRST). An exception in fn fails the
        commit; the call that made it raises OperationFailed from it."""
        if not callable(fn):
            raise TypeError("fn must be callable")

        def trampoline(user, inp, out, out_len):
            try:
                i = inp.contents
                n = i.parent_count
                parents = tuple(_ctypes.string_at(i.parent_bytes[k], i.parent_sizes[k]) for k in range(n))
                data = fn(OpInput(i.child_id, i.op_version, tuple(i.parent_ids[:n]), tuple(i.parent_epochs[:n]),
                                  parents, _ctypes.string_at(i.params, i.params_len) if i.params_len else b""))
                data = bytes(memoryview(data))
                if len(data) != out_len:
                    raise ValueError("operation %d returned %d bytes for a page of %d" % (op, len(data), out_len))
                _ctypes.memmove(out, data, out_len)
                return 0
            except BaseException as exc:  # noqa: B902 - any failure must fail the commit, not unwind C
                self._op_error = exc
                return 1

        cb = _capi.OP_FN(trampoline)
        _check(_lib.mmsb_op_register(self._handle(), _uint(op, "op", U32_MAX), _uint(version, "version", U32_MAX),
                                     cb, None), self._take_op_error())
        self._ops[op] = cb  # the library keeps calling it: keep it alive

    def _take_op_error(self):
        exc, self._op_error = self._op_error, None
        return exc

    # -- events --

    def subscribe(self, mask: int, fn: _Callable[[Event], object]) -> int:
        """Calls fn(Event) after each commit for the event types in mask.
        Returns the subscription id. Exceptions in fn are collected in
        callback_errors (the commit has happened)."""
        if not callable(fn):
            raise TypeError("fn must be callable")

        def trampoline(user, ev):
            try:
                e = ev.contents
                fn(Event(e.type, e.flags, e.commit_seq, e.page_id, e.epoch, e.bytes_changed))
            except BaseException as exc:  # noqa: B902
                self.callback_errors.append(exc)

        cb = _capi.EVENT_FN(trampoline)
        sub = _c_uint64()
        _check(_lib.mmsb_subscribe(self._handle(), _uint(mask, "mask", U32_MAX), cb, None, _byref(sub)))
        self._subs[sub.value] = cb
        return sub.value

    def unsubscribe(self, subscription: int) -> None:
        """Stops the events of a subscription that subscribe() returned."""
        _check(_lib.mmsb_unsubscribe(self._handle(), _uint(subscription, "subscription")))
        self._subs.pop(subscription, None)

    # -- durability, checkpoints, digests, counters --

    def sync(self) -> None:
        """Makes every commit so far durable (flush and fdatasync of the log)."""
        _check(_lib.mmsb_sync(self._handle()))

    def wait_durable(self, commit_seq: int) -> None:
        """Blocks until the commit with that sequence number is durable."""
        _check(_lib.mmsb_wait_durable(self._handle(), _uint(commit_seq, "commit_seq")))

    def wait_replicated(self, commit_seq: int) -> None:
        """Blocks until the commit is durable here and stored by the
        replication stream on a quorum (raises ReplicationError, Fenced)."""
        _check(_lib.mmsb_wait_replicated(self._handle(), _uint(commit_seq, "commit_seq")))

    def set_durability(self, durability: int) -> None:
        """Sets the durability mode (DURABILITY_*) for the commits that follow."""
        _check(_lib.mmsb_set_durability(self._handle(), _uint(durability, "durability", U32_MAX)))

    def checkpoint(self) -> None:
        """Writes a checkpoint of the state now; log segments it covers are then
        removed unless the store was opened with OPEN_KEEP_LOG."""
        _check(_lib.mmsb_checkpoint(self._handle()))

    def export(self, file: _Any) -> "Transfer":
        """Writes the committed state as an export stream (tlog/EXPORT.md) to
        a binary file object or file descriptor, from its position on;
        import_store makes a new store of it. Holds the writer role while it
        runs."""
        t = _capi.TransferInfo(struct_size=_ctypes.sizeof(_capi.TransferInfo))
        _check(_lib.mmsb_export(self._handle(), _fileno(file, "file"), _byref(t)))
        return _transfer(t)

    def page_digest(self, page_id: int) -> str:
        """The page digest (a hash tree over its 4 KiB chunks) as 32 hex digits."""
        d = _capi.Digest()
        _check(_lib.mmsb_page_digest(self._handle(), _uint(page_id, "page_id"), _byref(d)))
        return _hex(d)

    def state_root(self) -> str:
        """The state root as 32 hex digits."""
        d = _capi.Digest()
        _check(_lib.mmsb_state_root(self._handle(), _byref(d)))
        return _hex(d)

    def info(self) -> _Dict[str, _Union[int, str]]:
        """mmsb_engineinfo as a dict (counters, limits, log and checkpoint state)."""
        info = _capi.EngineInfo(struct_size=_ctypes.sizeof(_capi.EngineInfo))
        _check(_lib.mmsb_engine_info(self._handle(), _byref(info)))
        out = {}
        for name, _ in _capi.EngineInfo._fields_:
            if name.startswith("reserved") or name == "struct_size":
                continue
            value = getattr(info, name)
            out[name] = value.decode(errors="replace") if isinstance(value, bytes) else value
        return out


def _hex(d):
    out = _ctypes.create_string_buffer(33)
    _check(_lib.mmsb_digest_hex(_byref(d), out, 33))
    return out.value.decode()


class _View:
    def __init__(self, engine: Engine, page_id: int) -> None:
        self._engine = engine
        self._page = page_id
        self._mv: _Optional[memoryview] = None

    def __enter__(self) -> memoryview:
        e = self._engine
        ptr, size, epoch = _c_void_p(), _c_uint64(), _c_uint64()
        _check(_lib.mmsb_page_view(e._handle(), self._page, _byref(ptr), _byref(size), _byref(epoch)))
        assert ptr.value is not None
        arr = (_ctypes.c_uint8 * size.value).from_address(ptr.value)
        mv = memoryview(arr).cast("B").toreadonly()
        self._mv = mv
        e._views[self._page] = e._views.get(self._page, 0) + 1
        self.epoch = epoch.value
        return mv

    def __exit__(self, *exc: object) -> None:
        assert self._mv is not None
        self._mv.release()
        self._engine._views[self._page] -= 1


class DeviceView:
    """A device page's copy (mmsb_page_device_view), open for a with-block:
    while it is open the page cannot be freed nor the engine closed. Its
    fields: data (the device address), size, epoch (which the copy holds
    when the block starts), device (GPU_*), stream. The copy changes in
    place at the end of each later commit that changes the page, on
    `stream`: it is not a snapshot."""

    def __init__(self, engine: Engine, page_id: int) -> None:
        self._engine = engine
        self._page = page_id
        self._open = False
        self.data = self.size = self.epoch = self.device = self.stream = 0

    def __enter__(self) -> "DeviceView":
        e = self._engine
        v = _capi.DeviceView(struct_size=_ctypes.sizeof(_capi.DeviceView))
        _check(_lib.mmsb_page_device_view(e._handle(), self._page, _byref(v)))
        assert v.data is not None
        self.data, self.size, self.epoch, self.device, self.stream = v.data, v.size_bytes, v.epoch, v.device, v.stream
        e._views[self._page] = e._views.get(self._page, 0) + 1
        self._open = True
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._open
        self._open = False
        self._engine._views[self._page] -= 1

    @property
    def __cuda_array_interface__(self) -> _Dict[str, _Any]:
        """Version 3 of the CUDA Array Interface: one read-only dimension of
        bytes. Only a CUDA device's copy has one: on the emulated device
        (host memory) the attribute does not exist."""
        if not self._open:
            raise AttributeError("the device view is not open (use it in a with-block)")
        if self.device == GPU_EMULATE:
            raise AttributeError("the emulated device's copy is host memory, not CUDA memory; host_bytes() reads it")
        return {"shape": (self.size,), "typestr": "|u1", "data": (self.data, True), "strides": None,
                "version": 3, "stream": self.stream if self.stream != 0 else None}

    def host_bytes(self) -> bytes:
        """The emulated device's copy, copied out (for tests); a CUDA
        device's copy is read on the device instead (NotSupported)."""
        if not self._open:
            raise ValueError("the device view is not open (use it in a with-block)")
        if self.device != GPU_EMULATE:
            raise NotSupported(-32009, "a CUDA device's copy is read on the device (__cuda_array_interface__)")
        return _ctypes.string_at(self.data, self.size)


class Transaction:
    """Stages writes and deltas over any pages; commit() applies them as one
    commit, abort() drops them. As a context manager it commits at the end
    of the block, or aborts when the block raises."""

    def __init__(self, engine: Engine, handle: _c_void_p) -> None:
        self._engine = engine
        self._h: _Optional[_c_void_p] = handle
        self._result: _Optional[CommitResult] = None

    @property
    def result(self) -> CommitResult:
        """The CommitResult of commit() (or of the with-block's commit);
        ValueError before the transaction has committed."""
        if self._result is None:
            raise ValueError("the transaction has not committed")
        return self._result

    def _handle(self):
        if self._h is None:
            raise ValueError("the transaction has ended")
        return self._h

    def __repr__(self) -> str:
        state = "open" if self._h is not None else ("committed" if self._result is not None else "ended")
        return "<mmsb.Transaction %s>" % state

    def write(self, page_id: int, offset: int, data: BytesLike) -> None:
        """Stages a write of the bytes-like `data` at `offset`; nothing changes until commit()."""
        core = self._engine._core
        if core is not None:
            core.txn_write(self._handle().value, page_id, offset, data)
            return
        ptr, n, owner = _buffer(data, "data")
        _check(_lib.mmsb_txn_write(self._handle(), _uint(page_id, "page_id"), _uint(offset, "offset"), ptr, n))
        del owner

    def apply(self, delta: "Delta") -> None:
        """Stages a Delta; nothing changes until commit()."""
        if not isinstance(delta, Delta):
            raise TypeError("apply takes a Delta")
        d, keep = delta._c()
        _check(_lib.mmsb_txn_apply(self._handle(), _byref(d)))
        del keep

    def commit(self, durability: int = 0) -> CommitResult:
        """Applies everything staged as one commit (Conflict when an expected
        epoch no longer holds: nothing changes); returns the CommitResult,
        also kept in .result. Busy (InCallback included) leaves it open for a retry."""
        res = _new_result()
        rc = _lib.mmsb_txn_commit(self._handle(), _uint(durability, "durability", 4), _byref(res))
        if rc not in (-32008, -32015):  # EBUSY and ECALLBACK keep it open for a retry
            self._h = None
        _check(rc, self._engine._take_op_error())
        result = _commit_result(res)
        self._result = result
        return result

    def abort(self) -> None:
        """Drops everything staged; nothing changes. A second abort does nothing."""
        if self._h is not None:
            h, self._h = self._h, None
            _check(_lib.mmsb_txn_abort(h))

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()
            return
        if self._h is not None:
            self.commit()


class _Handle:
    """A library handle closed by one call: close() once, and a context
    manager around it."""

    _close_fn: _Any = None
    _h: _Optional[_c_void_p] = None
    _path = ""

    def __repr__(self) -> str:
        return "<mmsb.%s %r %s>" % (type(self).__name__, self._path, "closed" if self._h is None else "open")

    def close(self) -> None:
        """Closes the handle; a second close does nothing."""
        if self._h is not None:
            h, self._h = self._h, None
            _check(type(self)._close_fn(h))

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


class Attach(_Handle):
    """A read-only view, from this process, of the pages of an engine that
    another process is running on `path`. Reads take no lock: each returns
    bytes all of one epoch, with that epoch. A freed page, and every page
    once the writer closes, raise NotFound. One Attach per thread."""

    def __init__(self, path: PathArg) -> None:
        h = _c_void_p()
        encoded = _path(path)
        _check(_lib.mmsb_attach_open(encoded, _byref(h)))
        self._h = h
        self._path = _os.fsdecode(encoded)

    def _handle(self):
        if self._h is None:
            raise ValueError("the attach handle is closed")
        return self._h

    def page_info(self, page_id: int) -> PageInfo:
        """The page's PageInfo as the running engine has it now."""
        info = _capi.PageInfo(struct_size=_ctypes.sizeof(_capi.PageInfo))
        _check(_lib.mmsb_attach_page_info(self._handle(), _uint(page_id, "page_id"), _byref(info)))
        return PageInfo(info.page_id, info.size_bytes, info.epoch, info.location, info.flags)

    def read(self, page_id: int, offset: int = 0, length: _Optional[int] = None) -> _Tuple[bytes, int]:
        """(bytes, epoch) of [offset, offset + length) of the page (default:
        to its end), consistent."""
        if length is None:
            size = self.page_info(page_id).size
            if _uint(offset, "offset") > size:
                raise ValueError("offset %d is past the end of page %d (%d bytes)" % (offset, page_id, size))
            length = size - offset
        buf = _ctypes.create_string_buffer(_uint(length, "length") or 1)
        epoch = _c_uint64()
        _check(_lib.mmsb_attach_read(self._handle(), _uint(page_id, "page_id"), _uint(offset, "offset"), buf,
                                     length, _byref(epoch)))
        return buf.raw[:length], epoch.value



@_dataclass(frozen=True)
class Record:
    type: int
    name: str
    seq: int
    segment: int
    offset: int
    page_id: int
    epoch: int
    committed: bool
    payload: bytes


class LogReader(_Handle):
    """Iterates over a store's log records, validated as they are read
    (read-only; works while a writer appends)."""

    def __init__(self, path: PathArg) -> None:
        h = _c_void_p()
        encoded = _path(path)
        _check(_lib.mmsb_log_open(encoded, 0, _byref(h)))
        self._h = h
        self._path = _os.fsdecode(encoded)

    def __iter__(self) -> _Iterator["Record"]:
        rec = _capi.LogRecord(struct_size=_ctypes.sizeof(_capi.LogRecord))
        while self._h is not None:
            _check(_lib.mmsb_log_next(self._h, _byref(rec)))
            if rec.type == REC_END:
                return
            yield Record(rec.type, REC_NAMES.get(rec.type, str(rec.type)), rec.seq, rec.segment, rec.offset,
                         rec.page_id, rec.epoch, bool(rec.committed),
                         _ctypes.string_at(rec.payload, rec.payload_len) if rec.payload_len else b"")



Attach._close_fn = _lib.mmsb_attach_close
LogReader._close_fn = _lib.mmsb_log_close


# ---- replicas ----------------------------------------------------------------------------------------


class Replica:
    """A follower: keeps the replica store at path from a JetStream stream
    (README, "Replication"). Use as a context manager (or call close())."""

    def __init__(self, path: PathArg, servers: _Union[str, bytes], stream: _Union[str, bytes],
                 **limits: int) -> None:
        """limits: the fields of mmsb_options that bound the replica's pages
        (arena_bytes_max, pages_max, page_bytes_max, ...; see
        mmsb_replica_open_with); none: the defaults."""
        handle = _c_void_p()
        enc = [_path(path)] + [x.encode() if isinstance(x, str) else x for x in (servers, stream)]
        self._path = _os.fsdecode(enc[0])
        self._stream = enc[2].decode(errors="replace") if isinstance(enc[2], bytes) else str(enc[2])
        self._h: _Optional[_c_void_p] = None
        self._engine: _Optional[Engine] = None
        o, _keep = _options(limits)
        _check(_lib.mmsb_replica_open_with(enc[0], enc[1], enc[2], _byref(o) if limits else None, _byref(handle)))
        self._h = handle

    @property
    def engine(self) -> Engine:
        """The replica's pages as a read-only Engine (reads, views, page
        info, digests, the state root); valid until the replica closes."""
        if self._engine is None or self._engine._h is None:
            handle = _c_void_p()
            _check(_lib.mmsb_replica_engine(self._handle(), _byref(handle)))
            engine = Engine._borrow(handle)
            self._engine = engine
            return engine
        return self._engine

    def _handle(self):
        if self._h is None:
            raise ValueError("the replica is closed")
        return self._h

    def __repr__(self) -> str:
        return "<mmsb.Replica %r following %r %s>" % (self._path, self._stream,
                                                      "closed" if self._h is None else "open")

    def poll(self, timeout_ms: int = 100) -> int:
        """Takes the stream's messages until none came for timeout_ms; returns how many."""
        taken = _c_uint64()
        _check(_lib.mmsb_replica_poll(self._handle(), _uint(timeout_ms, "timeout_ms", U32_MAX), _byref(taken)))
        return taken.value

    def info(self) -> _Dict[str, int]:
        """mmsb_replica_info as a dict (what it holds, the stream's end, the lag)."""
        info = _capi.ReplicaInfo(struct_size=_ctypes.sizeof(_capi.ReplicaInfo))
        _check(_lib.mmsb_replica_info_get(self._handle(), _byref(info)))
        return {name: getattr(info, name) for name, _ in _capi.ReplicaInfo._fields_
                if not name.startswith("reserved") and name != "struct_size"}

    def close(self) -> None:
        """Stops following and closes the replica store (and its engine, if taken)."""
        if self._h is not None:
            if self._engine is not None:
                self._engine.close()  # detaches: the pages go with the replica
                self._engine = None
            h, self._h = self._h, None
            _check(_lib.mmsb_replica_close(h))

    def __enter__(self) -> "Replica":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def import_store(path: PathArg, file: _Any, **options: _Union[int, str, bytes]) -> Transfer:
    """Makes a new store at path (absent, or an empty directory) from an
    export stream read from a binary file object or file descriptor to its
    end; options as for Engine (OPEN_CREATE is implied). Every frame is
    checked, and the state root must match the stream's; on any error
    nothing is left at path (mmsb_import)."""
    path_b = _path(path)
    o, keep = _options(options)
    t = _capi.TransferInfo(struct_size=_ctypes.sizeof(_capi.TransferInfo))
    _check(_lib.mmsb_import(path_b, _byref(o), _fileno(file, "file"), _byref(t)))
    del keep
    return _transfer(t)


PROMOTE_FORCE = 0x1


def promote(path: PathArg, servers: _Union[str, bytes, None] = None, force: bool = False) -> None:
    """Makes the replica at path a store a writer opens (see mmsb_promote)."""
    enc = [_path(path), servers.encode() if isinstance(servers, str) else servers]
    _check(_lib.mmsb_promote(enc[0], enc[1], PROMOTE_FORCE if force else 0))
