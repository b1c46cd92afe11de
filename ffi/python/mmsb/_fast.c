/* mmsb._fast: the package's compiled fast path for the calls a program makes
 * per change and per read (write, read, read_into, a transaction's write).
 * Through ctypes each such call spends microseconds converting arguments and
 * building result objects; here it is one argument check and one call.
 *
 * It never links libmmsb: bind() takes the addresses of the functions that
 * ctypes loaded, so the fast path and the ctypes path always call the same
 * library file, wherever the package found it. Errors are not raised here:
 * a failing call hands its code to the engine's Python error function, so
 * both paths raise the same exception classes with the same detail. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mmsb.h"

/* Reads of at least this many bytes let other Python threads run while the
 * bytes are copied; shorter ones cost less than releasing the lock. */
#define READ_RELEASE_GIL_BYTES ((uint64_t)64 << 10)

typedef struct fast_api {
    __typeof__(&mmsb_write) write;
    __typeof__(&mmsb_page_read) page_read;
    __typeof__(&mmsb_page_info) page_info;
    __typeof__(&mmsb_txn_write) txn_write;
} fast_api;

typedef struct fast_function {
    const char *name;
    size_t offset; /* in fast_api */
} fast_function;

static const fast_function fast_functions[] = {
    {"mmsb_write", offsetof(fast_api, write)},
    {"mmsb_page_read", offsetof(fast_api, page_read)},
    {"mmsb_page_info", offsetof(fast_api, page_info)},
    {"mmsb_txn_write", offsetof(fast_api, txn_write)},
};
#define FAST_FUNCTIONS_COUNT (sizeof(fast_functions) / sizeof(fast_functions[0]))

typedef struct fast_state {
    fast_api api;
    int bound;
    PyTypeObject *core_type;
} fast_state;

/* One engine's fast calls. It holds the engine's address, not the engine:
 * the Python Engine owns the handle and detaches its Core before closing. */
typedef struct core {
    PyObject_HEAD
    mmsb_engine *engine;       /* NULL once detached */
    const fast_api *api;       /* in the module's state */
    PyObject *module;          /* keeps that state alive */
    PyTypeObject *change_type; /* mmsb.Change: a tuple of three ints */
    PyObject *on_error;        /* on_error(code) raises the library's error */
} core;

static fast_state *state_of(PyObject *module)
{
    fast_state *state = PyModule_GetState(module);
    assert(state != NULL);
    return state;
}

/* ---- arguments ------------------------------------------------------------------------------- */

/* Positional and keyword arguments into out[0..count), as a def with those
 * parameter names would take them; the first `required` must be given. */
static int args_parse(const char *fn, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                      const char *const *names, Py_ssize_t count, Py_ssize_t required, PyObject **out)
{
    if (nargs > count) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %zd arguments (%zd given)", fn, count, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        out[i] = i < nargs ? args[i] : NULL;
    }
    Py_ssize_t keywords = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < keywords; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        Py_ssize_t i = 0;
        while (i < count && PyUnicode_CompareWithASCIIString(key, names[i]) != 0) {
            i++;
        }
        if (i == count) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R", fn, key);
            return -1;
        }
        if (out[i] != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", fn, names[i]);
            return -1;
        }
        out[i] = args[nargs + k];
    }
    for (Py_ssize_t i = 0; i < required; i++) {
        if (out[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fn, names[i]);
            return -1;
        }
    }
    return 0;
}

/* The same checks and messages as the ctypes path's _uint(). */
static int u64_arg(PyObject *value, const char *name, uint64_t *out)
{
    if (PyBool_Check(value) || !PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %s", name, Py_TYPE(value)->tp_name);
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(value);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s is %S, outside 0..%llu", name, value, (unsigned long long)UINT64_MAX);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

/* A contiguous one-dimensional buffer of any bytes-like object (writable
 * when asked), as the ctypes path's _buffer() accepts. */
static int bytes_arg(PyObject *obj, const char *name, Py_buffer *view, int writable)
{
    if (!PyObject_CheckBuffer(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be bytes-like, not %s", name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    int flags = PyBUF_STRIDES | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        if (writable && PyErr_ExceptionMatches(PyExc_BufferError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s must be a writable bytes-like object, not %s", name,
                         Py_TYPE(obj)->tp_name);
        }
        return -1;
    }
    if (view->ndim != 1 || !PyBuffer_IsContiguous(view, 'C')) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError, "%s must be a contiguous one-dimensional buffer", name);
        return -1;
    }
    return 0;
}

