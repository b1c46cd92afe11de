/*
 * journal.h - the undo journal of the commit being built: old bytes, old
 * epochs and old signatures, kept while user operations exist (one could
 * fail), so a failed commit can be rolled back.
 */
#ifndef MMSB_JOURNAL_H
#define MMSB_JOURNAL_H

#include "state.h"

/* Records a page's bytes [offset, offset + len) and epoch before they
 * change; nothing unless the commit keeps a journal. */
void journal_bytes(mmsb_engine *e, uint64_t id, const page_entry *pe, uint64_t offset, uint64_t len);
void journal_signature(mmsb_engine *e, uint64_t id, h128 old);
/* One journaled change, newest first: old bytes (len > 0) or an old
 * signature (len == 0). */
typedef struct journal_entry {
    uint64_t page_id, offset, len, old_epoch;
    h128 old_signature;
    const uint8_t *old_bytes;
} journal_entry;

/* Takes the newest entry off the journal; false when it is empty. The
 * bytes stay valid until the next push. */
bool journal_pop(mmsb_engine *e, journal_entry *out);
/* The commit being built keeps a journal, and nothing was lost to its
 * limit: it can be rolled back. */
static inline bool journal_complete(const mmsb_engine *e) {
    return e->cc.active && e->cc.journaling && !e->cc.journal_lost;
}

#endif /* MMSB_JOURNAL_H */
