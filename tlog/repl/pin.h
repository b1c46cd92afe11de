/*
 * pin.h - what a store's shippers still need of its log: one small file
 * per stream, "ship-NAME.pin", naming the oldest segment the stream does
 * not hold whole yet. Retention (engine/checkpoint.c) keeps that segment
 * and every later one, so a shipper that lags, stops or waits for a lost
 * quorum resumes where the stream ends instead of finding its log removed.
 * A pin stays until it is moved on by its shipper or removed by hand
 * (`mmsb ship DIR --stream NAME --unpin`): a stream given up holds the
 * log's segments until then.
 */
#ifndef MMSB_TLOG_REPL_PIN_H
#define MMSB_TLOG_REPL_PIN_H

#include "../format.h"

enum { SHIP_PINS_MAX = 64 }; /* pin files read; more is refused as damage */

/* Writes (replacing) the pin of `stream` in dir_fd: segments from `segment`
 * on are needed. Durable before it returns when it is new. */
MUST_CHECK int ship_pin_write(int dir_fd, const char *stream, uint64_t segment);
/* Removes the pin of `stream`; *removed false when there was none. */
MUST_CHECK int ship_pin_remove(int dir_fd, const char *stream, bool *removed);

typedef struct ship_pin {
    char stream[65];
    uint64_t segment; /* 1 for a pin that cannot be read: it keeps everything */
} ship_pin;

/* The pins in dir_fd (at most cap); *count says how many. A file that
 * cannot be parsed counts as a pin of segment 1 (keep everything). */
MUST_CHECK int ship_pins_read(int dir_fd, ship_pin *pins, uint32_t cap, uint32_t *count);
/* The lowest pinned segment; 0 when nothing is pinned. */
uint64_t ship_pin_floor(int dir_fd);

#endif /* MMSB_TLOG_REPL_PIN_H */
