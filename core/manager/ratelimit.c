/* SPDX-License-Identifier: Apache-2.0 */
/* Rolling-window request counting per access key, in Redis so that every manager agrees. */
#include "ratelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "log/log.h"

/*
 * Redis holds one sorted set per access key: a member per request, scored by its time,
 * as Backend.AI's manager keeps it. A Redis round trip per request would cap signed
 * throughput at what Redis can evaluate, so each manager admits requests against the
 * last count Redis told it plus what it admitted since, and sends its new requests in
 * one batch per key every FLUSH_MS. A key close to its limit, or whose count is older
 * than FRESH_MS, is checked with Redis before the request is answered, so one manager
 * is exact and several overshoot by at most what they admit in one flush interval.
 *
 * KEYS[1] = the key's set; ARGV = now_ms, window_ms, member prefix, count.
 */
static const char SCRIPT[] =
    "local now, win, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - win)\n"
    "for i = 1, n do redis.call('ZADD', KEYS[1], now, ARGV[3] .. i) end\n"
    "redis.call('PEXPIRE', KEYS[1], win)\n"
    "return redis.call('ZCARD', KEYS[1])\n";

#define FLUSH_MS 10
#define FRESH_MS 1000
#define NSLOTS 1024

typedef struct waiter {
    struct waiter *next;
    baic_ratelimit_cb cb;
    void *arg;
} waiter_t;

typedef struct rl_key {
    struct rl_key *next;
    char *access_key;
    long long limit;
    long long known;    /* count Redis reported at known_at */
    long long pending;  /* admitted here, not yet sent */
    long long inflight; /* sent, reply not back yet */
    uint64_t known_at;  /* loop ms; 0 = never */
    uint64_t touched;
    waiter_t *waiters;  /* requests held for an exact answer */
} rl_key_t;

struct baic_ratelimit {
    baic_manager_t *m;
    rl_key_t *slots[NSLOTS];
    uv_timer_t flush_timer;
    unsigned long long seq;
    int timer_on;
    int calls;  /* Redis replies still to come */
    int closed; /* the timer is closed: free when calls reaches 0 */
};

static void rl_free(baic_ratelimit_t *rl);
static void flush_tick(uv_timer_t *t);

static void arm(baic_ratelimit_t *rl) {
    if (!rl->timer_on && !rl->closed) {
        uv_timer_start(&rl->flush_timer, flush_tick, FLUSH_MS, FLUSH_MS);
        rl->timer_on = 1;
    }
}

static unsigned slot_of(const char *s) {
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % NSLOTS;
}

static void answer(baic_ratelimit_t *rl, rl_key_t *k, baic_ratelimit_cb cb, void *arg,
                   int counted) {
    baic_ratelimit_result_t r = {.limit = k->limit, .window_s = rl->m->rate_window_s};
    long long used = k->known + k->pending + k->inflight;
    r.exceeded = !counted;
    r.remaining = k->limit - used;
    if (r.remaining < 0)
        r.remaining = 0;
    cb(&r, arg);
}

typedef struct flush_call {
    baic_ratelimit_t *rl;
    rl_key_t *k;
    long long n;
} flush_call_t;

static void settle_waiters(baic_ratelimit_t *rl, rl_key_t *k, int redis_ok) {
    waiter_t *w = k->waiters;
    k->waiters = NULL;
    /* Oldest first: they were pushed at the head. */
    waiter_t *rev = NULL;
    while (w) {
        waiter_t *n = w->next;
        w->next = rev;
        rev = w;
        w = n;
    }
    for (w = rev; w; w = rev) {
        rev = w->next;
        int admit = !redis_ok || k->known + k->pending + k->inflight < k->limit;
        if (admit) {
            k->pending++;
            arm(rl);
        }
        answer(rl, k, w->cb, w->arg, admit);
        free(w);
    }
}

static void flush_key(baic_ratelimit_t *rl, rl_key_t *k);

static void on_flushed(redisReply *reply, int err, const char *errmsg, void *arg) {
    flush_call_t *f = arg;
    baic_ratelimit_t *rl = f->rl;
    rl_key_t *k = f->k;
    rl->calls--;
    if (rl->closed) {
        free(f);
        if (rl->calls == 0)
            rl_free(rl);
        return;
    }
    k->inflight -= f->n;
    int ok = err == 0 && reply != NULL && reply->type == REDIS_REPLY_INTEGER;
    if (ok) {
        k->known = reply->integer;
        k->known_at = uv_now(rl->m->uv);
    } else {
        /* The limiter fails open: an outage of Redis must not take the API down. */
        BAIC_LOG_W("ratelimit_unavailable", "error=\"%s\"",
                   reply && reply->type == REDIS_REPLY_ERROR ? reply->str
                                                             : (errmsg ? errmsg : "redis unreachable"));
    }
    free(f);
    if (k->waiters != NULL) {
        if (ok && k->pending > 0 && k->inflight == 0)
            flush_key(rl, k); /* count what was admitted meanwhile before deciding */
        else if (k->inflight == 0)
            settle_waiters(rl, k, ok);
    }
}

