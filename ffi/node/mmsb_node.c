/* The Node.js binding's native part (N-API, C): thin calls over mmsb.h that
 * take and return plain values; index.js shapes them into the JavaScript
 * API. N-API keeps one build working across Node versions.
 *
 * Numbers: u64 arguments take a Number (a non-negative safe integer) or a
 * BigInt; u64 results are Numbers up to 2^53 - 1 and BigInts above.
 * Errors: a failed library call throws an Error with .code (the negative
 * MMSB_E* value), .codeName ("MMSB_ENOTFOUND") and .detail (the library's
 * detail message); bad JavaScript arguments throw TypeError or RangeError
 * before the library is called.
 *
 * Callbacks (events, user operations) run on the JavaScript thread, inside
 * the call that commits. An exception in an operation fails its commit; the
 * call then throws the MMSB_EOP error with the exception as .cause. An
 * exception in an event callback cannot undo the commit: the call that
 * committed throws it once the commit is done. */
#define NAPI_VERSION 8
#include <node_api.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmsb.h"

#define NODE_OPS_MAX 64u          /* user operations one engine registers */
#define NODE_ARGS_MAX 6u          /* arguments a native function takes */
#define NODE_PATH_BYTES_MAX 4096u /* a store path, with its NUL */
#define NODE_DELTAS_MAX (1u << 20) /* deltas in one batch */
#define NODE_PARENTS_MAX 65536u

#define SAFE_INTEGER_MAX ((uint64_t)9007199254740991)

/* Returns from the calling native function when a N-API call failed; that
 * call has thrown (or left an exception pending) already. */
#define TRY(call)                                                                                                    \
    do {                                                                                                             \
        if ((call) != napi_ok) {                                                                                     \
            throw_napi_failure(env);                                                                                 \
            return NULL;                                                                                             \
        }                                                                                                            \
    } while (0)

typedef struct node_engine node_engine;

/* A registered JavaScript function the library calls back through. */
typedef struct node_callback {
    node_engine *owner;
    napi_ref fn;
    uint64_t id; /* a subscription's id, or an operation's number */
} node_callback;

struct node_engine {
    mmsb_engine *engine; /* NULL once closed */
    napi_env env;
    uint32_t waits_pending; /* promises of waitDurable/waitReplicated */
    uint32_t txns_open;
    uint32_t refs;          /* the engine's handle, its transactions' and its waits' */
    bool finalized;         /* the program dropped the engine's handle */
    node_callback subs[MMSB_SUBSCRIBERS_MAX];
    node_callback ops[NODE_OPS_MAX];
    napi_ref op_error;    /* what a user operation threw */
    napi_ref event_error; /* what an event callback threw */
};

typedef struct node_txn {
    mmsb_txn *txn; /* NULL once committed or aborted */
    node_engine *ne;
    napi_ref engine_ref; /* keeps the engine alive while the transaction is */
} node_txn;

typedef struct node_handle {
    void *h; /* mmsb_attach or mmsb_log_reader; NULL once closed */
} node_handle;

typedef struct wait_work {
    napi_async_work work;
    napi_deferred deferred;
    napi_ref engine_ref;
    node_engine *ne;
    uint64_t seq;
    bool replicated;
    int rc;
    char detail[256];
} wait_work;

/* ---- errors ---------------------------------------------------------------------------------- */

static const char *code_name(int code)
{
    static const char *const names[] = {
        "MMSB_EINVAL",    "MMSB_ENOTFOUND",  "MMSB_ECONFLICT", "MMSB_ENOSPC",    "MMSB_EIO",      "MMSB_ECORRUPT",
        "MMSB_EVERSION",  "MMSB_EBUSY",      "MMSB_ENOTSUP",   "MMSB_ENOMEM",    "MMSB_ECYCLE",   "MMSB_EOP",
        "MMSB_EREADONLY", "MMSB_EDEPENDENTS", "MMSB_ECALLBACK", "MMSB_EREPLICA", "MMSB_EFENCED",
    };
    int index = MMSB_EINVAL - code;
    if (index >= 0 && index < (int)(sizeof(names) / sizeof(names[0]))) {
        return names[index];
    }
    return "MMSB_EOTHER";
}

static void throw_napi_failure(napi_env env)
{
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) {
        const napi_extended_error_info *info = NULL;
        napi_get_last_error_info(env, &info);
        napi_throw_error(env, NULL, info != NULL && info->error_message ? info->error_message : "N-API call failed");
    }
}

/* An Error for a library failure: message, .code, .codeName, .detail. */
static napi_value error_value(napi_env env, int code, const char *detail)
{
    char message[512];
    snprintf(message, sizeof(message), "%s: %s", mmsb_strerror(code), detail);
    napi_value msg, err, value;
    if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) != napi_ok ||
        napi_create_error(env, NULL, msg, &err) != napi_ok) {
        return NULL;
    }
    napi_create_int32(env, code, &value);
    napi_set_named_property(env, err, "code", value);
    napi_create_string_utf8(env, code_name(code), NAPI_AUTO_LENGTH, &value);
    napi_set_named_property(env, err, "codeName", value);
    napi_create_string_utf8(env, detail, NAPI_AUTO_LENGTH, &value);
    napi_set_named_property(env, err, "detail", value);
    return err;
}

static void throw_library_error(napi_env env, int code)
{
    napi_value err = error_value(env, code, mmsb_last_error());
    if (err != NULL) {
        napi_throw(env, err);
    }
}

/* Takes a stored exception (an operation's or an event callback's). */
static napi_value take_error(napi_env env, napi_ref *slot)
{
    napi_value value = NULL;
    if (*slot != NULL) {
        napi_get_reference_value(env, *slot, &value);
        napi_delete_reference(env, *slot);
        *slot = NULL;
    }
    return value;
}

/* The end of a call that may commit: throws the library's error (with an
 * operation's exception as its cause), else an event callback's exception.
 * Returns true when nothing was thrown. */
static bool finish(napi_env env, node_engine *ne, int rc)
{
    napi_value op_error = take_error(env, &ne->op_error);
    napi_value event_error = take_error(env, &ne->event_error);
    if (rc != 0) {
        napi_value err = error_value(env, rc, mmsb_last_error());
        if (err != NULL && op_error != NULL) {
            napi_set_named_property(env, err, "cause", op_error);
        }
        if (err != NULL) {
            napi_throw(env, err);
        }
        return false;
    }
    if (event_error != NULL) {
        napi_throw(env, event_error);
        return false;
    }
    return true;
}

/* ---- arguments ------------------------------------------------------------------------------- */

static bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv)
{
    size_t argc = NODE_ARGS_MAX;
    napi_value all[NODE_ARGS_MAX];
    if (napi_get_cb_info(env, info, &argc, all, NULL, NULL) != napi_ok) {
        throw_napi_failure(env);
        return false;
    }
    if (argc < want) {
        napi_throw_type_error(env, NULL, "too few arguments");
        return false;
    }
    memcpy(argv, all, want * sizeof(napi_value));
    return true;
}

static bool get_u64(napi_env env, napi_value value, const char *name, uint64_t *out)
{
    napi_valuetype type;
    napi_typeof(env, value, &type);
    char message[160];
    if (type == napi_bigint) {
        bool lossless = false;
        napi_get_value_bigint_uint64(env, value, out, &lossless);
        if (!lossless) {
            snprintf(message, sizeof(message), "%s is outside 0..2^64-1", name);
            napi_throw_range_error(env, NULL, message);
            return false;
        }
        return true;
    }
    if (type != napi_number) {
        snprintf(message, sizeof(message), "%s must be a number or a bigint", name);
        napi_throw_type_error(env, NULL, message);
        return false;
    }
    double d = 0;
    napi_get_value_double(env, value, &d);
    if (!(d >= 0 && d <= (double)SAFE_INTEGER_MAX) || d != (double)(uint64_t)d) {
        snprintf(message, sizeof(message), "%s must be a non-negative safe integer (a bigint for more)", name);
        napi_throw_range_error(env, NULL, message);
        return false;
    }
    *out = (uint64_t)d;
    return true;
}

