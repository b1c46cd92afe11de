"""Tests of the Python binding (unittest): the behaviours of the C tests that
matter to a Python user, bad arguments, and a from-scratch-consistency run
driven from Python. Run by `make test` with MMSB_LIBRARY set."""
import ctypes
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.dirname(HERE))

import mmsb  # noqa: E402
from mmsb import _capi  # noqa: E402


def new_dir():
    return tempfile.mkdtemp(prefix="mmsb-py-")


def small(**extra):
    opts = dict(durability=mmsb.DURABILITY_NONE, gpu=mmsb.GPU_OFF, arena_bytes_max=256 << 20, page_bytes_max=64 << 20,
                arena_grow_bytes=1 << 20, pages_max=1 << 16, segment_bytes=4 << 20, log_buffer_bytes=1 << 20,
                group_window_bytes=256 << 10)
    opts.update(extra)
    return opts


# A program that uses the API as its annotations say (type-checked above).
TYPED_USE = """
import pathlib
from typing import List
import mmsb


def use(path: pathlib.Path) -> str:
    events: List[mmsb.Event] = []
    with mmsb.Engine(path, flags=mmsb.OPEN_CREATE, durability=mmsb.DURABILITY_NONE) as e:
        page: int = e.page_create(4096)
        change: mmsb.Change = e.write(page, 0, b"x")
        epoch, changed, seq = change
        data: bytes = e.read(page, 0, 1)
        buffer = bytearray(4)
        read_epoch: int = e.read_into(page, 0, buffer)
        with e.transaction() as t:
            t.write(page, 0, bytearray(b"y"))
        result: mmsb.CommitResult = e.apply_batch([mmsb.Delta(page, 0, memoryview(b"z"))])
        e.subscribe(mmsb.EVENT_COMMIT, events.append)
        pages: range = e.page_create_many(64, 3)
        with e.view(page) as view:
            first: int = view[0]
        for record in mmsb.LogReader(path):
            name: str = record.name
        return "%s %d %d %d %r %d %d %d %d %s" % (e.state_root(), epoch, changed, seq, data, read_epoch,
                                                result.recomputes, first + len(pages), t.result.commit_seq, name)
"""


class Base(unittest.TestCase):
    def setUp(self):
        self.dir = new_dir()
        self.addCleanup(shutil.rmtree, self.dir, True)

    def engine(self, **extra):
        e = mmsb.Engine(os.path.join(self.dir, "s"), **small(**extra))
        self.addCleanup(e.close)
        return e


class TestLibrary(unittest.TestCase):
    def test_versions(self):
        self.assertEqual(mmsb.abi_version(), 1)
        self.assertRegex(mmsb.version(), r"^\d+\.\d+\.\d+$")
        self.assertIn("corrupt", mmsb.strerror(-32006))

    def test_struct_layouts_match_the_header(self):
        """Every struct's size as the C compiler sees mmsb.h."""
        cc = os.environ.get("CC", "cc")
        if shutil.which(cc) is None:
            self.skipTest("no C compiler to read the header's layouts")
        names = ["mmsb_options", "mmsb_engineinfo", "mmsb_pageinfo", "mmsb_change", "mmsb_delta",
                 "mmsb_commit_result", "mmsb_op_input", "mmsb_derive_spec", "mmsb_deriveinfo", "mmsb_event",
                 "mmsb_log_record", "mmsb_digest", "mmsb_transfer_info", "mmsb_device_view"]
        ours = [_capi.Options, _capi.EngineInfo, _capi.PageInfo, _capi.Change, _capi.Delta, _capi.CommitResult,
                _capi.OpInput, _capi.DeriveSpec, _capi.DeriveInfo, _capi.Event, _capi.LogRecord, _capi.Digest,
                _capi.TransferInfo, _capi.DeviceView]
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        src = os.path.join(d, "sizes.c")
        with open(src, "w") as f:
            f.write('#include <stdio.h>\n#include "mmsb.h"\nint main(void) {\n')
            for n in names:
                f.write('    printf("%%zu\\n", sizeof(%s));\n' % n)
            f.write("    return 0;\n}\n")
        exe = os.path.join(d, "sizes")
        subprocess.run([cc, "-I", os.path.join(ROOT, "ffi"), "-o", exe, src], check=True)
        sizes = [int(x) for x in subprocess.run([exe], check=True, capture_output=True).stdout.split()]
        self.assertEqual(sizes, [ctypes.sizeof(t) for t in ours])

    def test_every_export_is_declared(self):
        for name, (restype, argtypes) in _capi._SIGNATURES.items():
            fn = getattr(mmsb._lib, name)
            self.assertEqual(fn.argtypes, argtypes, name)
        with open(os.path.join(ROOT, "ffi", "mmsb.h")) as f:
            header = f.read()
        import re
        exported = set(re.findall(r"MMSB_API [^;(]*?\b(mmsb_\w+)\(", header))
        self.assertEqual(exported, set(_capi._SIGNATURES))


