/*
 * test_repl.c - replication through NATS JetStream, against real
 * nats-server processes the test starts on 127.0.0.1 (free ports chosen at
 * run time, temporary directories, each stopped by its PID): a follower
 * catching up and then following live, a shipper killed and restarted,
 * damaged, foreign and missing messages refused, a second store refused,
 * promotion and fencing, and a three-node stream losing a node and then
 * its quorum. Replicas are checked byte for byte against the primary's
 * segments and by `mmsb diff` / `mmsb verify`.
 *
 * Without nats-server the suite says so loudly and skips, unless
 * MMSB_REQUIRE_NATS=1 (CI), where a missing server fails.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tlog/repl/mirror.h"
#include "../tlog/repl/link.h"
#include "testutil.h"

enum { NODES_MAX = 3, WAIT_MS_MAX = 20000 };

typedef struct nats_node {
    int pid;
    int port, cluster_port;
    char dir[512];
    char name[16];
} nats_node;

typedef struct nats_set {
    nats_node node[NODES_MAX];
    int count;
    char *root;
    char url[256];     /* every node's client URL, comma-separated */
} nats_set;

static char nats_server_path[512];

/* Every process a test starts, so that a failed test still stops them. */
enum { PROCS_MAX = 64 };
static int procs[PROCS_MAX];

static void proc_note(int pid) {
    for (int i = 0; i < PROCS_MAX; i++) {
        if (procs[i] == 0) {
            procs[i] = pid;
            return;
        }
    }
    fail_msg("more than %d processes", PROCS_MAX);
}

static void proc_forget(int pid) {
    for (int i = 0; i < PROCS_MAX; i++) {
        if (procs[i] == pid) procs[i] = 0;
    }
}

static int stop_leftovers(void **state) {
    (void)state;
    for (int i = 0; i < PROCS_MAX; i++) {
        if (procs[i] == 0) continue;
        kill(procs[i], SIGKILL);
        waitpid(procs[i], NULL, 0);
        procs[i] = 0;
    }
    return 0;
}

static int spawn_tool(const char *const *args, const char *log) {
    int pid = tu_tool_spawn(args, log);
    proc_note(pid);
    return pid;
}

static int wait_tool(int pid) {
    proc_forget(pid);
    return tu_tool_wait(pid);
}

static void sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool find_nats_server(void) {
    const char *dirs[] = {"/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(nats_server_path, sizeof nats_server_path, "%s/nats-server", dirs[i]);
        if (access(nats_server_path, X_OK) == 0) return true;
    }
    return false;
}

/* A port the kernel just handed out on loopback (free now, very likely free
 * a moment later). */
static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_open(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void node_start(nats_set *s, int i) {
    nats_node *n = &s->node[i];
    char port[16], cport[32], routes[256] = "", logp[600];
    snprintf(port, sizeof port, "%d", n->port);
    snprintf(cport, sizeof cport, "nats://127.0.0.1:%d", n->cluster_port);
    for (int k = 0; k < s->count; k++) {
        if (k == i) continue;
        size_t used = strlen(routes);
        snprintf(routes + used, sizeof routes - used, "%snats://127.0.0.1:%d", used ? "," : "",
                 s->node[k].cluster_port);
    }
    snprintf(logp, sizeof logp, "%s.log", n->dir);
    pid_t parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        tu_die_with_parent(parent);
        int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        const char *argv[24] = {nats_server_path, "-a", "127.0.0.1", "-p", port, "-js", "-sd", n->dir, "-n", n->name};
        int c = 10;
        if (s->count > 1) {
            argv[c++] = "--cluster_name";
            argv[c++] = "mmsbtest";
            argv[c++] = "--cluster";
            argv[c++] = cport;
            argv[c++] = "--routes";
            argv[c++] = routes;
        }
        argv[c] = NULL;
        execv(nats_server_path, (char *const *)argv);
        _exit(127);
    }
    n->pid = pid;
    proc_note(pid);
    for (int waited = 0; !port_open(n->port); waited += 20) {
        if (waited > WAIT_MS_MAX) fail_msg("nats-server %s did not listen on %d (see %s)", n->name, n->port, logp);
        sleep_ms(20);
    }
}

static void node_stop(nats_set *s, int i, int sig) {
    nats_node *n = &s->node[i];
    if (n->pid <= 0) return;
    kill(n->pid, sig);
    int status;
    waitpid(n->pid, &status, 0);
    proc_forget(n->pid);
    n->pid = 0;
}

/* Starts `count` nodes (a cluster when more than one), JetStream on. */
static nats_set *nats_up(int count) {
    nats_set *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->count = count;
    s->root = tu_dir_new();
    for (int i = 0; i < count; i++) {
        nats_node *n = &s->node[i];
        n->port = free_port();
        n->cluster_port = free_port();
        snprintf(n->name, sizeof n->name, "n%d", i + 1);
        snprintf(n->dir, sizeof n->dir, "%s/%s", s->root, n->name);
        size_t used = strlen(s->url);
        snprintf(s->url + used, sizeof s->url - used, "%snats://127.0.0.1:%d", i ? "," : "", n->port);
    }
    for (int i = 0; i < count; i++) node_start(s, i);
    return s;
}

static void nats_down(nats_set *s) {
    for (int i = 0; i < s->count; i++) node_stop(s, i, SIGTERM);
    tu_dir_remove(s->root);
    free(s);
}

static int skip_without_nats(void **state) {
    (void)state;
    if (find_nats_server()) return 0;
    const char *req = getenv("MMSB_REQUIRE_NATS");
    if (req != NULL && strcmp(req, "1") == 0) fail_msg("nats-server is not installed and MMSB_REQUIRE_NATS=1");
    return 0;
}

#define NEED_NATS()                                                                                   \
    do {                                                                                              \
        if (nats_server_path[0] == '\0' || access(nats_server_path, X_OK) != 0) {                     \
            fprintf(stderr, "\n*** SKIPPED: nats-server is not installed (make deps installs it) ***\n\n"); \
            skip();                                                                                   \
        }                                                                                             \
    } while (0)

/* ---- stores ------------------------------------------------------------------------- */

/* A writer's store with small segments (4 MiB), so that groups straddle. */
static mmsb_engine *store_open(const char *dir) {
    mmsb_options o;
    tu_options_small(&o);
    return tu_open(dir, &o);
}

/* Commits `count` writes of `bytes` each to page `page` (created when 0),
 * varied by seed. */
static uint64_t store_write(mmsb_engine *e, uint64_t page, uint32_t count, uint32_t bytes, uint64_t seed) {
    static uint8_t buf[64 << 10];
    assert_true(bytes <= sizeof buf);
    rng r = {seed};
    if (page == 0) TU_OK(mmsb_page_create(e, sizeof buf, 0, &page));
    for (uint32_t i = 0; i < count; i++) {
        rng_fill(&r, buf, bytes);
        uint64_t off = rng_below(&r, sizeof buf - bytes + 1);
        TU_OK(mmsb_write(e, page, off, buf, bytes, NULL));
    }
    return page;
}

