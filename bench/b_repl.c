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
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

enum { KiB = 1024 };

enum { NODES_MAX = 3 };

/* One nats-server, or a cluster of three on loopback (JetStream on). */
typedef struct cluster {
    uint32_t nodes;
    pid_t pid[NODES_MAX];
    char url[200];        /* every node's client URL, comma-separated */
} cluster;

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

static void sleep_us(uint64_t us) {
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000L};
    nanosleep(&ts, NULL);
}

/* Node i of the cluster: its own store directory, routes to the others. */
static pid_t node_spawn(const bench_env *env, const char *path, uint32_t i, uint32_t nodes, const int *port,
                        const int *cport) {
    char dir[4096], name[16], port_s[16], cluster_s[64], routes[256] = "";
    snprintf(name, sizeof name, "nats%u", i + 1);
    bench_store_path(env, name, dir, sizeof dir);
    snprintf(port_s, sizeof port_s, "%d", port[i]);
    snprintf(cluster_s, sizeof cluster_s, "nats://127.0.0.1:%d", cport[i]);
    for (uint32_t k = 0; k < nodes; k++) {
        size_t used = strlen(routes);
        if (k != i) snprintf(routes + used, sizeof routes - used, "%snats://127.0.0.1:%d", used ? "," : "", cport[k]);
    }
    pid_t pid = fork();
    if (pid != 0) return pid;
    int null_fd = open("/dev/null", O_WRONLY); /* no stdio: the parent's buffered output must not be written twice */
    dup2(null_fd, 1);
    dup2(null_fd, 2);
    if (nodes == 1) execl(path, path, "-a", "127.0.0.1", "-p", port_s, "-js", "-sd", dir, (char *)NULL);
    execl(path, path, "-a", "127.0.0.1", "-p", port_s, "-js", "-sd", dir, "-n", name, "--cluster_name", "mmsbbench",
          "--cluster", cluster_s, "--routes", routes, (char *)NULL);
    _exit(127);
}

/* 1: started; 0: no nats-server here (out->skipped); -1: failed. */
static int cluster_start(const bench_env *env, uint32_t nodes, cluster *c, bench_out *out) {
    memset(c, 0, sizeof *c);
    if (nodes < 1 || nodes > NODES_MAX) return bench_fail(out, "%u nodes", nodes);
    const char *path = server_path();
    if (path == NULL) {
        out->skipped = true;
        snprintf(out->note, sizeof out->note, "nats-server is not installed (make deps installs it)");
        return 0;
    }
    int port[NODES_MAX], cport[NODES_MAX];
    for (uint32_t i = 0; i < nodes; i++) {
        port[i] = free_port();
        cport[i] = free_port();
        size_t used = strlen(c->url);
        snprintf(c->url + used, sizeof c->url - used, "%snats://127.0.0.1:%d", i ? "," : "", port[i]);
    }
    c->nodes = nodes;
    for (uint32_t i = 0; i < nodes; i++) {
        c->pid[i] = node_spawn(env, path, i, nodes, port, cport);
        if (c->pid[i] < 0) return bench_fail(out, "cannot start nats-server");
    }
    for (uint32_t i = 0; i < nodes; i++) {
        for (int waited = 0; !listening(port[i]); waited++) {
            if (waited > 1000) return bench_fail(out, "nats-server did not listen");
            sleep_us(10000);
        }
    }
    return 1;
}

static void cluster_stop(const bench_env *env, cluster *c) {
    for (uint32_t i = 0; i < c->nodes; i++) {
        if (c->pid[i] <= 0) continue;
        kill(c->pid[i], SIGTERM);
        waitpid(c->pid[i], NULL, 0);
        char dir[4096], name[16];
        snprintf(name, sizeof name, "nats%u", i + 1);
        bench_store_path(env, name, dir, sizeof dir); /* removes it */
    }
    c->nodes = 0;
}

/* A writer in REPLICATED durability on a stream of c->nodes copies. A new
 * cluster elects its leaders first: the stream's creation is tried again
 * while it does not answer. */