class TestPackage(Base):
    def test_version_and_public_names(self):
        self.assertEqual(mmsb.__version__, mmsb.version())
        public = {n for n in dir(mmsb) if not n.startswith("_")}
        for internal in ("ctypes", "byref", "c_uint64", "c_void_p", "dataclass", "os"):
            self.assertNotIn(internal, public)
        self.assertLessEqual(set(mmsb.__all__), public)

    def test_every_public_name_has_a_docstring(self):
        import inspect
        missing = []
        for name in mmsb.__all__:
            obj = getattr(mmsb, name)
            if not inspect.getdoc(obj):
                missing.append(name)
            for member, value in (vars(obj).items() if inspect.isclass(obj) else ()):
                if not member.startswith("_") and callable(value) and not (value.__doc__ or "").strip():
                    missing.append("%s.%s" % (name, member))
        self.assertEqual(missing, [])

    def test_every_public_callable_is_annotated(self):
        import inspect
        self.assertTrue(os.path.isfile(os.path.join(os.path.dirname(mmsb.__file__), "py.typed")))
        missing = []
        callables = [(name, getattr(mmsb, name)) for name in mmsb.__all__]
        for name, obj in list(callables):
            if inspect.isclass(obj):
                callables += [("%s.%s" % (name, m), v) for m, v in vars(obj).items()
                              if callable(v) and (not m.startswith("_") or m in ("__init__", "__enter__", "__iter__"))]
        for name, fn in callables:
            if inspect.isclass(fn) or not inspect.isfunction(fn):
                continue
            sig = inspect.signature(fn)
            unannotated = [p.name for p in sig.parameters.values()
                           if p.annotation is inspect.Parameter.empty and p.name != "self"]
            if unannotated or sig.return_annotation is inspect.Signature.empty:
                missing.append("%s(%s)" % (name, ", ".join(unannotated)))
        self.assertEqual(missing, [])

    def test_a_type_checker_accepts_the_package_and_its_use(self):
        """mypy (Debian's mypy) over the package, its examples and a typed
        program that uses it, for the oldest Python the package supports and
        for this one; CI installs mypy and requires this test."""
        mypy = shutil.which("mypy")
        if mypy is None:
            if os.environ.get("MMSB_REQUIRE_MYPY") == "1":
                self.fail("mypy is not installed (apt install mypy)")
            self.skipTest("mypy is not installed")
        program = os.path.join(self.dir, "typed_use.py")
        with open(program, "w") as f:
            f.write(TYPED_USE)
        package = os.path.dirname(os.path.dirname(mmsb.__file__))
        for version in ("3.9", "%d.%d" % sys.version_info[:2]):
            run = subprocess.run([mypy, "--python-version", version, "--cache-dir", os.path.join(self.dir, "cache"),
                                  os.path.join(package, "mmsb"), os.path.join(package, "examples"), program],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=package)
            self.assertEqual(run.returncode, 0, run.stdout)

    def test_device_placement_on_the_emulated_device(self):
        with mmsb.Engine(os.path.join(self.dir, "dev"), **small(gpu=mmsb.GPU_EMULATE, gpu_threshold_bytes=8192)) as e:
            big = e.page_create(1 << 20)
            small_page = e.page_create(100)
            forced = e.page_create(64, mmsb.PAGE_DEVICE)
            kept = e.page_create(1 << 20, mmsb.PAGE_HOST)
            self.assertEqual([e.page_info(p).location for p in (big, small_page, forced, kept)],
                             [mmsb.LOC_DEVICE, mmsb.LOC_HOST, mmsb.LOC_DEVICE, mmsb.LOC_HOST])
            self.assertEqual(e.page_info(forced).flags, mmsb.PAGE_DEVICE)
            e.write(big, 5000, b"\x07" * 300)
            self.assertEqual(e.read(big, 5000, 300), b"\x07" * 300)
            with e.device_view(big) as v:
                self.assertEqual((v.size, v.epoch, v.device), (1 << 20, 1, mmsb.GPU_EMULATE))
                self.assertEqual(v.host_bytes(), e.read(big))
                self.assertFalse(hasattr(v, "__cuda_array_interface__"))  # host memory: no CUDA pointer
                with self.assertRaises(mmsb.MMSBError):
                    e.page_free(big)  # not while a view is open
            with self.assertRaises(mmsb.NotSupported):
                with e.device_view(small_page):
                    pass
            info = e.info()
            self.assertEqual((info["gpu_pages"], info["gpu_threshold_bytes"]), (2, 8192))
            self.assertEqual(info["gpu_threshold_source"], mmsb.GPU_THRESHOLD_OPTION)
            self.assertTrue(info["gpu_device"])
        with mmsb.Engine(os.path.join(self.dir, "off"), **small()) as e:
            with self.assertRaises(mmsb.NotSupported):
                e.page_create(64, mmsb.PAGE_DEVICE)

    def test_paths_of_every_kind(self):
        import pathlib
        store = pathlib.Path(self.dir) / "s"
        with mmsb.Engine(store, flags=mmsb.OPEN_CREATE, **small()) as e:
            page = e.page_create(64)
            e.write(page, 0, b"path")
            self.assertEqual(repr(e), "<mmsb.Engine %r open>" % str(store))
        self.assertEqual(repr(e), "<mmsb.Engine %r closed>" % str(store))
        with mmsb.LogReader(store) as log:
            self.assertEqual(repr(log), "<mmsb.LogReader %r open>" % str(store))
        self.assertEqual(repr(log), "<mmsb.LogReader %r closed>" % str(store))
        with mmsb.Engine(os.fsencode(store), **small()) as e:
            self.assertEqual(e.read(page, 0, 4), b"path")
        self.assertTrue(list(mmsb.LogReader(store)))
        for bad, error in ((None, TypeError), (42, TypeError), ("", ValueError), ("a\0b", ValueError)):
            with self.assertRaises(error):
                mmsb.Engine(bad, **small())
            with self.assertRaises(error):
                mmsb.LogReader(bad)
            with self.assertRaises(error):
                mmsb.Attach(bad)


