/*
 * testutil.c - helpers shared by the test programs (see testutil.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ftw.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

uint64_t rng_next(rng *r) {
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t rng_below(rng *r, uint64_t bound) {
    return bound == 0 ? 0 : rng_next(r) % bound;
}

void rng_fill(rng *r, void *buf, size_t len) {
    uint8_t *p = buf;
    while (len >= 8) {
        uint64_t v = rng_next(r);
        memcpy(p, &v, 8);
        p += 8;
        len -= 8;
    }
    uint64_t v = rng_next(r);
    memcpy(p, &v, len);
}

char *tu_dir_new(void) {
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0') base = "/tmp";
    size_t n = strlen(base) + 32;
    char *dir = malloc(n);
    assert_non_null(dir);
    snprintf(dir, n, "%s/mmsb-test-XXXXXX", base);
    assert_non_null(mkdtemp(dir));
    return dir;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void tu_dir_remove(char *dir) {
    if (dir == NULL) return;
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

char *tu_tmpfs_new(const char *size) {
    char *mnt = tu_dir_new();
    char opts[64];
    snprintf(opts, sizeof opts, "size=%s", size);
    if (mount("tmpfs", mnt, "tmpfs", 0, opts) == 0) return mnt;
    print_message("skipped: cannot mount a tmpfs here (%s)\n", strerror(errno));
    tu_dir_remove(mnt);
    return NULL;
}

void tu_tmpfs_remove(char *mnt) {
    umount(mnt);
    tu_dir_remove(mnt);
}

void tu_checkpoint_remove(const char *store_dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoint", store_dir);
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

uint32_t tu_gpu(void) {
    const char *env = getenv("MMSB_GPU");
    return env != NULL && env[0] != '\0' ? MMSB_GPU_AUTO : MMSB_GPU_OFF;
}

void tu_options_small(mmsb_options *o) {
    TU_OK(MMSB_OPTIONS_INIT(o));
    o->arena_bytes_max = 256ull << 20;
    o->arena_grow_bytes = 1ull << 20;
    o->page_bytes_max = 64ull << 20;
    o->pages_max = 1u << 16;
    o->gpu = tu_gpu();
    /* Tests that are about durability set it; the rest need no fsyncs. */
    o->durability = MMSB_DURABILITY_NONE;
    o->segment_bytes = 4ull << 20;
    o->log_buffer_bytes = 1ull << 20;
    o->group_window_bytes = 256u << 10;
}

mmsb_engine *tu_open(const char *dir, const mmsb_options *o) {
    mmsb_options defaults;
    if (o == NULL) {
        tu_options_small(&defaults);
        o = &defaults;
    }
    mmsb_engine *e = NULL;
    TU_OK(mmsb_open(dir, o, &e));
    assert_non_null(e);
    return e;
}

void tu_root_hex(mmsb_engine *e, char hex[33]) {
    mmsb_digest root;
    TU_OK(mmsb_state_root(e, &root));
    TU_OK(mmsb_digest_hex(&root, hex, 33));
}

void tu_roots_match(mmsb_engine *a, mmsb_engine *b, bool want_equal) {
    char ha[33], hb[33];
    tu_root_hex(a, ha);
    tu_root_hex(b, hb);
    if (want_equal) {
        assert_string_equal(ha, hb);
    } else {
        assert_string_not_equal(ha, hb);
    }
}

tu_store tu_store_open(const mmsb_options *o) {
    tu_store s;
    s.dir = tu_dir_new();
    s.e = tu_open(s.dir, o);
    return s;
}

void tu_store_close(tu_store *s) {
    TU_OK(mmsb_close(s->e));
    tu_dir_remove(s->dir);
    s->e = NULL;
    s->dir = NULL;
}

void tu_segment_path(const char *dir, uint64_t segment_no, char *out, size_t out_size) {
    snprintf(out, out_size, "%s/log-%010llu.seg", dir, (unsigned long long)segment_no);
}

