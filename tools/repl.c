/*
 * repl.c - what the replication commands share (see repl.h).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "repl.h"

static volatile sig_atomic_t stop_signal; /* a signal handler can set nothing else */

static void on_stop(int sig) {
    (void)sig;
    stop_signal = 1;
}

void repl_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

bool repl_stop_requested(void) { return stop_signal != 0; }

void repl_sleep_ms(uint64_t ms) {
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}


void repl_warn(const char *cmd, int rc) {
    static uint64_t last_ns; /* the command's pacing of one message: not engine state */
    uint64_t now = cli_now_ns();
    if (last_ns != 0 && now - last_ns < 5000000000ull) return;
    last_ns = now;
    fprintf(stderr, "mmsb %s: retrying: %s: %s\n", cmd, mmsb_strerror(rc), cli_error_detail());
}

/* ---- standings (mmsb stats --server) ------------------------------------------------- */

static uint64_t wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* a report's age: never reaches a store */
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The age of stream message seq (0 when it cannot be read). */
static uint64_t message_age_ns(nats_link *l, uint64_t seq) {
    link_msg m;
    if (link_get(l, seq, &m) != 0) return 0;
    uint64_t stored = m.publish_ns, now = wall_ns();
    link_msg_free(&m);
    return stored != 0 && now > stored ? now - stored : 0;
}

static void stand(const char *server, const log_end *end, uint64_t segment_bytes, uint64_t replica_stream_seq,
                  stream_standing *st) {
    nats_link *l = NULL;
    link_stream ls;
    frame_meta last;
    uint64_t len = 0, seq = 0;
    bool found = false;
    int rc = replica_stream_name_ok(st->stream) ? link_open(server, st->stream, REPL_TIMEOUT_MS, &l)
                                                : err_set(MMSB_EINVAL, "the pin's stream name cannot be read");
    if (rc == 0) rc = link_stream_info(l, &ls);
    if (rc == 0 && !ls.exists) rc = err_set(MMSB_ENOTFOUND, "there is no stream %s", st->stream);
    if (rc == 0) rc = ship_last_group(l, &ls, &last, &len, &seq, &found);
    st->rc = rc;
    if (rc != 0) snprintf(st->problem, sizeof st->problem, "%s", cli_error_detail());
    if (rc == 0) {
        uint64_t mine = end->last_commit_seq, theirs = found ? last.last_seq : 0;
        log_point here = {end->resume_segment, end->resume_offset};
        log_point there = found ? (log_point){last.at.segment, last.at.offset + len} : (log_point){1, 0};
        if (end->empty) here = (log_point){1, 0};
        st->stream_last_seq = ls.last_seq;
        st->stream_commit_seq = theirs;
        if (st->replica) {
            st->behind_records = theirs > mine ? theirs - mine : 0;
            st->behind_bytes = log_point_distance(here, there, segment_bytes);
            st->behind_ns = st->behind_records > 0 ? message_age_ns(l, replica_stream_seq + 1) : 0;
        } else {
            st->behind_records = mine > theirs ? mine - theirs : 0;
            st->behind_bytes = log_point_distance(there, here, segment_bytes);
        }
    }
    link_close(l);
}

void repl_standings(const char *dir, const char *server, const log_end *end, uint64_t segment_bytes,
                    stream_standing *out, uint32_t *count) {
    *count = 0;
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return;
    replica_marker mk;
    bool replica = false;
    if (replica_marker_read(dir_fd, &mk, &replica) != 0) replica = false;
    ship_pin pins[SHIP_PINS_MAX];
    uint32_t pin_count = 0;
    if (ship_pins_read(dir_fd, pins, SHIP_PINS_MAX, &pin_count) != 0) pin_count = 0;
    close(dir_fd);
    if (replica) {
        out[*count] = (stream_standing){.replica = true};
        snprintf(out[*count].stream, sizeof out[*count].stream, "%s", mk.stream);
        stand(server, end, segment_bytes, mk.stream_seq, &out[(*count)++]);
    }
    for (uint32_t i = 0; i < pin_count && *count < STANDINGS_MAX; i++) {
        out[*count] = (stream_standing){.replica = false};
        snprintf(out[*count].stream, sizeof out[*count].stream, "%s", pins[i].stream);
        stand(server, end, segment_bytes, 0, &out[(*count)++]);
    }
}
