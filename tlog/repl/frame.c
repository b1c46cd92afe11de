/*
 * frame.c - the replication message's headers (see frame.h and FORMAT.md).
 */
#include <stdio.h>
#define XXH_INLINE_ALL /* as everywhere in the library: no link-time dependency */
#include <xxhash.h>

#include "frame.h"

const char *const frame_header_names[FRAME_H_COUNT] = {
    [FRAME_H_SALT] = "Mmsb-Salt",         [FRAME_H_SEGMENT] = "Mmsb-Segment",
    [FRAME_H_OFFSET] = "Mmsb-Offset",     [FRAME_H_FIRST_SEQ] = "Mmsb-First-Seq",
    [FRAME_H_LAST_SEQ] = "Mmsb-Last-Seq", [FRAME_H_FLAGS] = "Mmsb-Flags",
    [FRAME_H_CHAIN] = "Mmsb-Chain",
};

static const char *const flag_words[4] = {"middle", "first", "last", "first,last"};

static void hex_of(const uint8_t *bytes, uint32_t len, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (uint32_t i = 0; i < len; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * len] = '\0';
}

void frame_format(const frame_meta *m, frame_values *out) {
    ASSERT(m != NULL && out != NULL);
    ASSERT(m->flags <= (FRAME_FIRST | FRAME_LAST) && m->at.segment >= 1);
    uint8_t be[16];
    put_be64(be, m->salt);
    hex_of(be, 8, out->v[FRAME_H_SALT]);
    snprintf(out->v[FRAME_H_SEGMENT], FRAME_VALUE_MAX, "%llu", (unsigned long long)m->at.segment);
    snprintf(out->v[FRAME_H_OFFSET], FRAME_VALUE_MAX, "%llu", (unsigned long long)m->at.offset);
    snprintf(out->v[FRAME_H_FIRST_SEQ], FRAME_VALUE_MAX, "%llu", (unsigned long long)m->first_seq);
    snprintf(out->v[FRAME_H_LAST_SEQ], FRAME_VALUE_MAX, "%llu", (unsigned long long)m->last_seq);
    snprintf(out->v[FRAME_H_FLAGS], FRAME_VALUE_MAX, "%s", flag_words[m->flags]);
    put_h128(be, m->chain);
    hex_of(be, 16, out->v[FRAME_H_CHAIN]);
    ASSERT(strlen(out->v[FRAME_H_CHAIN]) == 32);
}

/* Exactly `digits` lowercase or uppercase hex digits. */
static bool parse_hex(const char *s, uint32_t digits, uint8_t *out) {
    if (strlen(s) != digits) return false;
    for (uint32_t i = 0; i < digits; i++) {
        char ch = s[i];
        uint8_t v = ch >= '0' && ch <= '9' ? (uint8_t)(ch - '0')
                    : ch >= 'a' && ch <= 'f' ? (uint8_t)(ch - 'a' + 10)
                    : ch >= 'A' && ch <= 'F' ? (uint8_t)(ch - 'A' + 10)
                                             : 0xff;
        if (v == 0xff) return false;
        out[i / 2] = (uint8_t)(i % 2 == 0 ? v << 4 : out[i / 2] | v);
    }
    return true;
}

/* A decimal number of at most 19 digits (no sign, no spaces). */
static bool parse_dec(const char *s, uint64_t *out) {
    size_t n = strlen(s);
    if (n == 0 || n > 19) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

static int bad(const char *name, const char *value) {
    if (value == NULL) return err_set(MMSB_ECORRUPT, "replication message: header %s is missing", name);
    return err_set(MMSB_ECORRUPT, "replication message: header %s is not valid: '%.48s'", name, value);
}

/* The rules a message's place and flags follow, whatever its bytes. */
static int check_place(const frame_meta *m, uint64_t body_len) {
    ASSERT(m != NULL);
    if (body_len == 0 || body_len > FRAME_BODY_MAX) {
        return err_set(MMSB_ECORRUPT, "replication message: %llu bytes (1 .. %d)", (unsigned long long)body_len,
                       FRAME_BODY_MAX);
    }
    if (m->at.segment == 0 || m->at.segment > 9999999999ull) return bad(frame_header_names[FRAME_H_SEGMENT], "range");
    if (m->at.offset + body_len > SEG_BYTES_MAX) return bad(frame_header_names[FRAME_H_OFFSET], "past a segment");
    bool boundary = m->at.offset == 0 || (m->at.offset >= SEG_HEADER_BYTES && m->at.offset % REC_ALIGN == 0);
    if ((m->flags & FRAME_FIRST) && !boundary) return bad(frame_header_names[FRAME_H_FLAGS], "first, off a record");
    if ((m->flags & FRAME_LAST) && m->last_seq == 0) return bad(frame_header_names[FRAME_H_LAST_SEQ], "0");
    if (m->first_seq > m->last_seq && m->last_seq != 0) return bad(frame_header_names[FRAME_H_FIRST_SEQ], ">last");
    return 0;
}

int frame_parse(const char *const values[FRAME_H_COUNT], uint64_t body_len, frame_meta *out) {
    ASSERT(values != NULL && out != NULL);
    memset(out, 0, sizeof *out);
    for (uint32_t i = 0; i < FRAME_H_COUNT; i++) {
        if (values[i] == NULL) return bad(frame_header_names[i], NULL);
    }
    uint8_t be[16];
    if (!parse_hex(values[FRAME_H_SALT], 16, be)) return bad(frame_header_names[FRAME_H_SALT], values[FRAME_H_SALT]);
    out->salt = get_be64(be);
    if (!parse_hex(values[FRAME_H_CHAIN], 32, be)) return bad(frame_header_names[FRAME_H_CHAIN], values[FRAME_H_CHAIN]);
    out->chain = get_h128(be);
    uint64_t *const dec[] = {[FRAME_H_SEGMENT] = &out->at.segment, [FRAME_H_OFFSET] = &out->at.offset,
                             [FRAME_H_FIRST_SEQ] = &out->first_seq, [FRAME_H_LAST_SEQ] = &out->last_seq};
    for (uint32_t i = FRAME_H_SEGMENT; i <= FRAME_H_LAST_SEQ; i++) {
        if (!parse_dec(values[i], dec[i])) return bad(frame_header_names[i], values[i]);
    }
    uint32_t flags = 4;
    for (uint32_t i = 0; i < 4; i++) {
        if (strcmp(values[FRAME_H_FLAGS], flag_words[i]) == 0) flags = i;
    }
    if (flags == 4) return bad(frame_header_names[FRAME_H_FLAGS], values[FRAME_H_FLAGS]);
    out->flags = flags;
    int rc = check_place(out, body_len);
    ASSERT(rc != 0 || out->flags <= (FRAME_FIRST | FRAME_LAST));
    return rc;
}

void frame_msg_id(const frame_meta *m, const uint8_t *body, uint64_t body_len, char out[FRAME_ID_MAX]) {
    ASSERT(m != NULL && body != NULL && out != NULL);
    ASSERT(body_len >= 1 && body_len <= FRAME_BODY_MAX);
    uint64_t h = XXH3_64bits(body, (size_t)body_len);
    snprintf(out, FRAME_ID_MAX, "%016llx-%llu-%llu-%016llx", (unsigned long long)m->salt,
             (unsigned long long)m->at.segment, (unsigned long long)m->at.offset, (unsigned long long)h);
}