static bool get_u32(napi_env env, napi_value value, const char *name, uint32_t *out)
{
    uint64_t v = 0;
    if (!get_u64(env, value, name, &v)) {
        return false;
    }
    if (v > UINT32_MAX) {
        char message[160];
        snprintf(message, sizeof(message), "%s is outside 0..2^32-1", name);
        napi_throw_range_error(env, NULL, message);
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

static napi_value make_u64(napi_env env, uint64_t v)
{
    napi_value out = NULL;
    if (v <= SAFE_INTEGER_MAX) {
        napi_create_double(env, (double)v, &out);
    } else {
        napi_create_bigint_uint64(env, v, &out);
    }
    return out;
}

/* The bytes of a Buffer, a TypedArray or a DataView (no copy). */
static bool get_bytes(napi_env env, napi_value value, const char *name, uint8_t **data, size_t *len)
{
    bool is = false;
    napi_is_typedarray(env, value, &is);
    if (is) {
        napi_typedarray_type type;
        size_t count = 0, offset = 0;
        napi_value buffer;
        void *base = NULL;
        napi_get_typedarray_info(env, value, &type, &count, &base, &buffer, &offset);
        size_t width = 1;
        switch (type) {
        case napi_int16_array: case napi_uint16_array: width = 2; break;
        case napi_int32_array: case napi_uint32_array: case napi_float32_array: width = 4; break;
        case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: width = 8; break;
        default: width = 1; break;
        }
        *data = base;
        *len = count * width;
        return true;
    }
    napi_is_dataview(env, value, &is);
    if (is) {
        napi_value buffer;
        size_t offset = 0;
        void *base = NULL;
        napi_get_dataview_info(env, value, len, &base, &buffer, &offset);
        *data = base;
        return true;
    }
    char message[160];
    snprintf(message, sizeof(message), "%s must be a Buffer, a TypedArray or a DataView", name);
    napi_throw_type_error(env, NULL, message);
    return false;
}

static bool get_path(napi_env env, napi_value value, char *out)
{
    size_t len = 0;
    if (napi_get_value_string_utf8(env, value, out, NODE_PATH_BYTES_MAX, &len) != napi_ok) {
        napi_throw_type_error(env, NULL, "path must be a string");
        return false;
    }
    if (len == 0 || len >= NODE_PATH_BYTES_MAX - 1 || strlen(out) != len) {
        napi_throw_range_error(env, NULL, "path must be non-empty, shorter than 4095 bytes, without a NUL");
        return false;
    }
    return true;
}

/* Each kind of handle carries a type tag, so that a handle of one kind
 * passed where another is expected is a TypeError, not a wrong cast. */
static const napi_type_tag TAG_ENGINE = {0x6d6d73622d6e6f64ull, 0x0000000000000001ull};
static const napi_type_tag TAG_TXN = {0x6d6d73622d6e6f64ull, 0x0000000000000002ull};
static const napi_type_tag TAG_ATTACH = {0x6d6d73622d6e6f64ull, 0x0000000000000003ull};
static const napi_type_tag TAG_LOG = {0x6d6d73622d6e6f64ull, 0x0000000000000004ull};

/* An external made with make_external: its pointer, or NULL after a throw. */
static void *external_of(napi_env env, napi_value value, const napi_type_tag *tag, const char *what)
{
    bool tagged = false;
    void *data = NULL;
    if (napi_check_object_type_tag(env, value, tag, &tagged) != napi_ok || !tagged ||
        napi_get_value_external(env, value, &data) != napi_ok || data == NULL) {
        char message[96];
        snprintf(message, sizeof(message), "not %s handle", what);
        napi_throw_type_error(env, NULL, message);
        return NULL;
    }
    return data;
}

static bool make_external(napi_env env, void *data, napi_finalize finalize, const napi_type_tag *tag,
                          napi_value *out)
{
    return napi_create_external(env, data, finalize, NULL, out) == napi_ok &&
           napi_type_tag_object(env, *out, tag) == napi_ok;
}

static node_engine *get_engine(napi_env env, napi_value value)
{
    node_engine *ne = external_of(env, value, &TAG_ENGINE, "an engine");
    if (ne == NULL) {
        return NULL;
    }
    if (ne->engine == NULL) {
        napi_throw_error(env, NULL, "the engine is closed");
        return NULL;
    }
    return ne;
}

/* ---- results --------------------------------------------------------------------------------- */

static napi_value object_of_u64(napi_env env, const char *const *names, const uint64_t *values, size_t count)
{
    napi_value out;
    if (napi_create_object(env, &out) != napi_ok) {
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        napi_set_named_property(env, out, names[i], make_u64(env, values[i]));
    }
    return out;
}

static napi_value change_value(napi_env env, const mmsb_change *c)
{
    static const char *const names[] = {"epoch", "bytesChanged", "commitSeq"};
    const uint64_t values[] = {c->epoch, c->bytes_changed, c->commit_seq};
    return object_of_u64(env, names, values, 3);
}

static napi_value result_value(napi_env env, const mmsb_commit_result *r)
{
    static const char *const names[] = {"commitSeq", "pagesChanged", "bytesChanged", "recomputes",
                                        "skips",     "backdates",    "deltaPropagations"};
    const uint64_t values[] = {r->commit_seq, r->pages_changed, r->bytes_changed,     r->recomputes,
                               r->skips,      r->backdates,     r->delta_propagations};
    return object_of_u64(env, names, values, 7);
}

static napi_value pageinfo_value(napi_env env, const mmsb_pageinfo *i)
{
    static const char *const names[] = {"pageId", "size", "epoch", "location", "flags"};
    const uint64_t values[] = {i->page_id, i->size_bytes, i->epoch, i->location, i->flags};
    return object_of_u64(env, names, values, 5);
}

static mmsb_commit_result new_result(void)
{
    mmsb_commit_result r;
    memset(&r, 0, sizeof(r));
    r.struct_size = sizeof(r);
    return r;
}

static napi_value digest_value(napi_env env, const mmsb_digest *d)
{
    char hex[33];
    napi_value out = NULL;
    if (mmsb_digest_hex(d, hex, sizeof(hex)) == 0) {
        napi_create_string_utf8(env, hex, 32, &out);
    }
    return out;
}

/* ---- open and close ---------------------------------------------------------------------------- */

typedef struct option_field {
    const char *name; /* as JavaScript spells it */
    size_t offset;
    uint8_t bytes; /* 4 or 8; 0: a string */
} option_field;

#define OPTION(js, field) {js, offsetof(mmsb_options, field), (uint8_t)sizeof(((mmsb_options *)0)->field)}

static const option_field option_fields[] = {
    OPTION("flags", flags),
    OPTION("kernel", kernel),
    OPTION("arenaBytesMax", arena_bytes_max),
    OPTION("arenaGrowBytes", arena_grow_bytes),
    OPTION("arenaPrefaultBytes", arena_prefault_bytes),
    OPTION("pageBytesMax", page_bytes_max),
    OPTION("pagesMax", pages_max),
    OPTION("gpu", gpu),
    OPTION("durability", durability),
    OPTION("ioBackend", io_backend),
    OPTION("segmentBytes", segment_bytes),
    OPTION("logBufferBytes", log_buffer_bytes),
    OPTION("groupWindowUs", group_window_us),
    OPTION("groupWindowBytes", group_window_bytes),
    OPTION("rootEveryCommits", root_every_commits),
    OPTION("propagation", propagation),
    OPTION("commitBytesMax", commit_bytes_max),
    OPTION("txnBytesMax", txn_bytes_max),
    OPTION("checkpointLogBytes", checkpoint_log_bytes),
    OPTION("checkpointMapBytes", checkpoint_map_bytes),
    OPTION("checkpointMapBytesMax", checkpoint_map_bytes_max),
    OPTION("checkpointReaders", checkpoint_readers),
    {"replicationServers", offsetof(mmsb_options, replication_servers), 0},
    {"replicationStream", offsetof(mmsb_options, replication_stream), 0},
    OPTION("replicationTimeoutMs", replication_timeout_ms),
    OPTION("replicationCreate", replication_create),
    OPTION("gpuThresholdBytes", gpu_threshold_bytes),
};
#define OPTION_FIELDS_COUNT (sizeof(option_fields) / sizeof(option_fields[0]))
#define OPTION_STRING_BYTES 512u

/* One option from a JavaScript value into *options; strings go to
 * strings[slot] (the options point at them until mmsb_open returns). */
static bool set_option(napi_env env, mmsb_options *options, const option_field *f, napi_value value,
                       char strings[2][OPTION_STRING_BYTES], size_t *strings_used)
{
    char *field = (char *)options + f->offset;
    if (f->bytes == 0) {
        char *text = strings[*strings_used];
        size_t len = 0;
        if (napi_get_value_string_utf8(env, value, text, OPTION_STRING_BYTES, &len) != napi_ok ||
            len >= OPTION_STRING_BYTES - 1) {
            napi_throw_type_error(env, NULL, "replication options must be strings of under 511 bytes");
            return false;
        }
        (*strings_used)++;
        memcpy(field, &text, sizeof(text));
        return true;
    }
    if (f->bytes == 4) {
        uint32_t v = 0;
        if (!get_u32(env, value, f->name, &v)) {
            return false;
        }
        memcpy(field, &v, sizeof(v));
        return true;
    }
    uint64_t v = 0;
    if (!get_u64(env, value, f->name, &v)) {
        return false;
    }
    memcpy(field, &v, sizeof(v));
    return true;
}

/* mmsb_options from a JavaScript object; unknown keys are a TypeError. */
static bool options_from(napi_env env, napi_value object, mmsb_options *options,
                         char strings[2][OPTION_STRING_BYTES])
{
    MMSB_OPTIONS_INIT(options);
    napi_value keys;
    uint32_t count = 0;
    if (napi_get_property_names(env, object, &keys) != napi_ok || napi_get_array_length(env, keys, &count) != napi_ok) {
        napi_throw_type_error(env, NULL, "options must be an object");
        return false;
    }
    size_t strings_used = 0;
    for (uint32_t k = 0; k < count && k < 64; k++) {
        napi_value key, value;
        char name[64];
        size_t len = 0;
        napi_get_element(env, keys, k, &key);
        napi_get_value_string_utf8(env, key, name, sizeof(name), &len);
        napi_get_property(env, object, key, &value);
        size_t i = 0;
        while (i < OPTION_FIELDS_COUNT && strcmp(option_fields[i].name, name) != 0) {
            i++;
        }
        if (i == OPTION_FIELDS_COUNT) {
            char message[160];
            snprintf(message, sizeof(message), "unknown option '%s' (the fields of mmsb_options, in camelCase)", name);
            napi_throw_type_error(env, NULL, message);
            return false;
        }
        if (!set_option(env, options, &option_fields[i], value, strings, &strings_used)) {
            return false;
        }
    }
    return true;
}

static void engine_release_callbacks(napi_env env, node_engine *ne)
{
    for (uint32_t i = 0; i < MMSB_SUBSCRIBERS_MAX; i++) {
        if (ne->subs[i].fn != NULL) {
            napi_delete_reference(env, ne->subs[i].fn);
            ne->subs[i].fn = NULL;
        }
    }
    for (uint32_t i = 0; i < NODE_OPS_MAX; i++) {
        if (ne->ops[i].fn != NULL) {
            napi_delete_reference(env, ne->ops[i].fn);
            ne->ops[i].fn = NULL;
        }
    }
}

/* An engine the program dropped without close() is closed once nothing
 * uses it: a transaction keeps its engine's handle alive, but when the
 * environment ends every finalizer runs, in any order. */
static void engine_close_if_dropped(node_engine *ne)
{
    if (ne->finalized && ne->txns_open == 0 && ne->waits_pending == 0 && ne->engine != NULL) {
        mmsb_close(ne->engine);
        ne->engine = NULL;
    }
}

static void engine_unref(napi_env env, node_engine *ne)
{
    if (--ne->refs == 0) {
        engine_close_if_dropped(ne);
        engine_release_callbacks(env, ne);
        free(ne);
    }
}

static void engine_finalize(napi_env env, void *data, void *hint)
{
    (void)hint;
    node_engine *ne = data;
    ne->finalized = true;
    engine_close_if_dropped(ne);
    engine_unref(env, ne);
}

static napi_value js_open(napi_env env, napi_callback_info info)
{
    napi_value argv[2];
    char path[NODE_PATH_BYTES_MAX];
    char strings[2][OPTION_STRING_BYTES];
    mmsb_options options;
    if (!get_args(env, info, 2, argv) || !get_path(env, argv[0], path) ||
        !options_from(env, argv[1], &options, strings)) {
        return NULL;
    }
    node_engine *ne = calloc(1, sizeof(*ne));
    if (ne == NULL) {
        napi_throw_error(env, NULL, "out of memory");
        return NULL;
    }
    int rc = mmsb_open(path, &options, &ne->engine);
    if (rc != 0) {
        free(ne);
        throw_library_error(env, rc);
        return NULL;
    }
    ne->env = env;
    ne->refs = 1;
    for (uint32_t i = 0; i < MMSB_SUBSCRIBERS_MAX; i++) {
        ne->subs[i].owner = ne;
    }
    for (uint32_t i = 0; i < NODE_OPS_MAX; i++) {
        ne->ops[i].owner = ne;
    }
    napi_value out;
    if (!make_external(env, ne, engine_finalize, &TAG_ENGINE, &out)) {
        mmsb_close(ne->engine);
        free(ne);
        throw_napi_failure(env);
        return NULL;
    }
    return out;
}

static napi_value js_close(napi_env env, napi_callback_info info)
{
    napi_value argv[1];
    node_engine *ne;
    if (!get_args(env, info, 1, argv) || (ne = get_engine(env, argv[0])) == NULL) {
        return NULL;
    }
    if (ne->waits_pending > 0 || ne->txns_open > 0) {
        napi_value err = error_value(env, MMSB_EBUSY,
                                     ne->waits_pending > 0 ? "close: waitDurable/waitReplicated promises are pending"
                                                           : "close: transactions are open: commit or abort them");
        napi_throw(env, err);
        return NULL;
    }
    mmsb_engine *engine = ne->engine;
    ne->engine = NULL;
    engine_release_callbacks(env, ne);
    int rc = mmsb_close(engine);
    if (rc != 0) {
        throw_library_error(env, rc);
    }
    return NULL;
}

/* ---- pages ----------------------------------------------------------------------------------- */

static napi_value js_page_create(napi_env env, napi_callback_info info)
{
    napi_value argv[4];
    node_engine *ne;
    uint64_t size = 0, count = 0, first = 0;
    uint32_t flags = 0;
    if (!get_args(env, info, 4, argv) || (ne = get_engine(env, argv[0])) == NULL ||
        !get_u64(env, argv[1], "size", &size) || !get_u32(env, argv[2], "flags", &flags) ||
        !get_u64(env, argv[3], "count", &count)) {
        return NULL;
    }
    int rc = count == 1 ? mmsb_page_create(ne->engine, size, flags, &first)
                        : mmsb_page_create_many(ne->engine, size, flags, count, &first);
    return finish(env, ne, rc) ? make_u64(env, first) : NULL;
}

static napi_value js_page_free(napi_env env, napi_callback_info info)
{
    napi_value argv[2];
    node_engine *ne;
    uint64_t page = 0;
    if (!get_args(env, info, 2, argv) || (ne = get_engine(env, argv[0])) == NULL ||
        !get_u64(env, argv[1], "pageId", &page)) {
        return NULL;
    }
    finish(env, ne, mmsb_page_free(ne->engine, page));
    return NULL;
}

/* The two kinds of handle pages are read through: an engine and an attach. */
typedef struct page_source {
    void *h;
    int (*info)(void *h, uint64_t page, mmsb_pageinfo *pi);
    int (*read)(void *h, uint64_t page, uint64_t offset, void *buf, uint64_t len, uint64_t *epoch);
} page_source;

static int engine_info(void *h, uint64_t page, mmsb_pageinfo *pi)
{
    return mmsb_page_info(h, page, pi);
}

static int engine_read(void *h, uint64_t page, uint64_t offset, void *buf, uint64_t len, uint64_t *epoch)
{
    return mmsb_page_read(h, page, offset, buf, len, epoch);
}

static int attach_info(void *h, uint64_t page, mmsb_pageinfo *pi)
{
    return mmsb_attach_page_info(h, page, pi);
}

static int attach_read(void *h, uint64_t page, uint64_t offset, void *buf, uint64_t len, uint64_t *epoch)
{
    return mmsb_attach_read(h, page, offset, buf, len, epoch);
}

/* {pageId, size, epoch, location, flags} of the page argument. */
static napi_value info_value(napi_env env, const page_source *src, napi_value page_arg)
{
    uint64_t page = 0;
    if (!get_u64(env, page_arg, "pageId", &page)) {
        return NULL;
    }
    mmsb_pageinfo pi = {.struct_size = sizeof(pi)};
    int rc = src->info(src->h, page, &pi);
    if (rc != 0) {
        throw_library_error(env, rc);
        return NULL;
    }
    return pageinfo_value(env, &pi);
}

/* [Buffer, epoch] of (page, offset, length) in args; length undefined or
 * null reads to the page's end. */
static napi_value read_value(napi_env env, const page_source *src, const napi_value *args)
{
    uint64_t page = 0, offset = 0, length = 0;
    if (!get_u64(env, args[0], "pageId", &page) || !get_u64(env, args[1], "offset", &offset)) {
        return NULL;
    }
    napi_valuetype type;
    napi_typeof(env, args[2], &type);
    if (type == napi_undefined || type == napi_null) {
        mmsb_pageinfo pi = {.struct_size = sizeof(pi)};
        int rc = src->info(src->h, page, &pi);
        if (rc != 0) {
            throw_library_error(env, rc);
            return NULL;
        }
        if (offset > pi.size_bytes) {
            napi_throw_range_error(env, NULL, "offset is past the end of the page");
            return NULL;
        }
        length = pi.size_bytes - offset;
    } else if (!get_u64(env, args[2], "length", &length)) {
        return NULL;
    }
    if (length > ((uint64_t)1 << 32)) {
        napi_throw_range_error(env, NULL, "length is more than a Buffer of 4 GiB (read in parts)");
        return NULL;
    }
    void *data = NULL;
    uint8_t none[1];
    uint64_t epoch = 0;
    napi_value buffer, out;
    TRY(napi_create_buffer(env, length, &data, &buffer));
    int rc = src->read(src->h, page, offset, length > 0 ? data : none, length, &epoch);
    if (rc != 0) {
        throw_library_error(env, rc);
        return NULL;
    }
    TRY(napi_create_array_with_length(env, 2, &out));
    napi_set_element(env, out, 0, buffer);
    napi_set_element(env, out, 1, make_u64(env, epoch));
    return out;
}

static napi_value js_page_info(napi_env env, napi_callback_info info)
{
    napi_value argv[2];
    node_engine *ne;
    if (!get_args(env, info, 2, argv) || (ne = get_engine(env, argv[0])) == NULL) {
        return NULL;
    }
    const page_source src = {ne->engine, engine_info, engine_read};
    return info_value(env, &src, argv[1]);
}

/* read(engine, pageId, offset, length) -> [Buffer, epoch] */
static napi_value js_read(napi_env env, napi_callback_info info)
{
    napi_value argv[4];
    node_engine *ne;
    if (!get_args(env, info, 4, argv) || (ne = get_engine(env, argv[0])) == NULL) {
        return NULL;
    }
    const page_source src = {ne->engine, engine_info, engine_read};
    return read_value(env, &src, argv + 1);
}

static napi_value js_read_into(napi_env env, napi_callback_info info)
{
    napi_value argv[4];
    node_engine *ne;
    uint64_t page = 0, offset = 0, epoch = 0;
    uint8_t *data = NULL;
    size_t len = 0;
    if (!get_args(env, info, 4, argv) || (ne = get_engine(env, argv[0])) == NULL ||
        !get_u64(env, argv[1], "pageId", &page) || !get_u64(env, argv[2], "offset", &offset) ||
        !get_bytes(env, argv[3], "buffer", &data, &len)) {
        return NULL;
    }
    uint8_t none[1];
    int rc = mmsb_page_read(ne->engine, page, offset, len > 0 ? data : none, len, &epoch);
    if (rc != 0) {
        throw_library_error(env, rc);
        return NULL;
    }
    return make_u64(env, epoch);
}

/* ---- changes --------------------------------------------------------------------------------- */

static napi_value js_write(napi_env env, napi_callback_info info)
{
    napi_value argv[4];
    node_engine *ne;
    uint64_t page = 0, offset = 0;
    uint8_t *data = NULL;
    size_t len = 0;
    if (!get_args(env, info, 4, argv) || (ne = get_engine(env, argv[0])) == NULL ||
        !get_u64(env, argv[1], "pageId", &page) || !get_u64(env, argv[2], "offset", &offset) ||
        !get_bytes(env, argv[3], "data", &data, &len)) {
        return NULL;
    }
    mmsb_change change = {0};
    int rc = mmsb_write(ne->engine, page, offset, data, len, &change);
    return finish(env, ne, rc) ? change_value(env, &change) : NULL;
}

/* A delta from {pageId, offset, payload, mask?, length?, sparse?, expectedEpoch?};
 * the all-ones mask of a maskless dense delta is built in `ones`. */
static bool delta_from(napi_env env, napi_value object, mmsb_delta *d, uint8_t **ones)
{
    napi_value v;
    bool has = false;
    uint8_t *payload = NULL, *mask = NULL;
    size_t payload_len = 0, mask_len = 0;
    memset(d, 0, sizeof(*d));
    if (napi_get_named_property(env, object, "pageId", &v) != napi_ok || !get_u64(env, v, "pageId", &d->page_id) ||
        napi_get_named_property(env, object, "offset", &v) != napi_ok || !get_u64(env, v, "offset", &d->offset) ||
        napi_get_named_property(env, object, "payload", &v) != napi_ok ||
        !get_bytes(env, v, "payload", &payload, &payload_len)) {
        return false;
    }
    d->payload = payload;
    d->payload_len = payload_len;
    d->len = payload_len;
    napi_has_named_property(env, object, "length", &has);
    if (has && (napi_get_named_property(env, object, "length", &v) != napi_ok || !get_u64(env, v, "length", &d->len))) {
        return false;
    }
    napi_has_named_property(env, object, "sparse", &has);
    bool sparse = false;
    if (has) {
        napi_get_named_property(env, object, "sparse", &v);
        napi_get_value_bool(env, v, &sparse);
    }
    d->flags = sparse ? MMSB_DELTA_SPARSE : 0;
    napi_has_named_property(env, object, "expectedEpoch", &has);
    if (has) {
        if (napi_get_named_property(env, object, "expectedEpoch", &v) != napi_ok ||
            !get_u64(env, v, "expectedEpoch", &d->expected_epoch)) {
            return false;
        }
        d->flags |= MMSB_DELTA_EXPECT_EPOCH;
    }
    napi_has_named_property(env, object, "mask", &has);
    uint64_t mask_need = (d->len + 7) / 8;
    if (has) {
        if (napi_get_named_property(env, object, "mask", &v) != napi_ok ||
            !get_bytes(env, v, "mask", &mask, &mask_len)) {
            return false;
        }
        if (mask_len < mask_need) {
            napi_throw_range_error(env, NULL, "mask is shorter than (length + 7) / 8 bytes");
            return false;
        }
        d->mask = mask;
        return true;
    }
    if (sparse) {
        napi_throw_type_error(env, NULL, "a sparse delta needs a mask");
        return false;
    }
    *ones = malloc(mask_need > 0 ? mask_need : 1);
    if (*ones == NULL) {
        napi_throw_error(env, NULL, "out of memory");
        return false;
    }
    memset(*ones, 0xff, mask_need);
    if (d->len % 8 != 0) {
        (*ones)[mask_need - 1] = (uint8_t)((1u << (d->len % 8)) - 1);
    }
    d->mask = *ones;
    return true;
}

/* apply(engine, delta) -> change */
static napi_value js_apply(napi_env env, napi_callback_info info)
{
    napi_value argv[2];
    node_engine *ne;
    mmsb_delta d;
    uint8_t *ones = NULL;
    if (!get_args(env, info, 2, argv) || (ne = get_engine(env, argv[0])) == NULL ||
        !delta_from(env, argv[1], &d, &ones)) {
        free(ones);
        return NULL;
    }
    mmsb_change change = {0};
    int rc = mmsb_apply(ne->engine, &d, &change);
    free(ones);
    return finish(env, ne, rc) ? change_value(env, &change) : NULL;
}

/* applyBatch(engine, deltas[], durability) -> commit result */
static napi_value js_apply_batch(napi_env env, napi_callback_info info)
{
    napi_value argv[3];
    node_engine *ne;
    uint32_t count = 0, durability = 0;
    if (!get_args(env, info, 3, argv) || (ne = get_engine(env, argv[0])) == NULL ||
        !get_u32(env, argv[2], "durability", &durability)) {
        return NULL;
    }
    if (napi_get_array_length(env, argv[1], &count) != napi_ok || count > NODE_DELTAS_MAX) {
        napi_throw_type_error(env, NULL, "deltas must be an array of at most 2^20 deltas");
        return NULL;
    }
    mmsb_delta *deltas = calloc(count > 0 ? count : 1, sizeof(*deltas));
    uint8_t **ones = calloc(count > 0 ? count : 1, sizeof(*ones));
    bool ok = deltas != NULL && ones != NULL;
    for (uint32_t i = 0; ok && i < count; i++) {
        napi_value item;
        ok = napi_get_element(env, argv[1], i, &item) == napi_ok && delta_from(env, item, &deltas[i], &ones[i]);
    }
    napi_value out = NULL;
    if (ok) {
        mmsb_commit_result r = new_result();
        int rc = mmsb_apply_batch(ne->engine, deltas, count, durability, &r);
        out = finish(env, ne, rc) ? result_value(env, &r) : NULL;
    } else if (deltas == NULL || ones == NULL) {
        napi_throw_error(env, NULL, "out of memory");
    }
    for (uint32_t i = 0; ones != NULL && i < count; i++) {
        free(ones[i]);
    }
    free(ones);
    free(deltas);
    return out;
}

/* ---- transactions ---------------------------------------------------------------------------- */

static void txn_finalize(napi_env env, void *data, void *hint)
{
    (void)hint;
    node_txn *t = data;
    node_engine *ne = t->ne;
    if (t->txn != NULL) { /* dropped unended: aborted, as a Rust Drop would */
        mmsb_txn_abort(t->txn);
        ne->txns_open--;
    }
    napi_delete_reference(env, t->engine_ref);
    free(t);
    engine_close_if_dropped(ne);
    engine_unref(env, ne);
}

static napi_value js_txn_begin(napi_env env, napi_callback_info info)
{
    napi_value argv[1];
    node_engine *ne;
    if (!get_args(env, info, 1, argv) || (ne = get_engine(env, argv[0])) == NULL) {
        return NULL;
    }
    node_txn *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        napi_throw_error(env, NULL, "out of memory");
        return NULL;
    }
    int rc = mmsb_txn_begin(ne->engine, &t->txn);
    if (rc != 0) {
        free(t);
        throw_library_error(env, rc);
        return NULL;
    }
    t->ne = ne;
    ne->txns_open++;
    ne->refs++;
    napi_value out;
    if (napi_create_reference(env, argv[0], 1, &t->engine_ref) != napi_ok ||
        !make_external(env, t, txn_finalize, &TAG_TXN, &out)) {
        mmsb_txn_abort(t->txn);
        ne->txns_open--;
        ne->refs--;
        free(t);
        throw_napi_failure(env);
        return NULL;
    }
    return out;
}

static node_txn *get_txn(napi_env env, napi_value value)
{
    node_txn *t = external_of(env, value, &TAG_TXN, "a transaction");
    if (t == NULL) {
        return NULL;
    }
    if (t->txn == NULL) {
        napi_throw_error(env, NULL, "the transaction has ended");
        return NULL;
    }
    return t;
}

/* txnStage(txn, pageId, offset, data) or txnStage(txn, delta) */
static napi_value js_txn_stage(napi_env env, napi_callback_info info)
{
    napi_value argv[4];
    size_t argc = 4;
    node_txn *t;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
        (t = get_txn(env, argv[0])) == NULL) {
        if (argc < 2) {
            napi_throw_type_error(env, NULL, "too few arguments");
        }
        return NULL;
    }
    int rc;
    if (argc == 2) {
        mmsb_delta d;
        uint8_t *ones = NULL;
        if (!delta_from(env, argv[1], &d, &ones)) {
            free(ones);
            return NULL;
        }
        rc = mmsb_txn_apply(t->txn, &d);
        free(ones);
    } else {
        uint64_t page = 0, offset = 0;
        uint8_t *data = NULL;
        size_t len = 0;
        if (argc < 4 || !get_u64(env, argv[1], "pageId", &page) || !get_u64(env, argv[2], "offset", &offset) ||
            !get_bytes(env, argv[3], "data", &data, &len)) {
            return NULL;
        }
        rc = mmsb_txn_write(t->txn, page, offset, data, len);
    }
    if (rc != 0) {
        throw_library_error(env, rc);
    }
    return NULL;
}

