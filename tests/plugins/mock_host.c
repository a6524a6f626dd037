/* SPDX-License-Identifier: Apache-2.0 */
/* The mock host: a baic_host_t on a private libuv loop that records what a plugin does. */
#include "plugins/mock_host.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <baic/errors.h>
#include <baic/plugin.h>

/* Kind headers are optional so that the mock host builds while they are written. */
#if __has_include(<baic/scheduler.h>)
#include <baic/scheduler.h>
#endif
#if __has_include(<baic/selector.h>)
#include <baic/selector.h>
#endif
#if __has_include(<baic/compute.h>)
#include <baic/compute.h>
#endif
#if __has_include(<baic/runtime.h>)
#include <baic/runtime.h>
#endif
#if __has_include(<baic/storage.h>)
#include <baic/storage.h>
#endif
#if __has_include(<baic/auth.h>)
#include <baic/auth.h>
#endif
#if __has_include(<baic/monitor.h>)
#include <baic/monitor.h>
#endif
#if __has_include(<baic/hook.h>)
#include <baic/hook.h>
#endif

#define MOCK_NBUCKETS 11
static const double mock_bucket_le[MOCK_NBUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                     0.5,   1.0,  2.5,   5.0,  10.0};

typedef struct mock_metric {
    char *name;
    char *help;
    char *labels;
    baic_metric_type_t type;
    double value;
    uint64_t count;
    uint64_t bucket_count[MOCK_NBUCKETS];
} mock_metric_t;

typedef struct mock_event {
    char *name;
    json_t *body;
    struct mock_event *next; /* pending-delivery queue only */
} mock_event_t;

/* One host table per loaded plugin, so log lines name the plugin. */
typedef struct mock_plugin {
    baic_host_t table;
    baic_mock_host_t *m;
    char label[160];
    void *dl;
    const baic_plugin_desc_t *desc;
    void *state;
    struct mock_plugin *next; /* newest first: unloading walks in reverse load order */
} mock_plugin_t;

struct baic_timer {
    uv_timer_t handle; /* first: the close callback frees the handle's container */
    baic_timer_cb cb;
    void *arg;
};

struct baic_subscription {
    struct baic_subscription *next;
    char *prefix;
    baic_event_cb cb;
    void *arg;
    int dead;
};

typedef struct mock_work {
    uv_work_t req;
    baic_work_cb work;
    baic_work_done_cb done;
    void *arg;
    struct mock_work *next, *prev;
    baic_mock_host_t *m;
} mock_work_t;

struct baic_mock_host {
    uv_loop_t loop;
    json_t *config;
    mock_plugin_t base;
    mock_plugin_t *plugins;

    pthread_mutex_t lock; /* log buffer and metrics: callable from any thread */
    char *log;
    size_t log_len, log_cap;
    int verbose;

    mock_metric_t **metrics;
    size_t nmetrics, metrics_cap;

    mock_event_t *events; /* every published event, in order */
    size_t nevents, events_cap;
    mock_event_t *pending_head, *pending_tail;
    uv_timer_t dispatch;
    baic_subscription_t *subs;
    int dispatching;

    mock_work_t *works;

    uv_timer_t deadline;
    uv_check_t check;
    int (*pred)(void *arg);
    void *pred_arg;
    int deadline_hit, pred_hit;

    char last_error[512];
};

static baic_mock_host_t *mock_of(const baic_host_t *host) {
    return ((mock_plugin_t *)host->ctx)->m;
}

/* ---- log ---- */

static void mock_log_append(baic_mock_host_t *m, const char *line, size_t len) {
    pthread_mutex_lock(&m->lock);
    if (m->log_len + len + 2 > m->log_cap) {
        size_t cap = m->log_cap ? m->log_cap : 4096;
        while (cap < m->log_len + len + 2)
            cap *= 2;
        char *p = realloc(m->log, cap);
        if (p == NULL) {
            pthread_mutex_unlock(&m->lock);
            return;
        }
        m->log = p;
        m->log_cap = cap;
    }
    memcpy(m->log + m->log_len, line, len);
    m->log_len += len;
    m->log[m->log_len++] = '\n';
    m->log[m->log_len] = '\0';
    if (m->verbose)
        fprintf(stderr, "%.*s\n", (int)len, line);
    pthread_mutex_unlock(&m->lock);
}

static const char *mock_level_name(baic_log_level_t level) {
    switch (level) {
    case BAIC_LOG_ERROR:
        return "error";
    case BAIC_LOG_WARN:
        return "warn";
    case BAIC_LOG_INFO:
        return "info";
    default:
        return "debug";
    }
}

static void mock_vlog(baic_mock_host_t *m, const char *label, baic_log_level_t level,
                      const char *event, const char *fmt, va_list ap) {
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s plugin=%s event=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, mock_level_name(level), label,
                     event ? event : "-");
    if (n < 0)
        return;
    if ((size_t)n < sizeof line - 1 && fmt != NULL && *fmt != '\0') {
        line[n++] = ' ';
        int k = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        if (k > 0)
            n += k;
    }
    if ((size_t)n >= sizeof line)
        n = (int)sizeof line - 1;
    mock_log_append(m, line, (size_t)n);
}