class TestPages(Base):
    def test_write_read_epochs_and_reopen(self):
        e = self.engine()
        p = e.page_create(4096)
        ch = e.write(p, 10, b"hello")
        self.assertEqual((ch.epoch, ch.bytes_changed), (1, 5))
        self.assertEqual(e.write(p, 10, b"hello").bytes_changed, 0)  # same bytes: no change
        self.assertEqual(e.read(p, 10, 5), b"hello")
        data, epoch = e.read_with_epoch(p)
        self.assertEqual((len(data), epoch), (4096, 1))
        e.write(p, 0, bytearray(b"\x01\x02"))
        e.write(p, 2, memoryview(b"\x03"))
        self.assertEqual(e.read(p, 0, 3), b"\x01\x02\x03")
        info = e.page_info(p)
        self.assertEqual((info.size, info.epoch, info.location), (4096, 3, mmsb.LOC_HOST))
        root = e.state_root()
        self.assertEqual(len(root), 32)
        self.assertEqual(len(e.page_digest(p)), 32)
        e.close()
        with mmsb.Engine(os.path.join(self.dir, "s"), **small()) as again:
            self.assertEqual(again.state_root(), root)
            self.assertEqual(again.read(p, 0, 3), b"\x01\x02\x03")
            self.assertGreater(again.info()["recovered_commits"], 0)

    def test_create_many_in_one_commit(self):
        e = self.engine()
        commits = e.info()["commits"]
        ids = e.page_create_many(4096, 50)
        self.assertEqual(ids, range(1, 51))
        self.assertEqual(e.info()["commits"], commits + 1)
        self.assertEqual(e.read(50, 0, 4), bytes(4))
        with self.assertRaises(mmsb.InvalidArgument):
            e.page_create_many(4096, 0)
        self.assertEqual(e.info()["pages_live"], 50)

    def test_free_and_not_found(self):
        e = self.engine()
        p = e.page_create(100)
        e.page_free(p)
        with self.assertRaises(mmsb.NotFound) as cm:
            e.read(p)
        self.assertEqual(cm.exception.code, -32002)
        self.assertIn(str(p), cm.exception.detail)
        self.assertIsInstance(cm.exception, LookupError)

    def test_bad_arguments_raise_never_crash(self):
        e = self.engine()
        p = e.page_create(64)
        with self.assertRaises(TypeError):
            e.write("1", 0, b"x")
        with self.assertRaises(TypeError):
            e.write(p, 0, "text is not bytes")
        with self.assertRaises(TypeError):
            e.page_create(4096.0)
        with self.assertRaises(ValueError):
            e.page_create(-1)
        with self.assertRaises(ValueError):
            e.write(p, 1 << 64, b"x")
        with self.assertRaises(mmsb.InvalidArgument):
            e.write(p, 60, b"too long for the page")
        with self.assertRaises(mmsb.InvalidArgument):
            e.page_create(0)
        with self.assertRaises(TypeError):
            mmsb.Engine(os.path.join(self.dir, "t"), no_such_option=1)
        with self.assertRaises(ValueError):
            mmsb.Engine(os.path.join(self.dir, "t"), durability=1 << 40)
        with self.assertRaises(mmsb.InvalidArgument):
            mmsb.Engine(os.path.join(self.dir, "t"), durability=9)
        with self.assertRaises(TypeError):
            e.apply("not a delta")
        self.assertEqual(e.page_info(p).epoch, 0)  # nothing changed
        e.close()
        with self.assertRaises(ValueError):
            e.page_create(64)

    def test_second_open_is_busy(self):
        self.engine()
        with self.assertRaises(mmsb.Busy):
            mmsb.Engine(os.path.join(self.dir, "s"), **small())

    def test_view_is_zero_copy_and_guarded(self):
        e = self.engine()
        p = e.page_create(4096)
        with e.view(p) as mv:
            self.assertTrue(mv.readonly)
            e.write(p, 0, b"\x09")
            self.assertEqual(mv[0], 9)  # the same memory, not a copy
            with self.assertRaises(mmsb.Busy):
                e.page_free(p)
            with self.assertRaises(TypeError):
                mv[0] = 1
        with self.assertRaises(ValueError):
            mv[0]  # released with its block
        e.page_free(p)


