/*
 * region.c - segregated-fit unit allocator with coalescing, plus slabs for
 * small allocations (see region.h).
 */
#include <string.h>

#include "region.h"

#define UNIT_NONE UINT64_MAX

static unit_meta *meta_at(region *r, uint64_t unit) {
    ASSERT(unit < r->units_max);
    return (unit_meta *)r->metas.base + unit;
}

/* A unit as the lists and heads store it: unit + 1, so that 0 is none. */
static uint32_t link_of(uint64_t unit) {
    ASSERT(unit < UINT32_MAX);
    return (uint32_t)(unit + 1);
}

static bool edge_get(const region *r, uint64_t unit) {
    ASSERT(unit < r->units_max);
    ASSERT(unit / 8 < r->edge_bits.bytes_ready);
    const uint64_t *words = (const uint64_t *)r->edge_bits.base;
    return (words[unit / 64] >> (unit % 64)) & 1u;
}

static void edge_put(region *r, uint64_t unit, bool on) {
    ASSERT(unit < r->frontier && unit / 8 < r->edge_bits.bytes_ready);
    uint64_t *words = (uint64_t *)r->edge_bits.base;
    uint64_t bit = 1ull << (unit % 64);
    words[unit / 64] = on ? (words[unit / 64] | bit) : (words[unit / 64] & ~bit);
    ASSERT(edge_get(r, unit) == on);
}

/* ---- two-level segregated fit --------------------------------------------- */

static void map_insert(uint64_t units, uint32_t *fl, uint32_t *sl) {
    ASSERT(units > 0);
    if (units < TLSF_SL_COUNT) {
        *fl = 0;
        *sl = (uint32_t)units;
        return;
    }
    uint32_t top = log2_floor_u64(units);
    *fl = top - TLSF_SL_BITS + 1;
    *sl = (uint32_t)(units >> (top - TLSF_SL_BITS)) & (TLSF_SL_COUNT - 1);
    ASSERT(*fl < TLSF_FL_COUNT);
}

/* Rounds the request up to the start of the next class, so that every block
 * of the class found is large enough ("good fit"). */
static bool map_search(uint64_t units, uint32_t *fl, uint32_t *sl) {
    ASSERT(units > 0 && fl != NULL && sl != NULL);
    if (units >= TLSF_SL_COUNT) {
        uint32_t top = log2_floor_u64(units);
        units += (1ull << (top - TLSF_SL_BITS)) - 1;
        if (log2_floor_u64(units) - TLSF_SL_BITS + 1 >= TLSF_FL_COUNT) return false;
    }
    map_insert(units, fl, sl);
    return true;
}

static void list_push(region *r, uint64_t unit, uint64_t units) {
    ASSERT(units > 0 && unit + units <= r->frontier);
    ASSERT(units <= UINT32_MAX);
    uint32_t fl, sl;
    map_insert(units, &fl, &sl);
    unit_meta *h = meta_at(r, unit);
    h->u.block.units = (uint32_t)units;
    h->prev = 0;
    h->next = r->heads[fl][sl];
    if (h->next != 0) meta_at(r, h->next - 1)->prev = link_of(unit);
    r->heads[fl][sl] = link_of(unit);
    r->sl_bitmap[fl] |= 1u << sl;
    r->fl_bitmap |= 1ull << fl;
    meta_at(r, unit + units - 1)->u.block.units = (uint32_t)units;
    edge_put(r, unit, true);
    edge_put(r, unit + units - 1, true);
    ASSERT(r->heads[fl][sl] == unit + 1 && (r->fl_bitmap >> fl) & 1);
}

static void list_remove(region *r, uint64_t unit) {
    ASSERT(r->fl_bitmap != 0);
    ASSERT(unit < r->frontier && edge_get(r, unit));
    unit_meta *h = meta_at(r, unit);
    uint64_t units = h->u.block.units;
    uint32_t fl, sl;
    map_insert(units, &fl, &sl);
    if (h->prev != 0) {
        meta_at(r, h->prev - 1)->next = h->next;
    } else {
        ASSERT(r->heads[fl][sl] == unit + 1);
        r->heads[fl][sl] = h->next;
        if (h->next == 0) {
            r->sl_bitmap[fl] &= ~(1u << sl);
            if (r->sl_bitmap[fl] == 0) r->fl_bitmap &= ~(1ull << fl);
        }
    }
    if (h->next != 0) meta_at(r, h->next - 1)->prev = h->prev;
    h->next = h->prev = 0;
    edge_put(r, unit, false);
    edge_put(r, unit + units - 1, false);
}