static napi_value js_txn_commit(napi_env env, napi_callback_info info)
{
    napi_value argv[2];
    node_txn *t;
    uint32_t durability = 0;
    if (!get_args(env, info, 2, argv) || (t = get_txn(env, argv[0])) == NULL ||
        !get_u32(env, argv[1], "durability", &durability)) {
        return NULL;
    }
    mmsb_commit_result r = new_result();
    int rc = mmsb_txn_commit(t->txn, durability, &r);
    if (rc != MMSB_EBUSY && rc != MMSB_ECALLBACK) { /* those leave it open for a retry */
        t->txn = NULL;
        t->ne->txns_open--;
    }
    return finish(env, t->ne, rc) ? result_value(env, &r) : NULL;
}

static napi_value js_txn_abort(napi_env env, napi_callback_info info)
{
    napi_value argv[1];
    node_txn *t = NULL;
    if (!get_args(env, info, 1, argv) || (t = external_of(env, argv[0], &TAG_TXN, "a transaction")) == NULL) {
        return NULL;
    }
    if (t->txn != NULL) {
        mmsb_txn *txn = t->txn;
        t->txn = NULL;
        t->ne->txns_open--;
        int rc = mmsb_txn_abort(txn);
        if (rc != 0) {
            throw_library_error(env, rc);
        }
    }
    return NULL;
}