class TestFastPath(Base):
    """The calls made per change and per read: the same answers and the same
    errors through the compiled fast path and through ctypes (the suite runs
    once each way; see the Makefile's python_check)."""

    def test_the_expected_path_serves(self):
        if os.environ.get("MMSB_PYTHON_FAST") == "0":
            self.assertFalse(mmsb.FAST_PATH)
        elif os.environ.get("MMSB_TEST_EXPECT_FAST") == "1":
            self.assertTrue(mmsb.FAST_PATH, "make test builds mmsb._fast: it must be found and bound")
        self.assertEqual(self.engine()._core is not None, mmsb.FAST_PATH)

    def test_write_returns_a_change_and_takes_keywords(self):
        e = self.engine()
        p = e.page_create(64)
        epoch, changed, seq = e.write(p, 0, b"abc")
        self.assertEqual((epoch, changed), (1, 3))
        change = e.write(page_id=p, offset=1, data=b"BC")
        self.assertEqual(change, mmsb.Change(2, 2, change.commit_seq))
        self.assertGreater(change.commit_seq, seq)
        self.assertEqual(repr(e.write(p, 0, b"a")), "Change(epoch=2, bytes_changed=0, commit_seq=0)")
        self.assertEqual(e.read(p, 0, 3), b"aBC")
        self.assertEqual(e.read(page_id=p, length=2), b"aB")
        self.assertEqual(e.read(p, offset=62), bytes(2))
        self.assertEqual(e.read(p, 64), b"")
        self.assertEqual(e.read_with_epoch(p, 1, length=2), (b"BC", 2))
        for call in (lambda: e.write(p, 0), lambda: e.write(p, 0, b"x", b"y"), lambda: e.read(p, bogus=1),
                     lambda: e.read(p, 0, offset=1), lambda: e.read()):
            with self.assertRaises(TypeError):
                call()

    def test_every_kind_of_buffer(self):
        import array
        e = self.engine()
        p = e.page_create(64)
        e.write(p, 0, array.array("I", [0x04030201, 0x08070605]))
        e.write(p, 8, memoryview(b"0123456789")[2:6])
        e.write(p, 12, bytearray(b"\xee"))
        e.write(p, 13, b"")
        self.assertEqual(e.read(p, 0, 13), bytes(range(1, 9)) + b"2345\xee")
        with self.assertRaises(ValueError):
            e.write(p, 0, memoryview(b"abcdef")[::2])  # not contiguous
        with self.assertRaises(TypeError):
            e.write(p, 0, 7)

    def test_read_into_a_callers_buffer(self):
        import array
        e = self.engine()
        p = e.page_create(4096)
        e.write(p, 100, b"into")
        buf = bytearray(4)
        self.assertEqual(e.read_into(p, 100, buf), 1)
        self.assertEqual(buf, b"into")
        big = bytearray(16)
        self.assertEqual(e.read_into(p, 96, memoryview(big)[4:12]), 1)  # a window of a larger buffer
        self.assertEqual(big, bytes(8) + b"into" + bytes(4))
        words = array.array("I", [0])
        e.read_into(p, 100, words)
        self.assertEqual(words.tobytes(), b"into")
        self.assertEqual(e.read_into(p, 4096, bytearray()), 1)
        for buffer, error in ((b"read-only", TypeError), (memoryview(b"ro"), TypeError), ("str", TypeError),
                              (None, TypeError), (memoryview(bytearray(8))[::2], ValueError)):
            with self.assertRaises(error):
                e.read_into(p, 0, buffer)
        with self.assertRaises(mmsb.InvalidArgument):
            e.read_into(p, 4094, bytearray(4))  # past the page's end
        with self.assertRaises(mmsb.NotFound):
            e.read_into(p + 1, 0, bytearray(4))
        self.assertEqual(buf, b"into")  # a failed read leaves the buffer alone

    def test_the_same_errors_as_ctypes(self):
        e = self.engine()
        p = e.page_create(64)
        for bad, error in ((True, TypeError), (1.0, TypeError), ("1", TypeError), (-1, ValueError),
                           (1 << 64, ValueError)):
            for call in (lambda: e.write(bad, 0, b"x"), lambda: e.write(p, bad, b"x"), lambda: e.read(bad),
                         lambda: e.read(p, bad), lambda: e.read(p, 0, bad), lambda: e.read_into(bad, 0, bytearray(1)),
                         lambda: e.read_with_epoch(p, bad)):
                with self.assertRaises(error):
                    call()
        with self.assertRaisesRegex(ValueError, "past the end of page"):
            e.read(p, 65)
        with self.assertRaises(mmsb.NotFound) as cm:
            e.write(p + 7, 0, b"x")
        self.assertIn(str(p + 7), cm.exception.detail)
        with self.assertRaises(mmsb.InvalidArgument):
            e.write(p, 63, b"xy")
        self.assertEqual(e.page_info(p).epoch, 0)
        e.close()
        for call in (lambda: e.write(p, 0, b"x"), lambda: e.read(p), lambda: e.read_into(p, 0, bytearray(1))):
            with self.assertRaisesRegex(ValueError, "closed"):
                call()

    def test_an_engine_dropped_unclosed_is_closed_at_once(self):
        path = os.path.join(self.dir, "dropped")
        e = mmsb.Engine(path, **small())
        p = e.page_create(8)
        e.write(p, 0, b"dropped")
        del e  # no reference cycle through the fast path: closed here, not at a later collection
        with mmsb.Engine(path, **small()) as again:
            self.assertEqual(again.read(p, 0, 7), b"dropped")

    def test_a_transactions_writes(self):
        e = self.engine()
        p = e.page_create(64)
        with e.transaction() as t:
            t.write(p, 0, b"one")
            t.write(page_id=p, offset=3, data=bytearray(b"two"))
            with self.assertRaises(TypeError):
                t.write(p, 0, "text")
            with self.assertRaises(mmsb.InvalidArgument):
                t.write(p, mmsb.U64_MAX, b"overflows")
            self.assertEqual(e.read(p, 0, 6), bytes(6))  # staged only
            with self.assertRaisesRegex(ValueError, "not committed"):
                t.result
            self.assertEqual(repr(t), "<mmsb.Transaction open>")
        self.assertEqual(e.read(p, 0, 6), b"onetwo")
        self.assertEqual(t.result.bytes_changed, 6)
        self.assertEqual(repr(t), "<mmsb.Transaction committed>")
        with self.assertRaisesRegex(ValueError, "ended"):
            t.write(p, 0, b"late")

    def test_large_reads_and_writes_let_other_threads_run(self):
        """With the interpreter never switching threads on its own, another
        thread runs only while a call has released the GIL: large reads do,
        and writes do (a commit may wait for the disk)."""
        import threading
        import time
        e = self.engine(durability=mmsb.DURABILITY_SYNC)
        p = e.page_create(8 << 20)
        e.write(p, 0, b"\x07" * (8 << 20))
        done = threading.Event()
        counted = [0]

        def count():
            while not done.is_set():
                counted[0] += 1
                time.sleep(0)  # gives the GIL back to the reads at once

        def ran_beside(call, calls_max):
            # Calls until the other thread has counted once: it can only
            # while a call has the GIL released. A loaded machine may not
            # schedule it during the first calls, so there is a bound on
            # calls, not on time; without the release no number suffices.
            before = counted[0]
            for _ in range(calls_max):
                call()
                if counted[0] != before:
                    return True
            return False

        interval = sys.getswitchinterval()
        sys.setswitchinterval(1000.0)
        thread = threading.Thread(target=count)
        writes = iter(range(1 << 30))
        try:
            thread.start()
            during_reads = ran_beside(lambda: self.assertEqual(e.read(p)[-1], 7), 2000)
            during_writes = ran_beside(lambda: e.write(p, 0, bytes([next(writes) & 0xFF])), 500)
        finally:
            done.set()
            sys.setswitchinterval(interval)
            thread.join()
        self.assertTrue(during_reads, "no other thread ran during 2,000 reads of 8 MiB")
        self.assertTrue(during_writes, "no other thread ran during 500 SYNC writes")


