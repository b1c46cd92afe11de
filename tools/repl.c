/*
 * repl.c - what the replication commands share (see repl.h).
 */
#include <signal.h>
#include <time.h>

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

int repl_last_group(nats_link *l, const link_stream *ls, frame_meta *meta, uint64_t *len, uint64_t *stream_seq,
                    bool *found) {
    ASSERT(l != NULL && ls != NULL && meta != NULL && len != NULL && stream_seq != NULL && found != NULL);
    *found = false;
    uint64_t seq = ls->last_seq;
    for (uint32_t step = 0; step < REPL_WALK_BACK_MAX && seq >= 1 && seq >= ls->first_seq; step++, seq--) {
        link_msg m;
        int rc = link_get(l, seq, &m);
        if (rc == MMSB_ENOTFOUND) continue; /* removed from the stream by hand */
        if (rc != 0) return rc;
        rc = frame_parse(m.values, m.len, meta);
        *len = m.len;
        link_msg_free(&m);
        if (rc != 0) return err_set(rc, "stream message %llu: %s", (unsigned long long)seq, mmsb_last_error());
        if (meta->flags & FRAME_LAST) {
            *stream_seq = seq;
            *found = true;
            return 0;
        }
    }
    if (seq >= 1 && seq >= ls->first_seq) {
        return err_set(MMSB_ECORRUPT, "the stream's last %d messages end no group", REPL_WALK_BACK_MAX);
    }
    return 0;
}