static int open_replicated(const bench_env *env, const cluster *c, const char *name, mmsb_engine **e,
                           bench_out *out) {
    char dir[4096];
    bench_store_path(env, name, dir, sizeof dir);
    mmsb_options o;
    bench_options(&o, MMSB_DURABILITY_REPLICATED);
    o.arena_bytes_max = 16ull << 30;
    o.checkpoint_log_bytes = 0;
    o.replication_servers = c->url;
    o.replication_stream = name;
    o.replication_create = (uint16_t)c->nodes;
    int rc = mmsb_open(dir, &o, e);
    for (uint32_t tries = 0; rc == MMSB_EREPLICA && tries < 30; tries++) {
        sleep_us(500000);
        bench_store_path(env, name, dir, sizeof dir);
        rc = mmsb_open(dir, &o, e);
    }
    return rc == 0 ? 0 : bench_fail(out, "open: %s", mmsb_last_error());
}

static uint32_t nodes_of(const void *arg) { return arg != NULL ? *(const uint32_t *)arg : 1; }

static const uint32_t ONE = 1, THREE = 3;

/* One 64-byte commit, then its acknowledgement: REPLICATED (a stream of
 * arg nodes) or SYNC (arg NULL: the local disk only), in us. */
static int bench_commit_latency(const bench_env *env, const void *arg, bench_out *out) {
    bool replicated = arg != NULL;
    cluster c = {0};
    int st = replicated ? cluster_start(env, nodes_of(arg), &c, out) : 1;
    if (st <= 0) return st;
    mmsb_engine *e = NULL;
    int rc = replicated ? open_replicated(env, &c, "replat", &e, out)
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
    cluster_stop(env, &c);
    return rc;
}

typedef struct peer_conn {
    natsConnection *nc;
    jsCtx *js;
} peer_conn;

/* A stream "peer" of c->nodes copies, tried again while a new cluster
 * elects its leaders. */
static int peer_open(const cluster *c, peer_conn *p, bench_out *out) {
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char *subjects[] = {"peer.raw"};
    cfg.Name = "peer";
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Replicas = c->nodes;
    natsStatus ns = natsConnection_ConnectTo(&p->nc, c->url);
    if (ns == NATS_OK) ns = natsConnection_JetStream(&p->js, p->nc, NULL);
    for (uint32_t tries = 0; ns == NATS_OK || tries == 0; tries++) {
        jsStreamInfo *si = NULL;
        jsErrCode jerr = 0;
        ns = js_AddStream(&si, p->js, &cfg, NULL, &jerr);
        jsStreamInfo_Destroy(si);
        if (ns == NATS_OK || tries >= 30) break;
        sleep_us(500000);
        ns = NATS_OK;
    }
    return ns == NATS_OK ? 0 : bench_fail(out, "nats: %s", natsStatus_GetText(ns));
}

static void peer_close(peer_conn *p) {
    jsCtx_Destroy(p->js);
    natsConnection_Destroy(p->nc);
}

/* The peer: nats.c's synchronous JetStream publish of 64 bytes and its
 * ack, in us. */
static int bench_raw_publish(const bench_env *env, const void *arg, bench_out *out) {
    cluster c;
    int st = cluster_start(env, nodes_of(arg), &c, out);
    if (st <= 0) return st;
    peer_conn p = {0};
    int rc = peer_open(&c, &p, out);
    uint64_t n = env->quick ? 300 : 2000, stored = 0;
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        jsPubAck *pa = NULL;
        uint64_t t0 = bench_now_ns();
        natsStatus ns = js_Publish(&pa, p.js, "peer.raw", bench_pattern64(i), 64, NULL, NULL);
        if (ns == NATS_OK) stored = pa->Sequence;
        jsPubAck_Destroy(pa);
        rc = ns == NATS_OK ? bench_sample(out, (double)(bench_now_ns() - t0) / 1e3)
                           : bench_fail(out, "publish: %s", natsStatus_GetText(ns));
    }
    snprintf(out->check, sizeof out->check, "the stream stored %llu messages", (unsigned long long)stored);
    peer_close(&p);
    cluster_stop(env, &c);
    return rc;
}

enum { PEER_MESSAGE_BYTES = 1020 * KiB, BYTES_ROUND = 64ull << 20 };