class TestDeltasAndCommits(Base):
    def test_dense_sparse_expected_epoch(self):
        e = self.engine()
        p = e.page_create(16)
        e.apply(mmsb.Delta(p, 0, b"ABCDEFGH", mask=bytes([0b00000101])))
        self.assertEqual(e.read(p, 0, 3), b"A\x00C")
        e.apply(mmsb.Delta(p, 8, b"xy", mask=bytes([0b10000001]), length=8, sparse=True))
        self.assertEqual(e.read(p, 8, 8), b"x\x00\x00\x00\x00\x00\x00y")
        with self.assertRaises(mmsb.Conflict):
            e.apply(mmsb.Delta(p, 0, b"Z", expected_epoch=0))
        with self.assertRaises(ValueError):
            e.apply(mmsb.Delta(p, 0, bytes(16), mask=b"\xff"))  # 16 bytes need 2 mask bytes
        with self.assertRaises(mmsb.InvalidArgument):
            e.apply(mmsb.Delta(p, 0, b"short", length=8))  # a dense payload needs len bytes
        self.assertEqual(e.apply(mmsb.Delta(p, 0, b"Z", expected_epoch=2)).epoch, 3)

    def test_batch_and_transactions(self):
        e = self.engine()
        a, b = e.page_create(64), e.page_create(64)
        r = e.apply_batch([mmsb.Delta(a, 0, b"1"), mmsb.Delta(b, 0, b"2"), mmsb.Delta(a, 1, b"3")])
        self.assertEqual((r.pages_changed, r.bytes_changed), (3, 3))
        root = e.state_root()
        with self.assertRaises(RuntimeError):
            with e.transaction() as t:
                t.write(a, 5, b"gone")
                raise RuntimeError("abort it")
        self.assertEqual(e.state_root(), root)  # aborted: no trace
        with e.transaction() as t:
            t.write(a, 5, b"kept")
            t.apply(mmsb.Delta(b, 5, b"too"))
        self.assertGreater(t.result.commit_seq, 0)
        self.assertEqual(e.read(a, 5, 4) + e.read(b, 5, 3), b"kepttoo")
        with self.assertRaises(ValueError):
            t.write(a, 0, b"x")  # ended
        with self.assertRaises(mmsb.InvalidArgument):
            e.apply_batch([mmsb.Delta(a, 0, b"ok"), mmsb.Delta(b, 63, b"past the end")])
        self.assertEqual(e.read(a, 0, 2), b"13")  # the failed batch applied nothing


