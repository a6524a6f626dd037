/* SPDX-License-Identifier: Apache-2.0 */
/* Prometheus text exposition (format 0.0.4) of the host's metrics, and the /metrics handler. */
#ifndef BAIC_PLUGIN_PROMETHEUS_RENDER_H
#define BAIC_PLUGIN_PROMETHEUS_RENDER_H

#include <stddef.h>

#include <baic/host.h>

#define PROMETHEUS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/*
 * Renders every sample host->metric_walk visits: one `# HELP` and `# TYPE` per metric
 * name, its samples grouped under them in first-seen order, histograms as _bucket (with
 * le="+Inf"), _sum and _count. Label sets are re-parsed and re-escaped; a sample whose
 * name or labels cannot be made valid is left out (and counted in *skipped if given).
 *   out  receives the text, allocated with host->realloc; free it with host->free
 *   len  its length (a NUL follows, not counted)
 * Returns 0 or UV_ENOMEM. Loop thread (metric_walk's rule).
 */
int prometheus_render(const baic_host_t *host, char **out, size_t *len, size_t *skipped);

/* What the HTTP handler needs. */
typedef struct prometheus_endpoint {
    const baic_host_t *host;
    const char *path; /* "/metrics" */
} prometheus_endpoint_t;

/* baic_http_simple_handler: GET/HEAD <path> → 200 with the rendering, other paths → 404,
 * other methods → 405. arg is a prometheus_endpoint_t. Loop thread. */
void prometheus_handle(const baic_http_simple_request_t *req, baic_http_simple_response_t *res,
                       void *arg);

#endif