/* The peer for bytes: 1020 KiB messages (a replication message's most)
 * published and acknowledged one at a time, as the shipper does: MB/s. */
static int bench_raw_publish_bytes(const bench_env *env, const void *arg, bench_out *out) {
    cluster c;
    int st = cluster_start(env, nodes_of(arg), &c, out);
    if (st <= 0) return st;
    peer_conn p = {0};
    int rc = peer_open(&c, &p, out);
    uint8_t *buf = calloc(1, PEER_MESSAGE_BYTES);
    if (buf == NULL) rc = bench_fail(out, "out of memory");
    uint32_t reps = env->reps < 3 ? env->reps : 3;
    uint64_t per = env->quick ? BYTES_ROUND / 4 : BYTES_ROUND;
    for (uint32_t r = 0; r < reps && rc == 0; r++) {
        uint64_t t0 = bench_now_ns(), sent = 0;
        for (uint64_t i = 0; sent < per && rc == 0; i++, sent += PEER_MESSAGE_BYTES) {
            memcpy(buf, &i, sizeof i);
            jsPubAck *pa = NULL;
            natsStatus ns = js_Publish(&pa, p.js, "peer.raw", buf, PEER_MESSAGE_BYTES, NULL, NULL);
            jsPubAck_Destroy(pa);
            if (ns != NATS_OK) rc = bench_fail(out, "publish: %s", natsStatus_GetText(ns));
        }
        if (rc == 0) rc = bench_sample(out, (double)sent / ((double)(bench_now_ns() - t0) / 1e9) / 1e6);
    }
    free(buf);
    peer_close(&p);
    cluster_stop(env, &c);
    return rc;
}

/* Many 64-byte commits, then one wait for the last: replicated durable
 * commits per second, the group window sharing round trips (K/s). */
static int bench_replicated_rate(const bench_env *env, const void *arg, bench_out *out) {
    cluster c;
    int st = cluster_start(env, nodes_of(arg), &c, out);
    if (st <= 0) return st;
    mmsb_engine *e = NULL;
    int rc = open_replicated(env, &c, "reprate", &e, out);
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
        snprintf(out->note, sizeof out->note, "%llu commits in %llu messages (%llu MB), %u node%s",
                 (unsigned long long)info.commits, (unsigned long long)info.replication_messages,
                 (unsigned long long)(info.replication_bytes >> 20), c.nodes, c.nodes > 1 ? "s" : "");
        bench_check_root(e, out);
    }
    if (e != NULL) mmsb_close(e);
    cluster_stop(env, &c);
    return rc;
}

/* 64 KiB page changes, REPLICATED, then one wait for the last: MB/s of
 * log the stream stored (engine info's replication_bytes). */
static int bench_replicated_bytes(const bench_env *env, const void *arg, bench_out *out) {
    cluster c;
    int st = cluster_start(env, nodes_of(arg), &c, out);
    if (st <= 0) return st;
    mmsb_engine *e = NULL;
    int rc = open_replicated(env, &c, "repbytes", &e, out);
    uint64_t page = 0, n = 0, per = (env->quick ? BYTES_ROUND / 4 : BYTES_ROUND) / (64 * KiB);
    uint8_t *buf = malloc(64 * KiB);
    if (buf == NULL) rc = bench_fail(out, "out of memory");
    if (rc == 0 && mmsb_page_create(e, 64 * KiB, 0, &page) != 0) rc = bench_fail(out, "%s", mmsb_last_error());
    uint32_t reps = env->reps < 3 ? env->reps : 3;
    mmsb_engineinfo info = {.struct_size = sizeof info};
    for (uint32_t r = 0; r < reps && rc == 0; r++) {
        if (mmsb_engine_info(e, &info) != 0) rc = bench_fail(out, "%s", mmsb_last_error());
        uint64_t bytes0 = info.replication_bytes, t0 = bench_now_ns(), last = 0;
        for (uint64_t k = 0; k < per && rc == 0; k++, n++) {
            memset(buf, (int)(n & 0xff) + 1, 64 * KiB); /* every byte changes: a FULL record of the page */
            mmsb_change ch;
            rc = mmsb_write(e, page, 0, buf, 64 * KiB, &ch);
            last = ch.commit_seq;
        }
        if (rc == 0) rc = mmsb_wait_replicated(e, last);
        if (rc == 0) rc = mmsb_engine_info(e, &info);
        if (rc != 0) rc = bench_fail(out, "%s", mmsb_last_error());
        double secs = (double)(bench_now_ns() - t0) / 1e9;
        if (rc == 0) rc = bench_sample(out, (double)(info.replication_bytes - bytes0) / secs / 1e6);
    }
    if (rc == 0) {
        snprintf(out->note, sizeof out->note, "%llu commits in %llu messages (%llu MB), %u nodes",
                 (unsigned long long)info.commits, (unsigned long long)info.replication_messages,
                 (unsigned long long)(info.replication_bytes >> 20), c.nodes);
        bench_check_root(e, out);
    }
    free(buf);
    if (e != NULL) mmsb_close(e);
    cluster_stop(env, &c);
    return rc;
}

