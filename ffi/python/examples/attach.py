"""Attach read-only to an engine another process is running, and read a
page and its epoch while that process writes (make demo runs this beside
the demo). Waits up to 60 s for the engine to start, and exits 1 if none
does. With a second argument, creates that file once attached: the demo
waits for it before it writes (mmsb demo --wait-reader FILE)."""
import sys
import time

import mmsb

store = sys.argv[1]
ready = sys.argv[2] if len(sys.argv) > 2 else None
deadline = time.monotonic() + 60
attach = None
while attach is None and time.monotonic() < deadline:
    try:
        attach = mmsb.Attach(store)
    except mmsb.NotFound:
        time.sleep(0.01)  # not started yet, or an old engine's file
if attach is None:
    print("attach: no engine came up on %s within 60 s" % store)
    sys.exit(1)
if ready is not None:
    open(ready, "w").close()

seen = []
page = 1
with attach:
    try:
        for _ in range(4000):
            try:
                data, epoch = attach.read(page, 0, 16)
                seen.append((page, epoch, data))
                page += 1  # walk over the pages, and around again
                time.sleep(0.0002)
            except mmsb.NotFound as err:
                if "closed" in err.detail:
                    raise
                # freed, or past the last page created so far: look further, or from 1 again
                page = 1 if "does not exist" in err.detail else page + 1
    except mmsb.NotFound:
        pass  # the demo closed its engine
if seen:
    page, epoch, data = seen[0]
    last = seen[-1]
    versions = len({(p, e) for p, e, _ in seen})
    print("attach: read page %d at epoch %d (%s...) while the demo wrote; %d reads of %d page versions, "
          "the last page %d at epoch %d" % (page, epoch, data[:8].hex(), len(seen), versions, last[0], last[1]))
else:
    print("attach: attached, but the demo closed before a read")
