/* SPDX-License-Identifier: Apache-2.0 */
/* Event bus on Redis Streams (XADD, consumer groups, resumable XREAD) and best-effort pub/sub. */
#include "events/bus.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "redis/redis.h"

#define BUS_BLOCK_MS "5000"
#define BUS_BATCH "100"
#define BUS_RETRY_MS 1000
#define BUS_DEFAULT_MAXLEN 100000L
#define BUS_CLAIM_EVERY_MS 10000
#define BUS_CLAIM_IDLE_MS 30000

enum sub_kind { S_GROUP, S_READ, S_LISTEN };

struct baic_bus {
    uv_loop_t *loop;
    char *host;
    int port;
    char *password;
    baic_redis_t *pub;
    long maxlen;
    uint64_t claim_every_ms, claim_idle_ms;
    baic_bus_sub_t *subs;
    int closing;
    int open;  /* connections and handles still to close */
    baic_bus_close_cb close_cb;
    void *close_arg;
};

struct baic_bus_sub {
    baic_bus_t *bus;
    baic_bus_sub_t *next, *prev;
    enum sub_kind kind;
    char *stream;   /* or channel */
    char *group;
    char *consumer;
    char last_id[64];
    int pending;    /* group: still re-reading our own unacknowledged entries */
    uint64_t claimed_at; /* group: loop time of the last XAUTOCLAIM (0: claim first) */
    baic_bus_handler h;
    baic_bus_notify_cb ncb;
    void *arg;
    baic_redis_t *r;
    uv_timer_t retry;
    int dead;
    int open;
};

static void bus_maybe_free(baic_bus_t *bus) {
    if (!bus->closing || bus->open > 0 || bus->subs)
        return;
    baic_bus_close_cb cb = bus->close_cb;
    void *arg = bus->close_arg;
    free(bus->host);
    free(bus->password);
    free(bus);
    if (cb)
        cb(arg);
}

/* ---- publishing ---- */

int baic_bus_new(uv_loop_t *loop, const char *host, int port, const char *password,
                 baic_bus_t **out) {
    if (!loop || !host || !out)
        return -EINVAL;
    baic_bus_t *bus = calloc(1, sizeof *bus);
    if (!bus)
        return -ENOMEM;
    bus->loop = loop;
    bus->port = port;
    bus->maxlen = BUS_DEFAULT_MAXLEN;
    bus->claim_every_ms = BUS_CLAIM_EVERY_MS;
    bus->claim_idle_ms = BUS_CLAIM_IDLE_MS;
    bus->host = strdup(host);
    bus->password = password ? strdup(password) : NULL;
    int rc = bus->host && (!password || bus->password) ? 0 : -ENOMEM;
    if (rc == 0)
        rc = baic_redis_new(loop, host, port, password, &bus->pub);
    if (rc < 0) {
        free(bus->host);
        free(bus->password);
        free(bus);
        return rc;
    }
    bus->open = 1;
    *out = bus;
    return 0;
}

void baic_bus_set_maxlen(baic_bus_t *bus, long maxlen) { bus->maxlen = maxlen; }

void baic_bus_set_claim(baic_bus_t *bus, unsigned every_ms, unsigned idle_ms) {
    bus->claim_every_ms = every_ms;
    bus->claim_idle_ms = idle_ms;
}

struct pub_req {
    baic_bus_pub_cb cb;
    void *arg;
};

int baic_bus_ack(baic_bus_t *bus, const char *stream, const char *group, const char *id) {
    if (!bus || !stream || !group || !id)
        return -EINVAL;
    if (bus->closing)
        return BAIC_ECANCELLED;
    const char *argv[] = {"XACK", stream, group, id};
    return baic_redis_cmd_argv(bus->pub, 4, argv, NULL, NULL, NULL);
}

static void on_published(redisReply *reply, int err, const char *errmsg, void *arg) {
    struct pub_req *p = arg;
    if (err)
        baic_log(BAIC_LOG_WARN, "bus_publish_failed", "error=\"%s\"", errmsg ? errmsg : "");
    if (p->cb)
        p->cb(!err && reply->type == REDIS_REPLY_STRING ? reply->str : NULL,
              err ? err : (reply->type == REDIS_REPLY_STRING ? 0 : BAIC_EBACKEND), p->arg);
    free(p);
}