static uint64_t find_block(const region *r, uint64_t units) {
    ASSERT(r != NULL && r->frontier <= r->units_max);
    ASSERT(units > 0);
    uint32_t fl, sl;
    if (!map_search(units, &fl, &sl)) return UNIT_NONE;
    uint32_t sl_map = r->sl_bitmap[fl] & (~0u << sl);
    if (sl_map == 0) {
        uint64_t fl_map = r->fl_bitmap & (~0ull << (fl + 1));
        if (fl_map == 0) return UNIT_NONE;
        fl = (uint32_t)__builtin_ctzll(fl_map);
        sl_map = r->sl_bitmap[fl];
        ASSERT(sl_map != 0);
    }
    sl = (uint32_t)__builtin_ctz(sl_map);
    ASSERT(r->heads[fl][sl] != 0);
    return r->heads[fl][sl] - 1u;
}

static int grow_frontier(region *r, uint64_t units) {
    ASSERT(units > 0 && r->frontier <= r->units_max);
    if (units > r->units_max - r->frontier) {
        return err_set(MMSB_ENOSPC,
                       "arena full: %llu more bytes needed, %llu of %llu in use",
                       (unsigned long long)(units * REGION_UNIT_BYTES),
                       (unsigned long long)(r->frontier * REGION_UNIT_BYTES),
                       (unsigned long long)(r->units_max * REGION_UNIT_BYTES));
    }
    uint64_t end = r->frontier + units;
    int rc = vmap_ensure(&r->edge_bits, (end + 7) / 8);
    if (rc == 0) rc = vmap_ensure(&r->mem, end * REGION_UNIT_BYTES);
    ASSERT(rc != 0 || r->mem.bytes_ready >= end * REGION_UNIT_BYTES);
    return rc;
}

static int units_alloc(region *r, uint64_t units, uint64_t *unit_out, bool *zeroed_out) {
    ASSERT(units > 0);
    uint64_t unit = find_block(r, units);
    if (unit != UNIT_NONE) {
        uint64_t have = meta_at(r, unit)->u.block.units;
        ASSERT(have >= units && unit + have <= r->frontier);
        list_remove(r, unit);
        if (have > units) list_push(r, unit + units, have - units);
        *unit_out = unit;
        *zeroed_out = false;
        return 0;
    }
    int rc = grow_frontier(r, units);
    if (rc != 0) return rc;
    unit = r->frontier;
    r->frontier += units;
    *zeroed_out = unit >= r->high_water;
    r->high_water = max_u64(r->high_water, r->frontier);
    *unit_out = unit;
    return 0;
}

static void units_free(region *r, uint64_t unit, uint64_t units) {
    ASSERT(units > 0 && unit + units <= r->frontier);
    if (unit > 0 && edge_get(r, unit - 1)) {
        uint64_t left_units = meta_at(r, unit - 1)->u.block.units;
        ASSERT(left_units > 0 && left_units <= unit);
        uint64_t left = unit - left_units;
        ASSERT(meta_at(r, left)->u.block.units == left_units);
        list_remove(r, left);
        unit = left;
        units += left_units;
    }
    uint64_t right = unit + units;
    if (right < r->frontier && edge_get(r, right)) {
        uint64_t right_units = meta_at(r, right)->u.block.units;
        list_remove(r, right);
        units += right_units;
    }
    if (unit + units == r->frontier) {
        r->frontier = unit;
        return;
    }
    list_push(r, unit, units);
}

/* ---- slabs for small allocations ------------------------------------------ */

static uint32_t class_of(uint64_t bytes) {
    ASSERT(SMALL_BYTES_MAX % SMALL_GRAIN_BYTES == 0);
    ASSERT(bytes > 0 && bytes <= SMALL_BYTES_MAX);
    return (uint32_t)((bytes + SMALL_GRAIN_BYTES - 1) / SMALL_GRAIN_BYTES);
}