/* ---- results and errors ---------------------------------------------------------------------- */

static int core_live(const core *self)
{
    if (self->engine == NULL) {
        PyErr_SetString(PyExc_ValueError, "the engine is closed");
        return -1;
    }
    return 0;
}

static PyObject *core_fail(core *self, int rc)
{
    assert(rc != 0);
    PyObject *returned = PyObject_CallFunction(self->on_error, "i", rc);
    if (returned != NULL) {
        Py_DECREF(returned);
        PyErr_Format(PyExc_SystemError, "mmsb: a call failed with %d and raised nothing", rc);
    }
    return NULL;
}

/* mmsb.Change(epoch, bytes_changed, commit_seq), built as tuple.__new__
 * builds an instance of a tuple subclass. */
static PyObject *change_new(const core *self, const mmsb_change *change)
{
    const uint64_t fields[3] = {change->epoch, change->bytes_changed, change->commit_seq};
    PyObject *out = self->change_type->tp_alloc(self->change_type, 3);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < 3; i++) {
        PyObject *value = PyLong_FromUnsignedLongLong(fields[i]);
        if (value == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, value);
    }
    return out;
}

/* ---- reads ----------------------------------------------------------------------------------- */

static int core_read_raw(core *self, uint64_t page, uint64_t offset, void *dst, uint64_t length, uint64_t *epoch)
{
    int rc;
    if (length >= READ_RELEASE_GIL_BYTES) {
        Py_BEGIN_ALLOW_THREADS
        rc = self->api->page_read(self->engine, page, offset, dst, length, epoch);
        Py_END_ALLOW_THREADS
    } else {
        rc = self->api->page_read(self->engine, page, offset, dst, length, epoch);
    }
    return rc;
}

/* (page_id, offset=0, length=None) -> the page id, offset and length of a
 * read; length None reads to the page's end. */
static int read_args(core *self, const char *fn, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                     uint64_t *page, uint64_t *offset, uint64_t *length)
{
    static const char *const names[] = {"page_id", "offset", "length"};
    PyObject *a[3];
    if (core_live(self) < 0 || args_parse(fn, args, nargs, kwnames, names, 3, 1, a) < 0 ||
        u64_arg(a[0], "page_id", page) < 0) {
        return -1;
    }
    *offset = 0;
    if (a[1] != NULL && u64_arg(a[1], "offset", offset) < 0) {
        return -1;
    }
    if (a[2] != NULL && a[2] != Py_None) {
        if (u64_arg(a[2], "length", length) < 0) {
            return -1;
        }
    } else {
        mmsb_pageinfo info = {.struct_size = sizeof(info)};
        int rc = self->api->page_info(self->engine, *page, &info);
        if (rc != 0) {
            core_fail(self, rc);
            return -1;
        }
        if (*offset > info.size_bytes) {
            PyErr_Format(PyExc_ValueError, "offset %llu is past the end of page %llu (%llu bytes)",
                         (unsigned long long)*offset, (unsigned long long)*page,
                         (unsigned long long)info.size_bytes);
            return -1;
        }
        *length = info.size_bytes - *offset;
    }
    if (*length > (uint64_t)PY_SSIZE_T_MAX) {
        PyErr_Format(PyExc_ValueError, "length %llu is more than a bytes object holds", (unsigned long long)*length);
        return -1;
    }
    return 0;
}