static void mock_log_internal(baic_mock_host_t *m, baic_log_level_t level, const char *event,
                              const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void mock_log_internal(baic_mock_host_t *m, baic_log_level_t level, const char *event,
                              const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    mock_vlog(m, "test/mock", level, event, fmt, ap);
    va_end(ap);
}

static void mock_host_log(const baic_host_t *host, baic_log_level_t level, const char *event,
                          const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void mock_host_log(const baic_host_t *host, baic_log_level_t level, const char *event,
                          const char *fmt, ...) {
    mock_plugin_t *p = host->ctx;
    va_list ap;
    va_start(ap, fmt);
    mock_vlog(p->m, p->label, level, event, fmt, ap);
    va_end(ap);
}

int baic_mock_host_log_contains(baic_mock_host_t *m, const char *substr) {
    pthread_mutex_lock(&m->lock);
    int found = m->log != NULL && strstr(m->log, substr) != NULL;
    pthread_mutex_unlock(&m->lock);
    return found;
}

const char *baic_mock_host_log_text(baic_mock_host_t *m) {
    return m->log ? m->log : "";
}

void baic_mock_host_log_clear(baic_mock_host_t *m) {
    pthread_mutex_lock(&m->lock);
    m->log_len = 0;
    if (m->log)
        m->log[0] = '\0';
    pthread_mutex_unlock(&m->lock);
}

/* ---- config ---- */

/* Dotted path; a segment may be "quoted" (with \" and \\ escapes) to hold dots or
 * slashes, and a numeric segment indexes an array: plugin."compute/mock".devices.0 */
static const json_t *mock_lookup(const json_t *root, const char *path) {
    if (root == NULL || path == NULL)
        return NULL;
    if (*path == '\0')
        return root;
    const json_t *node = root;
    const char *p = path;
    char seg[256];
    for (;;) {
        size_t n = 0;
        if (*p == '"') {
            p++;
            while (*p != '\0' && *p != '"') {
                if (*p == '\\' && p[1] != '\0')
                    p++;
                if (n + 1 >= sizeof seg)
                    return NULL;
                seg[n++] = *p++;
            }
            if (*p != '"')
                return NULL;
            p++;
        } else {
            while (*p != '\0' && *p != '.') {
                if (n + 1 >= sizeof seg)
                    return NULL;
                seg[n++] = *p++;
            }
            if (n == 0)
                return NULL;
        }
        seg[n] = '\0';
        if (json_is_object(node)) {
            node = json_object_get(node, seg);
        } else if (json_is_array(node)) {
            char *end;
            errno = 0;
            unsigned long idx = strtoul(seg, &end, 10);
            if (errno != 0 || *end != '\0' || end == seg)
                return NULL;
            node = json_array_get(node, idx);
        } else {
            return NULL;
        }
        if (node == NULL)
            return NULL;
        if (*p == '\0')
            return node;
        if (*p != '.')
            return NULL;
        p++;
    }
}

static const json_t *mock_host_config(const baic_host_t *host, const char *path) {
    return mock_lookup(mock_of(host)->config, path);
}

const json_t *baic_mock_host_config(baic_mock_host_t *m, const char *path) {
    return mock_lookup(m->config, path);
}

/* ---- allocation ---- */

static void *mock_alloc(size_t size) {
    return malloc(size);
}
static void *mock_calloc(size_t n, size_t size) {
    return calloc(n, size);
}
static void *mock_realloc(void *p, size_t size) {
    return realloc(p, size);
}
static void mock_free(void *p) {
    free(p);
}

/* ---- timers ---- */

static void mock_close_free(uv_handle_t *h) {
    free(h->data);
}

static void mock_timer_fire(uv_timer_t *h) {
    baic_timer_t *t = h->data;
    t->cb(t, t->arg);
}

static int mock_timer_start(const baic_host_t *host, uint64_t timeout_ms, uint64_t repeat_ms,
                            baic_timer_cb cb, void *arg, baic_timer_t **out) {
    if (cb == NULL || out == NULL)
        return UV_EINVAL;
    baic_mock_host_t *m = mock_of(host);
    baic_timer_t *t = calloc(1, sizeof *t);
    if (t == NULL)
        return UV_ENOMEM;
    int rc = uv_timer_init(&m->loop, &t->handle);
    if (rc != 0) {
        free(t);
        return rc;
    }
    t->handle.data = t;
    t->cb = cb;
    t->arg = arg;
    rc = uv_timer_start(&t->handle, mock_timer_fire, timeout_ms, repeat_ms);
    if (rc != 0) {
        uv_close((uv_handle_t *)&t->handle, mock_close_free);
        return rc;
    }
    *out = t;
    return 0;
}

static int mock_timer_stop(const baic_host_t *host, baic_timer_t *timer) {
    if (timer == NULL)
        return UV_EINVAL;
    if (uv_is_closing((uv_handle_t *)&timer->handle))
        return 0;
    uv_timer_stop(&timer->handle);
    uv_close((uv_handle_t *)&timer->handle, mock_close_free);
    return 0;
}

/* ---- work queue ---- */

static void mock_work_run(uv_work_t *req) {
    mock_work_t *w = req->data;
    w->work(w->arg);
}

static void mock_work_after(uv_work_t *req, int status) {
    mock_work_t *w = req->data;
    baic_mock_host_t *m = w->m;
    if (w->prev)
        w->prev->next = w->next;
    else
        m->works = w->next;
    if (w->next)
        w->next->prev = w->prev;
    if (w->done)
        w->done(w->arg, status);
    free(w);
}

static int mock_queue_work(const baic_host_t *host, baic_work_cb work, baic_work_done_cb done,
                           void *arg) {
    if (work == NULL)
        return UV_EINVAL;
    baic_mock_host_t *m = mock_of(host);
    mock_work_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return UV_ENOMEM;
    w->req.data = w;
    w->work = work;
    w->done = done;
    w->arg = arg;
    w->m = m;
    int rc = uv_queue_work(&m->loop, &w->req, mock_work_run, mock_work_after);
    if (rc != 0) {
        free(w);
        return rc;
    }
    w->next = m->works;
    if (m->works)
        m->works->prev = w;
    m->works = w;
    return 0;
}

/* ---- metrics ---- */

static mock_metric_t *mock_metric_find(baic_mock_host_t *m, const char *name,
                                       const char *labels) {
    if (labels == NULL)
        labels = "";
    for (size_t i = 0; i < m->nmetrics; i++)
        if (strcmp(m->metrics[i]->name, name) == 0 && strcmp(m->metrics[i]->labels, labels) == 0)
            return m->metrics[i];
    return NULL;
}

/* Finds or creates the sample; -EINVAL when the name already has another type. */
static int mock_metric_get(baic_mock_host_t *m, const char *name, const char *help,
                           const char *labels, baic_metric_type_t type, mock_metric_t **out) {
    if (name == NULL || *name == '\0')
        return UV_EINVAL;
    for (size_t i = 0; i < m->nmetrics; i++)
        if (strcmp(m->metrics[i]->name, name) == 0 && m->metrics[i]->type != type)
            return UV_EINVAL;
    mock_metric_t *s = mock_metric_find(m, name, labels);
    if (s != NULL) {
        *out = s;
        return 0;
    }
    if (m->nmetrics == m->metrics_cap) {
        size_t cap = m->metrics_cap ? m->metrics_cap * 2 : 16;
        mock_metric_t **p = realloc(m->metrics, cap * sizeof *p);
        if (p == NULL)
            return UV_ENOMEM;
        m->metrics = p;
        m->metrics_cap = cap;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return UV_ENOMEM;
    s->name = strdup(name);
    s->help = strdup(help ? help : "");
    s->labels = strdup(labels ? labels : "");
    if (s->name == NULL || s->help == NULL || s->labels == NULL) {
        free(s->name);
        free(s->help);
        free(s->labels);
        free(s);
        return UV_ENOMEM;
    }
    s->type = type;
    m->metrics[m->nmetrics++] = s;
    *out = s;
    return 0;
}

static int mock_metric_update(const baic_host_t *host, const char *name, const char *help,
                              const char *labels, double v, baic_metric_type_t type) {
    baic_mock_host_t *m = mock_of(host);
    mock_metric_t *s;
    pthread_mutex_lock(&m->lock);
    int rc = mock_metric_get(m, name, help, labels, type, &s);
    if (rc == 0) {
        switch (type) {
        case BAIC_METRIC_COUNTER:
            s->value += v;
            break;
        case BAIC_METRIC_GAUGE:
            s->value = v;
            break;
        case BAIC_METRIC_HISTOGRAM:
            s->value += v;
            s->count++;
            for (size_t i = 0; i < MOCK_NBUCKETS; i++)
                if (v <= mock_bucket_le[i])
                    s->bucket_count[i]++;
            break;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

static int mock_metric_add(const baic_host_t *host, const char *name, const char *help,
                           const char *labels, double delta) {
    return mock_metric_update(host, name, help, labels, delta, BAIC_METRIC_COUNTER);
}
static int mock_metric_set(const baic_host_t *host, const char *name, const char *help,
                           const char *labels, double value) {
    return mock_metric_update(host, name, help, labels, value, BAIC_METRIC_GAUGE);
}
static int mock_metric_observe(const baic_host_t *host, const char *name, const char *help,
                               const char *labels, double value) {
    return mock_metric_update(host, name, help, labels, value, BAIC_METRIC_HISTOGRAM);
}

static void mock_metric_walk(const baic_host_t *host, baic_metric_walk_cb cb, void *arg) {
    baic_mock_host_t *m = mock_of(host);
    /* Recursive lock: the callback may record metrics itself; samples are heap objects
     * of their own, so growing the array does not move the one being visited. */
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->nmetrics; i++) {
        const mock_metric_t *s = m->metrics[i];
        baic_metric_sample_t smp = {
            .name = s->name,
            .help = s->help,
            .type = s->type,
            .labels = s->labels,
            .value = s->value,
            .count = s->count,
            .nbuckets = s->type == BAIC_METRIC_HISTOGRAM ? MOCK_NBUCKETS : 0,
            .bucket_le = s->type == BAIC_METRIC_HISTOGRAM ? mock_bucket_le : NULL,
            .bucket_count = s->type == BAIC_METRIC_HISTOGRAM ? s->bucket_count : NULL,
        };
        cb(&smp, arg);
    }
    pthread_mutex_unlock(&m->lock);
}

double baic_mock_host_metric(baic_mock_host_t *m, const char *name, const char *labels) {
    pthread_mutex_lock(&m->lock);
    const mock_metric_t *s = mock_metric_find(m, name, labels);
    double v = s ? s->value : NAN;
    pthread_mutex_unlock(&m->lock);
    return v;
}

uint64_t baic_mock_host_metric_count(baic_mock_host_t *m, const char *name,
                                     const char *labels) {
    pthread_mutex_lock(&m->lock);
    const mock_metric_t *s = mock_metric_find(m, name, labels);
    uint64_t v = s ? s->count : 0;
    pthread_mutex_unlock(&m->lock);
    return v;
}

/* ---- events ---- */

static void mock_sweep_subs(baic_mock_host_t *m) {
    baic_subscription_t **pp = &m->subs;
    while (*pp != NULL) {
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

static void mock_dispatch(uv_timer_t *h) {
    baic_mock_host_t *m = (baic_mock_host_t *)((char *)h - offsetof(baic_mock_host_t, dispatch));
    mock_event_t *ev = m->pending_head;
    m->pending_head = m->pending_tail = NULL;
    m->dispatching++;
    while (ev != NULL) {
        mock_event_t *next = ev->next;
        for (baic_subscription_t *s = m->subs; s != NULL; s = s->next)
            if (!s->dead && strncmp(ev->name, s->prefix, strlen(s->prefix)) == 0)
                s->cb(ev->name, ev->body, s->arg);
        free(ev->name);
        json_decref(ev->body);
        free(ev);
        ev = next;
    }
    m->dispatching--;
    if (m->dispatching == 0)
        mock_sweep_subs(m);
}

int baic_mock_host_publish(baic_mock_host_t *m, const char *name, const json_t *body) {
    if (name == NULL || *name == '\0')
        return UV_EINVAL;
    json_t *copy = body ? json_deep_copy(body) : json_object();
    json_t *copy2 = copy ? json_deep_copy(copy) : NULL;
    mock_event_t *pend = calloc(1, sizeof *pend);
    char *n1 = strdup(name), *n2 = strdup(name);
    if (copy == NULL || copy2 == NULL || pend == NULL || n1 == NULL || n2 == NULL)
        goto nomem;
    if (m->nevents == m->events_cap) {
        size_t cap = m->events_cap ? m->events_cap * 2 : 32;
        mock_event_t *p = realloc(m->events, cap * sizeof *p);
        if (p == NULL)
            goto nomem;
        m->events = p;
        m->events_cap = cap;
    }
    m->events[m->nevents++] = (mock_event_t){.name = n1, .body = copy};
    /* Delivery happens on a later loop iteration, as on the daemon's bus. */
    pend->name = n2;
    pend->body = copy2;
    if (m->pending_tail)
        m->pending_tail->next = pend;
    else
        m->pending_head = pend;
    m->pending_tail = pend;
    if (!uv_is_active((uv_handle_t *)&m->dispatch))
        uv_timer_start(&m->dispatch, mock_dispatch, 0, 0);
    return 0;
nomem:
    json_decref(copy);
    json_decref(copy2);
    free(pend);
    free(n1);
    free(n2);
    return UV_ENOMEM;
}

static int mock_event_publish(const baic_host_t *host, const char *name, const json_t *body) {
    return baic_mock_host_publish(mock_of(host), name, body);
}

static int mock_event_subscribe(const baic_host_t *host, const char *prefix, baic_event_cb cb,
                                void *arg, baic_subscription_t **out) {
    if (cb == NULL || out == NULL)
        return UV_EINVAL;
    baic_mock_host_t *m = mock_of(host);
    baic_subscription_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return UV_ENOMEM;
    s->prefix = strdup(prefix ? prefix : "");
    if (s->prefix == NULL) {
        free(s);
        return UV_ENOMEM;
    }
    s->cb = cb;
    s->arg = arg;
    s->next = m->subs;
    m->subs = s;
    *out = s;
    return 0;
}

static int mock_event_unsubscribe(const baic_host_t *host, baic_subscription_t *sub) {
    baic_mock_host_t *m = mock_of(host);
    for (baic_subscription_t *s = m->subs; s != NULL; s = s->next) {
        if (s == sub && !s->dead) {
            s->dead = 1;
            if (m->dispatching == 0)
                mock_sweep_subs(m);
            return 0;
        }
    }
    return BAIC_ENOT_FOUND;
}

int baic_mock_host_events(baic_mock_host_t *m, const char *prefix) {
    size_t plen = prefix ? strlen(prefix) : 0;
    int n = 0;
    for (size_t i = 0; i < m->nevents; i++)
        if (plen == 0 || strncmp(m->events[i].name, prefix, plen) == 0)
            n++;
    return n;
}

const json_t *baic_mock_host_last_event(baic_mock_host_t *m, const char *prefix) {
    size_t plen = prefix ? strlen(prefix) : 0;
    for (size_t i = m->nevents; i > 0; i--)
        if (plen == 0 || strncmp(m->events[i - 1].name, prefix, plen) == 0)
            return m->events[i - 1].body;
    return NULL;
}

/* ---- 1.1 members ---- */

static uint64_t mock_now_ms(const baic_host_t *host) {
    return uv_now(&mock_of(host)->loop);
}

static const char *mock_strerror(int code) {
    if (code == 0)
        return "success";
    switch (code) {
#define MOCK_ERR_CASE(name, off, msg)                                                   \
    case BAIC_E##name:                                                                  \
        return msg;
        BAIC_ERRNO_MAP(MOCK_ERR_CASE)
#undef MOCK_ERR_CASE
    default:
        break;
    }
    if (code < 0 && code > BAIC__ERR_BASE)
        return strerror(-code);
    return "unknown error";
}

static int mock_http_serve(const baic_host_t *host, const char *addr,
                           baic_http_simple_handler handler, void *arg,
                           baic_http_listener_t **out) {
    return BAIC_ENOT_SUPPORTED;
}

static int mock_http_stop(const baic_host_t *host, baic_http_listener_t *listener) {
    return BAIC_ENOT_SUPPORTED;
}

static void mock_table_fill(baic_mock_host_t *m, mock_plugin_t *p, const char *label) {
    memset(&p->table, 0, sizeof p->table);
    p->m = m;
    snprintf(p->label, sizeof p->label, "%s", label);
    baic_host_t *t = &p->table;
    t->size = sizeof *t;
    t->abi_major = BAIC_ABI_MAJOR;
    t->abi_minor = BAIC_ABI_MINOR;
    t->ctx = p;
    t->log = mock_host_log;
    t->config = mock_host_config;
    t->alloc = mock_alloc;
    t->calloc = mock_calloc;
    t->realloc = mock_realloc;
    t->free = mock_free;
    t->timer_start = mock_timer_start;
    t->timer_stop = mock_timer_stop;
    t->queue_work = mock_queue_work;
    t->metric_add = mock_metric_add;
    t->metric_set = mock_metric_set;
    t->metric_observe = mock_metric_observe;
    t->metric_walk = mock_metric_walk;
    t->event_publish = mock_event_publish;
    t->event_subscribe = mock_event_subscribe;
    t->event_unsubscribe = mock_event_unsubscribe;
    t->now_ms = mock_now_ms;
    t->strerror = mock_strerror;
    t->http_serve = mock_http_serve;
    t->http_stop = mock_http_stop;
}

/* ---- life cycle ---- */

baic_mock_host_t *baic_mock_host_new(const json_t *config) {
    baic_mock_host_t *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->config = config ? json_deep_copy(config) : json_object();
    if (m->config == NULL || uv_loop_init(&m->loop) != 0) {
        json_decref(m->config);
        free(m);
        return NULL;
    }
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&m->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    const char *v = getenv("BAIC_MOCK_HOST_VERBOSE");
    m->verbose = v != NULL && *v != '\0' && strcmp(v, "0") != 0;
    uv_timer_init(&m->loop, &m->dispatch);
    m->dispatch.data = NULL;
    uv_timer_init(&m->loop, &m->deadline);
    m->deadline.data = NULL;
    uv_check_init(&m->loop, &m->check);
    m->check.data = NULL;
    mock_table_fill(m, &m->base, "test/mock");
    return m;
}

const baic_host_t *baic_mock_host_table(baic_mock_host_t *m) {
    return &m->base.table;
}

uv_loop_t *baic_mock_host_loop(baic_mock_host_t *m) {
    return &m->loop;
}

static void mock_deadline_fire(uv_timer_t *h) {
    baic_mock_host_t *m = (baic_mock_host_t *)((char *)h - offsetof(baic_mock_host_t, deadline));
    m->deadline_hit = 1;
    uv_stop(&m->loop);
}

static void mock_check_fire(uv_check_t *h) {
    baic_mock_host_t *m = (baic_mock_host_t *)((char *)h - offsetof(baic_mock_host_t, check));
    if (m->pred != NULL && m->pred(m->pred_arg)) {
        m->pred_hit = 1;
        uv_stop(&m->loop);
    }
}

int baic_mock_host_run_until(baic_mock_host_t *m, int (*pred)(void *arg), void *arg,
                             uint64_t max_ms) {
    if (pred != NULL && pred(arg))
        return 0;
    m->pred = pred;
    m->pred_arg = arg;
    m->pred_hit = 0;
    m->deadline_hit = 0;
    uv_update_time(&m->loop);
    /* Unreferenced: the deadline and the predicate check never keep the loop alive,
     * so an idle loop returns at once. */
    uv_timer_start(&m->deadline, mock_deadline_fire, max_ms, 0);
    uv_unref((uv_handle_t *)&m->deadline);
    if (pred != NULL) {
        uv_check_start(&m->check, mock_check_fire);
        uv_unref((uv_handle_t *)&m->check);
    }
    uv_run(&m->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&m->deadline);
    uv_check_stop(&m->check);
    m->pred = NULL;
    if (m->pred_hit)
        return 0;
    if (pred != NULL && pred(arg))
        return 0;
    if (m->deadline_hit)
        return BAIC_ETIMEOUT;
    return pred != NULL ? BAIC_ECANCELLED : 0;
}

int baic_mock_host_run(baic_mock_host_t *m, uint64_t max_ms) {
    return baic_mock_host_run_until(m, NULL, NULL, max_ms);
}

/* ---- loading ---- */

static int mock_kind_from_string(const char *kind) {
    static const char *const names[] = {NULL,      "scheduler", "selector", "compute", "runtime",
                                        "storage", "auth",      "monitor",  "hook"};
    for (int i = 1; i < (int)(sizeof names / sizeof names[0]); i++)
        if (strcmp(kind, names[i]) == 0)
            return i;
    return -1;
}

/* Mandatory-op check for one kind, generated from the header's X-macro list: copy what
 * the plugin knows into a zeroed table of the host's size, then test each member. */
#define MOCK_OP_PRESENT(member)                                                         \
    if (t.member == NULL) {                                                             \
        *missing = #member;                                                             \
        return BAIC_EPLUGIN_OPS_MISSING;                                                \
    }
#define MOCK_DEFINE_KIND_CHECK(kind, type, min_size, list)                              \
    static int mock_check_##kind(const void *ops, uint32_t ops_size, const char **missing) { \
        type t;                                                                         \
        if (ops_size < (min_size))                                                      \
            return BAIC_EPLUGIN_OPS_SHORT;                                              \
        memset(&t, 0, sizeof t);                                                        \
        memcpy(&t, ops, ops_size < sizeof t ? ops_size : sizeof t);                     \
        list(MOCK_OP_PRESENT) return 0;                                                 \
    }

#if defined(BAIC_SCHEDULER_OPS_MIN_SIZE) && defined(BAIC_SCHEDULER_MANDATORY_OPS)
MOCK_DEFINE_KIND_CHECK(scheduler, baic_scheduler_ops_t, BAIC_SCHEDULER_OPS_MIN_SIZE,
                       BAIC_SCHEDULER_MANDATORY_OPS)
#define MOCK_CHECK_scheduler mock_check_scheduler
#else
#define MOCK_CHECK_scheduler NULL
#endif
#if defined(BAIC_SELECTOR_OPS_MIN_SIZE) && defined(BAIC_SELECTOR_MANDATORY_OPS)
MOCK_DEFINE_KIND_CHECK(selector, baic_selector_ops_t, BAIC_SELECTOR_OPS_MIN_SIZE,
                       BAIC_SELECTOR_MANDATORY_OPS)
#define MOCK_CHECK_selector mock_check_selector
#else
#define MOCK_CHECK_selector NULL
#endif
#if defined(BAIC_COMPUTE_OPS_MIN_SIZE) && defined(BAIC_COMPUTE_MANDATORY_OPS)
MOCK_DEFINE_KIND_CHECK(compute, baic_compute_ops_t, BAIC_COMPUTE_OPS_MIN_SIZE,
                       BAIC_COMPUTE_MANDATORY_OPS)
#define MOCK_CHECK_compute mock_check_compute
#else
#define MOCK_CHECK_compute NULL
#endif
#if defined(BAIC_RUNTIME_OPS_MIN_SIZE) && defined(BAIC_RUNTIME_MANDATORY_OPS)
MOCK_DEFINE_KIND_CHECK(runtime, baic_runtime_ops_t, BAIC_RUNTIME_OPS_MIN_SIZE,
                       BAIC_RUNTIME_MANDATORY_OPS)
#define MOCK_CHECK_runtime mock_check_runtime
#else
#define MOCK_CHECK_runtime NULL
#endif
#if defined(BAIC_STORAGE_OPS_MIN_SIZE) && defined(BAIC_STORAGE_MANDATORY_OPS)
MOCK_DEFINE_KIND_CHECK(storage, baic_storage_ops_t, BAIC_STORAGE_OPS_MIN_SIZE,
                       BAIC_STORAGE_MANDATORY_OPS)
#define MOCK_CHECK_storage mock_check_storage
#else
#define MOCK_CHECK_storage NULL
#endif
#if defined(BAIC_AUTH_OPS_MIN_SIZE) && defined(BAIC_AUTH_MANDATORY_OPS)
MOCK_DEFINE_KIND_CHECK(auth, baic_auth_ops_t, BAIC_AUTH_OPS_MIN_SIZE, BAIC_AUTH_MANDATORY_OPS)
#define MOCK_CHECK_auth mock_check_auth
#else
#define MOCK_CHECK_auth NULL
#endif
#if defined(BAIC_MONITOR_OPS_MIN_SIZE) && defined(BAIC_MONITOR_MANDATORY_OPS)
MOCK_DEFINE_KIND_CHECK(monitor, baic_monitor_ops_t, BAIC_MONITOR_OPS_MIN_SIZE,
                       BAIC_MONITOR_MANDATORY_OPS)
#define MOCK_CHECK_monitor mock_check_monitor
#else
#define MOCK_CHECK_monitor NULL
#endif
#if defined(BAIC_HOOK_OPS_MIN_SIZE) && defined(BAIC_HOOK_MANDATORY_OPS)
MOCK_DEFINE_KIND_CHECK(hook, baic_hook_ops_t, BAIC_HOOK_OPS_MIN_SIZE, BAIC_HOOK_MANDATORY_OPS)
#define MOCK_CHECK_hook mock_check_hook
#else
#define MOCK_CHECK_hook NULL
#endif

typedef int (*mock_kind_check_fn)(const void *ops, uint32_t ops_size, const char **missing);

static mock_kind_check_fn mock_kind_check(int kind) {
    switch (kind) {
    case BAIC_KIND_SCHEDULER:
        return MOCK_CHECK_scheduler;
    case BAIC_KIND_SELECTOR:
        return MOCK_CHECK_selector;
    case BAIC_KIND_COMPUTE:
        return MOCK_CHECK_compute;
    case BAIC_KIND_RUNTIME:
        return MOCK_CHECK_runtime;
    case BAIC_KIND_STORAGE:
        return MOCK_CHECK_storage;
    case BAIC_KIND_AUTH:
        return MOCK_CHECK_auth;
    case BAIC_KIND_MONITOR:
        return MOCK_CHECK_monitor;
    case BAIC_KIND_HOOK:
        return MOCK_CHECK_hook;
    default:
        return NULL;
    }
}

static int mock_load_fail(baic_mock_host_t *m, void *dl, int code, const char *path,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int mock_load_fail(baic_mock_host_t *m, void *dl, int code, const char *path,
                          const char *fmt, ...) {
    char why[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(m->last_error, sizeof m->last_error, "%s: %s", path, why);
    mock_log_internal(m, BAIC_LOG_ERROR, "plugin_load_failed", "file=\"%s\" code=%d reason=\"%s\"",
                      path, code, why);
    if (dl != NULL)
        dlclose(dl);
    return code;
}

int baic_mock_host_load(baic_mock_host_t *m, const char *so_path, const char *kind,
                        const char *name, const json_t *conf, const baic_plugin_desc_t **desc,
                        void **state) {
    m->last_error[0] = '\0';
    if (so_path == NULL || kind == NULL)
        return UV_EINVAL;
    int want_kind = mock_kind_from_string(kind);
    if (want_kind < 0)
        return mock_load_fail(m, NULL, BAIC_EPLUGIN_BAD_KIND, so_path, "unknown kind %s", kind);

    dlerror();
    void *dl = dlopen(so_path, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        const char *e = dlerror();
        return mock_load_fail(m, NULL, BAIC_EPLUGIN_OPEN, so_path,
                              "%s (check that the file exists and its shared-library "
                              "dependencies resolve: ldd)",
                              e ? e : "dlopen failed");
    }
    baic_plugin_entry_fn entry = NULL;
    void *sym = dlsym(dl, "baic_plugin_entry");
    if (sym == NULL && name != NULL) {
        char alias[256];
        snprintf(alias, sizeof alias, "%s_%s_LTX_baic_plugin_entry", kind, name);
        sym = dlsym(dl, alias);
    }
    if (sym == NULL)
        return mock_load_fail(m, dl, BAIC_EPLUGIN_NO_ENTRY, so_path,
                              "not a baic plugin (no baic_plugin_entry)");
    memcpy(&entry, &sym, sizeof entry);
    const baic_plugin_desc_t *d = entry();
    if (d == NULL || d->magic != BAIC_PLUGIN_MAGIC)
        return mock_load_fail(m, dl, BAIC_EPLUGIN_BAD_MAGIC, so_path, "bad magic number");
    if (d->abi_major != BAIC_ABI_MAJOR)
        return mock_load_fail(m, dl, BAIC_EPLUGIN_ABI_MAJOR, so_path,
                              "plugin ABI %u.%u, host ABI %d.%d", d->abi_major, d->abi_minor,
                              BAIC_ABI_MAJOR, BAIC_ABI_MINOR);
    if (d->abi_minor > BAIC_ABI_MINOR)
        return mock_load_fail(m, dl, BAIC_EPLUGIN_ABI_NEWER, so_path,
                              "plugin needs a newer host (plugin ABI %u.%u, host %d.%d)",
                              d->abi_major, d->abi_minor, BAIC_ABI_MAJOR, BAIC_ABI_MINOR);
    if (d->desc_size < BAIC_PLUGIN_DESC_MIN_SIZE)
        return mock_load_fail(m, dl, BAIC_EPLUGIN_DESC_SHORT, so_path,
                              "descriptor too short (%u < %zu)", d->desc_size,
                              (size_t)BAIC_PLUGIN_DESC_MIN_SIZE);
    if (d->build_sig != BAIC_BUILD_SIG)
        return mock_load_fail(m, dl, BAIC_EPLUGIN_BUILD_SIG, so_path,
                              "plugin is not binary compatible (build signature 0x%08x, "
                              "host 0x%08x)",
                              d->build_sig, (unsigned)BAIC_BUILD_SIG);
    if ((int)d->kind != want_kind || d->name == NULL ||
        (name != NULL && strcmp(d->name, name) != 0))
        return mock_load_fail(m, dl, BAIC_EPLUGIN_NAME_MISMATCH, so_path,
                              "plugin says kind=%u name=%s, asked for %s/%s", d->kind,
                              d->name ? d->name : "(null)", kind, name ? name : "*");
    for (mock_plugin_t *p = m->plugins; p != NULL; p = p->next)
        if (p->desc->kind == d->kind && strcmp(p->desc->name, d->name) == 0)
            return mock_load_fail(m, dl, BAIC_EPLUGIN_DUPLICATE, so_path,
                                  "%s/%s is already loaded", kind, d->name);
    mock_kind_check_fn check = mock_kind_check(want_kind);
    if (check != NULL) {
        const char *missing = NULL;
        if (d->ops == NULL)
            return mock_load_fail(m, dl, BAIC_EPLUGIN_OPS_SHORT, so_path, "no ops table");
        int rc = check(d->ops, d->ops_size, &missing);
        if (rc == BAIC_EPLUGIN_OPS_SHORT)
            return mock_load_fail(m, dl, rc, so_path,
                                  "ops table of %u bytes is shorter than the %s minimum",
                                  d->ops_size, kind);
        if (rc != 0)
            return mock_load_fail(m, dl, rc, so_path, "mandatory op %s missing",
                                  missing ? missing : "?");
    }

    mock_plugin_t *p = calloc(1, sizeof *p);
    if (p == NULL)
        return mock_load_fail(m, dl, UV_ENOMEM, so_path, "out of memory");
    char label[160];
    snprintf(label, sizeof label, "%s/%s", kind, d->name);
    mock_table_fill(m, p, label);
    p->dl = dl;
    p->desc = d;
    if (conf == NULL) {
        char path[200];
        snprintf(path, sizeof path, "plugin.\"%s/%s\"", kind, d->name);
        conf = mock_lookup(m->config, path);
    }
    void *st = NULL;
    int rc = d->init ? d->init(&p->table, conf, &st) : 0;
    if (rc != 0) {
        free(p);
        return mock_load_fail(m, dl, BAIC_EPLUGIN_INIT, so_path, "init returned %d (%s)", rc,
                              mock_strerror(rc));
    }
    p->state = st;
    p->next = m->plugins;
    m->plugins = p;
    mock_log_internal(m, BAIC_LOG_INFO, "plugin_loaded", "file=\"%s\" plugin=%s version=%s",
                      so_path, label, d->version ? d->version : "-");
    if (desc)
        *desc = d;
    if (state)
        *state = st;
    return 0;
}

int baic_mock_host_load_named(baic_mock_host_t *m, const char *kind, const char *name,
                              const json_t *conf, const baic_plugin_desc_t **desc,
                              void **state) {
    const char *dir = getenv("BAIC_PLUGIN_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s_%s.so", dir && *dir ? dir : ".", kind, name);
    return baic_mock_host_load(m, path, kind, name, conf, desc, state);
}

static void mock_plugin_release(mock_plugin_t *p) {
    if (p->desc->fini)
        p->desc->fini(p->state);
    const char *keep = getenv("BAIC_NO_DLCLOSE");
    if (keep == NULL || strcmp(keep, "1") != 0)
        dlclose(p->dl);
    free(p);
}

int baic_mock_host_unload(baic_mock_host_t *m, const baic_plugin_desc_t *desc) {
    for (mock_plugin_t **pp = &m->plugins; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->desc == desc) {
            mock_plugin_t *p = *pp;
            *pp = p->next;
            mock_plugin_release(p);
            return 0;
        }
    }
    return BAIC_ENOT_FOUND;
}

const char *baic_mock_host_last_error(baic_mock_host_t *m) {
    return m->last_error;
}

const baic_host_t *baic_mock_host_plugin_table(baic_mock_host_t *m,
                                               const baic_plugin_desc_t *desc) {
    for (mock_plugin_t *p = m->plugins; p != NULL; p = p->next)
        if (p->desc == desc)
            return &p->table;
    return NULL;
}

/* Handles embedded in m have data == NULL; a plugin timer's data is its own allocation. */
static void mock_close_walk(uv_handle_t *h, void *arg) {
    if (!uv_is_closing(h))
        uv_close(h, h->data != NULL ? mock_close_free : NULL);
}

void baic_mock_host_free(baic_mock_host_t *m) {
    if (m == NULL)
        return;
    /* Work that has not started is cancelled (done sees UV_ECANCELED); work already
     * running on a pool thread is waited for, so no done callback outlives the plugin. */
    for (mock_work_t *w = m->works; w != NULL; w = w->next)
        uv_cancel((uv_req_t *)&w->req);
    while (m->works != NULL)
        uv_run(&m->loop, UV_RUN_ONCE);
    while (m->plugins != NULL) {
        mock_plugin_t *p = m->plugins;
        m->plugins = p->next;
        mock_plugin_release(p);
    }
    uv_walk(&m->loop, mock_close_walk, NULL);
    uv_run(&m->loop, UV_RUN_DEFAULT);
    uv_loop_close(&m->loop);

    for (mock_event_t *ev = m->pending_head; ev != NULL;) {
        mock_event_t *next = ev->next;
        free(ev->name);
        json_decref(ev->body);
        free(ev);
        ev = next;
    }
    for (size_t i = 0; i < m->nevents; i++) {
        free(m->events[i].name);
        json_decref(m->events[i].body);
    }
    free(m->events);
    for (baic_subscription_t *s = m->subs; s != NULL;) {
        baic_subscription_t *next = s->next;
        free(s->prefix);
        free(s);
        s = next;
    }
    for (size_t i = 0; i < m->nmetrics; i++) {
        free(m->metrics[i]->name);
        free(m->metrics[i]->help);
        free(m->metrics[i]->labels);
        free(m->metrics[i]);
    }
    free(m->metrics);
    free(m->log);
    pthread_mutex_destroy(&m->lock);
    json_decref(m->config);
    free(m);
}
