"""The Python rows of the benchmark suite: what a call costs from Python,
through the package's compiled fast path and through ctypes alone, beside
py-lmdb (Debian's python3-lmdb, a CPython extension over LMDB) doing the
same thing in its own transaction. `make bench` runs it after mmsb-bench.

    python3 bench/python_bench.py [--quick] [--markdown FILE] [--json FILE] [--dir DIR]

Each sample times a batch of calls and keeps the mean per call; the table
gives the median, p99, min and max of the samples. Both engines skip the
disk sync (MMSB DURABILITY_NONE, LMDB sync=False), so the rows compare the
call paths, not the disk.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "ffi", "python"))

import mmsb  # noqa: E402

# name -> (goal text, predicate on the median in ns); from issue 16
GOALS = {
    "python/mmsb/write_64B_NONE": ("<= 1.0 us", lambda ns: ns <= 1000),
    "python/mmsb/read_64B": ("<= 0.3 us", lambda ns: ns <= 300),
}


def measure(fn, samples, batch):
    """Per-call nanoseconds of `samples` batches of `batch` calls of fn(i)."""
    per_call = []
    for _ in range(samples):
        start = time.perf_counter_ns()
        for i in range(batch):
            fn(i)
        per_call.append((time.perf_counter_ns() - start) / batch)
    per_call.sort()
    return per_call


def summary(name, per_call, peer=None, note=""):
    n = len(per_call)
    row = {"name": name, "unit": "ns", "median": per_call[n // 2], "p99": per_call[min(n - 1, n * 99 // 100)],
           "min": per_call[0], "max": per_call[-1], "peer": peer, "note": note}
    goal = GOALS.get(name)
    if goal is not None:
        row["goal"] = "%s %s" % (goal[0], "met" if goal[1](row["median"]) else "MISSED")
    return row


def mmsb_rows(directory, fast, samples, batch):
    """write, read and read_into of 64 B and 4 KiB through one path."""
    label = "python/mmsb" if fast else "python/mmsb_ctypes"
    rows = []
    with mmsb.Engine(os.path.join(directory, "fast" if fast else "ctypes"), durability=mmsb.DURABILITY_NONE,
                     flags=mmsb.OPEN_CREATE, gpu=mmsb.GPU_OFF) as e:
        if not fast:
            e._core = None  # what an install without a C compiler runs: ctypes for every call
        for size, size_name in ((64, "64B"), (4096, "4KiB")):
            page = e.page_create(4096)
            # Two payloads taken in turn: every write changes every byte, so
            # every call is a logged commit (a write of equal bytes is none).
            payloads = (bytes([1]) * size, bytes([2]) * size)
            put, get = "peer/py-lmdb/put_%s_own_txn" % size_name, "peer/py-lmdb/get_%s_own_txn" % size_name
            rows.append(summary("%s/write_%s_NONE" % (label, size_name),
                                measure(lambda i: e.write(page, 0, payloads[i & 1]), samples, batch), put,
                                "a logged commit per call"))
            rows.append(summary("%s/read_%s" % (label, size_name),
                                measure(lambda i: e.read(page, 0, size), samples, batch), get))
            buffer = bytearray(size)
            rows.append(summary("%s/read_into_%s" % (label, size_name),
                                measure(lambda i: e.read_into(page, 0, buffer), samples, batch), get,
                                "into a reused bytearray"))
    return rows


def lmdb_rows(directory, samples, batch):
    try:
        import lmdb
    except ImportError:
        return [{"name": "peer/py-lmdb", "skipped": "python3-lmdb is not installed (apt install python3-lmdb)"}]
    rows = []
    env = lmdb.open(os.path.join(directory, "lmdb"), map_size=1 << 30, sync=False, metasync=False)
    try:
        for size, size_name in ((64, "64B"), (4096, "4KiB")):
            key = b"page-%d" % size
            payloads = (bytes([1]) * size, bytes([2]) * size)

            def put(i):
                with env.begin(write=True) as txn:
                    txn.put(key, payloads[i & 1])

            def get(i):
                with env.begin() as txn:
                    txn.get(key)

            rows.append(summary("peer/py-lmdb/put_%s_own_txn" % size_name, measure(put, samples, batch),
                                note="sync=False: no disk sync, as NONE"))
            rows.append(summary("peer/py-lmdb/get_%s_own_txn" % size_name, measure(get, samples, batch)))
            with env.begin() as txn:  # LMDB's cheapest read: many gets in one read transaction
                rows.append(summary("peer/py-lmdb/get_%s_in_one_open_txn" % size_name,
                                    measure(lambda i: txn.get(key), samples, batch),
                                    note="a snapshot reused; an mmsb read is consistent on its own"))
    finally:
        env.close()
    return rows


def fmt(value):
    if value >= 10000:
        return "%.3g" % value
    return "%.0f" % value if value >= 100 else "%.1f" % value


def markdown(rows, fast_path):
    peers = {r["name"]: r for r in rows if "median" in r}
    out = ["Python %s, mmsb %s, compiled fast path: %s." % (sys.version.split()[0], mmsb.version(),
                                                           "yes" if fast_path else "NO (ctypes only)"), "",
           "| benchmark | median | p99 | min | max | unit | vs peer | goal | note |",
           "| --- | ---: | ---: | ---: | ---: | --- | ---: | --- | --- |"]
    for r in rows:
        if "skipped" in r:
            out.append("| `%s` | | | | | | | | skipped: %s |" % (r["name"], r["skipped"]))
            continue
        peer = peers.get(r.get("peer") or "")
        vs = "%.2fx `%s`" % (r["median"] / peer["median"], peer["name"]) if peer else ""
        out.append("| `%s` | %s | %s | %s | %s | ns | %s | %s | %s |" % (
            r["name"], fmt(r["median"]), fmt(r["p99"]), fmt(r["min"]), fmt(r["max"]), vs, r.get("goal", ""),
            r["note"]))
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few samples: checks that it runs")
    parser.add_argument("--markdown", help="write the table here")
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--dir", help="where the stores go (default: a temporary directory)")
    args = parser.parse_args()
    samples, batch = (5, 50) if args.quick else (200, 1000)
    directory = tempfile.mkdtemp(prefix="mmsb-pybench-", dir=args.dir)
    try:
        rows = []
        if mmsb.FAST_PATH:
            rows += mmsb_rows(directory, True, samples, batch)
        rows += mmsb_rows(directory, False, samples, batch)
        rows += lmdb_rows(directory, samples, batch)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    table = markdown(rows, mmsb.FAST_PATH)
    sys.stdout.write(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"python": sys.version.split()[0], "fast_path": mmsb.FAST_PATH, "rows": rows}, f, indent=1)
    if not mmsb.FAST_PATH:
        print("python_bench: the compiled fast path is missing (make builds it; pip needs a C compiler)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
