/* SPDX-License-Identifier: Apache-2.0 */
/* The services behind baic_host_t: logging, config, timers, work queue, metrics, events. */
#include "host/host.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "http/http.h"
#include "log/log.h"
#include "util/strerror.h"

struct baic_timer {
    uv_timer_t handle;
    baic_timer_cb cb;
    void *arg;
    struct baic_timer *prev, *next;
    baic_host_ctx_t *ctx;
};

struct baic_subscription {
    char *prefix;
    baic_event_cb cb;
    void *arg;
    int dead;
    struct baic_subscription *next;
};

typedef struct plugin_host {
    baic_host_t table; /* first, so a baic_host_t * is a plugin_host_t * */
    baic_host_ctx_t *ctx;
    char *id;
} plugin_host_t;

struct baic_host_ctx {
    uv_loop_t *loop;
    const json_t *config;
    baic_metrics_t *metrics;
    baic_timer_t *timers;
    baic_subscription_t *subs;
    int dispatching;
    baic_event_sink sink;
    void *sink_arg;
};

typedef struct work_req {
    uv_work_t req;
    baic_work_cb work;
    baic_work_done_cb done;
    void *arg;
} work_req_t;

static baic_host_ctx_t *ctx_of(const baic_host_t *h) { return ((const plugin_host_t *)h)->ctx; }

static void h_log(const baic_host_t *h, baic_log_level_t level, const char *event,
                  const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    baic_logv_src(level, ((const plugin_host_t *)h)->id, event, fmt, ap);
    va_end(ap);
}

static const json_t *h_config(const baic_host_t *h, const char *path) {
    return baic_config_get(ctx_of(h)->config, path);
}

static void timer_fire(uv_timer_t *t) {
    baic_timer_t *tm = t->data;
    tm->cb(tm, tm->arg);
}

static int h_timer_start(const baic_host_t *h, uint64_t timeout_ms, uint64_t repeat_ms,
                         baic_timer_cb cb, void *arg, baic_timer_t **out) {
    baic_host_ctx_t *ctx = ctx_of(h);
    if (cb == NULL || out == NULL)
        return -EINVAL;
    baic_timer_t *tm = calloc(1, sizeof *tm);
    if (tm == NULL)
        return -ENOMEM;
    int rc = uv_timer_init(ctx->loop, &tm->handle);
    if (rc != 0) {
        free(tm);
        return rc;
    }
    tm->handle.data = tm;
    tm->cb = cb;
    tm->arg = arg;
    tm->ctx = ctx;
    if ((rc = uv_timer_start(&tm->handle, timer_fire, timeout_ms, repeat_ms)) != 0) {
        uv_close((uv_handle_t *)&tm->handle, (uv_close_cb)free);
        return rc;
    }
    tm->next = ctx->timers;
    if (ctx->timers)
        ctx->timers->prev = tm;
    ctx->timers = tm;
    *out = tm;
    return 0;
}

static void timer_release(baic_host_ctx_t *ctx, baic_timer_t *tm) {
    if (tm->prev)
        tm->prev->next = tm->next;
    else
        ctx->timers = tm->next;
    if (tm->next)
        tm->next->prev = tm->prev;
    uv_timer_stop(&tm->handle);
    uv_close((uv_handle_t *)&tm->handle, (uv_close_cb)free);
}

static int h_timer_stop(const baic_host_t *h, baic_timer_t *tm) {
    if (tm == NULL)
        return -EINVAL;
    timer_release(ctx_of(h), tm);
    return 0;
}

static void work_run(uv_work_t *w) {
    work_req_t *r = w->data;
    r->work(r->arg);
}

static void work_after(uv_work_t *w, int status) {
    work_req_t *r = w->data;
    if (r->done)
        r->done(r->arg, status);
    free(r);
}

static int h_queue_work(const baic_host_t *h, baic_work_cb work, baic_work_done_cb done,
                        void *arg) {
    if (work == NULL)
        return -EINVAL;
    work_req_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return -ENOMEM;
    r->req.data = r;
    r->work = work;
    r->done = done;
    r->arg = arg;
    int rc = uv_queue_work(ctx_of(h)->loop, &r->req, work_run, work_after);
    if (rc != 0)
        free(r);
    return rc;
}