static uint64_t commit_seq_of(mmsb_engine *e) { return tu_info(e).commit_seq; }

/* The replica's last commit as a read-only open sees it. */
static uint64_t replica_seq(const char *dir) {
    mmsb_options o;
    tu_options_small(&o);
    o.flags = MMSB_OPEN_READONLY;
    mmsb_engine *e = NULL;
    if (mmsb_open(dir, &o, &e) != 0) return 0;
    uint64_t seq = tu_info(e).commit_seq;
    mmsb_close(e);
    return seq;
}

/* Every segment of the replica equals the primary's, byte for byte, up to
 * the replica's end; the stores' states are the same. */
static void assert_same_log(const char *primary, const char *replica) {
    uint32_t compared = 0;
    for (uint64_t seg = 1;; seg++) {
        char a[600], b[600];
        tu_segment_path(primary, seg, a, sizeof a);
        tu_segment_path(replica, seg, b, sizeof b);
        if (access(b, F_OK) != 0) {
            assert_true(compared >= 1);
            break;
        }
        if (access(a, F_OK) != 0) continue; /* the primary's checkpoint removed it: the replica keeps its log */
        compared++;
        uint64_t size = tu_file_size(b);
        assert_int_equal(size, tu_file_size(a));
        uint8_t *x = malloc(size), *y = malloc(size);
        tu_file_read(a, 0, x, size);
        tu_file_read(b, 0, y, size);
        if (memcmp(x, y, size) != 0) fail_msg("segment %llu differs", (unsigned long long)seg);
        free(x);
        free(y);
    }
    tu_run r = TOOL(0, "diff", primary, replica);
    tu_run_free(&r);
    r = TOOL(0, "verify", replica);
    tu_run_free(&r);
}

static int ship_once(nats_set *s, const char *dir, const char *stream, int want) {
    tu_run r = TOOL(want, "ship", dir, "--server", s->url, "--stream", stream, "--create", "--once");
    int st = r.status;
    tu_run_free(&r);
    return st;
}

static void follow_once(nats_set *s, const char *dir, const char *stream, int want, const char *err_has) {
    tu_run r = TOOL(want, "follow", dir, "--server", s->url, "--stream", stream, "--once");
    if (err_has != NULL && strstr(r.err, err_has) == NULL) fail_msg("follow: no '%s' in: %s", err_has, r.err);
    tu_run_free(&r);
}

static void wait_for_ms(const char *replica, uint64_t seq, int ms_max) {
    for (int waited = 0; replica_seq(replica) < seq; waited += 20) {
        if (waited > ms_max) fail_msg("the replica did not reach record %llu", (unsigned long long)seq);
        sleep_ms(20);
    }
}

static void wait_for(const char *replica, uint64_t seq) { wait_for_ms(replica, seq, WAIT_MS_MAX); }

static void stop_tool(int pid) {
    kill(pid, SIGTERM);
    int st = wait_tool(pid);
    assert_int_equal(st, 0);
}

/* ---- the stream as it is ---------------------------------------------------------- */

typedef struct stream_copy {
    uint64_t count;
    frame_meta meta[64];
    uint8_t *body[64];
    uint64_t len[64];
} stream_copy;

/* Reads every message of a stream; checks that each continues the last:
 * no gap and no message sent twice. */
static void stream_read(nats_set *s, const char *stream, stream_copy *out) {
    nats_link *l = NULL;
    TU_OK(link_open(s->url, stream, 5000, &l));
    link_stream ls;
    TU_OK(link_stream_info(l, &ls));
    assert_true(ls.exists && ls.last_seq <= 64);
    memset(out, 0, sizeof *out);
    log_point end = {1, 0};
    for (uint64_t seq = 1; seq <= ls.last_seq; seq++) {
        link_msg m;
        TU_OK(link_get(l, seq, &m));
        frame_meta *f = &out->meta[out->count];
        TU_OK(frame_parse(m.values, m.len, f));
        bool next_segment = f->at.offset == 0 && f->at.segment == end.segment + 1;
        if (log_point_cmp(f->at, end) != 0 && !next_segment && !(seq == 1 && f->at.offset == 0)) {
            fail_msg("stream %s message %llu at %llu:%llu does not continue %llu:%llu", stream,
                     (unsigned long long)seq, (unsigned long long)f->at.segment, (unsigned long long)f->at.offset,
                     (unsigned long long)end.segment, (unsigned long long)end.offset);
        }
        end = (log_point){f->at.segment, f->at.offset + m.len};
        out->body[out->count] = malloc(m.len);
        memcpy(out->body[out->count], m.data, m.len);
        out->len[out->count++] = m.len;
        link_msg_free(&m);
    }
    link_close(l);
}

static void stream_copy_free(stream_copy *c) {
    for (uint64_t i = 0; i < c->count; i++) free(c->body[i]);
}

/* ---- the scenarios ------------------------------------------------------------------ */