/* A log written first (GROUP, no replication), then shipped whole by the
 * writer's replication when the store is reopened with it: the shipper's
 * own rate (MB/s), with no writer competing for the CPU. */
static int bench_ship_written(const bench_env *env, const void *arg, bench_out *out) {
    cluster c;
    int st = cluster_start(env, nodes_of(arg), &c, out);
    if (st <= 0) return st;
    uint64_t changes = (env->quick ? BYTES_ROUND / 4 : BYTES_ROUND) / (64 * KiB);
    uint8_t *buf = malloc(64 * KiB);
    int rc = buf == NULL ? bench_fail(out, "out of memory") : 0;
    uint32_t reps = env->reps < 3 ? env->reps : 3;
    for (uint32_t r = 0; r < reps && rc == 0; r++) {
        char name[32];
        snprintf(name, sizeof name, "shiplog%u", r); /* a new store each time: a new stream */
        mmsb_engine *e = NULL;
        uint64_t page = 0;
        char dir[4096];
        bench_store_path(env, name, dir, sizeof dir);
        mmsb_options o;
        bench_options(&o, MMSB_DURABILITY_GROUP);
        /* The close's checkpoint keeps the log: a stream starts at record 1. */
        o.flags = MMSB_OPEN_CREATE | MMSB_OPEN_KEEP_LOG;
        o.arena_bytes_max = 16ull << 30;
        o.checkpoint_log_bytes = 0;
        if (mmsb_open(dir, &o, &e) != 0) rc = bench_fail(out, "open: %s", mmsb_last_error());
        if (rc == 0 && mmsb_page_create(e, 64 * KiB, 0, &page) != 0) rc = bench_fail(out, "%s", mmsb_last_error());
        for (uint64_t k = 0; k < changes && rc == 0; k++) {
            memset(buf, (int)(k & 0xff) + 1, 64 * KiB);
            if (mmsb_write(e, page, 0, buf, 64 * KiB, NULL) != 0) rc = bench_fail(out, "%s", mmsb_last_error());
        }
        if (e != NULL && mmsb_close(e) != 0 && rc == 0) rc = bench_fail(out, "%s", mmsb_last_error());
        e = NULL;
        o.flags = MMSB_OPEN_KEEP_LOG;
        o.replication_servers = c.url;
        o.replication_stream = name;
        o.replication_create = (uint16_t)c.nodes;
        /* The one wait below covers the whole written log (about 200 MB),
         * not one commit: give it the time the slowest run needs. */
        o.replication_timeout_ms = 120000;
        if (rc == 0) rc = mmsb_open(dir, &o, &e);
        for (uint32_t tries = 0; rc == MMSB_EREPLICA && tries < 30; tries++) { /* the cluster elects leaders */
            sleep_us(500000);
            rc = mmsb_open(dir, &o, &e);
        }
        uint64_t t0 = bench_now_ns();
        mmsb_engineinfo info = {.struct_size = sizeof info};
        if (rc == 0) rc = mmsb_engine_info(e, &info);
        if (rc == 0) rc = mmsb_wait_replicated(e, info.commit_seq);
        double secs = (double)(bench_now_ns() - t0) / 1e9;
        if (rc == 0) rc = mmsb_engine_info(e, &info);
        if (rc != 0) rc = bench_fail(out, "%s", mmsb_last_error());
        else rc = bench_sample(out, (double)info.replication_bytes / secs / 1e6);
        if (rc == 0) {
            snprintf(out->note, sizeof out->note, "%llu commits in %llu messages (%llu MB), %u nodes",
                     (unsigned long long)info.recovered_commits, (unsigned long long)info.replication_messages,
                     (unsigned long long)(info.replication_bytes >> 20), c.nodes);
        }
        if (e != NULL) mmsb_close(e);
    }
    free(buf);
    cluster_stop(env, &c);
    return rc;
}