static uint32_t slots_of(uint32_t class_idx) {
    ASSERT(class_idx >= 1 && class_idx * SMALL_GRAIN_BYTES <= SMALL_BYTES_MAX);
    return REGION_UNIT_BYTES / (class_idx * SMALL_GRAIN_BYTES);
}

static void partial_push(region *r, uint32_t class_idx, uint64_t unit) {
    ASSERT(unit < r->frontier && unit + 1 <= UINT32_MAX);
    ASSERT(meta_at(r, unit)->u.slab.class_idx == class_idx);
    unit_meta *m = meta_at(r, unit);
    m->prev = 0;
    m->next = r->partial[class_idx];
    if (m->next != 0) meta_at(r, m->next - 1)->prev = link_of(unit);
    r->partial[class_idx] = link_of(unit);
}

static void partial_remove(region *r, uint32_t class_idx, uint64_t unit) {
    ASSERT(r->partial[class_idx] != 0);
    ASSERT(unit < r->frontier && meta_at(r, unit)->u.slab.class_idx == class_idx);
    unit_meta *m = meta_at(r, unit);
    if (m->prev != 0) {
        meta_at(r, m->prev - 1)->next = m->next;
    } else {
        ASSERT(r->partial[class_idx] == unit + 1);
        r->partial[class_idx] = m->next;
    }
    if (m->next != 0) meta_at(r, m->next - 1)->prev = m->prev;
    m->next = m->prev = 0;
}

static int small_alloc(region *r, uint32_t class_idx, uint64_t *offset_out) {
    ASSERT(offset_out != NULL && class_idx >= 1);
    uint32_t slot_bytes = class_idx * SMALL_GRAIN_BYTES;
    if (r->partial[class_idx] == 0) {
        uint64_t unit;
        bool zeroed;
        int rc = units_alloc(r, 1, &unit, &zeroed);
        if (rc != 0) return rc;
        *meta_at(r, unit) = (unit_meta){.u.slab.class_idx = (uint8_t)class_idx};
        partial_push(r, class_idx, unit);
    }
    uint64_t unit = r->partial[class_idx] - 1;
    unit_meta *m = meta_at(r, unit);
    ASSERT(m->u.slab.class_idx == class_idx && m->u.slab.used < slots_of(class_idx));
    uint32_t slot;
    uint8_t *slab = r->mem.base + unit * REGION_UNIT_BYTES;
    if (m->u.slab.free_head != 0) {
        slot = m->u.slab.free_head - 1u;
        memcpy(&m->u.slab.free_head, slab + slot * slot_bytes, sizeof m->u.slab.free_head);
    } else {
        slot = m->u.slab.bump++;
    }
    ASSERT(slot < slots_of(class_idx));
    m->u.slab.used++;
    if (m->u.slab.used == slots_of(class_idx)) partial_remove(r, class_idx, unit);
    *offset_out = unit * REGION_UNIT_BYTES + (uint64_t)slot * slot_bytes;
    ASSERT(*offset_out + slot_bytes <= (unit + 1) * REGION_UNIT_BYTES);
    return 0;
}

static void small_free(region *r, uint64_t offset, uint32_t class_idx) {
    ASSERT(offset < r->frontier * REGION_UNIT_BYTES && class_idx >= 1);
    uint32_t slot_bytes = class_idx * SMALL_GRAIN_BYTES;
    uint64_t unit = offset / REGION_UNIT_BYTES;
    uint32_t slot = (uint32_t)(offset % REGION_UNIT_BYTES) / slot_bytes;
    ASSERT((uint64_t)slot * slot_bytes == offset % REGION_UNIT_BYTES);
    unit_meta *m = meta_at(r, unit);
    ASSERT(m->u.slab.class_idx == class_idx && m->u.slab.used > 0 && slot < m->u.slab.bump);
    bool was_full = m->u.slab.used == slots_of(class_idx);
    memcpy(r->mem.base + offset, &m->u.slab.free_head, sizeof m->u.slab.free_head);
    m->u.slab.free_head = (uint16_t)(slot + 1);
    m->u.slab.used--;
    if (m->u.slab.used == 0) {
        ASSERT(!was_full); /* every class holds at least two slots */
        partial_remove(r, class_idx, unit);
        units_free(r, unit, 1);
    } else if (was_full) {
        partial_push(r, class_idx, unit);
    }
}

