/*
 * b_repl.c - replication through NATS JetStream (README, "Replication"):
 * the REPLICATED commit's latency against a raw JetStream publish-and-ack
 * of the same bytes with nats.c (the peer) and against SYNC on the local
 * disk; replicated commits per second with the group window; the
 * follower's rate of taking a stream. Each figure starts its own
 * nats-server on 127.0.0.1 (a free port, a scratch directory) and stops it
 * by its PID; without nats-server the rows are skipped with that reason.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

enum { KiB = 1024 };

typedef struct server {
    pid_t pid;
    char url[64];
} server;

static const char *server_path(void) {
    static const char *paths[] = {"/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        if (access(paths[i], X_OK) == 0) return paths[i];
    }
    return NULL;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
                       getsockname(fd, (struct sockaddr *)&a, &len) == 0
                   ? ntohs(a.sin_port)
                   : -1;
    if (fd >= 0) close(fd);
    return port;
}

static bool listening(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

/* 1: started; 0: no nats-server here (out->skipped); -1: failed. */
static int server_start(const bench_env *env, server *s, bench_out *out) {
    const char *path = server_path();
    if (path == NULL) {
        out->skipped = true;
        snprintf(out->note, sizeof out->note, "nats-server is not installed (make deps installs it)");
        return 0;
    }
    int port = free_port();
    char dir[4096], port_s[16];
    bench_store_path(env, "nats", dir, sizeof dir);
    snprintf(port_s, sizeof port_s, "%d", port);
    snprintf(s->url, sizeof s->url, "nats://127.0.0.1:%d", port);
    s->pid = fork();
    if (s->pid == 0) { /* no stdio here: the parent's buffered output must not be written twice */
        int null_fd = open("/dev/null", O_WRONLY);
        dup2(null_fd, 1);
        dup2(null_fd, 2);
        execl(path, path, "-a", "127.0.0.1", "-p", port_s, "-js", "-sd", dir, (char *)NULL);
        _exit(127);
    }
    for (int waited = 0; s->pid > 0 && !listening(port); waited++) {
        if (waited > 1000) return bench_fail(out, "nats-server did not listen");
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return s->pid > 0 ? 1 : bench_fail(out, "cannot start nats-server");
}

static void server_stop(const bench_env *env, server *s) {
    if (s->pid <= 0) return;
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
    char dir[4096];
    bench_store_path(env, "nats", dir, sizeof dir); /* removes it */
    (void)dir;
}

static int open_replicated(const bench_env *env, const server *s, const char *name, mmsb_engine **e,
                           bench_out *out) {
    char dir[4096];
    bench_store_path(env, name, dir, sizeof dir);
    mmsb_options o;
    bench_options(&o, MMSB_DURABILITY_REPLICATED);
    o.arena_bytes_max = 16ull << 30;
    o.checkpoint_log_bytes = 0;
    o.replication_servers = s->url;
    o.replication_stream = name;
    o.replication_create = 1;
    int rc = mmsb_open(dir, &o, e);
    return rc == 0 ? 0 : bench_fail(out, "open: %s", mmsb_last_error());
}

/* One 64-byte commit, then its acknowledgement: REPLICATED (a 1-node
 * stream) or SYNC (the local disk only), in us. */
static int bench_commit_latency(const bench_env *env, const void *arg, bench_out *out) {
    bool replicated = arg != NULL;
    server s = {0};
    int st = replicated ? server_start(env, &s, out) : 1;
    if (st <= 0) return st;
    mmsb_engine *e = NULL;
    int rc = replicated ? open_replicated(env, &s, "replat", &e, out)
                        : bench_open_store(env, "synclat", MMSB_DURABILITY_SYNC, &e, out);
    uint64_t page = 0, n = env->quick ? 300 : 2000;
    if (rc == 0 && mmsb_page_create(e, 4 * KiB, 0, &page) != 0) rc = bench_fail(out, "%s", mmsb_last_error());
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        mmsb_change ch;
        uint64_t t0 = bench_now_ns();
        rc = mmsb_write(e, page, (i * 64) % (4 * KiB), bench_pattern64(i / 64), 64, &ch);
        if (rc == 0 && replicated) rc = mmsb_wait_replicated(e, ch.commit_seq);
        if (rc != 0) rc = bench_fail(out, "%s", mmsb_last_error());
        else rc = bench_sample(out, (double)(bench_now_ns() - t0) / 1e3);
    }
    if (rc == 0) bench_check_root(e, out);
    if (e != NULL) mmsb_close(e);
    server_stop(env, &s);
    return rc;
}