static void test_follow_catches_up_then_live(void **state) {
    (void)state;
    NEED_NATS();
    nats_set *s = nats_up(1);
    char *dir = tu_dir_new(), *rep = tu_dir_new();
    mmsb_engine *e = store_open(dir);
    uint64_t page = store_write(e, 0, 200, 4096, 1);
    ship_once(s, dir, "live", 0);
    follow_once(s, rep, "live", 0, NULL);
    assert_int_equal(replica_seq(rep), commit_seq_of(e));

    char ship_log[600], follow_log[600];
    snprintf(ship_log, sizeof ship_log, "%s/ship.log", s->root);
    snprintf(follow_log, sizeof follow_log, "%s/follow.log", s->root);
    const char *ship_args[] = {"ship", dir, "--server", s->url, "--stream", "live", NULL};
    const char *follow_args[] = {"follow", rep, "--server", s->url, "--stream", "live", NULL};
    int ship = spawn_tool(ship_args, ship_log);
    int follow = spawn_tool(follow_args, follow_log);
    for (uint32_t round = 0; round < 5; round++) { /* 24 MiB: commits straddle 4 MiB segments */
        store_write(e, page, 300, 16384, 10 + round);
        wait_for(rep, commit_seq_of(e));
    }
    stop_tool(ship);
    stop_tool(follow);
    /* A writer cannot open a replica; a reader can. */
    mmsb_options o;
    tu_options_small(&o);
    mmsb_engine *w = NULL;
    TU_ERR(mmsb_open(rep, &o, &w), MMSB_EREADONLY);
    assert_non_null(strstr(mmsb_last_error(), "mmsb promote"));

    char root[33];
    tu_root_hex(e, root);
    TU_OK(mmsb_close(e)); /* the clean close's commit ships too */
    tu_run lag = TOOL(0, "stats", dir, "--server", s->url);
    assert_non_null(strstr(lag.out, "stream live: holds the log up to record")); /* its pin's stream */
    assert_null(strstr(lag.out, "it lacks 0 records")); /* the clean close's commit is not shipped yet */
    tu_run_free(&lag);
    ship_once(s, dir, "live", 0);
    lag = TOOL(0, "stats", dir, "--server", s->url);
    assert_non_null(strstr(lag.out, "it lacks 0 records, 0 bytes"));
    tu_run_free(&lag);
    lag = TOOL(0, "stats", rep, "--server", s->url, "--json");
    assert_non_null(strstr(lag.out, "\"role\":\"follows\""));
    assert_null(strstr(lag.out, "\"behind_records\":0,")); /* the replica lags the close's commit */
    tu_run_free(&lag);
    tu_run fr = TOOL(0, "follow", rep, "--server", s->url, "--stream", "live", "--once");
    if (strstr(fr.out, root) == NULL) fail_msg("follow does not report the primary's root %s: %s", root, fr.out);
    tu_run_free(&fr);
    lag = TOOL(0, "stats", rep, "--server", s->url);
    assert_non_null(strstr(lag.out, "the replica lags 0 records, 0 bytes, 0.000 s"));
    tu_run_free(&lag);
    lag = TOOL(2, "stats", rep, "--server", "nats://127.0.0.1:1"); /* no server there */
    assert_non_null(strstr(lag.out, "cannot be asked"));
    tu_run_free(&lag);
    assert_same_log(dir, rep);
    tu_run st = TOOL(0, "stats", rep);
    assert_non_null(strstr(st.out, "replica: follows the stream live"));
    tu_run_free(&st);
    tu_dir_remove(dir);
    tu_dir_remove(rep);
    nats_down(s);
}

static void test_shipper_killed_resumes_without_gap_or_duplicate(void **state) {
    (void)state;
    NEED_NATS();
    nats_set *s = nats_up(1);
    char *dir = tu_dir_new(), *rep = tu_dir_new();
    mmsb_engine *e = store_open(dir);
    store_write(e, 0, 1400, 16384, 2); /* about 22 MiB: one group of about 22 messages */
    char log[600];
    snprintf(log, sizeof log, "%s/ship.log", s->root);
    const char *args[] = {"ship", dir, "--server", s->url, "--stream", "kill", "--create", NULL};
    int ship = spawn_tool(args, log);
    nats_link *l = NULL;
    TU_OK(link_open(s->url, "kill", 5000, &l));
    link_stream ls = {0};
    for (int waited = 0; !ls.exists || ls.messages < 3; waited++) {
        if (waited > WAIT_MS_MAX) fail_msg("the shipper published nothing");
        sleep_ms(1);
        TU_OK(link_stream_info(l, &ls));
    }
    kill(ship, SIGKILL);
    assert_int_equal(wait_tool(ship), 128 + SIGKILL);
    link_close(l);
    store_write(e, 0, 50, 1024, 3);
    ship_once(s, dir, "kill", 0);
    ship_once(s, dir, "kill", 0); /* nothing new: publishes nothing */
    stream_copy c;
    stream_read(s, "kill", &c); /* every message continues the last */
    stream_copy_free(&c);
    follow_once(s, rep, "kill", 0, NULL);
    assert_int_equal(replica_seq(rep), commit_seq_of(e));
    TU_OK(mmsb_close(e));
    ship_once(s, dir, "kill", 0);
    follow_once(s, rep, "kill", 0, NULL);
    assert_same_log(dir, rep);
    tu_dir_remove(dir);
    tu_dir_remove(rep);
    nats_down(s);
}

typedef enum { DAMAGE_BYTE, DAMAGE_SALT, DAMAGE_GAP, DAMAGE_CHAIN, DAMAGE_COUNT } damage;

/* Copies the good stream into a new one with message k damaged, and has a
 * fresh follower read it: refused at k, holding exactly what came before. */
static void follow_damaged(nats_set *s, const stream_copy *good, uint64_t k, damage d) {
    static const char *names[DAMAGE_COUNT] = {"bad-byte", "bad-salt", "bad-gap", "bad-chain"};
    static const char *words[DAMAGE_COUNT] = {"refused", "another store", "a gap", "chain value"};
    nats_link *l = NULL;
    TU_OK(link_open(s->url, names[d], 5000, &l));
    TU_OK(link_stream_create(l, 1));
    uint64_t last = 0;
    for (uint64_t i = 0; i < good->count; i++) {
        frame_meta m = good->meta[i];
        uint8_t *body = malloc(good->len[i]);
        memcpy(body, good->body[i], good->len[i]);
        if (i == k && d == DAMAGE_GAP) {
            free(body);
            continue;
        }
        if (i == k && d == DAMAGE_BYTE) body[REC_HEADER_BYTES + 1] ^= 0x10; /* the first record's payload */
        if (i == k && d == DAMAGE_SALT) m.salt ^= 1;
        if (i == k && d == DAMAGE_CHAIN) m.chain.lo ^= 1;
        bool dup = false;
        TU_OK(link_publish(l, &m, body, good->len[i], last, &last, &dup));
        free(body);
    }
    link_close(l);
    char *rep = tu_dir_new();
    follow_once(s, rep, names[d], 1, words[d]);
    assert_int_equal(replica_seq(rep), good->meta[k - 1].last_seq);
    tu_run r = TOOL(0, "verify", rep);
    tu_run_free(&r);
    follow_once(s, rep, names[d], 1, words[d]); /* and again after a restart */
    assert_int_equal(replica_seq(rep), good->meta[k - 1].last_seq);
    tu_dir_remove(rep);
}

static void test_damaged_foreign_and_missing_messages_refused(void **state) {
    (void)state;
    NEED_NATS();
    nats_set *s = nats_up(1);
    char *dir = tu_dir_new();
    mmsb_engine *e = store_open(dir);
    uint64_t page = 0;
    for (uint32_t g = 0; g < 4; g++) { /* four groups, one message each */
        page = store_write(e, page, 40, 1024, 20 + g);
        ship_once(s, dir, "good", 0);
    }
    stream_copy good;
    stream_read(s, "good", &good);
    assert_int_equal(good.count, 4);
    assert_true(good.meta[2].flags == (FRAME_FIRST | FRAME_LAST) && good.meta[2].at.offset > 0);
    for (damage d = 0; d < DAMAGE_COUNT; d++) follow_damaged(s, &good, 2, d);
    stream_copy_free(&good);

    /* Another store cannot ship into this one's stream. */
    char *other = tu_dir_new();
    mmsb_engine *e2 = store_open(other);
    store_write(e2, 0, 5, 64, 9);
    tu_run r = TOOL(1, "ship", other, "--server", s->url, "--stream", "good", "--once");
    assert_non_null(strstr(r.err, "another store"));
    tu_run_free(&r);
    TU_OK(mmsb_close(e2));
    TU_OK(mmsb_close(e));
    tu_dir_remove(other);
    tu_dir_remove(dir);
    nats_down(s);
}