/* A primary with `changes` 64 KiB page changes, shipped (REPLICATED). */
static int follow_source(const bench_env *env, const cluster *c, uint64_t changes, mmsb_engine **e,
                         uint64_t *last, bench_out *out) {
    int rc = open_replicated(env, c, "follow", e, out);
    uint64_t page = 0;
    uint8_t *buf = malloc(64 * KiB);
    if (buf == NULL) rc = bench_fail(out, "out of memory");
    if (rc == 0 && mmsb_page_create(*e, 64 * KiB, 0, &page) != 0) rc = bench_fail(out, "%s", mmsb_last_error());
    mmsb_change ch = {0};
    for (uint64_t i = 0; i < changes && rc == 0; i++) {
        memset(buf, (int)(i & 0xff) + 1, 64 * KiB);
        memcpy(buf, &i, sizeof i);
        rc = mmsb_write(*e, page, 0, buf, 64 * KiB, &ch);
    }
    if (rc == 0) rc = mmsb_wait_replicated(*e, ch.commit_seq);
    if (rc != 0) rc = bench_fail(out, "%s", mmsb_last_error());
    free(buf);
    *last = ch.commit_seq;
    return rc;
}

/* The transport's ceiling for a follower: nats.c reading the same stream
 * with an ordered consumer (as the follower does), taking each message and
 * nothing more: MB/s. */
static int read_stream_raw(const cluster *c, uint64_t last_seq, uint64_t *bytes, bench_out *out) {
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsSubscription *sub = NULL;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = "follow";
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverAll;
    natsStatus ns = natsConnection_ConnectTo(&nc, c->url);
    if (ns == NATS_OK) ns = natsConnection_JetStream(&js, nc, NULL);
    if (ns == NATS_OK) ns = js_SubscribeSync(&sub, js, "mmsb.follow", NULL, &so, NULL);
    uint64_t seq = 0;
    *bytes = 0;
    while (ns == NATS_OK && seq < last_seq) {
        natsMsg *m = NULL;
        ns = natsSubscription_NextMsg(&m, sub, 5000);
        jsMsgMetaData *md = NULL;
        if (ns == NATS_OK) ns = natsMsg_GetMetaData(&md, m);
        if (ns == NATS_OK) seq = md->Sequence.Stream, *bytes += (uint64_t)natsMsg_GetDataLength(m);
        jsMsgMetaData_Destroy(md);
        natsMsg_Destroy(m);
    }
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return ns == NATS_OK ? 0 : bench_fail(out, "nats: %s", natsStatus_GetText(ns));
}

/* A replica built from zero (mmsb_replica_open + _poll) out of a stream of
 * 64 KiB page changes: MB/s of log checked, written and applied to the
 * replica's pages. With arg: the primary's own replay of the same log (a
 * read-only open), the rate a follower must keep up with. */