class TestDerived(Base):
    def test_builtins_and_a_python_operation(self):
        e = self.engine()
        a, b, x, d = (e.page_create(8) for _ in range(4))
        e.derive(x, mmsb.OP_XOR, [a, b])
        calls = []

        def double(inp):
            calls.append(inp.parent_ids)
            return bytes((v * 2) & 0xFF for v in inp.parents[0])

        e.register_op(mmsb.OP_USER_FIRST, 1, double)
        e.derive(d, mmsb.OP_USER_FIRST, [x])
        e.write(a, 0, b"\x03")
        e.write(b, 0, b"\x05")
        self.assertEqual(e.read(x, 0, 1), b"\x06")
        self.assertEqual(e.read(d, 0, 1), b"\x0c")
        self.assertEqual(calls[-1], (x,))
        info = e.derive_info(d)
        self.assertEqual((info["op"], info["parents"]), (mmsb.OP_USER_FIRST, [x]))
        with self.assertRaises(mmsb.CycleError):
            e.edge_add(d, x)

    def test_an_exception_in_an_operation_fails_the_commit_cleanly(self):
        e = self.engine()
        a, c = e.page_create(8), e.page_create(8)

        def guard(inp):
            if inp.parents[0][0] == 0xFF:
                raise KeyError("refused")
            return inp.parents[0]

        e.register_op(mmsb.OP_USER_FIRST + 1, 1, guard)
        e.derive(c, mmsb.OP_USER_FIRST + 1, [a])
        root = e.state_root()
        with self.assertRaises(mmsb.OperationFailed) as cm:
            e.apply_batch([mmsb.Delta(a, 0, b"\xff")])
        self.assertIsInstance(cm.exception.__cause__, KeyError)
        self.assertEqual(e.state_root(), root)  # rolled back
        for change in (lambda: e.write(a, 0, b"\xff"), lambda: e.apply(mmsb.Delta(a, 0, b"\xff"))):
            with self.assertRaises(mmsb.OperationFailed) as cm:
                change()
            self.assertIsInstance(cm.exception.__cause__, KeyError)
            self.assertEqual(e.state_root(), root)
        self.assertIsNone(e._op_error)  # taken by the call that failed, not left for the next one
        with self.assertRaises(mmsb.OperationFailed):
            e.register_op(mmsb.OP_USER_FIRST + 1, 2, lambda inp: b"short")  # wrong size: refused
        self.assertEqual(e.read(c), bytes(8))

    def test_events(self):
        e = self.engine()
        p = e.page_create(8)
        seen = []
        sub = e.subscribe(mmsb.EVENT_PAGE_CHANGED | mmsb.EVENT_COMMIT, seen.append)
        e.write(p, 0, b"ab")
        self.assertEqual([ev.type for ev in seen], [mmsb.EVENT_PAGE_CHANGED, mmsb.EVENT_COMMIT])
        self.assertEqual((seen[0].page_id, seen[0].bytes_changed), (p, 2))
        e.subscribe(mmsb.EVENT_COMMIT, lambda ev: 1 / 0)
        e.write(p, 0, b"cd")  # the commit stands; the exception is kept
        self.assertIsInstance(e.callback_errors[0], ZeroDivisionError)
        e.unsubscribe(sub)
        e.write(p, 0, b"ef")
        self.assertEqual(len(seen), 4)

    def test_codes_of_their_own_that_are_still_busy(self):
        e = self.engine()
        a, b = e.page_create(8), e.page_create(8)
        e.derive(b, mmsb.OP_COPY, [a])
        with self.assertRaises(mmsb.HasDependents) as cm:
            e.page_free(a)  # b reads a
        self.assertEqual(cm.exception.code, -32014)
        self.assertIsInstance(cm.exception, mmsb.Busy)  # what callers caught before
        e.subscribe(mmsb.EVENT_COMMIT, lambda ev: e.write(a, 0, b"x"))
        e.write(a, 0, b"y")
        self.assertIsInstance(e.callback_errors[0], mmsb.InCallback)
        self.assertIsInstance(e.callback_errors[0], mmsb.Busy)
        self.assertEqual(e.callback_errors[0].code, -32015)


class TestConsistency(Base):
    def test_incremental_equals_full_recompute(self):
        """A random DAG workload driven from Python, in an incremental and a
        FULL-propagation engine: the same root after every commit."""
        engines = [mmsb.Engine(os.path.join(self.dir, name), **small(propagation=mode))
                   for name, mode in (("inc", mmsb.PROPAGATE_INCREMENTAL), ("full", mmsb.PROPAGATE_FULL))]
        for e in engines:
            self.addCleanup(e.close)
        rng = random.Random(7)
        ops = [mmsb.OP_XOR, mmsb.OP_SUM_U32, mmsb.OP_MAX_U8, mmsb.OP_COPY]
        plan = []
        base = 6
        for i in range(24):
            n = i + base
            parents = rng.sample(range(1, n), min(3, n - 1))
            op = ops[i % 4]
            plan.append((op, parents[:1] if op == mmsb.OP_COPY else parents))
        for e in engines:
            for _ in range(base):
                e.page_create(256)
            for op, parents in plan:
                child = e.page_create(256)
                e.derive(child, op, parents)
        self.assertEqual(engines[0].state_root(), engines[1].state_root())
        for step in range(60):
            page = rng.randrange(1, base + 1)
            off = rng.randrange(0, 256 - 16) & ~3
            data = bytes(rng.randrange(256) for _ in range(16))
            other = rng.randrange(1, base + 1)
            for e in engines:
                with e.transaction() as t:
                    t.write(page, off, data)
                    t.write(other, 0, data[:4])
            self.assertEqual(engines[0].state_root(), engines[1].state_root(), "after commit %d" % step)
        self.assertGreater(engines[0].info()["skips"] + engines[0].info()["delta_propagations"], 0)


