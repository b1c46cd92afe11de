/*
 * gpu_cuda_dev.c - the CUDA backend of device.h: CUDA device 0, driven
 * through the CUDA runtime's C API and the launchers of kernels.cu.
 *
 * - Device memory is one reserved range of virtual addresses as large as
 *   the data arena, with physical memory mapped into it as pages are placed
 *   (cuMemAddressReserve, cuMemCreate, cuMemMap): a device page's copy is
 *   at its mirror's offset, never in managed memory, and never moves.
 * - Staging uses two slots of pinned host memory. A submit copies one
 *   slot's bytes and items to the device, launches one kernel for all its
 *   items, copies the items' changed-byte counts back and records an event,
 *   all on the engine's one stream, without waiting. Staging goes on into
 *   the other slot; a slot is reused only once its event says the device
 *   has read it, and its counts are then checked against the host's
 *   (stage_check): a copy that diverged fails that call.
 * - Digests, operations, views and reads are ordered after the submits on
 *   the same stream and wait for their own result only.
 *
 * A CUDA error becomes MMSB_ENOMEM (out of device memory) or MMSB_EIO, with
 * the runtime's words; the device location then moves every device page to
 * the host (engine/location.c), whose mirrors have every change.
 */
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/base/bytes.h"
#include "device_impl.h"
#include "launch.h"

enum {
    SLOTS = 2,
    MAPS_MAX = 512,                  /* physical allocations mapped into the range */
    DRIVER_API_VERSION = 12000,      /* the driver functions' versions asked for */
};
static const uint64_t GROW_MIN_BYTES = 64ull << 20;

typedef struct vmm_fns {
    PFN_cuMemAddressReserve_v10020 reserve;
    PFN_cuMemAddressFree_v10020 address_free;
    PFN_cuMemCreate_v10020 create;
    PFN_cuMemRelease_v10020 release;
    PFN_cuMemMap_v10020 map;
    PFN_cuMemUnmap_v10020 unmap;
    PFN_cuMemSetAccess_v10020 set_access;
    PFN_cuMemGetAllocationGranularity_v10020 granularity;
    PFN_cuGetErrorString_v6000 error_string;
} vmm_fns;

typedef struct cuda_slot {
    uint8_t *bytes;           /* pinned */
    dev_item *items;          /* pinned */
    uint64_t *expected_plus1; /* the host's counts */
    uint64_t *counts;         /* pinned: the device's counts, copied back after the launch */
    gpu_stage sent;           /* what this slot submitted, until its counts are checked */
    cudaEvent_t done;         /* recorded after the counts' copy back */
    bool pending;
} cuda_slot;

typedef struct cuda_dev {
    gpu_dev base; /* first: a gpu_dev * is a cuda_dev * */
    int device;
    cudaStream_t stream;
    vmm_fns vmm;
    CUdeviceptr mem; /* the reserved range */
    uint64_t reserved_bytes, granularity;
    CUmemGenericAllocationHandle maps[MAPS_MAX];
    uint64_t map_bytes[MAPS_MAX];
    uint32_t maps_used;
    cuda_slot slot[SLOTS];
    uint32_t current; /* the slot being staged into */
    uint64_t staging_bytes;
    uint32_t items_cap;
    uint8_t *d_staging; /* a slot's bytes, items and counts on the device */
    dev_item *d_items;
    unsigned long long *d_counts;
    gpu_chunk_ref *h_refs, *d_refs; /* GPU_DEV_HASH_MAX chunks to hash */
    uint8_t *h_digests, *d_digests; /* GPU_DEV_HASH_MAX canonical digests */
    const uint8_t **h_parents, **d_parents; /* MMSB_DERIVE_PARENTS_MAX */
} cuda_dev;

/* The kernel reads a chunk reference as three words. */
_Static_assert(sizeof(gpu_chunk_ref) == 3 * sizeof(uint64_t), "gpu_chunk_ref is three words");