/* The peer: nats.c's synchronous JetStream publish of 64 bytes, in us. */
static int bench_raw_publish(const bench_env *env, const void *arg, bench_out *out) {
    (void)arg;
    server s = {0};
    int st = server_start(env, &s, out);
    if (st <= 0) return st;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char *subjects[] = {"peer.raw"};
    cfg.Name = "peer";
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    natsStatus ns = natsConnection_ConnectTo(&nc, s.url);
    if (ns == NATS_OK) ns = natsConnection_JetStream(&js, nc, NULL);
    if (ns == NATS_OK) ns = js_AddStream(&si, js, &cfg, NULL, NULL);
    jsStreamInfo_Destroy(si);
    int rc = ns == NATS_OK ? 0 : bench_fail(out, "nats: %s", natsStatus_GetText(ns));
    uint64_t n = env->quick ? 300 : 2000, stored = 0;
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        jsPubAck *pa = NULL;
        uint64_t t0 = bench_now_ns();
        ns = js_Publish(&pa, js, "peer.raw", bench_pattern64(i), 64, NULL, NULL);
        if (ns == NATS_OK) stored = pa->Sequence;
        jsPubAck_Destroy(pa);
        rc = ns == NATS_OK ? bench_sample(out, (double)(bench_now_ns() - t0) / 1e3)
                           : bench_fail(out, "publish: %s", natsStatus_GetText(ns));
    }
    snprintf(out->check, sizeof out->check, "the stream stored %llu messages", (unsigned long long)stored);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    server_stop(env, &s);
    return rc;
}

/* Many 64-byte commits, then one wait for the last: replicated durable
 * commits per second, the group window sharing round trips (K/s). */
static int bench_replicated_rate(const bench_env *env, const void *arg, bench_out *out) {
    (void)arg;
    server s = {0};
    int st = server_start(env, &s, out);
    if (st <= 0) return st;
    mmsb_engine *e = NULL;
    int rc = open_replicated(env, &s, "reprate", &e, out);
    uint64_t page = 0, per = env->quick ? 20000 : 100000, n = 0;
    uint32_t reps = env->reps < 5 ? env->reps : 5;
    if (rc == 0 && mmsb_page_create(e, 4 * KiB, 0, &page) != 0) rc = bench_fail(out, "%s", mmsb_last_error());
    for (uint32_t r = 0; r < reps && rc == 0; r++) {
        uint64_t t0 = bench_now_ns(), last = 0;
        for (uint64_t k = 0; k < per && rc == 0; k++, n++) {
            mmsb_change ch;
            rc = mmsb_write(e, page, (n * 64) % (4 * KiB), bench_pattern64(n / 64), 64, &ch);
            last = ch.commit_seq;
        }
        if (rc == 0) rc = mmsb_wait_replicated(e, last);
        if (rc != 0) rc = bench_fail(out, "%s", mmsb_last_error());
        else rc = bench_sample(out, per / ((double)(bench_now_ns() - t0) / 1e9) / 1e3);
    }
    mmsb_engineinfo info = {.struct_size = sizeof info};
    if (rc == 0 && mmsb_engine_info(e, &info) == 0) {
        snprintf(out->note, sizeof out->note, "%llu commits in %llu messages (%llu MB), 1 node",
                 (unsigned long long)info.commits, (unsigned long long)info.replication_messages,
                 (unsigned long long)(info.replication_bytes >> 20));
        bench_check_root(e, out);
    }
    if (e != NULL) mmsb_close(e);
    server_stop(env, &s);
    return rc;
}

