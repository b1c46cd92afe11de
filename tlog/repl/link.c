/*
 * link.c - the JetStream calls of replication (see link.h), through
 * nats.c.
 */
#include <inttypes.h>
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>

#include "link.h"

struct nats_link {
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub;
    int64_t timeout_ms;
    char stream[96];
    char subject[LINK_SUBJECT_MAX];
    char servers[256];
};

/* A nats.c failure as an MMSB_E* code with the library's words. */
static int link_err(const nats_link *l, const char *what, natsStatus s, jsErrCode jerr) {
    const char *detail = nats_GetLastError(NULL);
    return err_set(MMSB_EREPLICA, "NATS %s (%s, stream %s): %s%s%s (JetStream error %d)", what, l->servers, l->stream,
                   natsStatus_GetText(s), detail != NULL && detail[0] != '\0' ? ": " : "",
                   detail != NULL ? detail : "", (int)jerr);
}

const char *link_subject(const nats_link *l) { return l->subject; }

const char *link_stream_name(const nats_link *l) { return l->stream; }

int link_open(const char *servers, const char *stream, uint64_t timeout_ms, nats_link **out) {
    ASSERT(servers != NULL && stream != NULL && out != NULL);
    ASSERT(timeout_ms >= 1);
    *out = NULL;
    nats_link *l = calloc(1, sizeof *l);
    if (l == NULL) return err_set(MMSB_ENOMEM, "NATS link");
    snprintf(l->stream, sizeof l->stream, "%s", stream);
    snprintf(l->subject, sizeof l->subject, "mmsb.%s", stream);
    snprintf(l->servers, sizeof l->servers, "%s", servers);
    l->timeout_ms = (int64_t)timeout_ms;
    char list[256];
    const char *urls[LINK_SERVERS_MAX];
    int count = 0;
    snprintf(list, sizeof list, "%s", servers);
    for (char *save = NULL, *u = strtok_r(list, ",", &save); u != NULL && count < LINK_SERVERS_MAX;
         u = strtok_r(NULL, ",", &save)) {
        urls[count++] = u;
    }
    if (count == 0 || strlen(servers) >= sizeof list) {
        link_close(l);
        return err_set(MMSB_EINVAL, "--server: a comma-separated list of up to %d URLs (nats://HOST:PORT), "
                       "at most %zu characters", LINK_SERVERS_MAX, sizeof list - 1);
    }
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK) s = natsOptions_SetServers(o, urls, count);
    if (s == NATS_OK) s = natsOptions_SetTimeout(o, l->timeout_ms);
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(o, -1); /* ride out a server restart */
    if (s == NATS_OK) s = natsOptions_SetReconnectWait(o, 100);
    if (s == NATS_OK) s = natsConnection_Connect(&l->nc, o);
    natsOptions_Destroy(o);
    jsOptions jo;
    if (s == NATS_OK) s = jsOptions_Init(&jo);
    jo.Wait = l->timeout_ms;
    if (s == NATS_OK) s = natsConnection_JetStream(&l->js, l->nc, &jo);
    if (s != NATS_OK) {
        int rc = link_err(l, "connect", s, 0);
        link_close(l);
        return rc;
    }
    *out = l;
    return 0;
}

void link_close(nats_link *l) {
    if (l == NULL) return;
    natsSubscription_Destroy(l->sub);
    jsCtx_Destroy(l->js);
    natsConnection_Destroy(l->nc);
    free(l);
}

static bool takes_subject(const jsStreamConfig *cfg, const char *subject) {
    for (int i = 0; i < cfg->SubjectsLen; i++) {
        if (strcmp(cfg->Subjects[i], subject) == 0) return true;
    }
    return false;
}

int link_stream_info(nats_link *l, link_stream *out) {
    ASSERT(l != NULL && out != NULL);
    memset(out, 0, sizeof *out);
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, l->js, l->stream, NULL, &jerr);
    if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) return 0;
    if (s != NATS_OK) return link_err(l, "stream info", s, jerr);
    out->exists = true;
    out->first_seq = si->State.FirstSeq;
    out->last_seq = si->State.LastSeq;
    out->messages = si->State.Msgs;
    out->replicas = si->Config->Replicas;
    bool ok = takes_subject(si->Config, l->subject);
    jsStreamInfo_Destroy(si);
    if (!ok) {
        return err_set(MMSB_EINVAL, "NATS stream %s does not take the subject %s: it is not an mmsb stream", l->stream,
                       l->subject);
    }
    return 0;
}