int baic_bus_publish(baic_bus_t *bus, const char *stream, const char *name, json_t *body,
                     baic_bus_pub_cb cb, void *arg) {
    if (!bus || !stream || !name)
        return -EINVAL;
    if (bus->closing)
        return BAIC_ECANCELLED;
    char *js = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("{}");
    struct pub_req *p = malloc(sizeof *p);
    if (!js || !p) {
        free(js);
        free(p);
        return -ENOMEM;
    }
    p->cb = cb;
    p->arg = arg;
    char maxlen[32];
    snprintf(maxlen, sizeof maxlen, "%ld", bus->maxlen);
    const char *capped[] = {"XADD", stream, "MAXLEN", "~", maxlen, "*", "name", name, "body", js};
    const char *plain[] = {"XADD", stream, "*", "name", name, "body", js};
    int rc = bus->maxlen > 0 ? baic_redis_cmd_argv(bus->pub, 10, capped, NULL, on_published, p)
                             : baic_redis_cmd_argv(bus->pub, 7, plain, NULL, on_published, p);
    free(js);
    if (rc < 0)
        free(p);
    return rc;
}

int baic_bus_notify(baic_bus_t *bus, const char *channel, const char *msg) {
    if (!bus || !channel || !msg)
        return -EINVAL;
    if (bus->closing)
        return BAIC_ECANCELLED;
    return baic_redis_cmd(bus->pub, NULL, NULL, "PUBLISH", channel, msg, NULL);
}

/* ---- subscriptions ---- */

static void sub_start(baic_bus_sub_t *s);
static void sub_read(baic_bus_sub_t *s);

static void on_retry(uv_timer_t *t) {
    baic_bus_sub_t *s = t->data;
    if (!s->dead && baic_redis_connected(s->r))
        sub_start(s);
}

static void sub_retry_later(baic_bus_sub_t *s) {
    uv_timer_start(&s->retry, on_retry, BUS_RETRY_MS, 0);
}

/* A reply that asks nothing more of this subscription: it was ended, or its connection
 * dropped (the connect hook starts it again). */
static int sub_reply_void(const baic_bus_sub_t *s, int err) {
    return s->dead || err == -ECONNRESET || err == BAIC_ECANCELLED;
}

/* Entry layout: [id, [field, value, ...]] (fields nil when the entry was deleted). */
static int deliver(baic_bus_sub_t *s, redisReply *e) {
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    const char *id = e->element[0]->str;
    const char *name = "";
    json_t *body = NULL;
    redisReply *f = e->element[1];
    if (f->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < f->elements; i += 2) {
            redisReply *k = f->element[i], *v = f->element[i + 1];
            if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(k->str, "name") == 0)
                name = v->str;
            else if (strcmp(k->str, "body") == 0 && !body)
                body = json_loadb(v->str, v->len, JSON_DECODE_ANY, NULL);
        }
    }
    if (!body)
        body = json_null();
    baic_bus_event_t ev = {.stream = s->stream, .id = id, .name = name, .body = body};
    snprintf(s->last_id, sizeof s->last_id, "%s", id);
    int keep = 0;
    if (f->type == REDIS_REPLY_ARRAY)
        keep = s->h(&ev, s->arg);
    json_decref(body);
    if (s->dead)
        return 1;
    /* On the publishing connection: an unsubscribe right after the handler closes ours
     * before its output is flushed, and the ack would be lost. */
    if (s->kind == S_GROUP && keep == 0)
        (void)baic_bus_ack(s->bus, s->stream, s->group, id);
    return 0;
}

