/* SPDX-License-Identifier: Apache-2.0 */
/* Rolling-window request counting: one sorted set per access key, trimmed by a Lua script. */
#include "ratelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "log/log.h"

/*
 * KEYS[1] = the key's set; ARGV = now_ms, window_ms, unique member.
 * Drops entries older than the window, adds this request, returns the count. One
 * round trip, atomic in Redis, correct across any number of managers.
 */
static const char SCRIPT[] =
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))\n"
    "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "return redis.call('ZCARD', KEYS[1])\n";

typedef struct rl_call {
    baic_ratelimit_cb cb;
    void *arg;
    long long limit;
    unsigned window_s;
} rl_call_t;

static unsigned long long seq;

static void finish(rl_call_t *c, long long count) {
    baic_ratelimit_result_t r = {.limit = c->limit, .window_s = c->window_s};
    if (c->limit > 0) {
        r.remaining = c->limit - count;
        if (r.remaining < 0)
            r.remaining = 0;
        r.exceeded = count > c->limit;
    }
    c->cb(&r, c->arg);
    free(c);
}

static void on_reply(redisReply *reply, int err, const char *errmsg, void *arg) {
    rl_call_t *c = arg;
    if (err != 0 || reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        BAIC_LOG_W("ratelimit_unavailable", "error=\"%s\"",
                   reply && reply->type == REDIS_REPLY_ERROR ? reply->str
                                                                 : (errmsg ? errmsg : "redis unreachable"));
        finish(c, 0);
        return;
    }
    finish(c, reply->integer);
}

void baic_ratelimit_check(baic_manager_t *m, const char *access_key, long long limit,
                          baic_ratelimit_cb cb, void *arg) {
    rl_call_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        baic_ratelimit_result_t r = {.limit = limit, .remaining = limit, .window_s = m->rate_window_s};
        cb(&r, arg);
        return;
    }
    c->cb = cb;
    c->arg = arg;
    c->limit = limit;
    c->window_s = m->rate_window_s;
    if (limit <= 0) {
        /* Unlimited keys cost no Redis round trip. */
        finish(c, 0);
        return;
    }
    char key[160], now[32], window[32], member[64];
    int64_t t = baic_wall_ms();
    snprintf(key, sizeof key, "baic:ratelimit:%s", access_key);
    snprintf(now, sizeof now, "%lld", (long long)t);
    snprintf(window, sizeof window, "%u", m->rate_window_s * 1000u);
    snprintf(member, sizeof member, "%lld-%d-%llu", (long long)t, (int)getpid(), ++seq);
    const char *argv[7] = {"EVAL", SCRIPT, "1", key, now, window, member};
    size_t lens[7];
    for (int i = 0; i < 7; i++)
        lens[i] = strlen(argv[i]);
    if (baic_redis_cmd_argv(m->redis, 7, argv, lens, on_reply, c) != 0)
        on_reply(NULL, -1, NULL, c);
}