int link_stream_create(nats_link *l, int64_t replicas) {
    ASSERT(l != NULL && replicas >= 1);
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char *subjects[1] = {l->subject};
    cfg.Name = l->stream;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = replicas;
    cfg.MaxMsgSize = 1 << 20; /* the body and its headers */
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_AddStream(&si, l->js, &cfg, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    return s == NATS_OK ? 0 : link_err(l, "create stream", s, jerr);
}

static void fill_msg(natsMsg *nm, link_msg *out) {
    memset(out, 0, sizeof *out);
    out->handle = nm;
    for (uint32_t i = 0; i < FRAME_H_COUNT; i++) {
        const char *v = NULL;
        if (natsMsgHeader_Get(nm, frame_header_names[i], &v) == NATS_OK) out->values[i] = v;
    }
    out->data = (const uint8_t *)natsMsg_GetData(nm);
    out->len = (uint64_t)natsMsg_GetDataLength(nm);
}

int link_get(nats_link *l, uint64_t stream_seq, link_msg *out) {
    ASSERT(l != NULL && out != NULL && stream_seq >= 1);
    natsMsg *nm = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetMsg(&nm, l->js, l->stream, stream_seq, NULL, &jerr);
    if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr) {
        return err_set(MMSB_ENOTFOUND, "NATS stream %s has no message %" PRIu64, l->stream, stream_seq);
    }
    if (s != NATS_OK) return link_err(l, "get message", s, jerr);
    fill_msg(nm, out);
    out->stream_seq = stream_seq;
    int64_t stored_ns = natsMsg_GetTime(nm);
    out->publish_ns = stored_ns > 0 ? (uint64_t)stored_ns : 0;
    return 0;
}

void link_msg_free(link_msg *m) {
    if (m == NULL) return;
    natsMsg_Destroy(m->handle);
    memset(m, 0, sizeof *m);
}

static natsStatus set_headers(natsMsg *nm, const frame_meta *meta, const uint8_t *body, uint64_t len,
                              uint64_t expect_last) {
    frame_values fv;
    frame_format(meta, &fv);
    natsStatus s = NATS_OK;
    for (uint32_t i = 0; i < FRAME_H_COUNT && s == NATS_OK; i++)
        s = natsMsgHeader_Set(nm, frame_header_names[i], fv.v[i]);
    char id[FRAME_ID_MAX], expect[24];
    frame_msg_id(meta, body, len, id);
    snprintf(expect, sizeof expect, "%" PRIu64, expect_last);
    /* Set by hand: nats.c leaves the header out for 0, which here means
     * "the stream is empty". */
    if (s == NATS_OK) s = natsMsgHeader_Set(nm, "Nats-Msg-Id", id);
    if (s == NATS_OK) s = natsMsgHeader_Set(nm, "Nats-Expected-Last-Sequence", expect);
    return s;
}

int link_publish(nats_link *l, const frame_meta *meta, const uint8_t *body, uint64_t len, uint64_t expect_last,
                 uint64_t *stream_seq_out, bool *duplicate) {
    ASSERT(l != NULL && meta != NULL && body != NULL && stream_seq_out != NULL && duplicate != NULL);
    ASSERT(len >= 1 && len <= FRAME_BODY_MAX);
    natsMsg *nm = NULL;
    natsStatus s = natsMsg_Create(&nm, l->subject, NULL, (const char *)body, (int)len);
    if (s == NATS_OK) s = set_headers(nm, meta, body, len, expect_last);
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    if (s == NATS_OK) s = js_PublishMsg(&pa, l->js, nm, NULL, &jerr);
    natsMsg_Destroy(nm);
    if (jerr == JSStreamWrongLastSequenceErr) {
        jsPubAck_Destroy(pa);
        return err_set(MMSB_EFENCED, "NATS stream %s moved on: its last message is no longer %" PRIu64
                       " (another writer published; this one is fenced)", l->stream, expect_last);
    }
    if (s != NATS_OK) {
        jsPubAck_Destroy(pa);
        return link_err(l, "publish", s, jerr);
    }
    *stream_seq_out = pa->Sequence;
    *duplicate = pa->Duplicate;
    jsPubAck_Destroy(pa);
    return 0;
}

int link_subscribe(nats_link *l, uint64_t start_seq) {
    ASSERT(l != NULL && l->sub == NULL && start_seq >= 1);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = l->stream;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = start_seq;
    jsErrCode jerr = 0;
    natsStatus s = js_SubscribeSync(&l->sub, l->js, l->subject, NULL, &so, &jerr);
    return s == NATS_OK ? 0 : link_err(l, "subscribe", s, jerr);
}

int link_next(nats_link *l, uint64_t timeout_ms, link_msg *out, bool *timed_out) {
    ASSERT(l != NULL && l->sub != NULL && out != NULL && timed_out != NULL);
    *timed_out = false;
    natsMsg *nm = NULL;
    natsStatus s = natsSubscription_NextMsg(&nm, l->sub, (int64_t)timeout_ms);
    if (s == NATS_TIMEOUT) {
        *timed_out = true;
        return 0;
    }
    if (s != NATS_OK) return link_err(l, "receive", s, 0);
    jsMsgMetaData *md = NULL;
    s = natsMsg_GetMetaData(&md, nm);
    if (s != NATS_OK) {
        natsMsg_Destroy(nm);
        return link_err(l, "message metadata", s, 0);
    }
    fill_msg(nm, out);
    out->stream_seq = md->Sequence.Stream;
    out->publish_ns = md->Timestamp > 0 ? (uint64_t)md->Timestamp : 0;
    jsMsgMetaData_Destroy(md);
    return 0;
}