class TestLogAndReaders(Base):
    def test_log_reader(self):
        e = self.engine()
        p = e.page_create(64)
        e.write(p, 0, b"abc")
        e.sync()
        with mmsb.LogReader(os.path.join(self.dir, "s")) as r:
            names = [rec.name for rec in r]
        self.assertEqual(names[:4], ["PAGE_CREATE", "COMMIT", "DELTA", "COMMIT"])

    def test_log_reader_on_a_pruned_store(self):
        # Batches of several records straddle segment boundaries; checkpoints
        # remove the segments before theirs, so the oldest kept one begins in
        # the middle of a commit that the checkpoint covers: not damage.
        path = os.path.join(self.dir, "pruned")
        opts = dict(durability=mmsb.DURABILITY_NONE, gpu=mmsb.GPU_OFF, segment_bytes=4 << 20,
                    log_buffer_bytes=1 << 20, group_window_bytes=256 << 10, checkpoint_log_bytes=6 << 20)
        with mmsb.Engine(path, **opts) as e:
            pages = [e.page_create(16 << 10) for _ in range(4)]
            for i in range(700):
                e.apply_batch([mmsb.Delta(p, 0, bytes([(i + k) % 251]) * (16 << 10)) for k, p in enumerate(pages)])
            self.assertGreater(e.info()["log_segments_removed"], 0)
        with mmsb.LogReader(path) as r:
            records = list(r)
        self.assertGreater(len(records), 0)
        self.assertTrue(all(rec.committed for rec in records if rec.name == "DELTA"))

    def test_export_and_import(self):
        e = self.engine()
        a, b, c = e.page_create(64), e.page_create(64), e.page_create(64)
        e.write(a, 0, b"left")
        e.write(b, 0, b"right")
        e.derive(c, mmsb.OP_XOR, [a, b])
        stream = os.path.join(self.dir, "stream")
        with open(stream, "wb") as f:
            f.write(b"")  # the stream starts at the file's position
            out = e.export(f)
        self.assertEqual((out.pages, out.derived, out.page_id_next), (3, 1, 4))
        self.assertEqual(out.state_root, e.state_root())
        self.assertEqual(out.stream_bytes, os.path.getsize(stream))
        copy = pathlib.Path(self.dir) / "copy"
        with open(stream, "rb") as f:
            got = mmsb.import_store(copy, f, **small())
        self.assertEqual(got, out)
        with mmsb.Engine(copy, **small()) as d:
            self.assertEqual(d.state_root(), e.state_root())
            self.assertEqual(d.read(c, 0, 5), e.read(c, 0, 5))
            d.write(a, 0, b"LEFT")
            e.write(a, 0, b"LEFT")
            self.assertEqual(d.state_root(), e.state_root())
        with open(stream, "rb") as f, self.assertRaises(mmsb.InvalidArgument):
            mmsb.import_store(copy, f, **small())  # never over a store
        damaged = bytearray(open(stream, "rb").read())
        damaged[len(damaged) // 2] ^= 1
        with open(stream, "wb") as f:
            f.write(damaged)
        other = os.path.join(self.dir, "other")
        with open(stream, "rb") as f, self.assertRaises(mmsb.Corrupt):
            mmsb.import_store(other, f.fileno(), **small())
        self.assertFalse(os.path.exists(other))
        with self.assertRaises(TypeError):
            e.export("not a file")

    def test_read_only_open_from_another_process(self):
        e = self.engine()
        p = e.page_create(64)
        e.write(p, 0, b"shared")
        e.checkpoint()
        code = ("import sys, mmsb\n"
                "with mmsb.Engine(sys.argv[1], flags=mmsb.OPEN_READONLY, gpu=mmsb.GPU_OFF) as r:\n"
                "    print(r.read(1, 0, 6).decode(), r.state_root())\n"
                "    try:\n"
                "        r.write(1, 0, b'x')\n"
                "    except mmsb.ReadOnly as err:\n"
                "        print('refused', err.code)\n")
        env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
        out = subprocess.run([sys.executable, "-c", code, os.path.join(self.dir, "s")], env=env, check=True,
                             capture_output=True, text=True).stdout.split()
        self.assertEqual(out, ["shared", e.state_root(), "refused", "-32013"])


class TestAttach(Base):
    def test_attach_while_this_process_writes(self):
        """A reader process attaches and checks every read whole (each byte
        equals the epoch modulo 256) while this process writes."""
        store = os.path.join(self.dir, "s")
        with self.assertRaises(mmsb.NotFound):
            mmsb.Attach(store)
        e = self.engine()
        pages = [e.page_create(8192) for _ in range(4)]
        code = ("import sys, mmsb\n"
                "a = mmsb.Attach(sys.argv[1])\n"
                "print('ready', flush=True)\n"
                "torn = reads = 0\n"
                "epochs = set()\n"
                "for i in range(4000):\n"
                "    data, epoch = a.read(1 + i % 4)\n"
                "    reads += 1\n"
                "    epochs.add(epoch)\n"
                "    torn += data != bytes([epoch % 256]) * len(data)\n"
                "print(reads, torn, len(epochs))\n")
        env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
        reader = subprocess.Popen([sys.executable, "-c", code, store], env=env, stdout=subprocess.PIPE, text=True)
        self.assertEqual(reader.stdout.readline().strip(), "ready")
        n = 0
        while reader.poll() is None and n < 200000:
            page = pages[n % 4]
            epoch = e.page_info(page).epoch
            e.write(page, 0, bytes([(epoch + 1) % 256]) * 8192)
            n += 1
        reads, torn, epochs = (int(x) for x in reader.communicate(timeout=120)[0].split())
        self.assertEqual(reader.returncode, 0)
        self.assertEqual((reads, torn), (4000, 0))
        self.assertGreater(epochs, 1)
        e.close()
        with self.assertRaises(mmsb.NotFound):
            mmsb.Attach(store)


class TestExample(unittest.TestCase):
    """The README's Python programs are the example files, and they run."""

    EXAMPLES = (("python", "quickstart.py", ("total[0] = 42", "same state root")),
                ("python-tour", "tour.py", ("summary aa0207", "refused, nothing changed", "same state root")))

    def test_the_readme_shows_the_examples(self):
        with open(os.path.join(ROOT, "README.md")) as f:
            readme = f.read()
        for marker, name, _ in self.EXAMPLES:
            block = readme.split("<!-- %s:begin -->\n```python\n" % marker, 1)[1]
            block = block.split("```\n<!-- %s:end -->" % marker, 1)[0]
            with open(os.path.join(os.path.dirname(HERE), "examples", name)) as f:
                self.assertEqual(block, f.read(), name)

    def test_the_examples_run(self):
        for _, name, expected in self.EXAMPLES:
            d = new_dir()
            self.addCleanup(shutil.rmtree, d, True)
            env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
            out = subprocess.run([sys.executable, os.path.join(os.path.dirname(HERE), "examples", name),
                                  os.path.join(d, "store")], env=env, check=True, capture_output=True, text=True)
            for line in expected:
                self.assertIn(line, out.stdout, name)


if __name__ == "__main__":
    unittest.main()


def _nats_server():
    for d in ("/usr/sbin", "/usr/bin", "/usr/local/bin"):
        path = os.path.join(d, "nats-server")
        if os.access(path, os.X_OK):
            return path
    return None


class TestReplication(Base):
    """A writer in REPLICATED durability, a Replica following it, promotion:
    against a nats-server started here on 127.0.0.1 (a free port, a
    temporary directory), stopped by its PID."""

    def setUp(self):
        super().setUp()
        server = _nats_server()
        if server is None:
            if os.environ.get("MMSB_REQUIRE_NATS") == "1":
                self.fail("nats-server is not installed and MMSB_REQUIRE_NATS=1")
            self.skipTest("*** nats-server is not installed (make deps installs it) ***")
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = "nats://127.0.0.1:%d" % port
        log = open(os.path.join(self.dir, "nats.log"), "wb")
        self.addCleanup(log.close)
        libc = ctypes.CDLL(None, use_errno=True)
        # The server dies with this process even if it crashes (PR_SET_PDEATHSIG, SIGKILL).
        self.nats = subprocess.Popen([server, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd",
                                      os.path.join(self.dir, "js")], stdout=log, stderr=log,
                                     preexec_fn=lambda: libc.prctl(1, signal.SIGKILL))
        self.addCleanup(self.nats.wait)
        self.addCleanup(self.nats.kill)
        import time
        for _ in range(500):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.02)

    def test_replicated_commits_a_replica_and_promotion(self):
        primary, replica = os.path.join(self.dir, "p"), os.path.join(self.dir, "r")
        with mmsb.Engine(primary, **small(durability=mmsb.DURABILITY_REPLICATED, replication_servers=self.url,
                                          replication_stream="py", replication_create=1)) as e:
            p = e.page_create(4096)
            seq = 0
            for i in range(50):
                seq = e.write(p, i, bytes([i + 1])).commit_seq
            e.wait_replicated(seq)
            info = e.info()
            self.assertGreaterEqual(info["replicated_seq"], seq)
            self.assertIn("stream py", info["replication"])
            with self.assertRaises(mmsb.InvalidArgument):
                e.wait_replicated(seq + 1000)
            root = e.state_root()
        with mmsb.Replica(replica, self.url, "py") as r:
            for _ in range(50):
                r.poll(100)
                if r.info()["lag_records"] == 0:
                    break
            self.assertEqual(r.info()["lag_records"], 0)
            pages = r.engine  # the replica's pages, read-only
            self.assertEqual(pages.state_root(), root)
            self.assertEqual(pages.read(p, 0, 3), bytes([1, 2, 3]))
            with self.assertRaises(mmsb.ReadOnly):
                pages.write(p, 0, b"x")
        with self.assertRaises(ValueError):
            pages.read(p, 0, 1)  # closed with the replica
        with self.assertRaises(mmsb.MMSBError):  # limits the replica's pages do not fit in
            mmsb.Replica(replica, self.url, "py", page_bytes_max=1024)
        with mmsb.Replica(os.path.join(self.dir, "small"), self.url, "py", page_bytes_max=1024) as r:
            with self.assertRaises(mmsb.MMSBError):
                r.poll(100)
        with self.assertRaises(TypeError):
            mmsb.Replica(replica, self.url, "py", no_such_option=1)
        with self.assertRaises(mmsb.ReadOnly):
            mmsb.Engine(replica, **small())
        mmsb.promote(replica, self.url)
        with mmsb.Engine(replica, **small()) as b:
            self.assertEqual(b.state_root(), root)
        self.assertTrue(issubclass(mmsb.Fenced, mmsb.ReplicationError))