/* ---- derived pages --------------------------------------------------------------------------- */

static napi_value js_derive(napi_env env, napi_callback_info info)
{
    napi_value argv[5];
    node_engine *ne;
    uint64_t child = 0;
    uint32_t op = 0, count = 0;
    uint8_t *params = NULL;
    size_t params_len = 0;
    if (!get_args(env, info, 5, argv) || (ne = get_engine(env, argv[0])) == NULL ||
        !get_u64(env, argv[1], "child", &child) || !get_u32(env, argv[2], "op", &op) ||
        !get_bytes(env, argv[4], "params", &params, &params_len)) {
        return NULL;
    }
    if (napi_get_array_length(env, argv[3], &count) != napi_ok || count == 0 || count > NODE_PARENTS_MAX) {
        napi_throw_range_error(env, NULL, "parents must be an array of 1..65536 page ids");
        return NULL;
    }
    uint64_t *parents = calloc(count, sizeof(*parents));
    if (parents == NULL) {
        napi_throw_error(env, NULL, "out of memory");
        return NULL;
    }
    for (uint32_t i = 0; i < count; i++) {
        napi_value item;
        if (napi_get_element(env, argv[3], i, &item) != napi_ok || !get_u64(env, item, "parent", &parents[i])) {
            free(parents);
            return NULL;
        }
    }
    mmsb_derive_spec spec = {.struct_size = sizeof(spec), .op = op, .parents = parents, .parent_count = count,
                             .params = params_len > 0 ? params : NULL, .params_len = params_len};
    mmsb_commit_result r = new_result();
    int rc = mmsb_derive(ne->engine, child, &spec, &r);
    free(parents);
    return finish(env, ne, rc) ? result_value(env, &r) : NULL;
}