static int bench_follow(const bench_env *env, const void *arg, bench_out *out) {
    bool primary = arg != NULL && *(const char *)arg == 'p', raw = arg != NULL && *(const char *)arg == 'r';
    cluster c;
    int st = cluster_start(env, 1, &c, out);
    if (st <= 0) return st;
    mmsb_engine *e = NULL;
    uint64_t last = 0;
    int rc = follow_source(env, &c, env->quick ? 1000 : 4000, &e, &last, out);
    uint32_t reps = env->reps < 3 ? env->reps : 3;
    mmsb_engineinfo pinfo = {.struct_size = sizeof pinfo};
    if (rc == 0 && mmsb_engine_info(e, &pinfo) != 0) rc = bench_fail(out, "%s", mmsb_last_error());
    char pdir[4096];
    snprintf(pdir, sizeof pdir, "%s/follow", env->dir);
    for (uint32_t r = 0; r < reps && rc == 0; r++) {
        char dir[4096];
        bench_store_path(env, "replica", dir, sizeof dir);
        uint64_t t0 = bench_now_ns(), bytes = 0, seq = 0;
        if (raw) {
            mmsb_engineinfo info = {.struct_size = sizeof info};
            rc = mmsb_engine_info(e, &info);
            if (rc == 0) rc = read_stream_raw(&c, info.replication_messages, &bytes, out);
            seq = rc == 0 ? last : 0;
            if (rc != 0) break;
        } else if (primary) {
            mmsb_options o;
            bench_options(&o, MMSB_DURABILITY_SYNC);
            o.flags = MMSB_OPEN_READONLY;
            o.arena_bytes_max = 16ull << 30;
            mmsb_engine *ro = NULL;
            mmsb_engineinfo info = {.struct_size = sizeof info};
            rc = mmsb_open(pdir, &o, &ro);
            if (rc == 0) rc = mmsb_engine_info(ro, &info);
            seq = info.commit_seq, bytes = pinfo.replication_bytes; /* the same log the follower takes */
            mmsb_close(ro);
        } else {
            mmsb_replica *rep = NULL;
            rc = mmsb_replica_open(dir, c.url, "follow", &rep);
            mmsb_replica_info info = {.struct_size = sizeof info};
            for (uint32_t polls = 0; rc == 0 && info.commit_seq < last && polls < 100000; polls++) {
                rc = mmsb_replica_poll(rep, 1, NULL);
                if (rc == 0) rc = mmsb_replica_info_get(rep, &info);
            }
            seq = info.commit_seq, bytes = info.bytes_written;
            mmsb_replica_close(rep);
        }
        double secs = (double)(bench_now_ns() - t0) / 1e9;
        if (rc == 0 && seq < last) rc = bench_fail(out, "the replica did not catch up");
        else if (rc != 0) rc = bench_fail(out, "%s", mmsb_last_error());
        else rc = bench_sample(out, (double)bytes / secs / 1e6);
        if (rc == 0) snprintf(out->check, sizeof out->check, "state at record %llu", (unsigned long long)seq);
    }
    if (e != NULL) mmsb_close(e);
    cluster_stop(env, &c);
    return rc;
}

/* ---- end-to-end lag -------------------------------------------------------------------- */

enum { LAG_COMMITS_PER_S = 10000, LAG_OBSERVE_US = 50 };

typedef struct lag_run {
    mmsb_replica *rep;
    mmsb_engine *state;        /* the replica's pages */
    uint64_t page;
    _Atomic uint64_t *begun_ns; /* by the page's epoch: when the commit's call began */
    uint64_t commits;
    _Atomic bool stop;
    _Atomic uint64_t taken;    /* commits the observer saw arrive */
    int follow_rc;
    bench_out *out;
} lag_run;

static void *lag_follower(void *arg) {
    lag_run *l = arg;
    while (!atomic_load(&l->stop) && l->follow_rc == 0) l->follow_rc = mmsb_replica_poll(l->rep, 5, NULL);
    return NULL;
}

/* Watches the page's epoch on the replica (a seqlocked read, never
 * waiting for the follower): each new epoch is one commit arrived. The
 * page is at epoch 1 before the paced commits; commit k makes epoch k + 1. */
static void *lag_observer(void *arg) {
    lag_run *l = arg;
    uint64_t seen = 1, epoch = 0;
    uint8_t b[8];
    while (seen <= l->commits && !atomic_load(&l->stop)) {
        if (mmsb_page_read(l->state, l->page, 0, b, sizeof b, &epoch) == 0 && epoch > seen) {
            uint64_t now = bench_now_ns();
            for (uint64_t ep = seen + 1; ep <= epoch && ep <= l->commits + 1; ep++) {
                bench_sample(l->out, (double)(now - atomic_load(&l->begun_ns[ep])) / 1e6);
            }
            seen = epoch;
            atomic_store(&l->taken, seen - 1);
        }
        sleep_us(LAG_OBSERVE_US);
    }
    return NULL;
}

