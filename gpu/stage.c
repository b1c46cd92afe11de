/*
 * stage.c - building staged device work (stage.h).
 */
#include <string.h>

#include "stage.h"

void stage_init(gpu_stage *s, uint8_t *bytes, uint64_t bytes_cap, dev_item *items, uint32_t items_cap,
                uint64_t *expected_plus1, uint32_t ops_cap) {
    ASSERT(s != NULL && bytes != NULL && items != NULL && expected_plus1 != NULL);
    ASSERT(bytes_cap >= 64 && bytes_cap % 8 == 0 && ops_cap >= 1);
    /* an op as long as stage_max fits in the items of an empty stage */
    ASSERT((uint64_t)items_cap * DEV_ITEM_BYTES >= 8 * bytes_cap);
    *s = (gpu_stage){.bytes = bytes, .bytes_cap = bytes_cap, .items = items, .items_cap = items_cap,
                     .expected_plus1 = expected_plus1, .ops_cap = ops_cap};
}

void stage_reset(gpu_stage *s) {
    s->bytes_used = 0;
    s->items_used = 0;
    s->ops_used = 0;
}

uint64_t stage_max(const gpu_stage *s) { return s->bytes_cap - 8; }

static uint32_t items_for(uint64_t len) { return (uint32_t)((len + DEV_ITEM_BYTES - 1) / DEV_ITEM_BYTES); }

/* Room for an op of len bytes that carries `carried` bytes: where they go
 * (an offset into bytes), or false. */
static bool stage_room(const gpu_stage *s, uint64_t len, uint64_t carried, uint64_t *at_out) {
    ASSERT(len >= 1 && len <= stage_max(s) * 8 && carried <= stage_max(s));
    if (s->ops_used == s->ops_cap || items_for(len) > s->items_cap - s->items_used) return false;
    if (align_up_u64(carried, 8) > s->bytes_cap - s->bytes_used) return false;
    *at_out = s->bytes_used;
    return true;
}

/* The op's items, DEV_ITEM_BYTES of device memory each; mask and src are
 * staging offsets for the op's first byte. */
static void stage_items(gpu_stage *s, uint32_t kind, uint64_t offset, uint64_t len, uint64_t src, uint64_t mask) {
    uint32_t op = s->ops_used;
    uint64_t packed = 0; /* SPARSE: set bits before the item */
    for (uint64_t done = 0; done < len; done += DEV_ITEM_BYTES) {
        ASSERT(s->items_used < s->items_cap);
        uint32_t n = (uint32_t)min_u64(len - done, DEV_ITEM_BYTES);
        dev_item *it = &s->items[s->items_used++];
        *it = (dev_item){.dst = offset + done, .len = n, .kind = kind, .op = op};
        if (kind == DEV_ITEM_COPY || kind == DEV_ITEM_DENSE) it->src = src + done;
        if (kind == DEV_ITEM_DENSE || kind == DEV_ITEM_SPARSE) it->mask = mask + done / 8;
        if (kind == DEV_ITEM_SPARSE) {
            it->src = src + packed;
            packed += dev_item_count(s->bytes, it, 0, dev_item_units(it));
        }
    }
}

bool stage_zero(gpu_stage *s, uint64_t offset, uint64_t len) {
    uint64_t at;
    if (!stage_room(s, len, 0, &at)) return false;
    stage_items(s, DEV_ITEM_ZERO, offset, len, 0, 0);
    s->expected_plus1[s->ops_used++] = STAGE_NOT_COUNTED;
    return true;
}

bool stage_copy(gpu_stage *s, uint64_t offset, const uint8_t *src, uint64_t len) {
    ASSERT(src != NULL);
    uint64_t at;
    if (!stage_room(s, len, len, &at)) return false;
    memcpy(s->bytes + at, src, len);
    s->bytes_used += align_up_u64(len, 8);
    stage_items(s, DEV_ITEM_COPY, offset, len, at, 0);
    s->expected_plus1[s->ops_used++] = STAGE_NOT_COUNTED;
    return true;
}

bool stage_delta(gpu_stage *s, const gpu_delta *d) {
    ASSERT(d != NULL && d->mask != NULL && d->payload != NULL && d->len >= 1);
    ASSERT(d->sparse ? d->payload_len <= d->len : d->payload_len == d->len);
    ASSERT(d->changed <= d->len);
    uint64_t mask_bytes = (d->len + 7) / 8, at;
    if (!stage_room(s, d->len, mask_bytes + d->payload_len, &at)) return false;
    memcpy(s->bytes + at, d->mask, mask_bytes);
    memcpy(s->bytes + at + mask_bytes, d->payload, d->payload_len);
    s->bytes_used += align_up_u64(mask_bytes + d->payload_len, 8);
    uint32_t first_item = s->items_used;
    stage_items(s, d->sparse ? DEV_ITEM_SPARSE : DEV_ITEM_DENSE, d->offset, d->len, at + mask_bytes, at);
    if (d->sparse) { /* the last item's packed bytes end where the payload does */
        const dev_item *last = &s->items[s->items_used - 1];
        ASSERT(s->items_used > first_item);
        ASSERT(last->src - (at + mask_bytes) + dev_item_count(s->bytes, last, 0, dev_item_units(last)) ==
               d->payload_len);
    }
    s->expected_plus1[s->ops_used++] = d->changed + 1;
    return true;
}

int stage_check(const gpu_stage *s, const uint64_t *counts, const char *device) {
    ASSERT(counts != NULL && device != NULL);
    for (uint32_t op = 0; op < s->ops_used; op++) {
        if (s->expected_plus1[op] == STAGE_NOT_COUNTED || counts[op] == s->expected_plus1[op] - 1) continue;
        uint64_t first = 0;
        for (uint32_t i = 0; i < s->items_used; i++) {
            if (s->items[i].op == op) {
                first = s->items[i].dst;
                break;
            }
        }
        return err_set(MMSB_EIO,
                       "%s: a delta at device offset %llu changed %llu bytes of the device copy, %llu of the "
                       "host's mirror: the copy had diverged",
                       device, (unsigned long long)first, (unsigned long long)counts[op],
                       (unsigned long long)(s->expected_plus1[op] - 1));
    }
    return 0;
}