/* edge(engine, kind, a, b): kind 0 underive(a), 1 edge_add(a, b), 2 edge_remove(a, b) */
static napi_value js_edge(napi_env env, napi_callback_info info)
{
    napi_value argv[4];
    node_engine *ne;
    uint32_t kind = 0;
    uint64_t a = 0, b = 0;
    if (!get_args(env, info, 4, argv) || (ne = get_engine(env, argv[0])) == NULL ||
        !get_u32(env, argv[1], "kind", &kind) || !get_u64(env, argv[2], "page", &a) ||
        !get_u64(env, argv[3], "page", &b)) {
        return NULL;
    }
    mmsb_commit_result r = new_result();
    int rc = kind == 0   ? mmsb_underive(ne->engine, a, &r)
             : kind == 1 ? mmsb_edge_add(ne->engine, a, b, &r)
                         : mmsb_edge_remove(ne->engine, a, b, &r);
    return finish(env, ne, rc) ? result_value(env, &r) : NULL;
}

/* ---- callbacks ------------------------------------------------------------------------------- */

/* Keeps the first exception of a call in *slot for finish(). */
static void keep_exception(napi_env env, napi_ref *slot)
{
    napi_value exc;
    if (napi_get_and_clear_last_exception(env, &exc) == napi_ok && *slot == NULL) {
        napi_create_reference(env, exc, 1, slot);
    }
}