static PyObject *core_read_bytes(core *self, const char *fn, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames, uint64_t *epoch)
{
    uint64_t page, offset, length;
    if (read_args(self, fn, args, nargs, kwnames, &page, &offset, &length) < 0) {
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)length);
    if (out == NULL) {
        return NULL;
    }
    uint8_t none[1]; /* the empty bytes object is shared: never write into it */
    void *dst = length > 0 ? (void *)PyBytes_AS_STRING(out) : (void *)none;
    int rc = core_read_raw(self, page, offset, dst, length, epoch);
    if (rc != 0) {
        Py_DECREF(out);
        return core_fail(self, rc);
    }
    return out;
}

PyDoc_STRVAR(core_read_doc, "read(page_id, offset=0, length=None) -> bytes, all of one epoch");

static PyObject *core_read(core *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    uint64_t epoch = 0;
    return core_read_bytes(self, "read", args, nargs, kwnames, &epoch);
}

PyDoc_STRVAR(core_read_with_epoch_doc, "read_with_epoch(page_id, offset=0, length=None) -> (bytes, epoch)");

static PyObject *core_read_with_epoch(core *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    uint64_t epoch = 0;
    PyObject *data = core_read_bytes(self, "read_with_epoch", args, nargs, kwnames, &epoch);
    if (data == NULL) {
        return NULL;
    }
    PyObject *epoch_obj = PyLong_FromUnsignedLongLong(epoch);
    if (epoch_obj == NULL) {
        Py_DECREF(data);
        return NULL;
    }
    PyObject *out = PyTuple_New(2);
    if (out == NULL) {
        Py_DECREF(data);
        Py_DECREF(epoch_obj);
        return NULL;
    }
    PyTuple_SET_ITEM(out, 0, data);
    PyTuple_SET_ITEM(out, 1, epoch_obj);
    return out;
}

PyDoc_STRVAR(core_read_into_doc,
             "read_into(page_id, offset, buffer) -> epoch: fills the writable buffer with the page's bytes at offset");

static PyObject *core_read_into(core *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"page_id", "offset", "buffer"};
    PyObject *a[3];
    uint64_t page, offset;
    Py_buffer view;
    if (core_live(self) < 0 || args_parse("read_into", args, nargs, kwnames, names, 3, 3, a) < 0 ||
        u64_arg(a[0], "page_id", &page) < 0 || u64_arg(a[1], "offset", &offset) < 0 ||
        bytes_arg(a[2], "buffer", &view, 1) < 0) {
        return NULL;
    }
    uint8_t none[1];
    void *dst = view.len > 0 ? view.buf : (void *)none;
    uint64_t epoch = 0;
    int rc = core_read_raw(self, page, offset, dst, (uint64_t)view.len, &epoch);
    PyBuffer_Release(&view);
    if (rc != 0) {
        return core_fail(self, rc);
    }
    return PyLong_FromUnsignedLongLong(epoch);
}

/* ---- changes --------------------------------------------------------------------------------- */

PyDoc_STRVAR(core_write_doc, "write(page_id, offset, data) -> Change: data written at offset as one commit");

static PyObject *core_write(core *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"page_id", "offset", "data"};
    PyObject *a[3];
    uint64_t page, offset;
    Py_buffer view;
    if (core_live(self) < 0 || args_parse("write", args, nargs, kwnames, names, 3, 3, a) < 0 ||
        u64_arg(a[0], "page_id", &page) < 0 || u64_arg(a[1], "offset", &offset) < 0 ||
        bytes_arg(a[2], "data", &view, 0) < 0) {
        return NULL;
    }
    mmsb_change change = {0};
    int rc;
    /* A commit may wait for the disk (SYNC, GROUP): let other threads run. */
    Py_BEGIN_ALLOW_THREADS
    rc = self->api->write(self->engine, page, offset, view.buf, (uint64_t)view.len, &change);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (rc != 0) {
        return core_fail(self, rc);
    }
    return change_new(self, &change);
}

PyDoc_STRVAR(core_txn_write_doc, "txn_write(txn_address, page_id, offset, data): stages a transaction's write");

