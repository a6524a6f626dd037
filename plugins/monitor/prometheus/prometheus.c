/* SPDX-License-Identifier: Apache-2.0 */
/* monitor/prometheus: an HTTP endpoint of its own that Prometheus scrapes for the host's metrics.
 */
#include <stdlib.h>
#include <string.h>

#include <baic/host.h>
#include <baic/monitor.h>
#include <baic/plugin.h>

#include "render.h"

/*
 * Config ([plugin."monitor/prometheus"]):
 *   addr  "host:port" to listen on (default "127.0.0.1:9091": loopback, since metrics
 *         name sessions and users; expose it deliberately)
 *   path  the scrape path (default "/metrics")
 * The listener is the host's own HTTP layer (host->http_serve, ABI 1.1).
 */

#define PROMETHEUS_DEFAULT_ADDR "127.0.0.1:9091"
#define PROMETHEUS_DEFAULT_PATH "/metrics"

typedef struct prometheus_state {
    const baic_host_t *host;
    prometheus_endpoint_t ep;
    baic_http_listener_t *listener;
    char *addr;
    char *path;
} prometheus_state_t;

static void prometheus_free(prometheus_state_t *st) {
    free(st->addr);
    free(st->path);
    free(st);
}

/* A string option: absent → dflt; present but not a non-empty string → error. */
static int prometheus_opt(const baic_host_t *host, const json_t *conf, const char *key,
                          const char *dflt, char **out) {
    const json_t *v = conf ? json_object_get(conf, key) : NULL;
    const char *s = dflt;
    if (v != NULL) {
        s = json_string_value(v);
        if (s == NULL || *s == '\0') {
            host->log(host, BAIC_LOG_ERROR, "config_invalid",
                      "key=%s reason=\"non-empty string expected\"", key);
            return BAIC_ECONFIG_TYPE;
        }
    }
    *out = strdup(s);
    return *out ? 0 : UV_ENOMEM;
}

static int prometheus_init(const baic_host_t *host, const json_t *conf, void **state) {
    if (conf != NULL && !json_is_object(conf)) {
        host->log(host, BAIC_LOG_ERROR, "config_invalid", "reason=\"not a table\"");
        return BAIC_ECONFIG_TYPE;
    }
    prometheus_state_t *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return UV_ENOMEM;
    st->host = host;
    int rc = prometheus_opt(host, conf, "addr", PROMETHEUS_DEFAULT_ADDR, &st->addr);
    if (rc == 0)
        rc = prometheus_opt(host, conf, "path", PROMETHEUS_DEFAULT_PATH, &st->path);
    if (rc == 0 && st->path[0] != '/') {
        host->log(host, BAIC_LOG_ERROR, "config_invalid", "key=path reason=\"must start with /\"");
        rc = BAIC_ECONFIG_TYPE;
    }
    if (rc != 0) {
        prometheus_free(st);
        return rc;
    }
    st->ep.host = host;
    st->ep.path = st->path;

    if (!BAIC_HOST_HAS(host, http_serve)) {
        host->log(host, BAIC_LOG_ERROR, "http_serve_missing", "reason=\"host older than ABI 1.1\"");
        prometheus_free(st);
        return BAIC_ENOT_SUPPORTED;
    }
    rc = host->http_serve(host, st->addr, prometheus_handle, &st->ep, &st->listener);
    if (rc == BAIC_ENOT_SUPPORTED) {
        /* A host without an HTTP layer (a test host, a tool): stay loaded, serve nothing. */
        host->log(host, BAIC_LOG_WARN, "not_serving", "addr=%s reason=\"http_serve unsupported\"",
                  st->addr);
        st->listener = NULL;
    } else if (rc != 0) {
        host->log(host, BAIC_LOG_ERROR, "listen_failed", "addr=%s code=%d", st->addr, rc);
        prometheus_free(st);
        return rc;
    } else {
        host->log(host, BAIC_LOG_INFO, "serving", "addr=%s path=%s", st->addr, st->path);
    }
    *state = st;
    return 0;
}

static void prometheus_fini(void *state) {
    prometheus_state_t *st = state;
    if (st->listener != NULL && BAIC_HOST_HAS(st->host, http_stop))
        st->host->http_stop(st->host, st->listener);
    prometheus_free(st);
}

/* Everything happens in the scrape handler; no op is needed (see monitor.h). */
static const baic_monitor_ops_t prometheus_ops = {
    .on_event = NULL,
    .on_error = NULL,
    .flush = NULL,
};

BAIC_PLUGIN_DEFINE(monitor, prometheus, "1.0.0", prometheus_init, prometheus_fini, &prometheus_ops)