static void test_promote_and_fence(void **state) {
    (void)state;
    NEED_NATS();
    nats_set *s = nats_up(1);
    char *dir = tu_dir_new(), *rep = tu_dir_new(), *third = tu_dir_new();
    mmsb_engine *a = store_open(dir);
    uint64_t page = store_write(a, 0, 100, 2048, 30);
    ship_once(s, dir, "pf", 0);
    follow_once(s, rep, "pf", 0, NULL);
    /* A replica that lags is not promoted (unless forced). */
    store_write(a, page, 10, 2048, 31);
    ship_once(s, dir, "pf", 0);
    tu_run r = TOOL(1, "promote", rep, "--server", s->url);
    assert_non_null(strstr(r.err, "follow --once"));
    tu_run_free(&r);
    follow_once(s, rep, "pf", 0, NULL);
    r = TOOL(0, "promote", rep, "--server", s->url);
    tu_run_free(&r);
    r = TOOL(1, "promote", rep); /* not a replica any more */
    tu_run_free(&r);

    /* The new writer continues the log and ships into the same stream. */
    mmsb_engine *b = store_open(rep);
    store_write(b, page, 20, 512, 32);
    TU_OK(mmsb_close(b));
    ship_once(s, rep, "pf", 0);
    /* The old primary is fenced: the stream holds another history now. */
    store_write(a, page, 5, 512, 33);
    r = TOOL(1, "ship", dir, "--server", s->url, "--stream", "pf", "--once");
    assert_non_null(strstr(r.err, "fenced"));
    tu_run_free(&r);
    follow_once(s, third, "pf", 0, NULL);
    assert_same_log(rep, third);
    TU_OK(mmsb_close(a));
    tu_dir_remove(dir);
    tu_dir_remove(rep);
    tu_dir_remove(third);
    nats_down(s);
}

/* The first publish to a new three-node stream waits for its leader. */
static void ship_until_ok(nats_set *s, const char *dir, const char *stream) {
    for (int tries = 0;; tries++) {
        const char *args[] = {"ship", dir, "--server", s->url, "--stream", stream, "--create", "--replicas", "3",
                              "--once", NULL};
        tu_run r = tu_tool_run(args);
        int st = r.status;
        if (st != 0 && tries >= 100) fail_msg("ship to the cluster: %s", r.err);
        tu_run_free(&r);
        if (st == 0) return;
        sleep_ms(200);
    }
}

static void test_three_nodes_lose_one_then_the_quorum(void **state) {
    (void)state;
    NEED_NATS();
    nats_set *s = nats_up(3);
    char *dir = tu_dir_new(), *rep = tu_dir_new();
    mmsb_engine *e = store_open(dir);
    uint64_t page = store_write(e, 0, 50, 1024, 40);
    ship_until_ok(s, dir, "r3");
    char log[600];
    snprintf(log, sizeof log, "%s/ship.log", s->root);
    const char *args[] = {"ship", dir, "--server", s->url, "--stream", "r3", NULL};
    int ship = spawn_tool(args, log);
    const char *fargs[] = {"follow", rep, "--server", s->url, "--stream", "r3", NULL};
    char flog[600];
    snprintf(flog, sizeof flog, "%s/follow.log", s->root);
    int follow = spawn_tool(fargs, flog);
    store_write(e, page, 100, 1024, 41);
    wait_for(rep, commit_seq_of(e));
    node_stop(s, 1, SIGKILL); /* one of three: the stream goes on (once it has elected new leaders) */
    store_write(e, page, 100, 1024, 42);
    wait_for_ms(rep, commit_seq_of(e), 90000);
    node_start(s, 1);
    store_write(e, page, 100, 1024, 43);
    wait_for(rep, commit_seq_of(e));
    stop_tool(follow);

    node_stop(s, 0, SIGKILL); /* two of three: no quorum; the shipper waits and tries again */
    node_stop(s, 1, SIGKILL);
    store_write(e, page, 10, 1024, 44);
    sleep_ms(1500);
    int st = 0;
    assert_int_equal(waitpid(ship, &st, WNOHANG), 0); /* still running */
    node_start(s, 0);
    node_start(s, 1);
    follow = spawn_tool(fargs, flog);
    wait_for_ms(rep, commit_seq_of(e), 90000); /* the quorum returned: the same commits shipped */
    stop_tool(follow);
    stop_tool(ship);
    TU_OK(mmsb_close(e));
    ship_until_ok(s, dir, "r3");
    follow_once(s, rep, "r3", 0, NULL);
    assert_same_log(dir, rep);
    tu_dir_remove(dir);
    tu_dir_remove(rep);
    nats_down(s);
}

/* ---- the writer publishes itself: MMSB_DURABILITY_REPLICATED ------------------------- */

static mmsb_engine *replicated_open(nats_set *s, const char *dir, const char *stream, uint64_t timeout_ms,
                                    uint32_t create, int *rc_out) {
    mmsb_options o;
    tu_options_small(&o);
    o.durability = MMSB_DURABILITY_REPLICATED;
    o.replication_servers = s->url;
    o.replication_stream = stream;
    o.replication_timeout_ms = timeout_ms;
    o.replication_create = create;
    mmsb_engine *e = NULL;
    int rc = mmsb_open(dir, &o, &e);
    if (rc_out != NULL) *rc_out = rc;
    else if (rc != 0) fail_msg("mmsb_open with replication: %s", mmsb_last_error());
    return e;
}

/* Writes and waits until the stream holds the last commit (tries again
 * while a cluster elects a new leader). */
static uint64_t write_replicated(mmsb_engine *e, uint64_t page, uint32_t count, uint64_t seed, uint32_t tries) {
    store_write(e, page, count, 512, seed);
    uint64_t seq = commit_seq_of(e);
    int rc = -1;
    for (uint32_t t = 0; t < tries && rc != 0; t++) rc = mmsb_wait_replicated(e, seq);
    if (rc != 0) fail_msg("mmsb_wait_replicated(%llu): %s", (unsigned long long)seq, mmsb_last_error());
    return seq;
}

