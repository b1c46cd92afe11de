/*
 * testutil.c - helpers shared by the test programs (see testutil.h).
 */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
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

void tu_checkpoint_remove(const char *store_dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoint", store_dir);
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void tu_options_small(mmsb_options *o) {
    TU_OK(MMSB_OPTIONS_INIT(o));
    o->arena_bytes_max = 256ull << 20;
    o->arena_grow_bytes = 1ull << 20;
    o->page_bytes_max = 64ull << 20;
    o->pages_max = 1u << 16;
    o->gpu = MMSB_GPU_OFF;
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