/* ---- public ---------------------------------------------------------------- */

uint64_t region_rounded_bytes(uint64_t bytes) {
    ASSERT(bytes > 0);
    if (bytes <= SMALL_BYTES_MAX) return (uint64_t)class_of(bytes) * SMALL_GRAIN_BYTES;
    ASSERT(bytes <= UINT64_MAX - REGION_UNIT_BYTES);
    return align_up_u64(bytes, REGION_UNIT_BYTES);
}

int region_open(region *r, const char *memfd_name, uint64_t bytes_max,
                uint64_t grow_bytes) {
    ASSERT(r != NULL);
    ASSERT(bytes_max >= REGION_UNIT_BYTES && bytes_max <= REGION_BYTES_MAX);
    memset(r, 0, sizeof *r);
    r->units_max = bytes_max / REGION_UNIT_BYTES;
    uint64_t step = align_up_u64(max_u64(grow_bytes, REGION_UNIT_BYTES), VM_PAGE_BYTES);
    int rc = vmap_open(&r->mem, memfd_name, r->units_max * REGION_UNIT_BYTES, step);
    if (rc == 0) rc = vmap_open(&r->edge_bits, NULL, (r->units_max + 7) / 8, 65536);
    if (rc == 0) {
        rc = vmap_open(&r->metas, NULL, r->units_max * sizeof(unit_meta),
                       VM_PAGE_BYTES);
    }
    if (rc != 0) region_close(r);
    ASSERT(rc != 0 || (r->mem.base != NULL && r->frontier == 0));
    return rc;
}

void region_close(region *r) {
    ASSERT(r != NULL);
    ASSERT(r->frontier <= r->units_max);
    vmap_close(&r->mem);
    vmap_close(&r->edge_bits);
    vmap_close(&r->metas);
    ASSERT(r->mem.base == NULL);
}

int region_alloc(region *r, uint64_t bytes, uint64_t *offset_out, bool *zeroed_out) {
    ASSERT(r != NULL && offset_out != NULL && zeroed_out != NULL);
    ASSERT(bytes > 0);
    int rc;
    if (bytes <= SMALL_BYTES_MAX) {
        *zeroed_out = false;
        rc = small_alloc(r, class_of(bytes), offset_out);
    } else {
        uint64_t unit;
        uint64_t units = align_up_u64(bytes, REGION_UNIT_BYTES) / REGION_UNIT_BYTES;
        rc = units_alloc(r, units, &unit, zeroed_out);
        if (rc == 0) *offset_out = unit * REGION_UNIT_BYTES;
    }
    if (rc != 0) return rc;
    r->bytes_used += region_rounded_bytes(bytes);
    r->allocations_live++;
    ASSERT(*offset_out + bytes <= r->frontier * REGION_UNIT_BYTES);
    ASSERT(*offset_out % (bytes > SMALL_BYTES_MAX ? REGION_UNIT_BYTES : SMALL_GRAIN_BYTES) == 0);
    return 0;
}

void region_free(region *r, uint64_t offset, uint64_t bytes) {
    ASSERT(r != NULL && bytes > 0);
    ASSERT(offset + bytes <= r->frontier * REGION_UNIT_BYTES);
    ASSERT(r->allocations_live > 0 && r->bytes_used >= region_rounded_bytes(bytes));
    if (bytes <= SMALL_BYTES_MAX) {
        small_free(r, offset, class_of(bytes));
    } else {
        ASSERT(offset % REGION_UNIT_BYTES == 0);
        units_free(r, offset / REGION_UNIT_BYTES,
                   align_up_u64(bytes, REGION_UNIT_BYTES) / REGION_UNIT_BYTES);
    }
    r->bytes_used -= region_rounded_bytes(bytes);
    r->allocations_live--;
}
