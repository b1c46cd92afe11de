/*
 * error.c - error codes, their names, the per-thread detail message, and
 * the failure of an assertion.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base.h"

enum { DETAIL_BYTES_MAX = 512 };

/* The detail message is per thread by contract (like errno); it is the only
 * state of the library that does not hang off an engine handle. */
static _Thread_local char detail[DETAIL_BYTES_MAX];

void mmsb_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "mmsb: assertion failed: %s (%s:%d)\n", expr, file, line);
    fflush(stderr);
    abort();
}

int err_set(int code, const char *fmt, ...) {
    ASSERT(code < 0);
    ASSERT(fmt != NULL);
    /* Formatted aside first: an argument may be mmsb_last_error() itself. */
    char text[sizeof detail];
    va_list args;
    va_start(args, fmt);
    vsnprintf(text, sizeof text, fmt, args);
    va_end(args);
    memcpy(detail, text, strlen(text) + 1);
    ASSERT(detail[sizeof detail - 1] == '\0');
    return code;
}

int err_from_errno(int errnum) {
    ASSERT(errnum >= 0); /* an errno value, not yet an MMSB code */
    switch (errnum) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG: return MMSB_ENOSPC;
    case ENOMEM: return MMSB_ENOMEM;
    case ENOENT: return MMSB_ENOTFOUND;
    case EWOULDBLOCK: return MMSB_EBUSY;
    case ENOSYS:
    case EOPNOTSUPP: return MMSB_ENOTSUP;
    default: return MMSB_EIO;
    }
}

MMSB_API const char *mmsb_strerror(int code) {
    switch (code) {
    case MMSB_OK: return "success";
    case MMSB_EINVAL: return "invalid argument";
    case MMSB_ENOTFOUND: return "not found";
    case MMSB_ECONFLICT: return "conflict: expected epoch differs from the page's epoch";
    case MMSB_ENOSPC: return "no space: a configured limit or the disk is full";
    case MMSB_EIO: return "input/output error from the operating system";
    case MMSB_ECORRUPT: return "corrupt data on disk";
    case MMSB_EVERSION: return "version mismatch (ABI or on-disk format)";
    case MMSB_EBUSY: return "busy: in use elsewhere (another engine, thread or reader; the detail says which)";
    case MMSB_ENOTSUP: return "not supported on this machine or build";
    case MMSB_ENOMEM: return "out of memory";
    case MMSB_ECYCLE: return "the edge would close a cycle in the dependency graph";
    case MMSB_EOP: return "a derivation operation failed";
    case MMSB_EREADONLY: return "read-only: the engine was opened read-only, or the store is a replica";
    case MMSB_EDEPENDENTS: return "derived pages still read this page";
    case MMSB_ECALLBACK: return "writing calls are not allowed from an event callback";
    case MMSB_EREPLICA: return "replication failed: the stream did not store it (servers unreachable, no quorum)";
    case MMSB_EFENCED: return "fenced: another writer took the replication stream over";
    default: break;
    }
    int errnum = code < 0 ? -code : code;
    if (errnum > 0 && errnum < 4096) {
        const char *text = strerrordesc_np(errnum);
        if (text != NULL) return text;
    }
    return "unknown error code";
}

MMSB_API const char *mmsb_last_error(void) {
    return detail[0] != '\0' ? detail : "no error detail recorded on this thread";
}

uint32_t base_thread_id(void) {
    long tid = syscall(SYS_gettid);
    ASSERT(tid > 0 && tid <= (long)UINT32_MAX);
    return (uint32_t)tid;
}