static void test_replicated_durability_acknowledges_what_the_stream_holds(void **state) {
    (void)state;
    NEED_NATS();
    nats_set *s = nats_up(1);
    char *dir = tu_dir_new(), *rep = tu_dir_new(), *plain = tu_dir_new();
    /* Without replication the mode and the wait are refused. */
    mmsb_engine *p = store_open(plain);
    TU_ERR(mmsb_set_durability(p, MMSB_DURABILITY_REPLICATED), MMSB_EINVAL);
    store_write(p, 0, 1, 8, 1);
    TU_ERR(mmsb_wait_replicated(p, commit_seq_of(p)), MMSB_EINVAL);
    TU_OK(mmsb_close(p));
    int rc = 0;
    replicated_open(s, dir, "wr", 2000, 0, &rc); /* the stream must exist unless asked to create it */
    assert_int_equal(rc, MMSB_ENOTFOUND);

    mmsb_engine *e = replicated_open(s, dir, "wr", 2000, 1, NULL);
    uint64_t page = store_write(e, 0, 1, 8, 2);
    uint64_t seq = write_replicated(e, page, 200, 3, 1);
    mmsb_engineinfo info = tu_info(e);
    assert_true(info.replicated_seq >= seq && info.replication_lag_records == 0 && info.replication_lag_bytes == 0);
    assert_non_null(strstr(info.replication, "stream wr"));
    TU_ERR(mmsb_wait_replicated(e, seq + 1000), MMSB_EINVAL);
    TU_OK(mmsb_close(e)); /* ships its clean close */
    follow_once(s, rep, "wr", 0, NULL);
    assert_same_log(dir, rep);

    /* Reopened, it continues the stream; a replica keeps up. */
    e = replicated_open(s, dir, "wr", 2000, 0, NULL);
    seq = write_replicated(e, page, 100, 4, 1);
    follow_once(s, rep, "wr", 0, NULL);
    assert_true(replica_seq(rep) >= seq);

    /* Promoted, the replica's writer takes the stream over: the old one is
     * fenced, and stays so when reopened. */
    tu_run r = TOOL(0, "promote", rep, "--server", s->url);
    tu_run_free(&r);
    mmsb_engine *b = replicated_open(s, rep, "wr", 2000, 0, NULL);
    write_replicated(b, page, 10, 5, 1);
    store_write(e, page, 1, 8, 6);
    TU_ERR(mmsb_wait_replicated(e, commit_seq_of(e)), MMSB_EFENCED);
    TU_ERR(mmsb_write(e, page, 0, "x", 1, NULL), MMSB_EFENCED);
    mmsb_close(e); /* reports the fencing */
    replicated_open(s, dir, "wr", 2000, 0, &rc);
    assert_int_equal(rc, MMSB_EFENCED);
    TU_OK(mmsb_close(b));
    tu_dir_remove(dir);
    tu_dir_remove(rep);
    tu_dir_remove(plain);
    nats_down(s);
}

static void test_replicated_commits_through_node_loss_and_quorum_loss(void **state) {
    (void)state;
    NEED_NATS();
    nats_set *s = nats_up(3);
    char *dir = tu_dir_new(), *rep = tu_dir_new();
    mmsb_engine *e = NULL;
    for (int tries = 0; e == NULL; tries++) { /* the cluster elects its leaders first */
        int rc = 0;
        e = replicated_open(s, dir, "q3", 1500, 3, &rc);
        if (e == NULL && tries > 60) fail_msg("open with a three-node stream: %s", mmsb_last_error());
        if (e == NULL) sleep_ms(250);
    }
    uint64_t page = store_write(e, 0, 1, 8, 1);
    write_replicated(e, page, 50, 2, 20);
    node_stop(s, 2, SIGKILL); /* one of three: commits go on */
    write_replicated(e, page, 50, 3, 20);
    node_stop(s, 1, SIGKILL); /* two of three: nothing is acknowledged */
    store_write(e, page, 5, 512, 4);
    uint64_t seq = commit_seq_of(e);
    int rc = mmsb_wait_replicated(e, seq);
    assert_int_equal(rc, MMSB_EREPLICA);
    node_start(s, 1); /* the quorum returns: the same commits ship */
    node_start(s, 2);
    for (int waited_ms = 0; (rc = mmsb_wait_replicated(e, seq)) != 0; waited_ms += 250) {
        if (waited_ms > 90000) fail_msg("the quorum returned, the commit did not ship: %s", mmsb_last_error());
        sleep_ms(250); /* the cluster elects its leaders again */
    }
    TU_OK(mmsb_close(e));
    follow_once(s, rep, "q3", 0, NULL);
    assert_same_log(dir, rep);
    tu_dir_remove(dir);
    tu_dir_remove(rep);
    nats_down(s);
}

/* The primary, in a process of its own (this program run again, so that
 * it starts with no NATS connection of the parent's): REPLICATED commits,
 * each acknowledgement noted in a file. */
static int primary_main(const char *dir, const char *url, const char *acked_path) {
    nats_set s = {.count = 1};
    snprintf(s.url, sizeof s.url, "%s", url);
    mmsb_engine *e = replicated_open(&s, dir, "kp", 3000, 0, NULL);
    uint64_t page = 0;
    if (mmsb_page_create(e, 65536, 0, &page) != 0) return 3;
    int fd = open(acked_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    for (uint64_t i = 0;; i++) {
        uint8_t buf[256];
        memset(buf, (int)(i & 0xff), sizeof buf);
        memcpy(buf, &i, sizeof i); /* every write changes bytes */
        mmsb_change ch;
        if (mmsb_write(e, page, (i * 256) % 65280, buf, sizeof buf, &ch) != 0) return 4;
        if (ch.commit_seq == 0) continue; /* the same bytes again: no commit */
        if (mmsb_wait_replicated(e, ch.commit_seq) != 0) {
            fprintf(stderr, "primary: commit %llu: %s\n", (unsigned long long)ch.commit_seq, mmsb_last_error());
            return 5;
        }
        if (write(fd, &ch.commit_seq, sizeof ch.commit_seq) != sizeof ch.commit_seq) return 6;
    }
}

static int primary_start(const char *dir, const char *url, const char *acked_path) {
    pid_t parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        tu_die_with_parent(parent);
        const char *argv[] = {"/proc/self/exe", "--primary", dir, url, acked_path, NULL};
        execv("/proc/self/exe", (char *const *)argv);
        _exit(127);
    }
    proc_note(pid);
    return pid;
}