void tu_file_read(const char *path, uint64_t off, void *buf, size_t len) {
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

void tu_file_write(const char *path, uint64_t off, const void *buf, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

uint64_t tu_file_size(const char *path) {
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

void tu_file_truncate(const char *path, uint64_t size) {
    assert_int_equal(truncate(path, (off_t)size), 0);
}

void tu_copy_dir(const char *src, const char *dst) {
    mkdir(dst, 0755);
    DIR *d = opendir(src);
    assert_non_null(d);
    char *buf = malloc(1 << 20);
    for (struct dirent *ent; (ent = readdir(d)) != NULL;) {
        if (ent->d_type != DT_REG) continue;
        char from[4096], to[4096];
        snprintf(from, sizeof from, "%s/%s", src, ent->d_name);
        snprintf(to, sizeof to, "%s/%s", dst, ent->d_name);
        int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true(in >= 0 && out >= 0);
        for (ssize_t n; (n = read(in, buf, 1 << 20)) > 0;) assert_int_equal(write(out, buf, (size_t)n), n);
        close(in);
        close(out);
    }
    free(buf);
    closedir(d);
}

void tu_file_copy(const char *from, const char *to) {
    uint64_t size = tu_file_size(from);
    uint8_t *b = malloc(size);
    assert_non_null(b);
    tu_file_read(from, 0, b, size);
    tu_file_write(to, 0, b, size);
    free(b);
}

void tu_file_flip_bit(const char *path, uint64_t off, uint32_t bit) {
    uint8_t b;
    tu_file_read(path, off, &b, 1);
    b ^= (uint8_t)(1u << bit);
    tu_file_write(path, off, &b, 1);
}

void tu_copy_store(const char *src, const char *dst) {
    tu_copy_dir(src, dst);
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/checkpoint", src);
    snprintf(b, sizeof b, "%s/checkpoint", dst);
    struct stat st;
    if (stat(a, &st) == 0) tu_copy_dir(a, b);
}

int tu_log_summarise(const char *dir, tu_log_summary *out) {
    memset(out, 0, sizeof *out);
    mmsb_log_reader *r;
    int rc = mmsb_log_open(dir, 0, &r);
    if (rc != 0) return rc;
    mmsb_log_record rec = {.struct_size = sizeof rec};
    mmsb_digest last = {0};
    for (uint64_t guard = 0; rc == 0 && guard < (1ull << 40); guard++) {
        rc = mmsb_log_next(r, &rec);
        if (rc != 0 || rec.type == MMSB_REC_END) break;
        if (out->records++ == 0) out->first_seq = rec.seq;
        out->by_type[rec.type < 16 ? rec.type : 0]++;
        if (rec.type == MMSB_REC_COMMIT) last = rec.chain;
    }
    mmsb_log_close(r);
    TU_OK(mmsb_digest_hex(&last, out->chain_hex, sizeof out->chain_hex));
    return rc;
}

int tu_log_read_all(const char *dir, uint64_t *records) {
    tu_log_summary sum;
    int rc = tu_log_summarise(dir, &sum);
    *records = sum.records;
    return rc;
}

mmsb_engineinfo tu_info(mmsb_engine *e) {
    mmsb_engineinfo info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    TU_OK(mmsb_engine_info(e, &info));
    return info;
}

int tu_child_start(tu_child_fn fn, const char *dir, void *ctx) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a test that failed */
        if (getppid() == 1) _exit(2);
        fn(dir, ctx, fds[1]);
        _exit(2); /* fn never returns */
    }
    close(fds[1]);
    char c;
    assert_int_equal(read(fds[0], &c, 1), 1);
    close(fds[0]);
    return (int)pid;
}

void tu_child_ready(int ready) {
    if (write(ready, "r", 1) != 1) _exit(3);
    close(ready);
}

void tu_child_kill(int pid) {
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status)); /* it was still running */
}

/* ---- the mmsb program ------------------------------------------------------ */

enum { TOOL_OUT_BYTES_MAX = 1 << 22, TOOL_ARGS_MAX = 12 };

static char tool_path[PATH_MAX + 32];

