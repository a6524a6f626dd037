/* SPDX-License-Identifier: Apache-2.0 */
/* The monitor plugin kind: observes the daemon (events, errors, metrics) and exports it. */
#ifndef BAIC_MONITOR_H
#define BAIC_MONITOR_H

#include "host.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A monitor only watches: it never changes what the daemon does, and whatever goes
 * wrong inside it must not fail a request. Every op is optional, because the useful
 * ones differ by plugin: an exporter like "monitor/prometheus" needs none (it pulls
 * host->metric_walk from its own HTTP endpoint set up in init), an error reporter
 * needs only on_error, an event archiver only on_event and flush. The loader still
 * requires the ops pointer and a table of at least BAIC_MONITOR_OPS_MIN_SIZE.
 *
 * Nothing a monitor receives may be forwarded with secrets in it: event bodies and
 * error contexts are already scrubbed by the core, and a plugin adds none.
 */

typedef struct baic_monitor_ops {
    /* ---- ABI 1.0 ---- */

    /*
     * on_event (optional): called for every event the daemon publishes on its bus,
     * after it was published.
     *   name  event name, e.g. "session_terminated"; borrowed for the call
     *   body  event body (a JSON object); borrowed for the call (json_incref to keep)
     * Loop thread; must not block (queue slow exports through host->queue_work or
     * batch them for flush).
     */
    void (*on_event)(void *state, const char *name, const json_t *body);

    /*
     * on_error (optional): called for every failure the daemon logs at level ERROR
     * and for every 5xx answer.
     *   where  the component, e.g. "manager/api/session" or "plugin compute/cuda"
     *   code   the negative code that failed (baic_strerror / host->strerror names it)
     *   msg    one line of detail, may be NULL
     *   ctx    JSON object with ids (request_id, session_id, ...) or NULL
     * All borrowed for the call. Any thread (errors happen on pool threads too), so
     * the plugin protects its own state.
     */
    void (*on_error)(void *state, const char *where, int code, const char *msg, const json_t *ctx);

    /*
     * flush (optional): push out anything buffered. Called on the loop thread before
     * fini at shutdown, and on the operator's "reload" signal. Returns 0 or a negative
     * code (logged; it never stops the shutdown). Must not block for long: a plugin
     * that needs to wait hands the wait to host->queue_work and returns.
     */
    int (*flush)(void *state);
} baic_monitor_ops_t;

/* The smallest table the host accepts: the whole 1.0 group. */
#define BAIC_MONITOR_OPS_MIN_SIZE (offsetof(baic_monitor_ops_t, flush) + sizeof(void *))

/* No mandatory members (see above). */
#define BAIC_MONITOR_MANDATORY_OPS(X)

#ifdef __cplusplus
}
#endif

#endif /* BAIC_MONITOR_H */
