"""A first MMSB program in Python: pages, a write, a derived page, a
transaction, the state root, and a reopen that reaches the same root."""
import sys
import tempfile

import mmsb

store = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="mmsb-example-")

with mmsb.Engine(store, durability=mmsb.DURABILITY_NONE) as e:
    a = e.page_create(4096)
    b = e.page_create(4096)
    total = e.page_create(4096)
    e.derive(total, mmsb.OP_SUM_U32, [a, b])           # total = a + b, lane by lane

    change = e.write(a, 0, (7).to_bytes(4, "little"))
    print("wrote %d bytes, page %d is at epoch %d" % (change.bytes_changed, a, change.epoch))
    with e.transaction() as t:                        # both writes commit as one
        t.write(a, 4, (1).to_bytes(4, "little"))
        t.write(b, 0, (35).to_bytes(4, "little"))
    print("the transaction recomputed %d derived page(s)" % t.result.recomputes)

    first = int.from_bytes(e.read(total, 0, 4), "little")
    print("total[0] = %d" % first)
    root = e.state_root()
    print("state root %s" % root)

with mmsb.Engine(store) as again:                     # the log rebuilds the same state
    assert again.state_root() == root
    assert first == 42
print("reopened: same state root")
