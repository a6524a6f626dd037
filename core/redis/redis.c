/* SPDX-License-Identifier: Apache-2.0 */
/* Redis connection with reconnect-and-backoff around hiredis's async API and libuv adapter. */
#include "redis/redis.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>

#include "log/log.h"

#define REDIS_BACKOFF_MIN_MS 50u
#define REDIS_BACKOFF_MAX_MS 2000u
#define REDIS_MAX_ARGS 64

struct baic_redis {
    uv_loop_t *loop;
    char *host;
    int port;
    char *password;
    redisAsyncContext *ac;  /* NULL while down */
    int connected;
    int closing;
    unsigned backoff_ms;
    int fail_streak;
    uv_timer_t timer;       /* reconnect backoff */
    baic_redis_connect_cb on_connect;
    void *on_connect_arg;
    baic_redis_close_cb close_cb;
    void *close_arg;
};

struct cmd {
    baic_redis_t *r;
    baic_redis_cb cb;
    void *arg;
    int persistent;  /* SUBSCRIBE: hiredis calls back per message; freed on disconnect */
};

static void connect_now(baic_redis_t *r);

static void on_timer(uv_timer_t *t) { connect_now(t->data); }

static void schedule(baic_redis_t *r) {
    if (r->closing)
        return;
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : REDIS_BACKOFF_MIN_MS;
    if (r->backoff_ms > REDIS_BACKOFF_MAX_MS)
        r->backoff_ms = REDIS_BACKOFF_MAX_MS;
    uv_timer_start(&r->timer, on_timer, r->backoff_ms, 0);
}

static void on_connect(const redisAsyncContext *ac, int status) {
    baic_redis_t *r = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this returns. */
        baic_log(r->fail_streak++ ? BAIC_LOG_DEBUG : BAIC_LOG_WARN, "redis_connect_failed",
                 "host=%s port=%d error=\"%s\"", r->host, r->port, ac->errstr);
        r->ac = NULL;
        r->connected = 0;
        schedule(r);
        return;
    }
    r->connected = 1;
    r->backoff_ms = 0;
    if (r->fail_streak)
        baic_log(BAIC_LOG_INFO, "redis_reconnected", "host=%s port=%d attempts=%d", r->host,
                 r->port, r->fail_streak);
    r->fail_streak = 0;
    if (r->on_connect)
        r->on_connect(r, r->on_connect_arg);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    baic_redis_t *r = ac->data;
    r->ac = NULL;
    r->connected = 0;
    if (r->closing)
        return;
    baic_log(BAIC_LOG_WARN, "redis_connection_lost", "host=%s port=%d error=\"%s\"", r->host,
             r->port, ac->errstr[0] ? ac->errstr : "closed");
    r->backoff_ms = 0;
    /* Try again at once: a restarting server is usually back within a few backoffs. */
    uv_timer_start(&r->timer, on_timer, 0, 0);
}

static void on_auth(redisAsyncContext *ac, void *reply, void *priv) {
    redisReply *rep = reply;
    baic_redis_t *r = priv;
    if (rep && rep->type == REDIS_REPLY_ERROR)
        baic_log(BAIC_LOG_ERROR, "redis_auth_failed", "host=%s port=%d error=\"%s\"", r->host,
                 r->port, rep->str);
}

/*
 * hiredis 0.14's libuv adapter ignores a poll error, and libuv reports POLLERR (a
 * refused connect, a reset connection) as status < 0 and stops the handle: hiredis
 * would then wait forever on a dead socket. We keep the adapter's attach, state and
 * cleanup, and swap in event hooks whose callback hands an error to hiredis as
 * readiness, so its connect check or read sees the socket error and disconnects.
 */
static void poll_cb(uv_poll_t *h, int status, int events) {
    redisLibuvEvents *p = h->data;
    if (status < 0)
        events = p->events ? p->events : UV_READABLE;
    if (p->context && (events & UV_READABLE))
        redisAsyncHandleRead(p->context);
    if (p->context && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->context);
}

static void set_events(redisLibuvEvents *p, int events) {
    p->events = events;
    if (events)
        uv_poll_start(&p->handle, events, poll_cb);
    else
        uv_poll_stop(&p->handle);
}

static void ev_add_read(void *d) { set_events(d, ((redisLibuvEvents *)d)->events | UV_READABLE); }
static void ev_del_read(void *d) { set_events(d, ((redisLibuvEvents *)d)->events & ~UV_READABLE); }
static void ev_add_write(void *d) { set_events(d, ((redisLibuvEvents *)d)->events | UV_WRITABLE); }
static void ev_del_write(void *d) { set_events(d, ((redisLibuvEvents *)d)->events & ~UV_WRITABLE); }

static int attach(redisAsyncContext *ac, uv_loop_t *loop) {
    if (redisLibuvAttach(ac, loop) != REDIS_OK)
        return REDIS_ERR;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    return REDIS_OK;
}

