"""The rest of the Python API in one program: zero-copy reads, deltas and
conflicts, a derivation written in Python, events, a reader attached to the
running engine, and the log read back record by record."""
import sys
import tempfile

import mmsb

store = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="mmsb-tour-")

with mmsb.Engine(store, durability=mmsb.DURABILITY_GROUP) as e:
    sensors = e.page_create_many(64, 2)                 # two 64-byte pages in one commit: a range of ids
    summary = e.page_create(64)

    # Reads: a copy (bytes), into your own buffer (no copy), or a live view.
    e.write(sensors[0], 0, b"\x01\x02\x03")
    buffer = bytearray(3)
    epoch = e.read_into(sensors[0], 0, buffer)          # returns the epoch all the bytes belong to
    with e.view(sensors[0]) as view:                    # zero-copy, read-only, changes in place
        assert bytes(view[:3]) == buffer == b"\x01\x02\x03"

    # Deltas: only masked bytes change; an expected epoch turns a lost race into a Conflict.
    sparse = mmsb.Delta(sensors[1], 0, b"\xaa\xbb", mask=b"\x05", length=3, sparse=True)
    print("sparse delta changed %d bytes" % e.apply(sparse).bytes_changed)
    try:
        e.apply(mmsb.Delta(sensors[0], 0, b"\x09", expected_epoch=epoch + 5))
    except mmsb.Conflict as err:
        print("refused, nothing changed:", err.detail)

    # A derivation written in Python: the summary page is recomputed in each commit that changes a sensor.
    def maximum(inp: mmsb.OpInput) -> bytes:
        return bytes(max(column) for column in zip(*inp.parents))

    e.register_op(mmsb.OP_USER_FIRST, 1, maximum)
    events: list[mmsb.Event] = []
    e.subscribe(mmsb.EVENT_DERIVED | mmsb.EVENT_COMMIT, events.append)
    e.derive(summary, mmsb.OP_USER_FIRST, list(sensors))
    change = e.write(sensors[1], 2, b"\x07")
    e.wait_durable(change.commit_seq)                   # GROUP: returns once the commit is on disk
    print("summary %s after %d events" % (e.read(summary, 0, 3).hex(), len(events)))

    # Another reader (here in this process; usually another one) attached to the running engine.
    with mmsb.Attach(store) as reader:
        data, seen_epoch = reader.read(summary, 0, 3)
        assert data == e.read(summary, 0, 3) and seen_epoch == e.page_info(summary).epoch
    root = e.state_root()

# The log, record by record: every change and commit since the store was made.
with mmsb.LogReader(store) as log:
    kinds = [record.name for record in log]
print("%d log records: %d commits, %d deltas" % (len(kinds), kinds.count("COMMIT"), kinds.count("DELTA")))
with mmsb.Engine(store, flags=mmsb.OPEN_READONLY) as again:  # read-only: replays the log, writes nothing
    assert again.state_root() == root
print("reopened read-only: same state root")