/* Writes paced at 10,000 commits/s (REPLICATED, 64 bytes each, one page):
 * ms from the call that made a commit to the follower's pages holding it. */
static int lag_write(mmsb_engine *e, lag_run *l, bench_out *out) {
    uint64_t t0 = bench_now_ns(), step_ns = 1000000000ull / LAG_COMMITS_PER_S;
    for (uint64_t k = 1; k <= l->commits; k++) {
        uint64_t due = t0 + k * step_ns, now = bench_now_ns();
        if (due > now + 20000) sleep_us((due - now) / 1000);
        while (bench_now_ns() < due) {
        }
        uint8_t bytes[64];
        memcpy(bytes, bench_pattern64(k), sizeof bytes);
        memcpy(bytes, &k, sizeof k); /* every commit changes the page */
        atomic_store(&l->begun_ns[k + 1], bench_now_ns());
        mmsb_change ch;
        if (mmsb_write(e, l->page, (k * 64) % (4 * KiB), bytes, sizeof bytes, &ch) != 0) {
            return bench_fail(out, "%s", mmsb_last_error());
        }
        if (ch.epoch != k + 1) {
            return bench_fail(out, "epoch %llu after commit %llu", (unsigned long long)ch.epoch, (unsigned long long)k);
        }
    }
    return 0;
}

static int bench_lag(const bench_env *env, const void *arg, bench_out *out) {
    cluster c;
    int st = cluster_start(env, nodes_of(arg), &c, out);
    if (st <= 0) return st;
    mmsb_engine *e = NULL;
    int rc = open_replicated(env, &c, "lag", &e, out);
    lag_run l = {.commits = env->quick ? 5000 : 30000, .out = out};
    l.begun_ns = calloc(l.commits + 2, sizeof *l.begun_ns);
    if (l.begun_ns == NULL) rc = bench_fail(out, "out of memory");
    mmsb_change ch;
    if (rc == 0 && (mmsb_page_create(e, 4 * KiB, 0, &l.page) != 0 || mmsb_write(e, l.page, 0, "0", 1, &ch) != 0 ||
                    mmsb_wait_replicated(e, ch.commit_seq) != 0)) {
        rc = bench_fail(out, "%s", mmsb_last_error());
    }
    char dir[4096];
    bench_store_path(env, "lagreplica", dir, sizeof dir);
    if (rc == 0 && (mmsb_replica_open(dir, c.url, "lag", &l.rep) != 0 || mmsb_replica_engine(l.rep, &l.state) != 0)) {
        rc = bench_fail(out, "%s", mmsb_last_error());
    }
    uint8_t b[1];
    uint64_t epoch = 0;
    for (uint32_t polls = 0; rc == 0 && epoch < 1 && polls < 1000; polls++) { /* the page with its first epoch */
        if (mmsb_replica_poll(l.rep, 10, NULL) != 0) rc = bench_fail(out, "%s", mmsb_last_error());
        if (mmsb_page_read(l.state, l.page, 0, b, 1, &epoch) != 0) epoch = 0;
    }
    pthread_t follower, observer;
    bool threads = false;
    if (rc == 0) {
        atomic_init(&l.stop, false);
        atomic_init(&l.taken, 0);
        threads = pthread_create(&follower, NULL, lag_follower, &l) == 0;
        if (threads && pthread_create(&observer, NULL, lag_observer, &l) != 0) {
            atomic_store(&l.stop, true);
            pthread_join(follower, NULL);
            threads = false;
        }
        if (!threads) rc = bench_fail(out, "cannot start threads");
    }
    if (rc == 0) rc = lag_write(e, &l, out);
    for (uint32_t waited = 0; rc == 0 && threads && waited < 10000 && atomic_load(&l.taken) < l.commits; waited++) {
        sleep_us(1000);
    }
    if (threads) {
        atomic_store(&l.stop, true);
        pthread_join(observer, NULL);
        pthread_join(follower, NULL);
    }
    if (rc == 0 && l.follow_rc != 0) rc = bench_fail(out, "follower: %s", mmsb_strerror(l.follow_rc));
    if (rc == 0 && atomic_load(&l.taken) < l.commits) {
        rc = bench_fail(out, "the replica took %llu of %llu commits", (unsigned long long)atomic_load(&l.taken),
                        (unsigned long long)l.commits);
    }
    if (rc == 0) {
        snprintf(out->note, sizeof out->note, "%llu commits at %d/s, %u node%s", (unsigned long long)l.commits,
                 LAG_COMMITS_PER_S, c.nodes, c.nodes > 1 ? "s" : "");
    }
    mmsb_replica_close(l.rep);
    free(l.begun_ns);
    if (e != NULL) mmsb_close(e);
    cluster_stop(env, &c);
    return rc;
}