static void on_read(redisReply *reply, int err, const char *errmsg, void *arg) {
    baic_bus_sub_t *s = arg;
    if (sub_reply_void(s, err))
        return;
    if (err) {
        /* NOGROUP: the stream or group vanished (a Redis without persistence restarted). */
        if (errmsg && strncmp(errmsg, "NOGROUP", 7) == 0) {
            sub_start(s);
            return;
        }
        baic_log(BAIC_LOG_WARN, "bus_read_failed", "stream=%s error=\"%s\"", s->stream, errmsg);
        sub_retry_later(s);
        return;
    }
    size_t got = 0;
    /* [[stream, [entry, ...]]] or nil when BLOCK timed out. */
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0) {
        redisReply *st = reply->element[0];
        if (st->type == REDIS_REPLY_ARRAY && st->elements == 2 &&
            st->element[1]->type == REDIS_REPLY_ARRAY) {
            redisReply *entries = st->element[1];
            got = entries->elements;
            for (size_t i = 0; i < entries->elements; i++)
                if (deliver(s, entries->element[i]))
                    return; /* unsubscribed in the handler */
        }
    }
    if (s->kind == S_GROUP && s->pending && got == 0)
        s->pending = 0;
    sub_read(s);
}

/*
 * Entries another consumer of the group was given and never acknowledged: a manager
 * killed between reading an event and applying it (consumers are named per process, so
 * its successor never reads them as its own). Between reads, every claim_every_ms, this
 * consumer takes over (XAUTOCLAIM) those idle for claim_idle_ms, far longer than a live
 * consumer takes to acknowledge, and handles them like its own; handlers are idempotent.
 * Reply: [next start id, [entry, ...], [deleted ids] (Redis >= 7)].
 */
static void on_claimed(redisReply *reply, int err, const char *errmsg, void *arg) {
    baic_bus_sub_t *s = arg;
    if (sub_reply_void(s, err))
        return;
    if (err) {
        /* (a Redis before 6.2 has no XAUTOCLAIM: only own pending entries come back) */
        baic_log(BAIC_LOG_WARN, "bus_claim_failed", "stream=%s error=\"%s\"", s->stream, errmsg);
    } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2 &&
               reply->element[1]->type == REDIS_REPLY_ARRAY) {
        redisReply *entries = reply->element[1];
        if (entries->elements > 0)
            baic_log(BAIC_LOG_WARN, "bus_claimed", "stream=%s group=%s entries=%zu", s->stream,
                     s->group, entries->elements);
        for (size_t i = 0; i < entries->elements; i++)
            if (deliver(s, entries->element[i]))
                return; /* unsubscribed in the handler */
        /* More than one batch waits: the next read claims again first. */
        redisReply *next = reply->element[0];
        if (next->type == REDIS_REPLY_STRING && strcmp(next->str, "0-0") != 0)
            s->claimed_at = 0;
    }
    sub_read(s);
}

static void sub_read(baic_bus_sub_t *s) {
    int rc;
    uint64_t now = uv_now(s->bus->loop);
    if (s->kind == S_GROUP && !s->pending && s->bus->claim_every_ms > 0 &&
        (s->claimed_at == 0 || now - s->claimed_at >= s->bus->claim_every_ms)) {
        s->claimed_at = now ? now : 1;
        char idle[24];
        snprintf(idle, sizeof idle, "%llu", (unsigned long long)s->bus->claim_idle_ms);
        const char *argv[] = {"XAUTOCLAIM", s->stream, s->group, s->consumer, idle,
                              "0-0",        "COUNT",   BUS_BATCH};
        rc = baic_redis_cmd_argv(s->r, 8, argv, NULL, on_claimed, s);
        if (rc < 0 && rc != -ENOTCONN)
            sub_retry_later(s);
        return;
    }
    if (s->kind == S_GROUP) {
        if (s->pending) {
            const char *argv[] = {"XREADGROUP", "GROUP", s->group, s->consumer, "COUNT",
                                  BUS_BATCH, "STREAMS", s->stream, s->last_id};
            rc = baic_redis_cmd_argv(s->r, 9, argv, NULL, on_read, s);
        } else {
            const char *argv[] = {"XREADGROUP", "GROUP", s->group, s->consumer, "COUNT", BUS_BATCH,
                                  "BLOCK", BUS_BLOCK_MS, "STREAMS", s->stream, ">"};
            rc = baic_redis_cmd_argv(s->r, 11, argv, NULL, on_read, s);
        }
    } else {
        const char *argv[] = {"XREAD", "COUNT", BUS_BATCH, "BLOCK", BUS_BLOCK_MS,
                              "STREAMS", s->stream, s->last_id};
        rc = baic_redis_cmd_argv(s->r, 8, argv, NULL, on_read, s);
    }
    if (rc < 0 && rc != -ENOTCONN) /* -ENOTCONN: the connect hook restarts us */
        sub_retry_later(s);
}