static int h_metric_add(const baic_host_t *h, const char *name, const char *help,
                        const char *labels, double delta) {
    return baic_metrics_add(ctx_of(h)->metrics, name, help, labels, delta);
}
static int h_metric_set(const baic_host_t *h, const char *name, const char *help,
                        const char *labels, double v) {
    return baic_metrics_set(ctx_of(h)->metrics, name, help, labels, v);
}
static int h_metric_observe(const baic_host_t *h, const char *name, const char *help,
                            const char *labels, double v) {
    return baic_metrics_observe(ctx_of(h)->metrics, name, help, labels, v);
}
static void h_metric_walk(const baic_host_t *h, baic_metric_walk_cb cb, void *arg) {
    baic_metrics_walk(ctx_of(h)->metrics, cb, arg);
}

/* Unsubscribing inside a callback only marks the subscription; it is freed here,
 * once no dispatch is walking the list. */
static void subs_reap(baic_host_ctx_t *ctx) {
    baic_subscription_t **pp = &ctx->subs;
    while (*pp) {
        baic_subscription_t *s = *pp;
        if (s->dead) {
            *pp = s->next;
            free(s->prefix);
            free(s);
        } else {
            pp = &s->next;
        }
    }
}

void baic_host_ctx_dispatch(baic_host_ctx_t *ctx, const char *name, const json_t *body) {
    ctx->dispatching++;
    for (baic_subscription_t *s = ctx->subs; s; s = s->next)
        if (!s->dead && strncmp(name, s->prefix, strlen(s->prefix)) == 0)
            s->cb(name, body, s->arg);
    if (--ctx->dispatching == 0)
        subs_reap(ctx);
}

static int h_event_publish(const baic_host_t *h, const char *name, const json_t *body) {
    baic_host_ctx_t *ctx = ctx_of(h);
    if (name == NULL || *name == '\0')
        return -EINVAL;
    if (ctx->sink)
        return ctx->sink(ctx->sink_arg, name, body);
    baic_host_ctx_dispatch(ctx, name, body);
    return 0;
}

static int h_event_subscribe(const baic_host_t *h, const char *prefix, baic_event_cb cb,
                             void *arg, baic_subscription_t **out) {
    baic_host_ctx_t *ctx = ctx_of(h);
    if (cb == NULL || out == NULL)
        return -EINVAL;
    baic_subscription_t *s = calloc(1, sizeof *s);
    if (s == NULL || (s->prefix = strdup(prefix ? prefix : "")) == NULL) {
        free(s);
        return -ENOMEM;
    }
    s->cb = cb;
    s->arg = arg;
    s->next = ctx->subs;
    ctx->subs = s;
    *out = s;
    return 0;
}

static int h_event_unsubscribe(const baic_host_t *h, baic_subscription_t *sub) {
    baic_host_ctx_t *ctx = ctx_of(h);
    if (sub == NULL)
        return -EINVAL;
    sub->dead = 1;
    if (ctx->dispatching == 0)
        subs_reap(ctx);
    return 0;
}

static uint64_t h_now_ms(const baic_host_t *h) { return uv_now(ctx_of(h)->loop); }

/* Plugin-served HTTP (e.g. monitor/prometheus's /metrics) on the daemon's loop,
 * through the same HTTP layer the daemon's own API uses. */
struct baic_http_listener {
    baic_http_server_t *srv;
    baic_http_simple_handler handler;
    void *arg;
};

static int simple_mw(baic_http_req_t *req, void *arg) {
    baic_http_listener_t *l = arg;
    size_t len;
    const char *body = baic_http_body(req, &len);
    baic_http_simple_request_t sreq = {baic_http_method(req), baic_http_raw_path(req), body, len};
    baic_http_simple_response_t sres = {500, "text/plain", NULL, 0};
    l->handler(&sreq, &sres, l->arg);
    baic_http_respond(req, sres.status, sres.content_type, sres.body, sres.body_len);
    free(sres.body);
    return 1;
}