static PyObject *core_txn_write(core *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"txn", "page_id", "offset", "data"};
    PyObject *a[4];
    uint64_t page, offset;
    Py_buffer view;
    if (args_parse("txn_write", args, nargs, kwnames, names, 4, 4, a) < 0) {
        return NULL;
    }
    mmsb_txn *txn = PyLong_AsVoidPtr(a[0]);
    if (txn == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "the transaction has ended");
        }
        return NULL;
    }
    if (u64_arg(a[1], "page_id", &page) < 0 || u64_arg(a[2], "offset", &offset) < 0 ||
        bytes_arg(a[3], "data", &view, 0) < 0) {
        return NULL;
    }
    int rc = self->api->txn_write(txn, page, offset, view.buf, (uint64_t)view.len);
    PyBuffer_Release(&view);
    if (rc != 0) {
        return core_fail(self, rc);
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(core_detach_doc, "detach(): forget the engine (before it is closed); later calls raise ValueError");

static PyObject *core_detach(core *self, PyObject *unused)
{
    (void)unused;
    self->engine = NULL;
    Py_RETURN_NONE;
}

/* ---- the Core type --------------------------------------------------------------------------- */

static PyObject *core_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *address, *change_type, *on_error;
    static char *names[] = {"engine", "change_type", "on_error", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO:Core", names, &address, &change_type, &on_error)) {
        return NULL;
    }
    PyObject *module = PyType_GetModule(type);
    if (module == NULL) {
        return NULL;
    }
    fast_state *state = state_of(module);
    if (!state->bound) {
        PyErr_SetString(PyExc_RuntimeError, "mmsb._fast: bind() has not been called");
        return NULL;
    }
    mmsb_engine *engine = PyLong_AsVoidPtr(address);
    if (engine == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "engine must be an open engine's address");
        }
        return NULL;
    }
    if (!PyType_Check(change_type) || !PyType_IsSubtype((PyTypeObject *)change_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "change_type must be a tuple subclass");
        return NULL;
    }
    if (!PyCallable_Check(on_error)) {
        PyErr_SetString(PyExc_TypeError, "on_error must be callable");
        return NULL;
    }
    core *self = (core *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->engine = engine;
    self->api = &state->api;
    Py_INCREF(module);
    Py_INCREF(change_type);
    Py_INCREF(on_error);
    self->module = module;
    self->change_type = (PyTypeObject *)change_type;
    self->on_error = on_error;
    return (PyObject *)self;
}

static int core_traverse(core *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->module);
    Py_VISIT(self->change_type);
    Py_VISIT(self->on_error);
    return 0;
}

static int core_clear(core *self)
{
    Py_CLEAR(self->module);
    Py_CLEAR(self->change_type);
    Py_CLEAR(self->on_error);
    return 0;
}

static void core_dealloc(core *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    core_clear(self);
    type->tp_free(self);
    Py_DECREF(type);
}

#define FASTCALL_METHOD(name, fn, doc) {name, (PyCFunction)(void (*)(void))(fn), METH_FASTCALL | METH_KEYWORDS, doc}