static const bench_def REPL[] = {
    {"peer/jetstream_publish_ack/64B", "us", bench_raw_publish, &ONE, NULL, GOAL_NONE, 0, NULL, NULL, NULL, NULL, 0},
    {"peer/jetstream_publish_ack/64B_3_nodes", "us", bench_raw_publish, &THREE, NULL, GOAL_NONE, 0, NULL, NULL, NULL,
     NULL, 0},
    {"peer/jetstream_publish_ack/1020KiB_messages_3_nodes", "MB/s", bench_raw_publish_bytes, &THREE, NULL, GOAL_NONE,
     0, NULL, NULL, NULL, NULL, 0},
    {"repl/commit_acknowledged/64B_REPLICATED_1_node", "us", bench_commit_latency, &ONE,
     "peer/jetstream_publish_ack/64B", GOAL_NONE, 0, NULL, NULL, NULL, NULL, 0},
    {"repl/commit_acknowledged/64B_REPLICATED_3_nodes", "us", bench_commit_latency, &THREE,
     "peer/jetstream_publish_ack/64B_3_nodes", GOAL_NONE, 0, NULL, NULL, NULL, NULL, 0},
    {"repl/commit_acknowledged/64B_SYNC_local", "us", bench_commit_latency, NULL, NULL, GOAL_NONE, 0, NULL, NULL, NULL,
     NULL, 0},
    {"repl/replicated_commits/64B_group_window_1_node", "K/s", bench_replicated_rate, &ONE, NULL, GOAL_NONE, 0, NULL,
     NULL, NULL, NULL, 0},
    {"repl/replicated_commits/64B_group_window_3_nodes", "K/s", bench_replicated_rate, &THREE, NULL, GOAL_AT_LEAST, 50,
     "issue 15", NULL, NULL, NULL, 0},
    {"repl/replicated_bytes/64KiB_changes_3_nodes", "MB/s", bench_replicated_bytes, &THREE,
     "peer/jetstream_publish_ack/1020KiB_messages_3_nodes", GOAL_RATIO_AT_LEAST, 0.8, "issue 15", NULL, NULL, NULL, 0},
    {"peer/jetstream_ordered_consumer/1020KiB_messages", "MB/s", bench_follow, "raw", NULL, GOAL_NONE, 0, NULL, NULL,
     NULL, NULL, 0},
    {"repl/ships_a_written_log/64KiB_changes_3_nodes", "MB/s", bench_ship_written, &THREE,
     "peer/jetstream_publish_ack/1020KiB_messages_3_nodes", GOAL_NONE, 0, NULL, NULL, NULL, NULL, 0},
    {"repl/primary_replays/64KiB_changes", "MB/s", bench_follow, "primary", NULL, GOAL_NONE, 0, NULL, NULL, NULL, NULL,
     0},
    {"repl/follower_takes/64KiB_changes", "MB/s", bench_follow, NULL, "repl/primary_replays/64KiB_changes",
     GOAL_RATIO_AT_LEAST, 1.0, "issue 15", NULL, NULL, NULL, 0},
    {"repl/lag/64B_commits_at_10k_per_s_3_nodes", "ms", bench_lag, &THREE, NULL, GOAL_NONE, 0, NULL, NULL, NULL, NULL,
     0},
};

const bench_def *bench_group_repl(uint32_t *count) {
    *count = sizeof REPL / sizeof REPL[0];
    return REPL;
}
