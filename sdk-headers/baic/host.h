/* SPDX-License-Identifier: Apache-2.0 */
/* The host table: every service the daemon offers a plugin, handed over at init. */
#ifndef BAIC_HOST_H
#define BAIC_HOST_H

#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum baic_log_level {
    BAIC_LOG_ERROR = 0,
    BAIC_LOG_WARN = 1,
    BAIC_LOG_INFO = 2,
    BAIC_LOG_DEBUG = 3,
} baic_log_level_t;

typedef enum baic_metric_type {
    BAIC_METRIC_COUNTER = 0,
    BAIC_METRIC_GAUGE = 1,
    BAIC_METRIC_HISTOGRAM = 2,
} baic_metric_type_t;

typedef struct baic_timer baic_timer_t;           /* opaque, owned by the host */
typedef struct baic_subscription baic_subscription_t; /* opaque, owned by the host */
typedef struct baic_http_listener baic_http_listener_t; /* opaque, owned by the host */

/* Timer callback; runs on the loop thread. */
typedef void (*baic_timer_cb)(baic_timer_t *timer, void *arg);
/* Work-queue callbacks: work runs on a pool thread, done on the loop thread with
 * status 0, or UV_ECANCELED when the daemon shut down before the work ran. */
typedef void (*baic_work_cb)(void *arg);
typedef void (*baic_work_done_cb)(void *arg, int status);
/* Event callback; runs on the loop thread. name and body are borrowed for the call. */
typedef void (*baic_event_cb)(const char *name, const json_t *body, void *arg);

/* One metric sample as seen by a metrics walker (monitor plugins). All borrowed. */
typedef struct baic_metric_sample {
    const char *name;   /* e.g. "baic_http_requests_total" */
    const char *help;   /* one line */
    baic_metric_type_t type;
    const char *labels; /* rendered label set without braces, e.g. route="/",status="200"; "" if none */
    double value;       /* counter or gauge value; histogram: sum of observations */
    uint64_t count;     /* histogram: number of observations */
    size_t nbuckets;    /* histogram: number of finite buckets */
    const double *bucket_le;      /* histogram: upper bounds, ascending */
    const uint64_t *bucket_count; /* histogram: cumulative counts per bound */
} baic_metric_sample_t;
typedef void (*baic_metric_walk_cb)(const baic_metric_sample_t *s, void *arg);

/* A request handed to a plugin-served HTTP endpoint (1.1). All borrowed for the call. */
typedef struct baic_http_simple_request {
    const char *method;
    const char *path;   /* path with query string, as on the request line */
    const char *body;
    size_t body_len;
} baic_http_simple_request_t;
/* The answer: the plugin fills status, content_type and body; body is malloc'd by
 * the plugin (host->alloc) and freed by the host after sending. */
typedef struct baic_http_simple_response {
    int status;
    const char *content_type; /* static string */
    char *body;
    size_t body_len;
} baic_http_simple_response_t;
typedef void (*baic_http_simple_handler)(const baic_http_simple_request_t *req,
                                         baic_http_simple_response_t *res, void *arg);

/*
 * The table. The host gives each plugin its own copy (so log lines and metrics
 * carry the plugin's kind/name); a plugin keeps the pointer it got at init and
 * never copies the struct. Members are only appended; before calling a member
 * added after 1.0, test host->size against offsetof, or use BAIC_HOST_HAS().
 * Unless said otherwise every member must be called on the loop thread.
 */
struct baic_host {
    uint32_t size;      /* sizeof(baic_host_t) in the host */
    uint16_t abi_major; /* the host's ABI numbers */
    uint16_t abi_minor;
    void *ctx;          /* host-private; do not touch */

    /* ---- ABI 1.0 ---- */