static void test_primary_killed_promoted_replica_holds_every_acknowledged_commit(void **state) {
    (void)state;
    NEED_NATS();
    nats_set *s = nats_up(1);
    char *dir = tu_dir_new(), *rep = tu_dir_new();
    mmsb_engine *e = replicated_open(s, dir, "kp", 3000, 1, NULL); /* creates the stream */
    store_write(e, 0, 10, 64, 1);
    TU_OK(mmsb_wait_replicated(e, commit_seq_of(e)));
    TU_OK(mmsb_close(e));
    char acked_path[600];
    snprintf(acked_path, sizeof acked_path, "%s/acked", s->root);
    int child = primary_start(dir, s->url, acked_path);
    for (int waited = 0; access(acked_path, F_OK) != 0 || tu_file_size(acked_path) < 8 * 300; waited++) {
        int st = 0;
        if (waitpid(child, &st, WNOHANG) == child) fail_msg("the primary stopped: exit %d", WEXITSTATUS(st));
        if (waited > WAIT_MS_MAX) fail_msg("the primary acknowledged too little");
        sleep_ms(1);
    }
    tu_child_kill(child);
    proc_forget(child);
    uint64_t n = tu_file_size(acked_path) / 8, acked = 0;
    tu_file_read(acked_path, (n - 1) * 8, &acked, 8);
    follow_once(s, rep, "kp", 0, NULL);
    tu_run r = TOOL(0, "promote", rep, "--server", s->url);
    tu_run_free(&r);
    assert_true(replica_seq(rep) >= acked); /* nothing acknowledged is lost */
    e = replicated_open(s, rep, "kp", 3000, 0, NULL);
    write_replicated(e, 1, 3, 7, 1);
    TU_OK(mmsb_close(e));
    int rc = 0;
    replicated_open(s, dir, "kp", 3000, 0, &rc); /* the old primary comes back: fenced */
    assert_int_equal(rc, MMSB_EFENCED);
    tu_dir_remove(dir);
    tu_dir_remove(rep);
    nats_down(s);
}

/* ---- the framing alone ------------------------------------------------------------ */

/* ---- the replica's pages --------------------------------------------------------------- */

/* A user operation that fails when its parent's first byte is 0xff: that
 * commit is rolled back, and the log holds its records and an ABORT. */
static int op_refusing_ff(void *user, const mmsb_op_input *in, uint8_t *out, uint64_t out_len) {
    (void)user;
    const uint8_t *p = in->parent_bytes[0];
    if (p[0] == 0xff) return 1;
    for (uint64_t i = 0; i < out_len; i++) out[i] = (uint8_t)(p[i % in->parent_sizes[0]] ^ 0x5a);
    return 0;
}

/* A reader of the replica's pages in another thread: role-taking calls
 * (the info, the state root) and seqlocked reads, until told to stop. */
typedef struct pages_reader {
    mmsb_engine *pages;
    uint64_t page;
    atomic_bool stop;
    uint64_t calls, busy, failures;
} pages_reader;

static void *read_pages(void *arg) {
    pages_reader *pr = arg;
    uint8_t b[64];
    while (!atomic_load(&pr->stop)) {
        mmsb_engineinfo info = {.struct_size = sizeof info};
        mmsb_digest root;
        int rc1 = mmsb_engine_info(pr->pages, &info), rc2 = mmsb_state_root(pr->pages, &root);
        int rc3 = mmsb_page_read(pr->pages, pr->page, 0, b, sizeof b, NULL);
        pr->calls++;
        pr->busy += (rc1 == MMSB_EBUSY) + (rc2 == MMSB_EBUSY);
        pr->failures += (rc1 != 0 && rc1 != MMSB_EBUSY) + (rc2 != 0 && rc2 != MMSB_EBUSY) + (rc3 != 0);
    }
    return NULL;
}

static void replica_poll_to(mmsb_replica *r, uint64_t seq) {
    mmsb_replica_info info = {.struct_size = sizeof info};
    for (uint32_t tries = 0; tries < 400 && info.commit_seq < seq; tries++) {
        TU_OK(mmsb_replica_poll(r, 50, NULL));
        TU_OK(mmsb_replica_info_get(r, &info));
    }
    assert_int_equal(info.commit_seq, seq);
}

static void assert_same_root(mmsb_engine *a, mmsb_engine *b) {
    char x[33], y[33];
    tu_root_hex(a, x);
    tu_root_hex(b, y);
    assert_string_equal(x, y);
}

/* The primary's history with every kind of record: derived pages, an
 * aborted commit, a transaction, a freed page. */
static uint64_t primary_history(mmsb_engine *e, uint64_t *child_out) {
    uint64_t page = store_write(e, 0, 50, 4096, 3), child = 0, gone = 0;
    TU_OK(mmsb_op_register(e, MMSB_OP_USER_FIRST, 1, op_refusing_ff, NULL));
    TU_OK(mmsb_page_create(e, 4096, 0, &child));
    mmsb_derive_spec spec = {.struct_size = sizeof spec, .op = MMSB_OP_USER_FIRST, .parents = &page,
                             .parent_count = 1};
    TU_OK(mmsb_derive(e, child, &spec, NULL));
    const uint8_t ff = 0xff;
    TU_ERR(mmsb_write(e, page, 0, &ff, 1, NULL), MMSB_EOP);
    mmsb_txn *t = NULL;
    TU_OK(mmsb_txn_begin(e, &t));
    TU_OK(mmsb_txn_write(t, page, 100, "abc", 3));
    TU_OK(mmsb_txn_write(t, page, 9000, "defg", 4));
    TU_OK(mmsb_txn_commit(t, MMSB_DURABILITY_NONE, NULL));
    TU_OK(mmsb_page_create(e, 512, 0, &gone));
    TU_OK(mmsb_page_free(e, gone));
    TU_OK(mmsb_sync(e));
    *child_out = child;
    return page;
}