static void on_group_created(redisReply *reply, int err, const char *errmsg, void *arg) {
    baic_bus_sub_t *s = arg;
    if (sub_reply_void(s, err))
        return;
    if (err && !(errmsg && strncmp(errmsg, "BUSYGROUP", 9) == 0)) {
        baic_log(BAIC_LOG_WARN, "bus_group_create_failed", "stream=%s group=%s error=\"%s\"",
                 s->stream, s->group, errmsg);
        sub_retry_later(s);
        return;
    }
    /* First hand back what this consumer was given but never acknowledged. */
    s->pending = 1;
    snprintf(s->last_id, sizeof s->last_id, "0");
    sub_read(s);
}

static void on_last_id(redisReply *reply, int err, const char *errmsg, void *arg) {
    baic_bus_sub_t *s = arg;
    if (sub_reply_void(s, err))
        return;
    if (err) {
        sub_retry_later(s);
        return;
    }
    /* Pin "$" to a concrete id once, so nothing published between two reads is lost. */
    snprintf(s->last_id, sizeof s->last_id, "0-0");
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
        reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements > 0 &&
        reply->element[0]->element[0]->type == REDIS_REPLY_STRING)
        snprintf(s->last_id, sizeof s->last_id, "%s", reply->element[0]->element[0]->str);
    sub_read(s);
}

static void on_message(redisReply *reply, int err, const char *errmsg, void *arg) {
    baic_bus_sub_t *s = arg;
    if (s->dead || err || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3)
        return;
    redisReply *kind = reply->element[0];
    if (kind->type != REDIS_REPLY_STRING || strcmp(kind->str, "message") != 0)
        return;
    redisReply *ch = reply->element[1], *msg = reply->element[2];
    if (ch->type == REDIS_REPLY_STRING && msg->type == REDIS_REPLY_STRING)
        s->ncb(ch->str, msg->str, msg->len, s->arg);
}

static void sub_start(baic_bus_sub_t *s) {
    int rc = 0;
    switch (s->kind) {
    case S_GROUP: {
        const char *argv[] = {"XGROUP", "CREATE", s->stream, s->group, "$", "MKSTREAM"};
        rc = baic_redis_cmd_argv(s->r, 6, argv, NULL, on_group_created, s);
        break;
    }
    case S_READ:
        if (strcmp(s->last_id, "$") == 0) {
            const char *argv[] = {"XREVRANGE", s->stream, "+", "-", "COUNT", "1"};
            rc = baic_redis_cmd_argv(s->r, 6, argv, NULL, on_last_id, s);
        } else {
            sub_read(s);
        }
        break;
    case S_LISTEN: {
        const char *argv[] = {"SUBSCRIBE", s->stream};
        rc = baic_redis_cmd_argv(s->r, 2, argv, NULL, on_message, s);
        break;
    }
    }
    if (rc < 0 && rc != -ENOTCONN)
        sub_retry_later(s);
}

static void on_sub_connected(baic_redis_t *r, void *arg) {
    baic_bus_sub_t *s = arg;
    if (!s->dead)
        sub_start(s);
}

static void sub_free_part(baic_bus_sub_t *s) {
    if (--s->open > 0)
        return;
    baic_bus_t *bus = s->bus;
    free(s->stream);
    free(s->group);
    free(s->consumer);
    free(s);
    bus->open--;
    bus_maybe_free(bus);
}

static void on_sub_redis_closed(void *arg) { sub_free_part(arg); }
static void on_sub_timer_closed(uv_handle_t *h) { sub_free_part(h->data); }

