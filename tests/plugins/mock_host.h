/* SPDX-License-Identifier: Apache-2.0 */
/* A baic_host_t without a daemon: loads one plugin .so and records what it does. */
#ifndef BAIC_TESTS_MOCK_HOST_H
#define BAIC_TESTS_MOCK_HOST_H

#include <stdint.h>

#include <baic/host.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The mock host owns a real libuv loop; timers, queue_work and event delivery run
 * on it, but only while the test drives it with baic_mock_host_run*(). Log lines,
 * metrics and published events are recorded so a test can assert on them. It links
 * only jansson, libuv and the C library (dlopen), never libbaic-core.
 *
 * Everything here runs on the test's thread (the loop thread) unless the host.h
 * contract says a member may be called from any thread (log, config, alloc,
 * metrics): those are safe here too.
 */
typedef struct baic_mock_host baic_mock_host_t;

/*
 * Creates a mock host.
 *   config  the whole daemon config tree the plugin may look up with host->config,
 *           or NULL for an empty one; copied (deep), so the caller keeps ownership.
 * Returns the host, or NULL when out of memory. Free with baic_mock_host_free.
 */
baic_mock_host_t *baic_mock_host_new(const json_t *config);

/* Unloads every plugin still loaded (fini in reverse load order), closes every
 * handle, runs the loop until they are closed and frees everything. NULL is a no-op. */
void baic_mock_host_free(baic_mock_host_t *m);

/* A host table not tied to any plugin (logs as plugin=test/mock), for tests that
 * call a plugin's init themselves. Owned by m. */
const baic_host_t *baic_mock_host_table(baic_mock_host_t *m);

/* The loop. Owned by m; do not close it. */
uv_loop_t *baic_mock_host_loop(baic_mock_host_t *m);

/*
 * Runs the loop until nothing keeps it alive (no active timers, work or pending
 * events) or max_ms of loop time passed. Returns 0 when the loop went idle,
 * BAIC_ETIMEOUT when the deadline stopped it (e.g. a repeating timer is active).
 */
int baic_mock_host_run(baic_mock_host_t *m, uint64_t max_ms);

/*
 * Runs the loop until pred(arg) returns non-zero (checked before the first
 * iteration and after every one), the loop goes idle, or max_ms passed.
 * Returns 0 when pred became true, BAIC_ETIMEOUT on the deadline, BAIC_ECANCELLED
 * when the loop went idle with pred still false.
 */
int baic_mock_host_run_until(baic_mock_host_t *m, int (*pred)(void *arg), void *arg,
                             uint64_t max_ms);

/* ---- what the plugin did ---- */

/* 1 when some captured log line contains substr, else 0. */
int baic_mock_host_log_contains(baic_mock_host_t *m, const char *substr);
/* Every captured line, '\n'-terminated, as one string owned by m (valid until the next
 * log call or clear). Set BAIC_MOCK_HOST_VERBOSE=1 to also echo lines to stderr. */
const char *baic_mock_host_log_text(baic_mock_host_t *m);
void baic_mock_host_log_clear(baic_mock_host_t *m);

/*
 * The recorded value of metric name with rendered labels (NULL or "" for none):
 * counter total, gauge value, or histogram sum. Returns NAN when never recorded.
 * baic_mock_host_metric_count: number of histogram observations (0 otherwise).
 */
double baic_mock_host_metric(baic_mock_host_t *m, const char *name, const char *labels);
uint64_t baic_mock_host_metric_count(baic_mock_host_t *m, const char *name,
                                     const char *labels);

/* Number of events published so far whose name starts with prefix ("" = all). */
int baic_mock_host_events(baic_mock_host_t *m, const char *prefix);
/* The body of the latest such event, borrowed from m (valid until m is freed), or NULL. */
const json_t *baic_mock_host_last_event(baic_mock_host_t *m, const char *prefix);
/* Publishes an event as the daemon would (recorded and delivered to subscribers on
 * the next loop iteration). body is copied; NULL means {}. Returns 0 or a code. */
int baic_mock_host_publish(baic_mock_host_t *m, const char *name, const json_t *body);

/* The same lookup host->config does, for tests. Borrowed from m. */
const json_t *baic_mock_host_config(baic_mock_host_t *m, const char *path);

/* ---- loading ---- */

/*
 * Loads a plugin the way the daemon's registry does, with the same checks in the
 * same order: dlopen(RTLD_NOW | RTLD_LOCAL), baic_plugin_entry (or the
 * <kind>_<name>_LTX_ alias), magic, ABI major, ABI minor, descriptor size, build
 * signature, kind and name, ops size and mandatory ops of the kind, then init.
 *   so_path  path of the .so
 *   kind     "scheduler", "selector", ...
 *   name     the plugin's name; NULL accepts whatever the descriptor says
 *   conf     passed to init as the plugin's own config; NULL means
 *            config lookup of plugin."<kind>/<name>" in the tree given to _new
 *   desc     out: the descriptor (valid until unload)
 *   state    out: the state init returned
 * Returns 0 or a BAIC_EPLUGIN_* code; the reason is logged (event=plugin_load_failed
 * reason=...) and kept in baic_mock_host_last_error().
 * The plugin gets its own host table, logging as plugin=<kind>/<name>.
 */
int baic_mock_host_load(baic_mock_host_t *m, const char *so_path, const char *kind,
                        const char *name, const json_t *conf,
                        const baic_plugin_desc_t **desc, void **state);

/* Same, with so_path = $BAIC_PLUGIN_DIR/<kind>_<name>.so (ctest sets BAIC_PLUGIN_DIR;
 * when unset, the current directory). */
int baic_mock_host_load_named(baic_mock_host_t *m, const char *kind, const char *name,
                              const json_t *conf, const baic_plugin_desc_t **desc,
                              void **state);

/* Calls fini and dlcloses (kept mapped when BAIC_NO_DLCLOSE=1). Returns 0, or
 * BAIC_ENOT_FOUND when desc is not loaded in m. */
int baic_mock_host_unload(baic_mock_host_t *m, const baic_plugin_desc_t *desc);

/* The reason of the last failed load, "" if none. Owned by m. */
const char *baic_mock_host_last_error(baic_mock_host_t *m);

/* The host table handed to the loaded plugin desc, or NULL. */
const baic_host_t *baic_mock_host_plugin_table(baic_mock_host_t *m,
                                               const baic_plugin_desc_t *desc);

#ifdef __cplusplus
}
#endif

#endif /* BAIC_TESTS_MOCK_HOST_H */