static void test_replica_pages_follow_the_primary_and_attach(void **state) {
    (void)state;
    NEED_NATS();
    nats_set *s = nats_up(1);
    char *dir = tu_dir_new(), *rep = tu_dir_new(), *small = tu_dir_new();
    mmsb_engine *e = store_open(dir);
    uint64_t child = 0, page = primary_history(e, &child);
    ship_once(s, dir, "pages", 0);
    mmsb_replica *r = NULL;
    TU_OK(mmsb_replica_open(rep, s->url, "pages", &r));
    replica_poll_to(r, commit_seq_of(e));
    mmsb_engine *re = NULL;
    TU_ERR(mmsb_replica_engine(r, NULL), MMSB_EINVAL);
    TU_OK(mmsb_replica_engine(r, &re));
    assert_same_root(e, re);
    uint8_t a[4096], b[4096];
    TU_OK(mmsb_page_read(e, child, 0, a, sizeof a, NULL));
    TU_OK(mmsb_page_read(re, child, 0, b, sizeof b, NULL));
    assert_memory_equal(a, b, sizeof a);
    TU_ERR(mmsb_write(re, page, 0, "x", 1, NULL), MMSB_EREADONLY);
    TU_ERR(mmsb_close(re), MMSB_EINVAL);

    /* Another process's view: attached to the follower, it moves as groups arrive. */
    mmsb_attach *at = NULL;
    TU_OK(mmsb_attach_open(rep, &at));
    TU_OK(mmsb_write(e, page, 64, "live", 4, NULL));
    TU_OK(mmsb_sync(e));
    ship_once(s, dir, "pages", 0);
    mmsb_replica_info behind = {.struct_size = sizeof behind};
    TU_OK(mmsb_replica_info_get(r, &behind));
    assert_true(behind.lag_records >= 1 && behind.lag_bytes >= 64);
    uint8_t small_info[sizeof(mmsb_replica_info)];
    memset(small_info, 0xee, sizeof small_info);
    ((mmsb_replica_info *)small_info)->struct_size = 88; /* 0.2.0's struct, before lag_bytes */
    TU_OK(mmsb_replica_info_get(r, (mmsb_replica_info *)small_info));
    assert_int_equal(small_info[88], 0xee); /* nothing written past it */
    ((mmsb_replica_info *)small_info)->struct_size = 80;
    TU_ERR(mmsb_replica_info_get(r, (mmsb_replica_info *)small_info), MMSB_EINVAL);
    replica_poll_to(r, commit_seq_of(e));
    uint64_t epoch_attached = 0, epoch_primary = 0;
    TU_OK(mmsb_attach_read(at, page, 64, b, 4, &epoch_attached));
    TU_OK(mmsb_page_read(e, page, 64, a, 4, &epoch_primary));
    assert_memory_equal(b, "live", 4);
    assert_int_equal(epoch_attached, epoch_primary);
    assert_same_root(e, re);

    /* Readers of the pages in another thread while groups arrive: a poll
     * waits for their calls; they never see a failure but EBUSY. */
    pages_reader pr = {.pages = re, .page = page};
    atomic_init(&pr.stop, false);
    pthread_t reader;
    assert_int_equal(pthread_create(&reader, NULL, read_pages, &pr), 0);
    for (uint32_t round = 0; round < 5; round++) {
        store_write(e, page, 50, 4096, 40 + round);
        TU_OK(mmsb_sync(e));
        ship_once(s, dir, "pages", 0);
        replica_poll_to(r, commit_seq_of(e));
    }
    atomic_store(&pr.stop, true);
    assert_int_equal(pthread_join(reader, NULL), 0);
    assert_true(pr.calls > 0);
    assert_int_equal(pr.failures, 0);
    assert_same_root(e, re);
    TU_OK(mmsb_replica_close(r));
    TU_ERR(mmsb_attach_read(at, page, 64, b, 4, NULL), MMSB_ENOTFOUND); /* the follower is gone */
    TU_OK(mmsb_attach_close(at));

    /* Reopened, the state is rebuilt from the replica's own log. */
    TU_OK(mmsb_replica_open(rep, s->url, "pages", &r));
    TU_OK(mmsb_replica_engine(r, &re));
    assert_same_root(e, re);
    TU_OK(mmsb_replica_close(r));

    /* Limits below the primary's store: the replica stops, and says why. */
    mmsb_options o;
    MMSB_OPTIONS_INIT(&o);
    o.pages_max = 1;
    TU_OK(mmsb_replica_open_with(small, s->url, "pages", &o, &r));
    int rc = 0;
    for (uint32_t tries = 0; tries < 100 && rc == 0; tries++) rc = mmsb_replica_poll(r, 50, NULL);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(mmsb_last_error(), "replica state"));
    TU_ERR(mmsb_replica_poll(r, 50, NULL), rc);
    TU_OK(mmsb_replica_close(r));
    o.struct_size = 8;
    TU_ERR(mmsb_replica_open_with(small, s->url, "pages", &o, &r), MMSB_EINVAL);

    TU_OK(mmsb_close(e));
    tu_dir_remove(dir);
    tu_dir_remove(rep);
    tu_dir_remove(small);
    nats_down(s);
}

/* ---- retention: the log a stream does not hold yet stays --------------------------------- */

static uint64_t lowest_segment(const char *dir) {
    for (uint64_t seg = 1; seg < 10000; seg++) {
        char path[600];
        tu_segment_path(dir, seg, path, sizeof path);
        if (access(path, F_OK) == 0) return seg;
    }
    fail_msg("no segment in %s", dir);
    return 0;
}

/* The replica holds the primary's state (read-only opens of both). */
static void assert_replica_root(mmsb_engine *primary, const char *replica) {
    mmsb_options o;
    tu_options_small(&o);
    o.flags = MMSB_OPEN_READONLY;
    mmsb_engine *r = NULL;
    TU_OK(mmsb_open(replica, &o, &r));
    assert_same_root(primary, r);
    TU_OK(mmsb_close(r));
}

/* A writer whose shipper is away checkpoints past four 4 MiB segments:
 * the shipper's pin keeps them, the shipper resumes, and a replica built
 * from zero holds everything. Then the pin moves on, a pin that cannot be
 * read keeps everything, and --unpin gives the stream up. */
static void test_shipping_pin_keeps_the_log_a_stopped_shipper_needs(void **state) {
    (void)state;
    NEED_NATS();
    nats_set *s = nats_up(1);
    char *dir = tu_dir_new(), *rep = tu_dir_new();
    mmsb_engine *e = store_open(dir);
    uint64_t page = store_write(e, 0, 10, 16384, 1);
    TU_OK(mmsb_sync(e));
    ship_once(s, dir, "pinned", 0);
    store_write(e, page, 1200, 16384, 2); /* the shipper is away */
    TU_OK(mmsb_checkpoint(e));
    assert_int_equal(lowest_segment(dir), 1);
    tu_run st = TOOL(0, "stats", dir);
    assert_non_null(strstr(st.out, "shipping pin: the stream pinned needs the log from segment 1 on"));
    tu_run_free(&st);

    ship_once(s, dir, "pinned", 0); /* back: no gap */
    store_write(e, page, 1, 16384, 3);
    TU_OK(mmsb_checkpoint(e));
    uint64_t first = lowest_segment(dir);
    assert_true(first > 1); /* the pin moved on, and retention with it */
    ship_once(s, dir, "pinned", 0);
    follow_once(s, rep, "pinned", 0, NULL);
    assert_int_equal(replica_seq(rep), commit_seq_of(e));
    assert_replica_root(e, rep);

    char junk[600];
    snprintf(junk, sizeof junk, "%s/ship-junk.pin", dir);
    FILE *jf = fopen(junk, "w");
    assert_non_null(jf);
    fputs("not a pin", jf);
    fclose(jf);
    store_write(e, page, 600, 16384, 4);
    TU_OK(mmsb_checkpoint(e));
    assert_int_equal(lowest_segment(dir), first); /* unreadable: it keeps everything */
    tu_run un = TOOL(0, "ship", dir, "--stream", "junk", "--unpin");
    assert_non_null(strstr(un.out, "pin is removed"));
    tu_run_free(&un);
    un = TOOL(0, "ship", dir, "--stream", "pinned", "--unpin");
    tu_run_free(&un);
    store_write(e, page, 1, 16384, 5);
    TU_OK(mmsb_checkpoint(e));
    assert_true(lowest_segment(dir) > first);
    TU_OK(mmsb_close(e));
    tu_dir_remove(dir);
    tu_dir_remove(rep);
    nats_down(s);
}