static void event_trampoline(void *user, const mmsb_event *event)
{
    node_callback *cb = user;
    napi_env env = cb->owner->env;
    napi_handle_scope scope;
    if (cb->fn == NULL || napi_open_handle_scope(env, &scope) != napi_ok) {
        return;
    }
    static const char *const names[] = {"type", "flags", "commitSeq", "pageId", "epoch", "bytesChanged"};
    const uint64_t values[] = {event->type, event->flags, event->commit_seq, event->page_id, event->epoch,
                               event->bytes_changed};
    napi_value fn, global, arg = object_of_u64(env, names, values, 6), result;
    napi_get_reference_value(env, cb->fn, &fn);
    napi_get_global(env, &global);
    if (napi_call_function(env, global, fn, 1, &arg, &result) != napi_ok) {
        keep_exception(env, &cb->owner->event_error);
    }
    napi_close_handle_scope(env, scope);
}

static napi_value op_input_value(napi_env env, const mmsb_op_input *in)
{
    napi_value out, ids, epochs, parents, params;
    void *copy = NULL;
    napi_create_object(env, &out);
    napi_set_named_property(env, out, "childId", make_u64(env, in->child_id));
    napi_set_named_property(env, out, "opVersion", make_u64(env, in->op_version));
    napi_create_array_with_length(env, in->parent_count, &ids);
    napi_create_array_with_length(env, in->parent_count, &epochs);
    napi_create_array_with_length(env, in->parent_count, &parents);
    for (uint32_t i = 0; i < in->parent_count; i++) {
        napi_value bytes;
        napi_set_element(env, ids, i, make_u64(env, in->parent_ids[i]));
        napi_set_element(env, epochs, i, make_u64(env, in->parent_epochs[i]));
        /* A copy: the library lends the parents' bytes for this call only. */
        napi_create_buffer_copy(env, in->parent_sizes[i], in->parent_bytes[i], &copy, &bytes);
        napi_set_element(env, parents, i, bytes);
    }
    napi_create_buffer_copy(env, in->params_len, in->params_len > 0 ? (const void *)in->params : "", &copy, &params);
    napi_set_named_property(env, out, "parentIds", ids);
    napi_set_named_property(env, out, "parentEpochs", epochs);
    napi_set_named_property(env, out, "parents", parents);
    napi_set_named_property(env, out, "params", params);
    return out;
}

static int op_trampoline(void *user, const mmsb_op_input *in, uint8_t *out, uint64_t out_len)
{
    node_callback *cb = user;
    napi_env env = cb->owner->env;
    napi_handle_scope scope;
    if (cb->fn == NULL || napi_open_handle_scope(env, &scope) != napi_ok) {
        return 1;
    }
    int failed = 1;
    napi_value fn, global, arg = op_input_value(env, in), result;
    napi_get_reference_value(env, cb->fn, &fn);
    napi_get_global(env, &global);
    if (napi_call_function(env, global, fn, 1, &arg, &result) != napi_ok) {
        keep_exception(env, &cb->owner->op_error);
    } else {
        uint8_t *data = NULL;
        size_t len = 0;
        if (!get_bytes(env, result, "the operation's result", &data, &len)) {
            keep_exception(env, &cb->owner->op_error);
        } else if (len != out_len) {
            char message[160];
            snprintf(message, sizeof(message), "operation %llu returned %zu bytes for a page of %llu",
                     (unsigned long long)cb->id, len, (unsigned long long)out_len);
            napi_throw_range_error(env, NULL, message);
            keep_exception(env, &cb->owner->op_error);
        } else {
            memcpy(out, data, len);
            failed = 0;
        }
    }
    napi_close_handle_scope(env, scope);
    return failed;
}

static napi_value js_subscribe(napi_env env, napi_callback_info info)
{
    napi_value argv[3];
    node_engine *ne;
    uint32_t mask = 0;
    if (!get_args(env, info, 3, argv) || (ne = get_engine(env, argv[0])) == NULL ||
        !get_u32(env, argv[1], "mask", &mask)) {
        return NULL;
    }
    uint32_t slot = 0;
    while (slot < MMSB_SUBSCRIBERS_MAX && ne->subs[slot].fn != NULL) {
        slot++;
    }
    if (slot == MMSB_SUBSCRIBERS_MAX) {
        napi_throw(env, error_value(env, MMSB_ENOSPC, "subscribe: 64 subscriptions already"));
        return NULL;
    }
    node_callback *cb = &ne->subs[slot];
    TRY(napi_create_reference(env, argv[2], 1, &cb->fn));
    int rc = mmsb_subscribe(ne->engine, mask, event_trampoline, cb, &cb->id);
    if (rc != 0) {
        napi_delete_reference(env, cb->fn);
        cb->fn = NULL;
        throw_library_error(env, rc);
        return NULL;
    }
    return make_u64(env, cb->id);
}

static napi_value js_unsubscribe(napi_env env, napi_callback_info info)
{
    napi_value argv[2];
    node_engine *ne;
    uint64_t id = 0;
    if (!get_args(env, info, 2, argv) || (ne = get_engine(env, argv[0])) == NULL ||
        !get_u64(env, argv[1], "subscription", &id)) {
        return NULL;
    }
    int rc = mmsb_unsubscribe(ne->engine, id);
    if (rc != 0) {
        throw_library_error(env, rc);
        return NULL;
    }
    for (uint32_t i = 0; i < MMSB_SUBSCRIBERS_MAX; i++) {
        if (ne->subs[i].fn != NULL && ne->subs[i].id == id) {
            napi_delete_reference(env, ne->subs[i].fn);
            ne->subs[i].fn = NULL;
        }
    }
    return NULL;
}

static napi_value js_register_op(napi_env env, napi_callback_info info)
{
    napi_value argv[4];
    node_engine *ne;
    uint32_t op = 0, version = 0;
    if (!get_args(env, info, 4, argv) || (ne = get_engine(env, argv[0])) == NULL ||
        !get_u32(env, argv[1], "op", &op) || !get_u32(env, argv[2], "version", &version)) {
        return NULL;
    }
    uint32_t slot = 0, old = NODE_OPS_MAX;
    for (uint32_t i = 0; i < NODE_OPS_MAX; i++) {
        if (ne->ops[i].fn != NULL && ne->ops[i].id == op) {
            old = i;
        }
    }
    while (slot < NODE_OPS_MAX && ne->ops[slot].fn != NULL) {
        slot++;
    }
    if (slot == NODE_OPS_MAX) {
        napi_throw(env, error_value(env, MMSB_ENOSPC, "registerOp: 64 operations already on this engine"));
        return NULL;
    }
    node_callback *cb = &ne->ops[slot];
    cb->id = op;
    TRY(napi_create_reference(env, argv[3], 1, &cb->fn));
    int rc = mmsb_op_register(ne->engine, op, version, op_trampoline, cb);
    /* On success the library calls the new function from now on; on failure
     * the previous registration stays: release whichever is out of use. */
    node_callback *unused = rc == 0 ? (old < NODE_OPS_MAX ? &ne->ops[old] : NULL) : cb;
    if (unused != NULL) {
        napi_delete_reference(env, unused->fn);
        unused->fn = NULL;
    }
    finish(env, ne, rc);
    return NULL;
}

/* ---- durability ------------------------------------------------------------------------------ */

/* On a thread of libuv's pool: the wait itself, which may block on the disk
 * or the replication stream. It touches no JavaScript value. */
static void wait_execute(napi_env env, void *data)
{
    (void)env;
    wait_work *w = data;
    w->rc = w->replicated ? mmsb_wait_replicated(w->ne->engine, w->seq) : mmsb_wait_durable(w->ne->engine, w->seq);
    if (w->rc != 0) { /* the detail is this pool thread's: copy it here */
        snprintf(w->detail, sizeof(w->detail), "%s", mmsb_last_error());
    }
}

static void wait_complete(napi_env env, napi_status status, void *data)
{
    wait_work *w = data;
    node_engine *ne = w->ne;
    ne->waits_pending--;
    if (status == napi_ok && w->rc == 0) {
        napi_value undefined;
        napi_get_undefined(env, &undefined);
        napi_resolve_deferred(env, w->deferred, undefined);
    } else {
        bool failed = w->rc != 0;
        napi_value err = error_value(env, failed ? w->rc : MMSB_EIO, failed ? w->detail : "the wait was cancelled");
        napi_reject_deferred(env, w->deferred, err);
    }
    napi_delete_async_work(env, w->work);
    napi_delete_reference(env, w->engine_ref);
    free(w);
    engine_close_if_dropped(ne);
    engine_unref(env, ne);
}

