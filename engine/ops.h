/*
 * ops.h - derivation operations: the built-in ones and the registry of user
 * operations.
 *
 * Every built-in operation is element-wise: output bytes [lo, hi) depend
 * only on the parents' bytes at positions that map to them. So the engine
 * can compute any output range on its own, and a parent's changed range maps
 * to the one output range that needs computing ("propagating the delta"),
 * bit-identical to a full recompute by construction.
 */
#ifndef MMSB_OPS_H
#define MMSB_OPS_H

#include "base/base.h"

enum { USER_OPS_MAX = 256 };

typedef struct user_op {
    uint32_t op, version;
    mmsb_op_fn fn;
    void *user;
} user_op;

typedef struct op_registry {
    user_op ops[USER_OPS_MAX];
    uint32_t count;
} op_registry;

bool op_is_builtin(uint32_t op);
/* The version taking part in signatures: 1 for built-ins, the registered one
 * for user operations (0 when not registered). */
uint32_t op_version(const op_registry *r, uint32_t op);
const user_op *op_find(const op_registry *r, uint32_t op);
MUST_CHECK int op_register(op_registry *r, uint32_t op, uint32_t version, mmsb_op_fn fn, void *user);
/* Removes a registered operation (undoing a registration that failed). */
void op_unregister(op_registry *r, uint32_t op);

/* Checks a built-in operation's params and sizes for a child of child_size
 * bytes; MMSB_EINVAL with a detail naming the mismatch. */
MUST_CHECK int op_check(uint32_t op, const uint8_t *params, uint64_t params_len,
             const uint64_t *parent_sizes, uint32_t parents, uint64_t child_size);
/* The output range that depends on parent k's bytes [plo, phi) (lane
 * aligned); empty (lo == hi) when none does. */
void op_map_range(uint32_t op, const uint8_t *params, const uint64_t *parent_sizes, uint32_t k,
                  uint64_t plo, uint64_t phi, uint64_t child_size, uint64_t *lo, uint64_t *hi);
/* COPY's source range in its parent of parent_size bytes (params checked
 * by op_check, or NULL: the whole parent). */
void op_copy_source(const uint8_t *params, uint64_t parent_size, uint64_t *src, uint64_t *len);
/* The lane of an operation (1, 4 or 8): ranges computed are multiples. */
uint32_t op_lane(uint32_t op);
/* Writes output bytes [lo, hi) (lane aligned) of a built-in operation. */
void op_compute(uint32_t op, const uint8_t *params, const uint8_t *const *in,
                const uint64_t *sizes, uint32_t parents, uint64_t lo, uint64_t hi, uint8_t *out);

#endif /* MMSB_OPS_H */
