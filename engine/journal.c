/*
 * journal.c - the commit's undo journal: each entry is a header, the old
 * bytes, then the entry's total size, so the journal can be walked from
 * its end. It is kept only while user operations exist (only they can fail
 * a commit after its changes); overflowing its bound loses the ability to
 * roll back, which commit_abandon then reports.
 */
#include <string.h>

#include "journal.h"

enum { J_BYTES = 1, J_SIGNATURE = 2 };

typedef struct jentry {
    uint32_t kind;
    uint32_t pad0;
    uint64_t page_id, offset, len, old_epoch;
    h128 old_signature;
} jentry;

_Static_assert(sizeof(jentry) % 8 == 0, "journal entries keep 8-byte alignment");

static void journal_push(mmsb_engine *e, const jentry *h, const page_entry *pe) {
    commit_ctx *c = &e->cc;
    ASSERT(c->active);
    ASSERT((h->kind == J_BYTES) == (pe != NULL));
    if (!c->journaling || c->journal_lost) return;
    uint64_t total = sizeof *h + align_up_u64(h->len, 8) + sizeof(uint64_t);
    if (total > c->journal.bytes_max - c->journal_used ||
        vmap_ensure(&c->journal, c->journal_used + total) != 0) {
        c->journal_lost = true;
        return;
    }
    uint8_t *at = c->journal.base + c->journal_used;
    memcpy(at, h, sizeof *h);
    if (h->len > 0) location_of(e, pe)->load(e, pe, h->offset, at + sizeof *h, h->len);
    memcpy(at + total - sizeof(uint64_t), &total, sizeof total);
    c->journal_used += total;
    ASSERT(c->journal_used <= c->journal.bytes_max);
}

void journal_bytes(mmsb_engine *e, uint64_t id, const page_entry *pe, uint64_t offset, uint64_t len) {
    ASSERT(id >= 1 && pe == entry_of(e, id));
    ASSERT(len > 0 && offset + len <= pe->size_bytes);
    jentry h = {.kind = J_BYTES, .page_id = id, .offset = offset, .len = len, .old_epoch = pe->epoch};
    journal_push(e, &h, pe);
}

void journal_signature(mmsb_engine *e, uint64_t id, h128 old) {
    ASSERT(e->cc.active);
    ASSERT(id != 0);
    jentry h = {.kind = J_SIGNATURE, .page_id = id, .old_signature = old};
    journal_push(e, &h, NULL);
}

bool journal_pop(mmsb_engine *e, journal_entry *out) {
    commit_ctx *c = &e->cc;
    if (c->journal_used == 0) return false;
    uint64_t total;
    memcpy(&total, c->journal.base + c->journal_used - sizeof total, sizeof total);
    ASSERT(total >= sizeof(jentry) + sizeof total && total <= c->journal_used);
    c->journal_used -= total;
    jentry h;
    memcpy(&h, c->journal.base + c->journal_used, sizeof h);
    ASSERT(h.kind == J_BYTES || h.kind == J_SIGNATURE);
    ASSERT((h.kind == J_BYTES) == (h.len > 0));
    *out = (journal_entry){.page_id = h.page_id, .offset = h.offset, .len = h.len, .old_epoch = h.old_epoch,
                           .old_signature = h.old_signature,
                           .old_bytes = c->journal.base + c->journal_used + sizeof h};
    return true;
}