static int sub_new(baic_bus_t *bus, enum sub_kind kind, const char *stream, const char *group,
                   const char *consumer, const char *last_id, baic_bus_sub_t **out,
                   baic_bus_sub_t **made) {
    if (!bus || !stream)
        return -EINVAL;
    if (bus->closing)
        return BAIC_ECANCELLED;
    if (last_id && strlen(last_id) >= sizeof((baic_bus_sub_t *)0)->last_id)
        return -EINVAL;
    baic_bus_sub_t *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->bus = bus;
    s->kind = kind;
    s->stream = strdup(stream);
    s->group = group ? strdup(group) : NULL;
    s->consumer = consumer ? strdup(consumer) : NULL;
    snprintf(s->last_id, sizeof s->last_id, "%s", last_id ? last_id : "0");
    int rc = (!s->stream || (group && !s->group) || (consumer && !s->consumer)) ? -ENOMEM : 0;
    if (rc == 0)
        rc = baic_redis_new(bus->loop, bus->host, bus->port, bus->password, &s->r);
    if (rc < 0) {
        free(s->stream);
        free(s->group);
        free(s->consumer);
        free(s);
        return rc;
    }
    baic_redis_set_connect_cb(s->r, on_sub_connected, s);
    uv_timer_init(bus->loop, &s->retry);
    s->retry.data = s;
    s->open = 2;
    bus->open++;
    s->next = bus->subs;
    if (bus->subs)
        bus->subs->prev = s;
    bus->subs = s;
    if (out)
        *out = s;
    *made = s;
    return 0;
}

int baic_bus_consume(baic_bus_t *bus, const char *stream, const char *group,
                     const char *consumer, baic_bus_handler h, void *arg, baic_bus_sub_t **out) {
    if (!group || !consumer || !h)
        return -EINVAL;
    baic_bus_sub_t *s;
    int rc = sub_new(bus, S_GROUP, stream, group, consumer, NULL, out, &s);
    if (rc == 0) {
        s->h = h;
        s->arg = arg;
    }
    return rc;
}

int baic_bus_read_from(baic_bus_t *bus, const char *stream, const char *last_id,
                       baic_bus_handler h, void *arg, baic_bus_sub_t **out) {
    if (!h)
        return -EINVAL;
    baic_bus_sub_t *s;
    int rc = sub_new(bus, S_READ, stream, NULL, NULL, last_id && *last_id ? last_id : "$", out, &s);
    if (rc == 0) {
        s->h = h;
        s->arg = arg;
    }
    return rc;
}

int baic_bus_listen(baic_bus_t *bus, const char *channel, baic_bus_notify_cb cb, void *arg,
                    baic_bus_sub_t **out) {
    if (!cb)
        return -EINVAL;
    baic_bus_sub_t *s;
    int rc = sub_new(bus, S_LISTEN, channel, NULL, NULL, NULL, out, &s);
    if (rc == 0) {
        s->ncb = cb;
        s->arg = arg;
    }
    return rc;
}

void baic_bus_unsubscribe(baic_bus_sub_t *s) {
    if (!s || s->dead)
        return;
    baic_bus_t *bus = s->bus;
    s->dead = 1;
    if (s->prev)
        s->prev->next = s->next;
    else
        bus->subs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_timer_stop(&s->retry);
    uv_close((uv_handle_t *)&s->retry, on_sub_timer_closed);
    baic_redis_close(s->r, on_sub_redis_closed, s);
}

static void on_pub_closed(void *arg) {
    baic_bus_t *bus = arg;
    bus->open--;
    bus_maybe_free(bus);
}

void baic_bus_close(baic_bus_t *bus, baic_bus_close_cb cb, void *arg) {
    if (!bus || bus->closing)
        return;
    bus->closing = 1;
    bus->close_cb = cb;
    bus->close_arg = arg;
    while (bus->subs)
        baic_bus_unsubscribe(bus->subs);
    baic_redis_close(bus->pub, on_pub_closed, bus);
}