static cuda_dev *cuda_of(gpu_dev *d) {
    ASSERT(d != NULL && d->ops->kind == MMSB_GPU_CUDA);
    return (cuda_dev *)d;
}

static int cuda_fail(cudaError_t e, const char *what) {
    ASSERT(e != cudaSuccess);
    int code = e == cudaErrorMemoryAllocation ? MMSB_ENOMEM : MMSB_EIO;
    return err_set(code, "CUDA: %s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

static int cu_fail(const cuda_dev *c, CUresult r, const char *what) {
    ASSERT(r != CUDA_SUCCESS);
    const char *text = NULL;
    if (c->vmm.error_string == NULL || c->vmm.error_string(r, &text) != CUDA_SUCCESS || text == NULL) text = "?";
    return err_set(r == CUDA_ERROR_OUT_OF_MEMORY ? MMSB_ENOMEM : MMSB_EIO, "CUDA driver: %s: %s (%d)", what, text,
                   (int)r);
}

/* The runtime works on the calling thread's current device; the engine's
 * calls may come from any thread that holds its writer role. */
static cudaError_t cuda_enter(const cuda_dev *c) { return cudaSetDevice(c->device); }

/* ---- device memory ---------------------------------------------------------------------------- */

static CUmemAllocationProp alloc_prop(int device) {
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof prop);
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = device;
    return prop;
}

/* Maps bytes of new physical memory at the end of what is mapped. */
static int map_more(cuda_dev *c, uint64_t bytes) {
    ASSERT(bytes % c->granularity == 0 && c->base.backed_bytes + bytes <= c->reserved_bytes);
    if (c->maps_used == MAPS_MAX) {
        return err_set(MMSB_ENOMEM, "CUDA: device memory is in %u pieces, the most this engine maps", MAPS_MAX);
    }
    CUmemAllocationProp prop = alloc_prop(c->device);
    CUmemGenericAllocationHandle h;
    CUresult r = c->vmm.create(&h, bytes, &prop, 0);
    if (r != CUDA_SUCCESS) return cu_fail(c, r, "cuMemCreate");
    CUdeviceptr at = c->mem + c->base.backed_bytes;
    r = c->vmm.map(at, bytes, 0, h, 0);
    if (r == CUDA_SUCCESS) {
        CUmemAccessDesc access = {.location = prop.location, .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
        r = c->vmm.set_access(at, bytes, &access, 1);
        if (r != CUDA_SUCCESS) (void)c->vmm.unmap(at, bytes);
    }
    if (r != CUDA_SUCCESS) {
        (void)c->vmm.release(h);
        return cu_fail(c, r, "cuMemMap");
    }
    c->maps[c->maps_used] = h;
    c->map_bytes[c->maps_used++] = bytes;
    c->base.backed_bytes += bytes;
    return 0;
}

/* Grows by a quarter of what is mapped (64 MiB at least), so that a store
 * of many pages maps few pieces; by what is needed alone when the device
 * has no room for more. */
static int cuda_back(gpu_dev *d, uint64_t end_bytes) {
    cuda_dev *c = cuda_of(d);
    cudaError_t e = cuda_enter(c);
    if (e != cudaSuccess) return cuda_fail(e, "cudaSetDevice");
    uint64_t need = align_up_u64(end_bytes, c->granularity) - d->backed_bytes;
    uint64_t room = c->reserved_bytes - d->backed_bytes;
    ASSERT(need <= room);
    uint64_t grow = min_u64(room, align_up_u64(max_u64(need, max_u64(GROW_MIN_BYTES, d->backed_bytes / 4)),
                                               c->granularity));
    int rc = map_more(c, grow);
    if (rc == MMSB_ENOMEM && grow > need) rc = map_more(c, need);
    return rc;
}

/* ---- submits ------------------------------------------------------------------------------------ */

/* Waits until the device has read the slot's staging, and checks its
 * counts. */
static int slot_settle(cuda_dev *c, cuda_slot *s) {
    if (!s->pending) return 0;
    s->pending = false;
    cudaError_t e = cudaEventSynchronize(s->done);
    if (e != cudaSuccess) return cuda_fail(e, "waiting for submitted changes");
    return stage_check(&s->sent, s->counts, c->base.name);
}

static void slot_stage(cuda_dev *c, uint32_t i) {
    cuda_slot *s = &c->slot[i];
    ASSERT(!s->pending);
    stage_init(&c->base.stage, s->bytes, c->staging_bytes, s->items, c->items_cap, s->expected_plus1, c->items_cap);
    c->current = i;
}

static int cuda_submit(gpu_dev *d) {
    cuda_dev *c = cuda_of(d);
    cuda_slot *s = &c->slot[c->current];
    const gpu_stage *st = &d->stage;
    ASSERT(!s->pending && st->bytes == s->bytes && st->ops_used > 0);
    cudaError_t e = cuda_enter(c);
    if (e == cudaSuccess && st->bytes_used > 0) {
        e = cudaMemcpyAsync(c->d_staging, st->bytes, st->bytes_used, cudaMemcpyHostToDevice, c->stream);
    }
    if (e == cudaSuccess) {
        e = cudaMemcpyAsync(c->d_items, st->items, st->items_used * sizeof(dev_item), cudaMemcpyHostToDevice,
                            c->stream);
    }
    if (e == cudaSuccess) e = cudaMemsetAsync(c->d_counts, 0, st->ops_used * sizeof *c->d_counts, c->stream);
    if (e == cudaSuccess) {
        e = (cudaError_t)gpu_launch_items((uint8_t *)(uintptr_t)c->mem, c->d_staging, c->d_items, st->items_used,
                                          c->d_counts, c->stream);
    }
    if (e == cudaSuccess) {
        e = cudaMemcpyAsync(s->counts, c->d_counts, st->ops_used * sizeof *s->counts, cudaMemcpyDeviceToHost,
                            c->stream);
    }
    if (e == cudaSuccess) e = cudaEventRecord(s->done, c->stream);
    if (e != cudaSuccess) return cuda_fail(e, "submitting staged changes");
    s->sent = *st;
    s->pending = true;
    uint32_t next = (c->current + 1) % SLOTS;
    int rc = slot_settle(c, &c->slot[next]); /* usually long done: it was the submit before this one */
    slot_stage(c, next);
    return rc;
}

/* Waits for everything on the stream, and checks what was submitted. */
static int cuda_wait(cuda_dev *c) {
    cudaError_t e = cudaStreamSynchronize(c->stream);
    if (e != cudaSuccess) return cuda_fail(e, "waiting for the device");
    int rc = 0;
    for (uint32_t i = 0; i < SLOTS; i++) {
        int slot_rc = slot_settle(c, &c->slot[i]);
        if (rc == 0) rc = slot_rc;
    }
    return rc;
}

/* ---- work that reads device memory ------------------------------------------------------------- */

static int cuda_hash_chunks(gpu_dev *d, const gpu_chunk_ref *refs, uint32_t count, h128 *out) {
    cuda_dev *c = cuda_of(d);
    memcpy(c->h_refs, refs, count * sizeof *refs);
    cudaError_t e = cuda_enter(c);
    if (e == cudaSuccess) {
        e = cudaMemcpyAsync(c->d_refs, c->h_refs, count * sizeof *refs, cudaMemcpyHostToDevice, c->stream);
    }
    if (e == cudaSuccess) {
        e = (cudaError_t)gpu_launch_chunk_list((const uint8_t *)(uintptr_t)c->mem, (const uint64_t *)c->d_refs,
                                               count, c->d_digests, c->stream);
    }
    if (e == cudaSuccess) {
        e = cudaMemcpyAsync(c->h_digests, c->d_digests, (uint64_t)count * DEV_DIGEST_BYTES, cudaMemcpyDeviceToHost,
                            c->stream);
    }
    if (e != cudaSuccess) return cuda_fail(e, "chunk digests");
    int rc = cuda_wait(c);
    for (uint32_t i = 0; i < count && rc == 0; i++) out[i] = get_h128(c->h_digests + (uint64_t)i * DEV_DIGEST_BYTES);
    return rc;
}

/* Enqueued on the stream: its parents' pointers go to entries
 * [parents_at, parents_at + n) of the pinned table, which no later
 * operation overwrites before the wait. */
static int cuda_op(gpu_dev *d, uint32_t op, const uint64_t *offsets, uint32_t n, uint32_t parents_at, uint64_t lo,
                   uint64_t hi, uint64_t dst, uint8_t *out) {
    cuda_dev *c = cuda_of(d);
    const uint8_t **h_in = c->h_parents + parents_at, **d_in = c->d_parents + parents_at;
    for (uint32_t k = 0; k < n; k++) h_in[k] = (const uint8_t *)(uintptr_t)(c->mem + offsets[k]);
    uint8_t *copy = (uint8_t *)(uintptr_t)(c->mem + dst + lo);
    cudaError_t e = cuda_enter(c);
    if (e == cudaSuccess) e = cudaMemcpyAsync(d_in, h_in, n * sizeof *h_in, cudaMemcpyHostToDevice, c->stream);
    if (e == cudaSuccess) e = (cudaError_t)gpu_launch_op(op, d_in, n, lo, hi, copy, c->stream);
    if (e == cudaSuccess && hi > lo) e = cudaMemcpyAsync(out, copy, hi - lo, cudaMemcpyDeviceToHost, c->stream);
    return e == cudaSuccess ? 0 : cuda_fail(e, "a derived page's operation");
}

static int cuda_wait_all(gpu_dev *d) { return cuda_wait(cuda_of(d)); }

static int cuda_move(gpu_dev *d, uint64_t dst, uint64_t src, uint64_t len) {
    cuda_dev *c = cuda_of(d);
    cudaError_t e = cuda_enter(c);
    if (e == cudaSuccess) {
        e = cudaMemcpyAsync((void *)(uintptr_t)(c->mem + dst), (const void *)(uintptr_t)(c->mem + src), len,
                            cudaMemcpyDeviceToDevice, c->stream);
    }
    return e == cudaSuccess ? 0 : cuda_fail(e, "a copy in device memory");
}

static int cuda_view(gpu_dev *d, uint64_t offset, uint64_t len, const void **data_out, uint64_t *stream_out) {
    cuda_dev *c = cuda_of(d);
    (void)len;
    int rc = cuda_wait(c);
    if (rc != 0) return rc;
    *data_out = (const void *)(uintptr_t)(c->mem + offset);
    *stream_out = (uint64_t)(uintptr_t)c->stream;
    return 0;
}

static int cuda_read(gpu_dev *d, uint64_t offset, uint8_t *dst, uint64_t len) {
    cuda_dev *c = cuda_of(d);
    cudaError_t e = cuda_enter(c);
    if (e == cudaSuccess) {
        e = cudaMemcpyAsync(dst, (const void *)(uintptr_t)(c->mem + offset), len, cudaMemcpyDeviceToHost, c->stream);
    }
    if (e != cudaSuccess) return cuda_fail(e, "reading device memory");
    return cuda_wait(c);
}

/* ---- open and close ------------------------------------------------------------------------------ */

/* Frees what was made; after an error of the device, as far as it can. */
static void cuda_close(gpu_dev *d) {
    cuda_dev *c = cuda_of(d);
    (void)cuda_enter(c);
    if (c->stream != NULL) (void)cudaStreamSynchronize(c->stream);
    for (uint32_t i = 0; i < SLOTS; i++) {
        cuda_slot *s = &c->slot[i];
        if (s->done != NULL) (void)cudaEventDestroy(s->done);
        (void)cudaFreeHost(s->bytes);
        (void)cudaFreeHost(s->items);
        (void)cudaFreeHost(s->counts);
        free(s->expected_plus1);
    }
    (void)cudaFreeHost(c->h_refs);
    (void)cudaFreeHost(c->h_digests);
    (void)cudaFreeHost(c->h_parents);
    (void)cudaFree(c->d_staging);
    (void)cudaFree(c->d_items);
    (void)cudaFree(c->d_counts);
    (void)cudaFree(c->d_refs);
    (void)cudaFree(c->d_digests);
    (void)cudaFree(c->d_parents);
    uint64_t at = 0;
    for (uint32_t i = 0; i < c->maps_used; i++) {
        (void)c->vmm.unmap(c->mem + at, c->map_bytes[i]);
        (void)c->vmm.release(c->maps[i]);
        at += c->map_bytes[i];
    }
    if (c->mem != 0) (void)c->vmm.address_free(c->mem, c->reserved_bytes);
    if (c->stream != NULL) (void)cudaStreamDestroy(c->stream);
    free(c);
}

static const gpu_dev_ops cuda_ops = {
    .kind = MMSB_GPU_CUDA,
    .back = cuda_back,
    .submit = cuda_submit,
    .hash_chunks = cuda_hash_chunks,
    .op = cuda_op,
    .wait = cuda_wait_all,
    .move = cuda_move,
    .view = cuda_view,
    .read = cuda_read,
    .close = cuda_close,
};

static int driver_fn(const char *name, void **fn) {
    enum cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    cudaError_t e = cudaGetDriverEntryPointByVersion(name, fn, DRIVER_API_VERSION, cudaEnableDefault, &found);
    if (e == cudaSuccess && found == cudaDriverEntryPointSuccess && *fn != NULL) return 0;
    return err_set(MMSB_ENOTSUP, "CUDA: the driver has no %s (virtual memory management)", name);
}

static int open_vmm(cuda_dev *c) {
    vmm_fns *v = &c->vmm;
    int rc = driver_fn("cuGetErrorString", (void **)&v->error_string);
    if (rc == 0) rc = driver_fn("cuMemAddressReserve", (void **)&v->reserve);
    if (rc == 0) rc = driver_fn("cuMemAddressFree", (void **)&v->address_free);
    if (rc == 0) rc = driver_fn("cuMemCreate", (void **)&v->create);
    if (rc == 0) rc = driver_fn("cuMemRelease", (void **)&v->release);
    if (rc == 0) rc = driver_fn("cuMemMap", (void **)&v->map);
    if (rc == 0) rc = driver_fn("cuMemUnmap", (void **)&v->unmap);
    if (rc == 0) rc = driver_fn("cuMemSetAccess", (void **)&v->set_access);
    if (rc == 0) rc = driver_fn("cuMemGetAllocationGranularity", (void **)&v->granularity);
    if (rc != 0) return rc;
    CUmemAllocationProp prop = alloc_prop(c->device);
    size_t granularity = 0;
    CUresult r = v->granularity(&granularity, &prop, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED);
    if (r != CUDA_SUCCESS || granularity == 0 || !is_pow2_u64(granularity)) {
        return r != CUDA_SUCCESS ? cu_fail(c, r, "cuMemGetAllocationGranularity")
                                 : err_set(MMSB_ENOTSUP, "CUDA: allocation granularity %zu", granularity);
    }
    c->granularity = granularity;
    c->reserved_bytes = align_up_u64(c->base.bytes_max, granularity);
    r = v->reserve(&c->mem, c->reserved_bytes, granularity, 0, 0);
    if (r != CUDA_SUCCESS) {
        c->mem = 0;
        return cu_fail(c, r, "cuMemAddressReserve");
    }
    return 0;
}

static cudaError_t open_slot(cuda_dev *c, cuda_slot *s) {
    s->expected_plus1 = malloc(c->items_cap * sizeof *s->expected_plus1);
    if (s->expected_plus1 == NULL) return cudaErrorMemoryAllocation;
    cudaError_t e = cudaHostAlloc((void **)&s->bytes, c->staging_bytes, cudaHostAllocDefault);
    if (e == cudaSuccess) e = cudaHostAlloc((void **)&s->items, c->items_cap * sizeof(dev_item), cudaHostAllocDefault);
    if (e == cudaSuccess) e = cudaHostAlloc((void **)&s->counts, c->items_cap * sizeof(uint64_t), cudaHostAllocDefault);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&s->done, cudaEventDisableTiming);
    return e;
}

static cudaError_t open_buffers(cuda_dev *c) {
    cudaError_t e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
    for (uint32_t i = 0; i < SLOTS && e == cudaSuccess; i++) e = open_slot(c, &c->slot[i]);
    if (e == cudaSuccess) e = cudaMalloc((void **)&c->d_staging, c->staging_bytes);
    if (e == cudaSuccess) e = cudaMalloc((void **)&c->d_items, c->items_cap * sizeof(dev_item));
    if (e == cudaSuccess) e = cudaMalloc((void **)&c->d_counts, c->items_cap * sizeof *c->d_counts);
    if (e == cudaSuccess) e = cudaHostAlloc((void **)&c->h_refs, GPU_DEV_HASH_MAX * sizeof(gpu_chunk_ref), 0);
    if (e == cudaSuccess) e = cudaMalloc((void **)&c->d_refs, GPU_DEV_HASH_MAX * sizeof(gpu_chunk_ref));
    if (e == cudaSuccess) e = cudaHostAlloc((void **)&c->h_digests, GPU_DEV_HASH_MAX * DEV_DIGEST_BYTES, 0);
    if (e == cudaSuccess) e = cudaMalloc((void **)&c->d_digests, GPU_DEV_HASH_MAX * DEV_DIGEST_BYTES);
    if (e == cudaSuccess) e = cudaHostAlloc((void **)&c->h_parents, MMSB_DERIVE_PARENTS_MAX * sizeof(void *), 0);
    if (e == cudaSuccess) e = cudaMalloc((void **)&c->d_parents, MMSB_DERIVE_PARENTS_MAX * sizeof(void *));
    return e;
}

static int open_device(cuda_dev *c) {
    int runtime = 0, driver = 0;
    cudaError_t e = cudaSetDevice(c->device);
    if (e == cudaSuccess) e = cudaFree(NULL); /* makes the primary context */
    struct cudaDeviceProp prop;
    if (e == cudaSuccess) e = cudaGetDeviceProperties(&prop, c->device);
    if (e != cudaSuccess) return cuda_fail(e, "opening device 0");
    (void)cudaRuntimeGetVersion(&runtime);
    (void)cudaDriverGetVersion(&driver);
    snprintf(c->base.name, sizeof c->base.name, "%.32s (sm_%d%d, driver %d.%d)", prop.name, prop.major, prop.minor,
             driver / 1000, (driver % 1000) / 10);
    int rc = open_vmm(c);
    if (rc != 0) return rc;
    e = open_buffers(c);
    return e == cudaSuccess ? 0 : cuda_fail(e, "the staging buffers");
}

int gpu_cuda_open(const gpu_dev_config *cfg, gpu_dev **out) {
    ASSERT(cfg != NULL && out != NULL);
    ASSERT(cfg->staging_bytes >= 64 * 1024 && cfg->staging_bytes % 8 == 0 && cfg->bytes_max > 0);
    *out = NULL;
    cuda_dev *c = calloc(1, sizeof *c);
    if (c == NULL) return err_set(MMSB_ENOMEM, "mmsb_open: out of memory for the CUDA device");
    c->base.ops = &cuda_ops;
    c->base.bytes_max = cfg->bytes_max;
    c->staging_bytes = cfg->staging_bytes;
    c->items_cap = (uint32_t)(cfg->staging_bytes / GPU_STAGE_BYTES_PER_ITEM);
    c->device = 0;
    int rc = open_device(c);
    if (rc != 0) {
        cuda_close(&c->base);
        return rc;
    }
    slot_stage(c, 0);
    *out = &c->base;
    return 0;
}