static void connect_now(baic_redis_t *r) {
    if (r->closing || r->ac)
        return;
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (!ac) {
        schedule(r);
        return;
    }
    if (ac->err) {
        baic_log(r->fail_streak++ ? BAIC_LOG_DEBUG : BAIC_LOG_WARN, "redis_connect_failed",
                 "host=%s port=%d error=\"%s\"", r->host, r->port, ac->errstr);
        redisAsyncFree(ac);
        schedule(r);
        return;
    }
    ac->data = r;
    if (attach(ac, r->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        schedule(r);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
    /* Queued now, AUTH is the first thing the server reads on this connection. */
    if (r->password) {
        const char *argv[] = {"AUTH", r->password};
        redisAsyncCommandArgv(ac, on_auth, r, 2, argv, NULL);
    }
}

int baic_redis_new(uv_loop_t *loop, const char *host, int port, const char *password,
                   baic_redis_t **out) {
    if (!loop || !host || port <= 0 || port > 65535 || !out)
        return -EINVAL;
    baic_redis_t *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->host = strdup(host);
    r->password = password && *password ? strdup(password) : NULL;
    if (!r->host || (password && *password && !r->password)) {
        free(r->host);
        free(r->password);
        free(r);
        return -ENOMEM;
    }
    r->loop = loop;
    r->port = port;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    connect_now(r);
    *out = r;
    return 0;
}

void baic_redis_set_connect_cb(baic_redis_t *r, baic_redis_connect_cb cb, void *arg) {
    r->on_connect = cb;
    r->on_connect_arg = arg;
}

int baic_redis_connected(const baic_redis_t *r) { return r->connected; }

static void on_reply(redisAsyncContext *ac, void *reply, void *priv) {
    struct cmd *c = priv;
    redisReply *rep = reply;
    baic_redis_t *r = c->r;
    if (!rep) {
        if (c->cb)
            c->cb(NULL, r->closing ? BAIC_ECANCELLED : -ECONNRESET,
                  r->closing ? "redis client closed" : "redis connection lost", c->arg);
        free(c);
        return;
    }
    int err = rep->type == REDIS_REPLY_ERROR ? BAIC_EBACKEND : 0;
    if (c->cb)
        c->cb(rep, err, err ? rep->str : NULL, c->arg);
    if (!c->persistent)
        free(c);
}

static int is_subscribe(const char *s, size_t n) {
    return (n == 9 && strncasecmp(s, "subscribe", 9) == 0) ||
           (n == 10 && strncasecmp(s, "psubscribe", 10) == 0);
}

int baic_redis_cmd_argv(baic_redis_t *r, int argc, const char **argv, const size_t *lens,
                        baic_redis_cb cb, void *arg) {
    if (!r || argc < 1 || !argv)
        return -EINVAL;
    if (r->closing)
        return BAIC_ECANCELLED;
    if (!r->ac)
        return -ENOTCONN;
    struct cmd *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->r = r;
    c->cb = cb;
    c->arg = arg;
    c->persistent = is_subscribe(argv[0], lens ? lens[0] : strlen(argv[0]));
    if (redisAsyncCommandArgv(r->ac, on_reply, c, argc, argv, lens) != REDIS_OK) {
        free(c);
        return -ENOTCONN;
    }
    return 0;
}

int baic_redis_cmd(baic_redis_t *r, baic_redis_cb cb, void *arg, ...) {
    const char *argv[REDIS_MAX_ARGS];
    int argc = 0;
    va_list ap;
    va_start(ap, arg);
    const char *s;
    while ((s = va_arg(ap, const char *)) != NULL) {
        if (argc == REDIS_MAX_ARGS) {
            va_end(ap);
            return -EINVAL;
        }
        argv[argc++] = s;
    }
    va_end(ap);
    return baic_redis_cmd_argv(r, argc, argv, NULL, cb, arg);
}

static void on_timer_closed(uv_handle_t *h) {
    baic_redis_t *r = h->data;
    baic_redis_close_cb cb = r->close_cb;
    void *arg = r->close_arg;
    free(r->host);
    if (r->password) {
        /* Do not leave the secret in freed memory. */
        volatile char *p = r->password;
        while (*p)
            *p++ = 0;
        free(r->password);
    }
    free(r);
    if (cb)
        cb(arg);
}

void baic_redis_close(baic_redis_t *r, baic_redis_close_cb cb, void *arg) {
    if (!r || r->closing)
        return;
    r->closing = 1;
    r->close_cb = cb;
    r->close_arg = arg;
    uv_timer_stop(&r->timer);
    if (r->ac) {
        /* Pending callbacks see reply NULL with closing set: BAIC_ECANCELLED. Inside a
         * hiredis callback the free is deferred by hiredis until it returns. */
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        r->connected = 0;
        redisAsyncFree(ac);
    }
    /* The adapter's poll handle was uv_close()d above, before this timer: both close
     * callbacks run in the same loop turn, ours last. */
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}
