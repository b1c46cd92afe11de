/*
 * repl.c - what the replication commands share (see repl.h).
 */
#include <signal.h>
#include <stdio.h>
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


void repl_warn(const char *cmd, int rc) {
    static uint64_t last_ns; /* the command's pacing of one message: not engine state */
    uint64_t now = cli_now_ns();
    if (last_ns != 0 && now - last_ns < 5000000000ull) return;
    last_ns = now;
    fprintf(stderr, "mmsb %s: retrying: %s: %s\n", cmd, mmsb_strerror(rc), mmsb_last_error());
}