/* A REPLICATED writer whose stream does not answer goes on committing and
 * checkpointing; retention keeps what the stream lacks, and everything
 * ships when the stream returns. */
static void test_replicated_writer_keeps_its_log_while_the_stream_is_away(void **state) {
    (void)state;
    NEED_NATS();
    nats_set *s = nats_up(1);
    char *dir = tu_dir_new(), *rep = tu_dir_new();
    mmsb_engine *e = replicated_open(s, dir, "away", 1000, 1, NULL);
    uint64_t page = store_write(e, 0, 1, 8, 1);
    TU_OK(mmsb_wait_replicated(e, commit_seq_of(e)));
    node_stop(s, 0, SIGKILL);
    store_write(e, page, 1200, 16384, 2);
    TU_OK(mmsb_checkpoint(e));
    assert_int_equal(lowest_segment(dir), 1);
    TU_ERR(mmsb_wait_replicated(e, commit_seq_of(e)), MMSB_EREPLICA);
    mmsb_engineinfo away = tu_info(e);
    assert_true(away.replication_lag_records >= 1200 && away.replication_lag_bytes >= 1200 * 16384);
    node_start(s, 0);
    int rc;
    for (int waited_ms = 0; (rc = mmsb_wait_replicated(e, commit_seq_of(e))) != 0; waited_ms += 250) {
        if (waited_ms > 60000) fail_msg("the stream returned, the commits did not ship: %s", mmsb_last_error());
        sleep_ms(250);
    }
    store_write(e, page, 1, 16384, 3);
    TU_OK(mmsb_wait_replicated(e, commit_seq_of(e)));
    TU_OK(mmsb_checkpoint(e));
    assert_true(lowest_segment(dir) > 1);
    follow_once(s, rep, "away", 0, NULL);
    assert_int_equal(replica_seq(rep), commit_seq_of(e));
    assert_replica_root(e, rep);
    TU_OK(mmsb_close(e));
    tu_dir_remove(dir);
    tu_dir_remove(rep);
    nats_down(s);
}

static void test_frame_headers_round_trip_and_refuse_garbage(void **state) {
    (void)state;
    frame_meta m = {.salt = 0x0123456789abcdefull, .at = {7, 4096}, .first_seq = 10, .last_seq = 20,
                    .flags = FRAME_FIRST | FRAME_LAST, .chain = {.lo = 1, .hi = 2}};
    frame_values v;
    frame_format(&m, &v);
    const char *vals[FRAME_H_COUNT];
    for (int i = 0; i < FRAME_H_COUNT; i++) vals[i] = v.v[i];
    frame_meta back;
    TU_OK(frame_parse(vals, 100, &back));
    assert_true(back.salt == m.salt && back.at.segment == 7 && back.at.offset == 4096 && back.first_seq == 10 &&
                back.last_seq == 20 && back.flags == m.flags && back.chain.lo == 1 && back.chain.hi == 2);
    TU_ERR(frame_parse(vals, 0, &back), MMSB_ECORRUPT);
    TU_ERR(frame_parse(vals, FRAME_BODY_MAX + 1, &back), MMSB_ECORRUPT);
    const char *bad[][2] = {{"Mmsb-Salt", "0123"}, {"Mmsb-Salt", "zz23456789abcdef"}, {"Mmsb-Segment", "0"},
                            {"Mmsb-Segment", "-1"}, {"Mmsb-Offset", "12"}, {"Mmsb-Last-Seq", "9"},
                            {"Mmsb-Flags", "both"}, {"Mmsb-Chain", ""}, {"Mmsb-First-Seq", "99999999999999999999"},
                            {"Mmsb-Offset", "1073741824"}};
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        const char *copy[FRAME_H_COUNT];
        memcpy(copy, vals, sizeof copy);
        for (int i = 0; i < FRAME_H_COUNT; i++) {
            if (strcmp(frame_header_names[i], bad[b][0]) == 0) copy[i] = bad[b][1];
        }
        if (frame_parse(copy, 100, &back) != MMSB_ECORRUPT) fail_msg("accepted %s: %s", bad[b][0], bad[b][1]);
    }
    for (int i = 0; i < FRAME_H_COUNT; i++) {
        const char *copy[FRAME_H_COUNT];
        memcpy(copy, vals, sizeof copy);
        copy[i] = NULL;
        TU_ERR(frame_parse(copy, 100, &back), MMSB_ECORRUPT);
    }
    char id1[FRAME_ID_MAX], id2[FRAME_ID_MAX];
    uint8_t body[8] = {1, 2, 3};
    frame_msg_id(&m, body, sizeof body, id1);
    body[7] = 1;
    frame_msg_id(&m, body, sizeof body, id2);
    assert_string_not_equal(id1, id2); /* other bytes at the same place: another id */
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "--primary") == 0) return primary_main(argv[2], argv[3], argv[4]);
    assert_true(tu_tool_find());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_frame_headers_round_trip_and_refuse_garbage, stop_leftovers),
        cmocka_unit_test_teardown(test_follow_catches_up_then_live, stop_leftovers),
        cmocka_unit_test_teardown(test_replica_pages_follow_the_primary_and_attach, stop_leftovers),
        cmocka_unit_test_teardown(test_shipping_pin_keeps_the_log_a_stopped_shipper_needs, stop_leftovers),
        cmocka_unit_test_teardown(test_replicated_writer_keeps_its_log_while_the_stream_is_away, stop_leftovers),
        cmocka_unit_test_teardown(test_shipper_killed_resumes_without_gap_or_duplicate, stop_leftovers),
        cmocka_unit_test_teardown(test_damaged_foreign_and_missing_messages_refused, stop_leftovers),
        cmocka_unit_test_teardown(test_promote_and_fence, stop_leftovers),
        cmocka_unit_test_teardown(test_three_nodes_lose_one_then_the_quorum, stop_leftovers),
        cmocka_unit_test_teardown(test_replicated_durability_acknowledges_what_the_stream_holds, stop_leftovers),
        cmocka_unit_test_teardown(test_replicated_commits_through_node_loss_and_quorum_loss, stop_leftovers),
        cmocka_unit_test_teardown(test_primary_killed_promoted_replica_holds_every_acknowledged_commit, stop_leftovers),
    };
    return cmocka_run_group_tests(tests, skip_without_nats, NULL);
}