/* A replica built from zero out of a stream of 64 KiB page changes: MB/s
 * of log checked and written by the follower. */
static int bench_follow(const bench_env *env, const void *arg, bench_out *out) {
    (void)arg;
    server s = {0};
    int st = server_start(env, &s, out);
    if (st <= 0) return st;
    mmsb_engine *e = NULL;
    int rc = open_replicated(env, &s, "follow", &e, out);
    uint64_t page = 0, changes = env->quick ? 1000 : 4000;
    uint8_t *buf = malloc(64 * KiB);
    if (buf == NULL) rc = bench_fail(out, "out of memory");
    if (rc == 0 && mmsb_page_create(e, 64 * KiB, 0, &page) != 0) rc = bench_fail(out, "%s", mmsb_last_error());
    mmsb_change ch = {0};
    for (uint64_t i = 0; i < changes && rc == 0; i++) {
        memset(buf, (int)(i & 0xff) + 1, 64 * KiB);
        memcpy(buf, &i, sizeof i);
        rc = mmsb_write(e, page, 0, buf, 64 * KiB, &ch);
    }
    if (rc == 0) rc = mmsb_wait_replicated(e, ch.commit_seq);
    if (rc != 0) rc = bench_fail(out, "%s", mmsb_last_error());
    uint32_t reps = env->reps < 3 ? env->reps : 3;
    for (uint32_t r = 0; r < reps && rc == 0; r++) {
        char dir[4096];
        bench_store_path(env, "replica", dir, sizeof dir);
        mmsb_replica *rep = NULL;
        uint64_t t0 = bench_now_ns();
        rc = mmsb_replica_open(dir, s.url, "follow", &rep);
        mmsb_replica_info info = {.struct_size = sizeof info};
        for (uint32_t polls = 0; rc == 0 && info.commit_seq < ch.commit_seq && polls < 10000; polls++) {
            rc = mmsb_replica_poll(rep, 50, NULL);
            if (rc == 0) rc = mmsb_replica_info_get(rep, &info);
        }
        double secs = (double)(bench_now_ns() - t0) / 1e9;
        mmsb_replica_close(rep);
        if (rc == 0 && info.commit_seq < ch.commit_seq) rc = bench_fail(out, "the replica did not catch up");
        else if (rc != 0) rc = bench_fail(out, "%s", mmsb_last_error());
        else rc = bench_sample(out, (double)info.bytes_written / secs / 1e6);
        if (rc == 0) {
            snprintf(out->check, sizeof out->check, "replica at record %llu, %llu groups",
                     (unsigned long long)info.commit_seq, (unsigned long long)info.groups);
        }
    }
    free(buf);
    if (e != NULL) mmsb_close(e);
    server_stop(env, &s);
    return rc;
}

static const bench_def REPL[] = {
    {"peer/jetstream_publish_ack/64B", "us", bench_raw_publish, NULL, NULL, GOAL_NONE, 0, NULL, NULL, NULL, NULL, 0},
    {"repl/commit_acknowledged/64B_REPLICATED_1_node", "us", bench_commit_latency, "", "peer/jetstream_publish_ack/64B",
     GOAL_NONE, 0, NULL, NULL, NULL, NULL, 0},
    {"repl/commit_acknowledged/64B_SYNC_local", "us", bench_commit_latency, NULL, NULL, GOAL_NONE, 0, NULL, NULL, NULL,
     NULL, 0},
    {"repl/replicated_commits/64B_group_window_1_node", "K/s", bench_replicated_rate, NULL, NULL, GOAL_AT_LEAST, 50,
     "issue 15", NULL, NULL, NULL, 0},
    {"repl/follower_takes/64KiB_changes", "MB/s", bench_follow, NULL, NULL, GOAL_NONE, 0, NULL, NULL, NULL, NULL, 0},
};

const bench_def *bench_group_repl(uint32_t *count) {
    *count = sizeof REPL / sizeof REPL[0];
    return REPL;
}