static void flush_key(baic_ratelimit_t *rl, rl_key_t *k) {
    flush_call_t *f = calloc(1, sizeof *f);
    if (f == NULL)
        return;
    f->rl = rl;
    f->k = k;
    f->n = k->pending;
    char key[160], now[32], window[32], prefix[64], count[32];
    snprintf(key, sizeof key, "baic:ratelimit:%s", k->access_key);
    snprintf(now, sizeof now, "%lld", (long long)baic_wall_ms());
    snprintf(window, sizeof window, "%u", rl->m->rate_window_s * 1000u);
    snprintf(prefix, sizeof prefix, "%lld-%d-%llu-", (long long)baic_wall_ms(), (int)getpid(),
             ++rl->seq);
    snprintf(count, sizeof count, "%lld", f->n);
    const char *argv[8] = {"EVAL", SCRIPT, "1", key, now, window, prefix, count};
    k->inflight += f->n;
    k->pending = 0;
    rl->calls++;
    if (baic_redis_cmd_argv(rl->m->redis, 8, argv, NULL, on_flushed, f) != 0)
        on_flushed(NULL, -1, "redis unreachable", f);
}

static void flush_tick(uv_timer_t *t) {
    baic_ratelimit_t *rl = t->data;
    uint64_t now = uv_now(rl->m->uv);
    int active = 0;
    for (unsigned i = 0; i < NSLOTS; i++) {
        rl_key_t **pp = &rl->slots[i];
        while (*pp) {
            rl_key_t *k = *pp;
            if (k->pending > 0 && k->inflight == 0)
                flush_key(rl, k);
            if (k->pending == 0 && k->inflight == 0 && k->waiters == NULL &&
                now - k->touched > (uint64_t)rl->m->rate_window_s * 1000u) {
                *pp = k->next;
                free(k->access_key);
                free(k);
                continue;
            }
            active |= k->pending > 0 || k->inflight > 0;
            pp = &k->next;
        }
    }
    if (!active) {
        uv_timer_stop(t);
        rl->timer_on = 0;
    }
}

int baic_ratelimit_new(baic_manager_t *m, baic_ratelimit_t **out) {
    baic_ratelimit_t *rl = calloc(1, sizeof *rl);
    if (rl == NULL)
        return -ENOMEM;
    rl->m = m;
    uv_timer_init(m->uv, &rl->flush_timer);
    rl->flush_timer.data = rl;
    *out = rl;
    return 0;
}

static void rl_free(baic_ratelimit_t *rl) {
    for (unsigned i = 0; i < NSLOTS; i++) {
        for (rl_key_t *k = rl->slots[i], *n; k; k = n) {
            n = k->next;
            for (waiter_t *w = k->waiters, *wn; w; w = wn) {
                wn = w->next;
                free(w);
            }
            free(k->access_key);
            free(k);
        }
    }
    free(rl);
}

static void rl_closed(uv_handle_t *h) {
    baic_ratelimit_t *rl = h->data;
    /* Waiters are answered (admitted) so no request hangs on shutdown. */
    for (unsigned i = 0; i < NSLOTS; i++)
        for (rl_key_t *k = rl->slots[i]; k; k = k->next)
            if (k->waiters)
                settle_waiters(rl, k, 0);
    if (rl->calls == 0)
        rl_free(rl);
}

void baic_ratelimit_close(baic_ratelimit_t *rl) {
    if (rl == NULL)
        return;
    rl->closed = 1;
    uv_close((uv_handle_t *)&rl->flush_timer, rl_closed);
}

void baic_ratelimit_check(baic_manager_t *m, const char *access_key, long long limit,
                          baic_ratelimit_cb cb, void *arg) {
    baic_ratelimit_t *rl = m->ratelimit;
    if (limit <= 0) {
        /* Unlimited keys cost no Redis work at all. */
        baic_ratelimit_result_t r = {.limit = 0, .remaining = 0, .window_s = m->rate_window_s};
        cb(&r, arg);
        return;
    }
    unsigned s = slot_of(access_key);
    rl_key_t *k = rl->slots[s];
    while (k && strcmp(k->access_key, access_key) != 0)
        k = k->next;
    if (k == NULL) {
        k = calloc(1, sizeof *k);
        if (k == NULL || (k->access_key = strdup(access_key)) == NULL) {
            free(k);
            baic_ratelimit_result_t r = {.limit = limit, .remaining = limit,
                                         .window_s = m->rate_window_s};
            cb(&r, arg);
            return;
        }
        k->next = rl->slots[s];
        rl->slots[s] = k;
    }
    uint64_t now = uv_now(m->uv);
    k->limit = limit;
    k->touched = now;
    long long used = k->known + k->pending + k->inflight;
    int fresh = k->known_at != 0 && now - k->known_at < FRESH_MS;
    /* Far from the limit with a recent count: admit now, count in the next batch.
     * The margin covers what other managers may have admitted since the count. */
    long long margin = limit / 10 > 1 ? limit / 10 : 1;
    if (fresh && k->waiters == NULL && used + margin < limit) {
        k->pending++;
        answer(rl, k, cb, arg, 1);
        arm(rl);
        return;
    }
    /* Otherwise ask Redis first (one batch for everyone waiting on this key). */
    waiter_t *w = calloc(1, sizeof *w);
    if (w == NULL) {
        answer(rl, k, cb, arg, 1);
        return;
    }
    w->cb = cb;
    w->arg = arg;
    w->next = k->waiters;
    k->waiters = w;
    if (k->inflight == 0)
        flush_key(rl, k);
}
