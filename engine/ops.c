/*
 * ops.c - the built-in derivation operations and the user registry (see
 * ops.h). Lanes are little-endian, which is this machine's order too.
 */
#include <string.h>

#include "ops.h"

bool op_is_builtin(uint32_t op) { return op >= MMSB_OP_COPY && op <= MMSB_OP_MAX_U64; }

const user_op *op_find(const op_registry *r, uint32_t op) {
    ASSERT(r != NULL && r->count <= USER_OPS_MAX);
    for (uint32_t i = 0; i < r->count; i++) {
        if (r->ops[i].op == op) return &r->ops[i];
    }
    return NULL;
}

uint32_t op_version(const op_registry *r, uint32_t op) {
    ASSERT(r != NULL);
    if (op_is_builtin(op)) return 1;
    const user_op *u = op_find(r, op);
    return u != NULL ? u->version : 0;
}

int op_register(op_registry *r, uint32_t op, uint32_t version, mmsb_op_fn fn, void *user) {
    ASSERT(r != NULL && r->count <= USER_OPS_MAX);
    if (op < MMSB_OP_USER_FIRST) {
        return err_set(MMSB_EINVAL, "mmsb_op_register: op %u is below MMSB_OP_USER_FIRST (0x%x)", op,
                       MMSB_OP_USER_FIRST);
    }
    if (fn == NULL) return err_set(MMSB_EINVAL, "mmsb_op_register: fn is NULL");
    user_op *u = (user_op *)op_find(r, op);
    if (u == NULL) {
        if (r->count == USER_OPS_MAX) {
            return err_set(MMSB_ENOSPC, "mmsb_op_register: %d user operations already registered", USER_OPS_MAX);
        }
        u = &r->ops[r->count++];
    }
    *u = (user_op){.op = op, .version = version, .fn = fn, .user = user};
    ASSERT(op_find(r, op) == u && r->count <= USER_OPS_MAX);
    return 0;
}

void op_unregister(op_registry *r, uint32_t op) {
    ASSERT(r->count >= 1 && op >= MMSB_OP_USER_FIRST);
    user_op *u = (user_op *)op_find(r, op);
    ASSERT(u != NULL);
    *u = r->ops[--r->count];
    ASSERT(op_find(r, op) == NULL);
}

uint32_t op_lane(uint32_t op) {
    ASSERT(op != 0);
    switch (op) {
    case MMSB_OP_SUM_U32:
    case MMSB_OP_MAX_U32: return 4;
    case MMSB_OP_SUM_U64:
    case MMSB_OP_MAX_U64: return 8;
    default: return 1;
    }
}

void op_copy_source(const uint8_t *params, uint64_t parent_size, uint64_t *src, uint64_t *len) {
    ASSERT(src != NULL && len != NULL && parent_size > 0);
    if (params == NULL) {
        *src = 0;
        *len = parent_size;
        return;
    }
    memcpy(src, params, 8);
    memcpy(len, params + 8, 8);
}

int op_check(uint32_t op, const uint8_t *params, uint64_t params_len,
             const uint64_t *parent_sizes, uint32_t parents, uint64_t child_size) {
    ASSERT(parent_sizes != NULL && child_size > 0);
    ASSERT(op_is_builtin(op) && parents >= 1);
    if (op == MMSB_OP_COPY) {
        if (parents != 1) return err_set(MMSB_EINVAL, "copy takes one parent, not %u", parents);
        if (params_len != 0 && params_len != 16)
            return err_set(MMSB_EINVAL, "copy params are empty or 16 bytes, not %llu", (unsigned long long)params_len);
        uint64_t src, len;
        op_copy_source(params_len == 0 ? NULL : params, parent_sizes[0], &src, &len);
        if (len == 0 || src > parent_sizes[0] || len > parent_sizes[0] - src || len != child_size) {
            return err_set(MMSB_EINVAL, "copy of %llu bytes at %llu from a parent of %llu into a child of %llu",
                           (unsigned long long)len, (unsigned long long)src,
                           (unsigned long long)parent_sizes[0], (unsigned long long)child_size);
        }
        return 0;
    }
    if (params_len != 0) return err_set(MMSB_EINVAL, "operation %u takes no params", op);
    if (op == MMSB_OP_CONCAT) {
        uint64_t total = 0;
        for (uint32_t i = 0; i < parents; i++) total += parent_sizes[i];
        if (total != child_size) {
            return err_set(MMSB_EINVAL, "concat of parents of %llu bytes in all into a child of %llu",
                           (unsigned long long)total, (unsigned long long)child_size);
        }
        return 0;
    }
    uint32_t lane = op_lane(op);
    for (uint32_t i = 0; i < parents; i++) {
        if (parent_sizes[i] != child_size) {
            return err_set(MMSB_EINVAL, "operation %u needs parents of the child's size %llu; parent %u has %llu",
                           op, (unsigned long long)child_size, i, (unsigned long long)parent_sizes[i]);
        }
    }
    if (child_size % lane != 0) {
        return err_set(MMSB_EINVAL, "operation %u works on %u-byte lanes; %llu bytes is not a multiple",
                       op, lane, (unsigned long long)child_size);
    }
    return 0;
}