bool tu_tool_find(void) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return false;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash == NULL) return false;
    *slash = '\0';
    snprintf(tool_path, sizeof tool_path, "%s/../bin/mmsb", self);
    return access(tool_path, X_OK) == 0;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(TOOL_OUT_BYTES_MAX + 1);
    assert_non_null(buf);
    size_t n = fread(buf, 1, TOOL_OUT_BYTES_MAX, f);
    fclose(f);
    buf[n] = '\0';
    if (len != NULL) *len = n;
    return buf;
}

tu_run tu_tool_run(const char *const *args) {
    assert_true(tool_path[0] != '\0'); /* tu_tool_find first */
    char out_path[] = "/tmp/mmsb-tool-out-XXXXXX", err_path[] = "/tmp/mmsb-tool-err-XXXXXX";
    int out_fd = mkstemp(out_path), err_fd = mkstemp(err_path);
    assert_true(out_fd >= 0 && err_fd >= 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(out_fd, 1);
        dup2(err_fd, 2);
        char *argv[TOOL_ARGS_MAX + 2] = {tool_path};
        for (int i = 0; i < TOOL_ARGS_MAX && args[i] != NULL; i++) argv[i + 1] = (char *)args[i];
        setenv("MMSB_NO_PROGRESS", "1", 1);
        execv(tool_path, argv);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    close(out_fd);
    close(err_fd);
    tu_run r = {.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)};
    r.out = slurp(out_path, &r.out_len);
    r.err = slurp(err_path, NULL);
    unlink(out_path);
    unlink(err_path);
    return r;
}

void tu_die_with_parent(pid_t parent) {
    /* A test that crashes (an assertion aborts it) leaves no process behind:
     * the kernel kills the child when the test goes. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(126);
}

int tu_tool_spawn(const char *const *args, const char *log_path) {
    assert_true(tool_path[0] != '\0'); /* tu_tool_find first */
    int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    assert_true(log_fd >= 0);
    pid_t parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        tu_die_with_parent(parent);
        dup2(log_fd, 1);
        dup2(log_fd, 2);
        char *argv[TOOL_ARGS_MAX + 2] = {tool_path};
        for (int i = 0; i < TOOL_ARGS_MAX && args[i] != NULL; i++) argv[i + 1] = (char *)args[i];
        setenv("MMSB_NO_PROGRESS", "1", 1);
        execv(tool_path, argv);
        _exit(127);
    }
    close(log_fd);
    return pid;
}

int tu_tool_wait(int pid) {
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void tu_run_free(tu_run *r) {
    free(r->out);
    free(r->err);
}

int tu_seeds_write(const char *dir, const char *name, int count, uint8_t *(*make)(int which, size_t *size)) {
    char path[4096];
    for (int s = 0; s < count; s++) {
        size_t size;
        uint8_t *seed = make(s, &size);
        snprintf(path, sizeof path, "%s/%s-%d", dir, name, s);
        FILE *f = fopen(path, "wb");
        bool ok = f != NULL && fwrite(seed, 1, size, f) == size;
        if (f != NULL && fclose(f) != 0) ok = false;
        free(seed);
        if (!ok) return 1;
    }
    return 0;
}

void tu_corpus_expect(const char *dir, int (*target)(const uint8_t *data, size_t size)) {
    uint32_t ran = tu_corpus_run(dir, target);
    print_message("%u corpus inputs from %s\n", ran, dir);
    assert_true(ran > 0);
}

uint32_t tu_corpus_run(const char *dir, int (*target)(const uint8_t *data, size_t size)) {
    enum { FILES_MAX = 4096, FILE_BYTES_MAX = 4 << 20 };
    DIR *d = opendir(dir);
    if (d == NULL) fail_msg("corpus %s: %s", dir, strerror(errno));
    uint32_t ran = 0;
    uint8_t *buf = malloc(FILE_BYTES_MAX);
    assert_non_null(buf);
    for (struct dirent *de; ran < FILES_MAX && (de = readdir(d)) != NULL;) {
        if (de->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "rb");
        if (f == NULL) fail_msg("corpus file %s: %s", path, strerror(errno));
        size_t n = fread(buf, 1, FILE_BYTES_MAX, f);
        fclose(f);
        target(buf, n);
        ran++;
    }
    closedir(d);
    free(buf);
    return ran;
}