static int h_http_serve(const baic_host_t *h, const char *addr, baic_http_simple_handler handler,
                        void *arg, baic_http_listener_t **out) {
    if (addr == NULL || handler == NULL || out == NULL)
        return -EINVAL;
    baic_http_listener_t *l = calloc(1, sizeof *l);
    if (l == NULL)
        return -ENOMEM;
    baic_http_config_t cfg = {.listen = addr, .max_connections = 64};
    int rc = baic_http_server_new(ctx_of(h)->loop, &cfg, &l->srv);
    if (rc != 0) {
        free(l);
        return rc;
    }
    l->handler = handler;
    l->arg = arg;
    baic_http_set_middleware(l->srv, simple_mw, l);
    *out = l;
    return 0;
}

static int h_http_stop(const baic_host_t *h, baic_http_listener_t *l) {
    (void)h;
    if (l == NULL)
        return -EINVAL;
    baic_http_server_close(l->srv, free, l);
    return 0;
}

int baic_host_ctx_new(uv_loop_t *loop, const json_t *config, baic_host_ctx_t **out) {
    baic_host_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL)
        return -ENOMEM;
    int rc = baic_metrics_new(&ctx->metrics);
    if (rc != 0) {
        free(ctx);
        return rc;
    }
    ctx->loop = loop;
    ctx->config = config;
    *out = ctx;
    return 0;
}

void baic_host_ctx_free(baic_host_ctx_t *ctx) {
    if (ctx == NULL)
        return;
    while (ctx->timers)
        timer_release(ctx, ctx->timers);
    for (baic_subscription_t *s = ctx->subs, *n; s; s = n) {
        n = s->next;
        free(s->prefix);
        free(s);
    }
    baic_metrics_free(ctx->metrics);
    free(ctx);
}

baic_metrics_t *baic_host_ctx_metrics(baic_host_ctx_t *ctx) { return ctx->metrics; }
uv_loop_t *baic_host_ctx_loop(baic_host_ctx_t *ctx) { return ctx->loop; }

void baic_host_ctx_set_event_sink(baic_host_ctx_t *ctx, baic_event_sink sink, void *arg) {
    ctx->sink = sink;
    ctx->sink_arg = arg;
}

baic_host_t *baic_host_table_new(baic_host_ctx_t *ctx, const char *plugin_id) {
    plugin_host_t *ph = calloc(1, sizeof *ph);
    if (ph == NULL || (ph->id = strdup(plugin_id ? plugin_id : "-")) == NULL) {
        free(ph);
        return NULL;
    }
    ph->ctx = ctx;
    baic_host_t *t = &ph->table;
    t->size = sizeof *t;
    t->abi_major = BAIC_ABI_MAJOR;
    t->abi_minor = BAIC_ABI_MINOR;
    t->ctx = ph;
    t->log = h_log;
    t->config = h_config;
    t->alloc = malloc;
    t->calloc = calloc;
    t->realloc = realloc;
    t->free = free;
    t->timer_start = h_timer_start;
    t->timer_stop = h_timer_stop;
    t->queue_work = h_queue_work;
    t->metric_add = h_metric_add;
    t->metric_set = h_metric_set;
    t->metric_observe = h_metric_observe;
    t->metric_walk = h_metric_walk;
    t->event_publish = h_event_publish;
    t->event_subscribe = h_event_subscribe;
    t->event_unsubscribe = h_event_unsubscribe;
    t->now_ms = h_now_ms;
    t->strerror = baic_strerror;
    t->http_serve = h_http_serve;
    t->http_stop = h_http_stop;
    return t;
}

void baic_host_table_free(baic_host_t *host) {
    if (host == NULL)
        return;
    plugin_host_t *ph = (plugin_host_t *)host;
    free(ph->id);
    free(ph);
}

static baic_host_t *factory(void *arg, const char *id) { return baic_host_table_new(arg, id); }
static void factory_free(void *arg, baic_host_t *h) { baic_host_table_free(h); }

int baic_host_registry_new(baic_host_ctx_t *ctx, baic_registry_t **out) {
    int rc = baic_registry_new(factory, factory_free, ctx, out);
    if (rc == 0 && (rc = baic_registry_add_default_paths(*out)) != 0) {
        baic_registry_free(*out);
        *out = NULL;
    }
    return rc;
}