void op_map_range(uint32_t op, const uint8_t *params, const uint64_t *parent_sizes, uint32_t k,
                  uint64_t plo, uint64_t phi, uint64_t child_size, uint64_t *lo, uint64_t *hi) {
    ASSERT(op_is_builtin(op) && lo != NULL && hi != NULL);
    ASSERT(plo <= phi);
    *lo = *hi = 0;
    if (op == MMSB_OP_COPY) {
        uint64_t src, len;
        op_copy_source(params, parent_sizes[0], &src, &len);
        uint64_t a = max_u64(plo, src), b = min_u64(phi, src + len);
        if (a < b) {
            *lo = a - src;
            *hi = b - src;
        }
        return;
    }
    if (op == MMSB_OP_CONCAT) {
        uint64_t base = 0;
        for (uint32_t i = 0; i < k; i++) base += parent_sizes[i];
        *lo = base + plo;
        *hi = base + phi;
        return;
    }
    uint64_t lane = op_lane(op);
    *lo = plo / lane * lane;
    *hi = min_u64(child_size, align_up_u64(phi, lane));
    ASSERT(*lo <= *hi || *hi == child_size);
}

static void compute_concat(const uint8_t *const *in, const uint64_t *sizes, uint32_t n, uint64_t lo,
                           uint64_t hi, uint8_t *out) {
    ASSERT(in != NULL && sizes != NULL);
    ASSERT(n >= 1 && lo <= hi && out != NULL);
    uint64_t base = 0;
    for (uint32_t i = 0; i < n && base < hi; base += sizes[i], i++) {
        uint64_t a = max_u64(lo, base), b = min_u64(hi, base + sizes[i]);
        if (a < b) memcpy(out + (a - lo), in[i] + (a - base), b - a);
    }
}

/* Lane loops: one accumulator pass per parent keeps every loop simple enough
 * for the compiler to vectorise. */
#define LANE_REDUCE(T, COMBINE)                                                          \
    do {                                                                                 \
        uint64_t lanes = (hi - lo) / sizeof(T);                                          \
        memcpy(out, in[0] + lo, hi - lo);                                                \
        for (uint32_t p = 1; p < n; p++) {                                               \
            const uint8_t *from = in[p] + lo;                                            \
            for (uint64_t i = 0; i < lanes; i++) {                                       \
                T a, b;                                                                  \
                memcpy(&a, out + i * sizeof(T), sizeof(T));                              \
                memcpy(&b, from + i * sizeof(T), sizeof(T));                             \
                a = COMBINE(a, b);                                                       \
                memcpy(out + i * sizeof(T), &a, sizeof(T));                              \
            }                                                                            \
        }                                                                                \
    } while (0)

/* Byte lanes, eight at a time in a 64-bit word (out never aliases a
 * parent: it is scratch). */
static void xor_into(uint8_t *restrict out, const uint8_t *restrict from, uint64_t len) {
    ASSERT(out != NULL && from != NULL);
    uint64_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t a, b;
        memcpy(&a, out + i, 8);
        memcpy(&b, from + i, 8);
        a ^= b;
        memcpy(out + i, &a, 8);
    }
    for (; i < len; i++) out[i] ^= from[i];
    ASSERT(i == len);
}

static void max_into(uint8_t *restrict out, const uint8_t *restrict from, uint64_t len) {
    ASSERT(out != from);
    ASSERT(out != NULL && from != NULL && len > 0);
    for (uint64_t i = 0; i < len; i++) out[i] = out[i] > from[i] ? out[i] : from[i];
}

#define BYTE_REDUCE(INTO)                                                                \
    do {                                                                                 \
        memcpy(out, in[0] + lo, hi - lo);                                                \
        for (uint32_t p = 1; p < n; p++) INTO(out, in[p] + lo, hi - lo);                 \
    } while (0)

#define SUM_OF(a, b) ((a) + (b))
#define MAX_OF(a, b) ((a) > (b) ? (a) : (b))

void op_compute(uint32_t op, const uint8_t *params, const uint8_t *const *in,
                const uint64_t *sizes, uint32_t n, uint64_t lo, uint64_t hi, uint8_t *out) {
    ASSERT(in != NULL && sizes != NULL && out != NULL && op_is_builtin(op));
    ASSERT(lo <= hi && n >= 1);
    ASSERT(lo % op_lane(op) == 0 && hi % op_lane(op) == 0);
    uint64_t src, len;
    switch (op) {
    case MMSB_OP_COPY:
        op_copy_source(params, sizes[0], &src, &len);
        memcpy(out, in[0] + src + lo, hi - lo);
        return;
    case MMSB_OP_CONCAT: compute_concat(in, sizes, n, lo, hi, out); return;
    case MMSB_OP_XOR: BYTE_REDUCE(xor_into); return;
    case MMSB_OP_SUM_U32: LANE_REDUCE(uint32_t, SUM_OF); return;
    case MMSB_OP_SUM_U64: LANE_REDUCE(uint64_t, SUM_OF); return;
    case MMSB_OP_MAX_U8: BYTE_REDUCE(max_into); return;
    case MMSB_OP_MAX_U32: LANE_REDUCE(uint32_t, MAX_OF); return;
    case MMSB_OP_MAX_U64: LANE_REDUCE(uint64_t, MAX_OF); return;
    default: ASSERT(!"not a built-in operation");
    }
}