/* wait(engine, seq, replicated) -> Promise */
static napi_value js_wait(napi_env env, napi_callback_info info)
{
    napi_value argv[3];
    node_engine *ne;
    uint64_t seq = 0;
    bool replicated = false;
    if (!get_args(env, info, 3, argv) || (ne = get_engine(env, argv[0])) == NULL ||
        !get_u64(env, argv[1], "commitSeq", &seq)) {
        return NULL;
    }
    napi_get_value_bool(env, argv[2], &replicated);
    wait_work *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        napi_throw_error(env, NULL, "out of memory");
        return NULL;
    }
    w->ne = ne;
    w->seq = seq;
    w->replicated = replicated;
    napi_value promise, name;
    if (napi_create_promise(env, &w->deferred, &promise) != napi_ok ||
        napi_create_reference(env, argv[0], 1, &w->engine_ref) != napi_ok ||
        napi_create_string_utf8(env, "mmsb.wait", NAPI_AUTO_LENGTH, &name) != napi_ok ||
        napi_create_async_work(env, NULL, name, wait_execute, wait_complete, w, &w->work) != napi_ok ||
        napi_queue_async_work(env, w->work) != napi_ok) {
        /* A failure here is N-API's own (out of memory): undo what was made,
         * so that neither the engine's handle nor the work outlives it, and
         * throw its message (read before the undoing replaces it). */
        const napi_extended_error_info *failure = NULL;
        char why[256];
        napi_get_last_error_info(env, &failure);
        snprintf(why, sizeof(why), "%s", failure != NULL && failure->error_message ? failure->error_message
                                                                                   : "N-API call failed");
        bool pending = false;
        napi_is_exception_pending(env, &pending);
        if (w->work != NULL) {
            napi_delete_async_work(env, w->work);
        }
        if (w->engine_ref != NULL) {
            napi_delete_reference(env, w->engine_ref);
        }
        napi_value undefined;
        if (!pending && w->deferred != NULL && napi_get_undefined(env, &undefined) == napi_ok) {
            napi_resolve_deferred(env, w->deferred, undefined); /* frees it; nobody holds the promise */
        }
        free(w);
        if (!pending) {
            napi_throw_error(env, NULL, why);
        }
        return NULL;
    }
    ne->waits_pending++;
    ne->refs++;
    return promise;
}

/* simple(engine, kind, value): 0 sync, 1 checkpoint, 2 setDurability(value) */
static napi_value js_simple(napi_env env, napi_callback_info info)
{
    napi_value argv[3];
    node_engine *ne;
    uint32_t kind = 0, value = 0;
    if (!get_args(env, info, 3, argv) || (ne = get_engine(env, argv[0])) == NULL ||
        !get_u32(env, argv[1], "kind", &kind) || !get_u32(env, argv[2], "value", &value)) {
        return NULL;
    }
    int rc = kind == 0   ? mmsb_sync(ne->engine)
             : kind == 1 ? mmsb_checkpoint(ne->engine)
                         : mmsb_set_durability(ne->engine, value);
    if (rc != 0) {
        throw_library_error(env, rc);
    }
    return NULL;
}

/* ---- digests and counters -------------------------------------------------------------------- */

/* digest(engine, pageId | undefined): the page's digest, or the state root */
static napi_value js_digest(napi_env env, napi_callback_info info)
{
    napi_value argv[2];
    node_engine *ne;
    if (!get_args(env, info, 2, argv) || (ne = get_engine(env, argv[0])) == NULL) {
        return NULL;
    }
    napi_valuetype type;
    napi_typeof(env, argv[1], &type);
    mmsb_digest d;
    int rc;
    if (type == napi_undefined) {
        rc = mmsb_state_root(ne->engine, &d);
    } else {
        uint64_t page = 0;
        if (!get_u64(env, argv[1], "pageId", &page)) {
            return NULL;
        }
        rc = mmsb_page_digest(ne->engine, page, &d);
    }
    if (rc != 0) {
        throw_library_error(env, rc);
        return NULL;
    }
    return digest_value(env, &d);
}

static napi_value js_info(napi_env env, napi_callback_info info)
{
    napi_value argv[1];
    node_engine *ne;
    if (!get_args(env, info, 1, argv) || (ne = get_engine(env, argv[0])) == NULL) {
        return NULL;
    }
    mmsb_engineinfo ei;
    memset(&ei, 0, sizeof(ei));
    ei.struct_size = sizeof(ei);
    int rc = mmsb_engine_info(ne->engine, &ei);
    if (rc != 0) {
        throw_library_error(env, rc);
        return NULL;
    }
    static const char *const names[] = {
        "pagesLive", "pageIdNext", "pagesMax", "arenaBytesUsed", "commitSeq", "durableSeq", "durability",
        "logSegment", "logBytesWritten", "logSyncs", "recoveredCommits", "commits", "recomputes", "skips",
        "backdates", "derivedPages", "edges", "checkpointNumber", "checkpointsWritten", "logSegmentFirst",
        "gpuThresholdBytes", "gpuThresholdSource", "gpuLost", "gpuPages", "gpuPageBytes", "gpuCalls", "gpuFallbacks"};
    const uint64_t values[] = {
        ei.pages_live, ei.page_id_next, ei.pages_max, ei.arena_bytes_used, ei.commit_seq, ei.durable_seq,
        ei.durability, ei.log_segment, ei.log_bytes_written, ei.log_syncs, ei.recovered_commits, ei.commits,
        ei.recomputes, ei.skips, ei.backdates, ei.derived_pages, ei.edges, ei.checkpoint_number,
        ei.checkpoints_written, ei.log_segment_first, ei.gpu_threshold_bytes, ei.gpu_threshold_source, ei.gpu_lost,
        ei.gpu_pages, ei.gpu_page_bytes, ei.gpu_calls, ei.gpu_fallbacks};
    napi_value out = object_of_u64(env, names, values, sizeof(values) / sizeof(values[0]));
    napi_value text;
    napi_create_string_utf8(env, ei.kernel, strnlen(ei.kernel, sizeof(ei.kernel)), &text);
    napi_set_named_property(env, out, "kernel", text);
    napi_create_string_utf8(env, ei.io_backend, strnlen(ei.io_backend, sizeof(ei.io_backend)), &text);
    napi_set_named_property(env, out, "ioBackend", text);
    napi_create_string_utf8(env, ei.gpu, strnlen(ei.gpu, sizeof(ei.gpu)), &text);
    napi_set_named_property(env, out, "gpu", text);
    napi_create_string_utf8(env, ei.gpu_device, strnlen(ei.gpu_device, sizeof(ei.gpu_device)), &text);
    napi_set_named_property(env, out, "gpuDevice", text);
    return out;
}

/* ---- export and import ------------------------------------------------------------------------ */

static napi_value transfer_value(napi_env env, const mmsb_transfer_info *t)
{
    static const char *const names[] = {"pages", "derived", "pageBytes", "streamBytes", "commitSeq", "pageIdNext"};
    const uint64_t values[] = {t->pages, t->derived, t->page_bytes, t->stream_bytes, t->commit_seq,
                               t->page_id_next};
    napi_value out = object_of_u64(env, names, values, sizeof(values) / sizeof(values[0]));
    napi_set_named_property(env, out, "stateRoot", digest_value(env, &t->state_root));
    return out;
}

/* exportTo(engine, fd): the transfer's figures */
static napi_value js_export(napi_env env, napi_callback_info info)
{
    napi_value argv[2];
    node_engine *ne;
    uint32_t fd = 0;
    if (!get_args(env, info, 2, argv) || (ne = get_engine(env, argv[0])) == NULL ||
        !get_u32(env, argv[1], "fd", &fd)) {
        return NULL;
    }
    mmsb_transfer_info t;
    memset(&t, 0, sizeof(t));
    t.struct_size = sizeof(t);
    int rc = fd > INT32_MAX ? MMSB_EINVAL : mmsb_export(ne->engine, (int)fd, &t);
    if (rc != 0) {
        throw_library_error(env, rc);
        return NULL;
    }
    return transfer_value(env, &t);
}

