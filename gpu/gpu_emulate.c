/*
 * gpu_emulate.c - the emulated device (MMSB_GPU_EMULATE): device memory is
 * private host memory, and submitted work runs at once, on the calling
 * thread, through the kernels' per-element logic (dev_logic.h): the same
 * staged items (stage.h) a CUDA device gets, each run as one kernel
 * block would run it.
 *
 * It is there so that every machine runs the device location's routing,
 * staging, batching and failure paths, and the device digests, in the whole
 * test suite: a device copy that a staging mistake left wrong shows as a
 * wrong digest, and a delta whose count on the copy differs from the host's
 * count on its mirror fails the submit. It is not fast, and not meant to be.
 */
#include <stdlib.h>
#include <string.h>

#include "../engine/base/bytes.h"
#include "../engine/base/vm.h"
#include "device_impl.h"

typedef struct emu_dev {
    gpu_dev base;               /* first: a gpu_dev * is an emu_dev * */
    vmap mem;                   /* the "device memory" */
    uint8_t *staging;
    dev_item *items;
    uint64_t *expected_plus1;
    uint64_t *counts;           /* per op: the bytes the items changed */
    const uint8_t **parents;    /* MMSB_DERIVE_PARENTS_MAX: an operation's inputs */
    uint8_t chunk_secret[DEV_XXH_SECRET_BYTES]; /* XXH3's secret for SEED_CHUNK */
} emu_dev;

static emu_dev *emu_of(gpu_dev *d) {
    ASSERT(d != NULL && d->ops->kind == MMSB_GPU_EMULATE);
    return (emu_dev *)d;
}

static int emu_back(gpu_dev *d, uint64_t end_bytes) {
    emu_dev *m = emu_of(d);
    int rc = vmap_ensure(&m->mem, end_bytes);
    if (rc == 0) d->backed_bytes = m->mem.bytes_ready;
    return rc;
}

/* Each item as a kernel's block runs it: its units in order, the packed
 * bytes of a sparse item counted from the item's own start. */
static int emu_submit(gpu_dev *d) {
    emu_dev *m = emu_of(d);
    const gpu_stage *s = &d->stage;
    memset(m->counts, 0, s->ops_used * sizeof *m->counts);
    for (uint32_t i = 0; i < s->items_used; i++) {
        const dev_item *it = &s->items[i];
        ASSERT(it->op < s->ops_used && it->dst + it->len <= d->backed_bytes);
        m->counts[it->op] += dev_item_run(m->mem.base, s->bytes, it, 0, dev_item_units(it), 0);
    }
    return stage_check(s, m->counts, "emulated device");
}

static int emu_hash_chunks(gpu_dev *d, const gpu_chunk_ref *refs, uint32_t count, h128 *out) {
    emu_dev *m = emu_of(d);
    for (uint32_t i = 0; i < count; i++) {
        uint8_t canonical[DEV_DIGEST_BYTES];
        dev_chunk_digest(m->mem.base + refs[i].page_offset, refs[i].page_bytes, refs[i].chunk, dev_xxh_ksecret,
                         m->chunk_secret, canonical);
        out[i] = get_h128(canonical);
    }
    return 0;
}

/* Runs at once: its output is in place before the wait. */
static int emu_op(gpu_dev *d, uint32_t op, const uint64_t *offsets, uint32_t n, uint32_t parents_at, uint64_t lo,
                  uint64_t hi, uint64_t dst, uint8_t *out) {
    (void)parents_at;
    emu_dev *m = emu_of(d);
    for (uint32_t k = 0; k < n; k++) m->parents[k] = m->mem.base + offsets[k];
    uint8_t *copy = m->mem.base + dst + lo;
    uint64_t units = (hi - lo + 7) / 8;
    for (uint64_t t = 0; t < units; t++) dev_op_unit(op, m->parents, n, lo, hi, t, copy);
    if (hi > lo) memcpy(out, copy, hi - lo);
    return 0;
}

static int emu_wait(gpu_dev *d) {
    (void)emu_of(d);
    return 0; /* everything ran when it was asked for */
}

static int emu_move(gpu_dev *d, uint64_t dst, uint64_t src, uint64_t len) {
    emu_dev *m = emu_of(d);
    memcpy(m->mem.base + dst, m->mem.base + src, len);
    return 0;
}

static int emu_view(gpu_dev *d, uint64_t offset, uint64_t len, const void **data_out, uint64_t *stream_out) {
    (void)len;
    *data_out = emu_of(d)->mem.base + offset;
    *stream_out = 0; /* submitted work is done when gpu_dev_submit returns */
    return 0;
}

static int emu_read(gpu_dev *d, uint64_t offset, uint8_t *dst, uint64_t len) {
    memcpy(dst, emu_of(d)->mem.base + offset, len);
    return 0;
}

static void emu_close(gpu_dev *d) {
    emu_dev *m = emu_of(d);
    vmap_close(&m->mem);
    free(m->parents);
    free(m->counts);
    free(m->expected_plus1);
    free(m->items);
    free(m->staging);
    free(m);
}

static const gpu_dev_ops emu_ops = {
    .kind = MMSB_GPU_EMULATE,
    .back = emu_back,
    .submit = emu_submit,
    .hash_chunks = emu_hash_chunks,
    .op = emu_op,
    .wait = emu_wait,
    .move = emu_move,
    .view = emu_view,
    .read = emu_read,
    .close = emu_close,
};

int gpu_emulate_open(const gpu_dev_config *cfg, gpu_dev **out) {
    ASSERT(cfg != NULL && out != NULL);
    ASSERT(cfg->staging_bytes >= 64 * 1024 && cfg->staging_bytes % 8 == 0);
    *out = NULL;
    emu_dev *m = calloc(1, sizeof *m);
    if (m == NULL) return err_set(MMSB_ENOMEM, "mmsb_open: out of memory for the emulated device");
    uint32_t items_cap = (uint32_t)(cfg->staging_bytes / GPU_STAGE_BYTES_PER_ITEM);
    m->base.ops = &emu_ops;
    m->staging = malloc(cfg->staging_bytes);
    m->items = malloc(items_cap * sizeof *m->items);
    m->expected_plus1 = malloc(items_cap * sizeof *m->expected_plus1);
    m->counts = malloc(items_cap * sizeof *m->counts);
    m->parents = malloc(MMSB_DERIVE_PARENTS_MAX * sizeof *m->parents);
    bool got = m->staging != NULL && m->items != NULL && m->expected_plus1 != NULL && m->counts != NULL &&
               m->parents != NULL;
    int rc = got ? vmap_open(&m->mem, NULL, cfg->bytes_max, 2 * 1024 * 1024)
                 : err_set(MMSB_ENOMEM, "mmsb_open: out of memory for the device's staging buffer");
    if (rc != 0) {
        m->mem = (vmap){0};
        emu_close(&m->base);
        return rc;
    }
    stage_init(&m->base.stage, m->staging, cfg->staging_bytes, m->items, items_cap, m->expected_plus1, items_cap);
    m->base.bytes_max = cfg->bytes_max;
    snprintf(m->base.name, sizeof m->base.name, "emulated (host memory)");
    dev_xxh_secret_for_seed(dev_xxh_ksecret, SEED_CHUNK, m->chunk_secret);
    *out = &m->base;
    return 0;
}