static PyMethodDef core_methods[] = {
    FASTCALL_METHOD("write", core_write, core_write_doc),
    FASTCALL_METHOD("read", core_read, core_read_doc),
    FASTCALL_METHOD("read_with_epoch", core_read_with_epoch, core_read_with_epoch_doc),
    FASTCALL_METHOD("read_into", core_read_into, core_read_into_doc),
    FASTCALL_METHOD("txn_write", core_txn_write, core_txn_write_doc),
    {"detach", (PyCFunction)core_detach, METH_NOARGS, core_detach_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(core_doc, "Core(engine_address, change_type, on_error): one engine's fast calls");

static PyType_Slot core_slots[] = {
    {Py_tp_new, (void *)core_new},
    {Py_tp_dealloc, (void *)core_dealloc},
    {Py_tp_traverse, (void *)core_traverse},
    {Py_tp_clear, (void *)core_clear},
    {Py_tp_methods, core_methods},
    {Py_tp_doc, (void *)core_doc},
    {0, NULL},
};

static PyType_Spec core_spec = {
    .name = "mmsb._fast.Core",
    .basicsize = sizeof(core),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = core_slots,
};

/* ---- the module ------------------------------------------------------------------------------ */

PyDoc_STRVAR(fast_bind_doc, "bind(addresses, abi_version): the library functions' addresses, by name (FUNCTIONS)");

static PyObject *fast_bind(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyDict_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "bind(addresses: dict, abi_version: int)");
        return NULL;
    }
    long abi = PyLong_AsLong(args[1]);
    if (abi == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (abi != MMSB_ABI_VERSION) {
        PyErr_Format(PyExc_ImportError, "mmsb._fast was built for ABI %d, the library speaks %ld", MMSB_ABI_VERSION,
                     abi);
        return NULL;
    }
    fast_api api;
    for (size_t i = 0; i < FAST_FUNCTIONS_COUNT; i++) {
        PyObject *address = PyDict_GetItemString(args[0], fast_functions[i].name);
        void *fn = address != NULL ? PyLong_AsVoidPtr(address) : NULL;
        if (fn == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_ImportError, "mmsb._fast: no address for %s", fast_functions[i].name);
            }
            return NULL;
        }
        memcpy((char *)&api + fast_functions[i].offset, &fn, sizeof(fn));
    }
    fast_state *state = state_of(module);
    state->api = api;
    state->bound = 1;
    Py_RETURN_NONE;
}

static PyMethodDef fast_methods[] = {
    {"bind", (PyCFunction)(void (*)(void))fast_bind, METH_FASTCALL, fast_bind_doc},
    {NULL, NULL, 0, NULL},
};

/* PyModule_AddObjectRef, which Python 3.9 lacks: the module takes a new
 * reference, the caller keeps its own. */
static int add_object(PyObject *module, const char *name, PyObject *value)
{
    Py_INCREF(value);
    if (PyModule_AddObject(module, name, value) < 0) {
        Py_DECREF(value);
        return -1;
    }
    return 0;
}

static int fast_exec(PyObject *module)
{
    fast_state *state = state_of(module);
    state->bound = 0;
    state->core_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &core_spec, NULL);
    if (state->core_type == NULL || add_object(module, "Core", (PyObject *)state->core_type) < 0) {
        return -1;
    }
    PyObject *names = PyTuple_New((Py_ssize_t)FAST_FUNCTIONS_COUNT);
    if (names == NULL) {
        return -1;
    }
    for (size_t i = 0; i < FAST_FUNCTIONS_COUNT; i++) {
        PyObject *name = PyUnicode_FromString(fast_functions[i].name);
        if (name == NULL) {
            Py_DECREF(names);
            return -1;
        }
        PyTuple_SET_ITEM(names, (Py_ssize_t)i, name);
    }
    int rc = add_object(module, "FUNCTIONS", names);
    Py_DECREF(names);
    if (rc < 0 || PyModule_AddIntConstant(module, "ABI_VERSION", MMSB_ABI_VERSION) < 0) {
        return -1;
    }
    return 0;
}

static int fast_traverse(PyObject *module, visitproc visit, void *arg)
{
    Py_VISIT(state_of(module)->core_type);
    return 0;
}

static int fast_clear(PyObject *module)
{
    Py_CLEAR(state_of(module)->core_type);
    return 0;
}

static PyModuleDef_Slot fast_slots[] = {
    {Py_mod_exec, (void *)fast_exec},
    {0, NULL},
};

static struct PyModuleDef fast_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "mmsb._fast",
    .m_doc = "The compiled fast path of the mmsb package (see mmsb/__init__.py).",
    .m_size = sizeof(fast_state),
    .m_methods = fast_methods,
    .m_slots = fast_slots,
    .m_traverse = fast_traverse,
    .m_clear = fast_clear,
};

PyMODINIT_FUNC PyInit__fast(void);

PyMODINIT_FUNC PyInit__fast(void)
{
    return PyModuleDef_Init(&fast_module);
}
