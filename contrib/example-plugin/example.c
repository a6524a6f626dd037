/* SPDX-License-Identifier: Apache-2.0 */
/* An out-of-tree monitor plugin: counts bus events by name, built with pkg-config baic-sdk only. */
#include <stdio.h>
#include <string.h>

#include <baic/monitor.h>

typedef struct example {
    const baic_host_t *host;
    unsigned long events;
} example_t;

static void example_on_event(void *state, const char *name, const json_t *body) {
    example_t *ex = state;
    char labels[160];
    (void)body;
    ex->events++;
    snprintf(labels, sizeof labels, "event=\"%.100s\"", name);
    ex->host->metric_add(ex->host, "example_events_total", "Events seen by the example plugin",
                         labels, 1);
}

static int example_flush(void *state) {
    example_t *ex = state;
    ex->host->log(ex->host, BAIC_LOG_INFO, "example_flush", "events=%lu", ex->events);
    return 0;
}

static int example_init(const baic_host_t *host, const json_t *conf, void **state) {
    example_t *ex = host->calloc(1, sizeof *ex);
    if (ex == NULL)
        return BAIC_ENO_RESOURCES;
    ex->host = host;
    const char *greeting = json_string_value(json_object_get(conf, "greeting"));
    host->log(host, BAIC_LOG_INFO, "example_loaded", "greeting=\"%s\" host_abi=%u.%u",
              greeting ? greeting : "hello", host->abi_major, host->abi_minor);
    /* Optional 1.1 host services are tested before use, so this also runs on a 1.0 host. */
    if (BAIC_HOST_HAS(host, now_ms))
        host->log(host, BAIC_LOG_DEBUG, "example_clock", "now_ms=%llu",
                  (unsigned long long)host->now_ms(host));
    *state = ex;
    return 0;
}

static void example_fini(void *state) {
    example_t *ex = state;
    ex->host->free(ex);
}

static const baic_monitor_ops_t example_ops = {
    .on_event = example_on_event,
    .flush = example_flush,
};

BAIC_PLUGIN_DEFINE(monitor, example, "1.0.0", example_init, example_fini, &example_ops)