    /*
     * log: writes one line `ts=.. level=.. plugin=kind/name event=<event> <kv>`.
     *   event  a short snake_case word
     *   fmt    printf format producing further key=value pairs, or NULL
     * Any thread. Values with spaces must be quoted by the caller.
     */
    void (*log)(const baic_host_t *host, baic_log_level_t level, const char *event,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

    /*
     * config: looks up a dotted path ("agent.id", "plugin.compute/mock.devices")
     * in the daemon's whole config tree. Returns a borrowed node valid until the
     * plugin's fini, or NULL when absent. Any thread (the tree is read-only).
     */
    const json_t *(*config)(const baic_host_t *host, const char *path);

    /* Allocation the host can account; any thread. free(NULL) is a no-op. */
    void *(*alloc)(size_t size);
    void *(*calloc)(size_t n, size_t size);
    void *(*realloc)(void *p, size_t size);
    void (*free)(void *p);

    /*
     * timer_start: calls cb after timeout_ms, then every repeat_ms if repeat_ms > 0.
     *   out  receives the timer; the host owns it. Returns 0 or a negative code; on
     *        failure cb never fires.
     * timer_stop: stops and releases the timer; cb will not fire afterwards. Safe
     * to call from inside cb. A one-shot timer that fired is still released only
     * by timer_stop.
     */
    int (*timer_start)(const baic_host_t *host, uint64_t timeout_ms, uint64_t repeat_ms,
                       baic_timer_cb cb, void *arg, baic_timer_t **out);
    int (*timer_stop)(const baic_host_t *host, baic_timer_t *timer);

    /*
     * queue_work: runs work(arg) on the daemon's thread pool, then done(arg, status)
     * on the loop thread. Use it for anything that blocks: device queries, file
     * walks, syscalls that can stall. Returns 0 or a negative code; on failure
     * neither callback runs.
     */
    int (*queue_work)(const baic_host_t *host, baic_work_cb work, baic_work_done_cb done,
                      void *arg);

    /*
     * Metrics. name follows Prometheus rules; labels is a rendered label set
     * without braces (`device="0"`) or NULL. The first use of a name fixes its
     * type and help. Any thread. Return 0, or -EINVAL when the name is reused with
     * another type. metric_walk visits every sample (for monitor plugins); loop thread.
     */
    int (*metric_add)(const baic_host_t *host, const char *name, const char *help,
                      const char *labels, double delta);   /* counter */
    int (*metric_set)(const baic_host_t *host, const char *name, const char *help,
                      const char *labels, double value);   /* gauge */
    int (*metric_observe)(const baic_host_t *host, const char *name, const char *help,
                          const char *labels, double value); /* histogram, seconds */
    void (*metric_walk)(const baic_host_t *host, baic_metric_walk_cb cb, void *arg);

    /*
     * Events on the daemon's bus (Redis Streams in the manager, a local bus
     * elsewhere). event_publish copies name and body. event_subscribe calls cb for
     * every event whose name starts with prefix ("" = all) until
     * event_unsubscribe; out receives the subscription, owned by the host.
     */
    int (*event_publish)(const baic_host_t *host, const char *name, const json_t *body);
    int (*event_subscribe)(const baic_host_t *host, const char *prefix, baic_event_cb cb,
                           void *arg, baic_subscription_t **out);
    int (*event_unsubscribe)(const baic_host_t *host, baic_subscription_t *sub);

    /* ---- ABI 1.1 ---- */

    /* now_ms: the loop's cached monotonic time in milliseconds. Loop thread. */
    uint64_t (*now_ms)(const baic_host_t *host);
    /* strerror: a static message for any code a host or plugin call returned. Any thread. */
    const char *(*strerror)(int code);
    /*
     * http_serve: serves HTTP/1.1 on addr ("127.0.0.1:9090") with the host's HTTP
     * layer, calling handler on the loop thread for every request. out receives the
     * listener; http_stop closes it. Returns 0, a negative uv code (e.g. UV_EADDRINUSE).
     */
    int (*http_serve)(const baic_host_t *host, const char *addr, baic_http_simple_handler handler,
                      void *arg, baic_http_listener_t **out);
    int (*http_stop)(const baic_host_t *host, baic_http_listener_t *listener);
};

/* True when the host table has member m (i.e. the host is new enough). */
#define BAIC_HOST_HAS(host, m)                                                          \
    ((host)->size >= offsetof(baic_host_t, m) + sizeof(((baic_host_t *)0)->m) &&         \
     (host)->m != NULL)

#ifdef __cplusplus
}
#endif

#endif /* BAIC_HOST_H */