/* importStore(path, fd, options): a new store from the stream */
static napi_value js_import(napi_env env, napi_callback_info info)
{
    napi_value argv[3];
    char path[NODE_PATH_BYTES_MAX];
    char strings[2][OPTION_STRING_BYTES];
    mmsb_options options;
    uint32_t fd = 0;
    if (!get_args(env, info, 3, argv) || !get_path(env, argv[0], path) || !get_u32(env, argv[1], "fd", &fd) ||
        !options_from(env, argv[2], &options, strings)) {
        return NULL;
    }
    mmsb_transfer_info t;
    memset(&t, 0, sizeof(t));
    t.struct_size = sizeof(t);
    int rc = fd > INT32_MAX ? MMSB_EINVAL : mmsb_import(path, &options, (int)fd, &t);
    if (rc != 0) {
        throw_library_error(env, rc);
        return NULL;
    }
    return transfer_value(env, &t);
}

/* ---- readers: attach and the log --------------------------------------------------------------- */

static void attach_finalize(napi_env env, void *data, void *hint)
{
    (void)env;
    (void)hint;
    node_handle *h = data;
    if (h->h != NULL) {
        mmsb_attach_close(h->h);
    }
    free(h);
}

static void log_finalize(napi_env env, void *data, void *hint)
{
    (void)env;
    (void)hint;
    node_handle *h = data;
    if (h->h != NULL) {
        mmsb_log_close(h->h);
    }
    free(h);
}

/* readerOpen(kind, path): kind 0 an attach, 1 a log reader */
static napi_value js_reader_open(napi_env env, napi_callback_info info)
{
    napi_value argv[2];
    uint32_t kind = 0;
    char path[NODE_PATH_BYTES_MAX];
    if (!get_args(env, info, 2, argv) || !get_u32(env, argv[0], "kind", &kind) || !get_path(env, argv[1], path)) {
        return NULL;
    }
    node_handle *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        napi_throw_error(env, NULL, "out of memory");
        return NULL;
    }
    int rc = kind == 0 ? mmsb_attach_open(path, (mmsb_attach **)&h->h)
                       : mmsb_log_open(path, 0, (mmsb_log_reader **)&h->h);
    if (rc != 0) {
        free(h);
        throw_library_error(env, rc);
        return NULL;
    }
    napi_value out;
    if (!make_external(env, h, kind == 0 ? attach_finalize : log_finalize, kind == 0 ? &TAG_ATTACH : &TAG_LOG,
                       &out)) {
        kind == 0 ? mmsb_attach_close(h->h) : mmsb_log_close(h->h);
        free(h);
        throw_napi_failure(env);
        return NULL;
    }
    return out;
}

static node_handle *get_handle(napi_env env, napi_value value, const napi_type_tag *tag)
{
    node_handle *h = external_of(env, value, tag, tag == &TAG_ATTACH ? "an attach" : "a log reader");
    if (h == NULL) {
        return NULL;
    }
    if (h->h == NULL) {
        napi_throw_error(env, NULL, "the reader is closed");
        return NULL;
    }
    return h;
}

/* readerClose(kind, handle) */
static napi_value js_reader_close(napi_env env, napi_callback_info info)
{
    napi_value argv[2];
    uint32_t kind = 0;
    node_handle *h = NULL;
    if (!get_args(env, info, 2, argv) || !get_u32(env, argv[0], "kind", &kind) ||
        (h = external_of(env, argv[1], kind == 0 ? &TAG_ATTACH : &TAG_LOG, "a reader")) == NULL) {
        return NULL;
    }
    if (h->h != NULL) {
        void *handle = h->h;
        h->h = NULL;
        int rc = kind == 0 ? mmsb_attach_close(handle) : mmsb_log_close(handle);
        if (rc != 0) {
            throw_library_error(env, rc);
        }
    }
    return NULL;
}

/* attachRead(handle, pageId, offset, length | undefined) -> [Buffer, epoch] */
static napi_value js_attach_read(napi_env env, napi_callback_info info)
{
    napi_value argv[4];
    node_handle *h;
    if (!get_args(env, info, 4, argv) || (h = get_handle(env, argv[0], &TAG_ATTACH)) == NULL) {
        return NULL;
    }
    const page_source src = {h->h, attach_info, attach_read};
    return read_value(env, &src, argv + 1);
}

static napi_value js_attach_page_info(napi_env env, napi_callback_info info)
{
    napi_value argv[2];
    node_handle *h;
    if (!get_args(env, info, 2, argv) || (h = get_handle(env, argv[0], &TAG_ATTACH)) == NULL) {
        return NULL;
    }
    const page_source src = {h->h, attach_info, attach_read};
    return info_value(env, &src, argv[1]);
}

/* logNext(handle) -> a record object, or null after the last */
static napi_value js_log_next(napi_env env, napi_callback_info info)
{
    napi_value argv[1];
    node_handle *h;
    if (!get_args(env, info, 1, argv) || (h = get_handle(env, argv[0], &TAG_LOG)) == NULL) {
        return NULL;
    }
    mmsb_log_record r;
    memset(&r, 0, sizeof(r));
    r.struct_size = sizeof(r);
    int rc = mmsb_log_next(h->h, &r);
    if (rc != 0) {
        throw_library_error(env, rc);
        return NULL;
    }
    napi_value out, value;
    if (r.type == MMSB_REC_END) {
        napi_get_null(env, &out);
        return out;
    }
    static const char *const names[] = {"type", "seq", "segment", "offset", "pageId", "epoch"};
    const uint64_t values[] = {r.type, r.seq, r.segment, r.offset, r.page_id, r.epoch};
    out = object_of_u64(env, names, values, 6);
    napi_get_boolean(env, r.committed != 0, &value);
    napi_set_named_property(env, out, "committed", value);
    void *copy = NULL;
    TRY(napi_create_buffer_copy(env, r.payload_len, r.payload_len > 0 ? (const void *)r.payload : "", &copy, &value));
    napi_set_named_property(env, out, "payload", value);
    return out;
}

/* ---- the module ------------------------------------------------------------------------------ */

static napi_value js_strerror(napi_env env, napi_callback_info info)
{
    napi_value argv[1], out;
    int32_t code = 0;
    if (!get_args(env, info, 1, argv) || napi_get_value_int32(env, argv[0], &code) != napi_ok) {
        return NULL;
    }
    napi_create_string_utf8(env, mmsb_strerror(code), NAPI_AUTO_LENGTH, &out);
    return out;
}

static napi_value js_version(napi_env env, napi_callback_info info)
{
    (void)info;
    napi_value out;
    napi_create_string_utf8(env, mmsb_version(NULL, NULL, NULL), NAPI_AUTO_LENGTH, &out);
    return out;
}

static napi_value js_abi_version(napi_env env, napi_callback_info info)
{
    (void)info;
    napi_value out;
    napi_create_int32(env, mmsb_abi_version(), &out);
    return out;
}

#define METHOD(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_default, NULL}

static napi_value module_init(napi_env env, napi_value exports)
{
    static const napi_property_descriptor methods[] = {
        METHOD("open", js_open),
        METHOD("close", js_close),
        METHOD("pageCreate", js_page_create),
        METHOD("pageFree", js_page_free),
        METHOD("pageInfo", js_page_info),
        METHOD("read", js_read),
        METHOD("readInto", js_read_into),
        METHOD("write", js_write),
        METHOD("apply", js_apply),
        METHOD("applyBatch", js_apply_batch),
        METHOD("txnBegin", js_txn_begin),
        METHOD("txnStage", js_txn_stage),
        METHOD("txnCommit", js_txn_commit),
        METHOD("txnAbort", js_txn_abort),
        METHOD("derive", js_derive),
        METHOD("edge", js_edge),
        METHOD("subscribe", js_subscribe),
        METHOD("unsubscribe", js_unsubscribe),
        METHOD("registerOp", js_register_op),
        METHOD("wait", js_wait),
        METHOD("simple", js_simple),
        METHOD("digest", js_digest),
        METHOD("info", js_info),
        METHOD("exportTo", js_export),
        METHOD("importStore", js_import),
        METHOD("readerOpen", js_reader_open),
        METHOD("readerClose", js_reader_close),
        METHOD("attachRead", js_attach_read),
        METHOD("attachPageInfo", js_attach_page_info),
        METHOD("logNext", js_log_next),
        METHOD("strerror", js_strerror),
        METHOD("version", js_version),
        METHOD("abiVersion", js_abi_version),
    };
    if (napi_define_properties(env, exports, sizeof(methods) / sizeof(methods[0]), methods) != napi_ok) {
        return NULL;
    }
    return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, module_init)
