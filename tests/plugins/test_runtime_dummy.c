/* SPDX-License-Identifier: Apache-2.0 */
/* runtime/dummy: lifecycle with timer delays, exit events, list for recovery, errors, scale. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <baic/runtime.h>

#include "baic_check.h"
#include "plugins/mock_host.h"

typedef struct dt {
    baic_mock_host_t *m;
    const baic_runtime_ops_t *ops;
    void *st;
    /* what the plugin told us */
    int done, last_status, events, last_exit;
    char last_event_id[64];
    size_t listed;
    baic_rt_state_t listed_state;
    char listed_label[64];
} dt_t;

static void dt_load(dt_t *c, const char *conf_txt) {
    memset(c, 0, sizeof *c);
    json_t *conf = json_loads(conf_txt, 0, NULL);
    ck_assert_ptr_nonnull(conf);
    c->m = baic_mock_host_new(NULL);
    const baic_plugin_desc_t *d;
    int rc = baic_mock_host_load_named(c->m, "runtime", "dummy", conf, &d, &c->st);
    json_decref(conf);
    ck_assert_msg(rc == 0, "load: %s", baic_mock_host_last_error(c->m));
    c->ops = d->ops;
}

static void on_done(void *arg, int status) {
    dt_t *c = arg;
    c->done++;
    c->last_status = status;
}

static void on_event(void *arg, const baic_rt_event_t *ev) {
    dt_t *c = arg;
    ck_assert_int_eq(ev->type, BAIC_RT_EV_EXIT);
    c->events++;
    c->last_exit = ev->exit_code;
    snprintf(c->last_event_id, sizeof c->last_event_id, "%s", ev->id);
}

static void on_list(void *arg, int status, const baic_rt_info_t *const *items, size_t n) {
    dt_t *c = arg;
    ck_assert_int_eq(status, 0);
    c->done++;
    c->listed = n;
    if (n > 0) {
        c->listed_state = items[0]->state;
        snprintf(c->listed_label, sizeof c->listed_label, "%s",
                 items[0]->labels && items[0]->labels[0] ? items[0]->labels[0] : "");
    }
}

typedef struct want {
    dt_t *c;
    int done;
} want_t;

static int reached(void *arg) {
    want_t *w = arg;
    return w->c->done >= w->done;
}

/* Runs the loop until done reaches n; returns the loop time since the last dt_wait
 * ended (timers count from the loop's cached time, which is what this measures). */
static uint64_t dt_wait(dt_t *c, int n) {
    uv_loop_t *loop = baic_mock_host_loop(c->m);
    uint64_t t0 = uv_now(loop);
    want_t w = {c, n};
    ck_assert_int_eq(baic_mock_host_run_until(c->m, reached, &w, 10000), 0);
    return uv_now(loop) - t0;
}

static baic_container_spec_t dt_spec(const char *id, const char *const *env) {
    static const char *const labels[] = {"ai.backend.kernel-id=k1", NULL};
    baic_container_spec_t s = {.size = sizeof s, .id = id, .image = "busybox", .env = env,
                               .labels = labels};
    return s;
}

START_TEST(lifecycle_with_delays) {
    dt_t c;
    dt_load(&c, "{\"create_delay_ms\": 60, \"start_delay_ms\": 40, \"stop_delay_ms\": 30,"
                " \"destroy_delay_ms\": 20}");
    ck_assert_int_eq(c.ops->watch(c.st, on_event, &c), 0);
    baic_container_spec_t s = dt_spec("k1", NULL);
    ck_assert_int_eq(c.ops->create(c.st, &s, on_done, &c), 0);
    ck_assert_int_eq(c.done, 0); /* never inside the call */
    ck_assert_int_eq(c.ops->create(c.st, &s, on_done, &c), BAIC_EEXISTS);
    ck_assert_int_eq(c.ops->start(c.st, "k1", on_done, &c), BAIC_ENOT_FOUND); /* still creating */
    ck_assert_uint_ge(dt_wait(&c, 1), 60);
    ck_assert_int_eq(c.last_status, 0);

    ck_assert_int_eq(c.ops->list(c.st, on_list, &c), 0);
    dt_wait(&c, 2);
    ck_assert_uint_eq(c.listed, 1);
    ck_assert_int_eq(c.listed_state, BAIC_RT_CREATED);
    ck_assert_str_eq(c.listed_label, "ai.backend.kernel-id=k1");

    ck_assert_int_eq(c.ops->start(c.st, "k1", on_done, &c), 0);
    ck_assert_int_eq(c.ops->start(c.st, "k1", on_done, &c), UV_EBUSY);
    ck_assert_uint_ge(dt_wait(&c, 3), 40);
    ck_assert_int_eq(c.last_status, 0);
    ck_assert_int_eq(c.ops->destroy(c.st, "k1", on_done, &c), UV_EBUSY); /* running */
    ck_assert_int_eq(c.ops->list(c.st, on_list, &c), 0);
    dt_wait(&c, 4);
    ck_assert_int_eq(c.listed_state, BAIC_RT_RUNNING);

    ck_assert_int_eq(c.ops->stop(c.st, "k1", 10000, on_done, &c), 0);
    ck_assert_uint_ge(dt_wait(&c, 5), 30);
    ck_assert_int_eq(c.events, 1);
    ck_assert_int_eq(c.last_exit, 143);
    ck_assert_str_eq(c.last_event_id, "k1");
    /* Stopping again succeeds, later, with no second event. */
    ck_assert_int_eq(c.ops->stop(c.st, "k1", 10000, on_done, &c), 0);
    dt_wait(&c, 6);
    ck_assert_int_eq(c.events, 1);

    ck_assert_int_eq(c.ops->destroy(c.st, "k1", on_done, &c), 0);
    ck_assert_uint_ge(dt_wait(&c, 7), 20);
    ck_assert_int_eq(c.ops->list(c.st, on_list, &c), 0);
    dt_wait(&c, 8);
    ck_assert_uint_eq(c.listed, 0);
    ck_assert_int_eq(c.ops->destroy(c.st, "k1", on_done, &c), BAIC_ENOT_FOUND);
    baic_mock_host_free(c.m);
}
END_TEST

START_TEST(stop_timeout_kills) {
    dt_t c;
    dt_load(&c, "{\"stop_delay_ms\": 5000}");
    c.ops->watch(c.st, on_event, &c);
    baic_container_spec_t s = dt_spec("k1", NULL);
    ck_assert_int_eq(c.ops->create(c.st, &s, on_done, &c), 0);
    ck_assert_int_eq(c.ops->start(c.st, "k1", on_done, &c), BAIC_ENOT_FOUND);
    dt_wait(&c, 1);
    ck_assert_int_eq(c.ops->start(c.st, "k1", on_done, &c), 0);
    dt_wait(&c, 2);
    ck_assert_int_eq(c.ops->stop(c.st, "k1", 50, on_done, &c), 0);
    ck_assert_uint_lt(dt_wait(&c, 3), 1000);
    ck_assert_int_eq(c.last_exit, 137);
    baic_mock_host_free(c.m);
}
END_TEST

static int got_event(void *arg) {
    return ((dt_t *)arg)->events > 0;
}

START_TEST(timed_exit_and_failures) {
    dt_t c;
    dt_load(&c, "{}");
    c.ops->watch(c.st, on_event, &c);
    static const char *const env[] = {"BAIC_DUMMY_RUN_MS=30", "BAIC_DUMMY_EXIT_CODE=3", NULL};
    baic_container_spec_t s = dt_spec("batch", env);
    ck_assert_int_eq(c.ops->create(c.st, &s, on_done, &c), 0);
    dt_wait(&c, 1);
    ck_assert_int_eq(c.ops->start(c.st, "batch", on_done, &c), 0);
    dt_wait(&c, 2);
    ck_assert_int_eq(baic_mock_host_run_until(c.m, got_event, &c, 5000), 0);
    ck_assert_int_eq(c.last_exit, 3);
    ck_assert_str_eq(c.last_event_id, "batch");
    ck_assert_int_eq(c.ops->destroy(c.st, "batch", on_done, &c), 0);
    dt_wait(&c, 3);

    static const char *const fail_start[] = {"BAIC_DUMMY_FAIL=start", NULL};
    s = dt_spec("bad", fail_start);
    ck_assert_int_eq(c.ops->create(c.st, &s, on_done, &c), 0);
    dt_wait(&c, 4);
    ck_assert_int_eq(c.last_status, 0);
    ck_assert_int_eq(c.ops->start(c.st, "bad", on_done, &c), 0);
    dt_wait(&c, 5);
    ck_assert_int_eq(c.last_status, BAIC_EBACKEND);

    static const char *const fail_create[] = {"BAIC_DUMMY_FAIL=create", NULL};
    s = dt_spec("worse", fail_create);
    ck_assert_int_eq(c.ops->create(c.st, &s, on_done, &c), 0);
    dt_wait(&c, 6);
    ck_assert_int_eq(c.last_status, BAIC_EBACKEND);
    ck_assert_int_eq(c.ops->destroy(c.st, "worse", on_done, &c), BAIC_ENOT_FOUND);

    s = dt_spec("", NULL);
    ck_assert_int_eq(c.ops->create(c.st, &s, on_done, &c), BAIC_EBAD_INPUT);
    baic_mock_host_free(c.m);
}
END_TEST

static void on_start_cancelled(void *arg, int status) {
    dt_t *c = arg;
    ck_assert_int_eq(status, BAIC_ECANCELLED);
    c->last_exit = -100; /* marks that the start heard of it */
}

START_TEST(stop_overtakes_start) {
    dt_t c;
    dt_load(&c, "{\"start_delay_ms\": 2000}");
    c.ops->watch(c.st, on_event, &c);
    baic_container_spec_t s = dt_spec("k1", NULL);
    c.ops->create(c.st, &s, on_done, &c);
    dt_wait(&c, 1);
    ck_assert_int_eq(c.ops->start(c.st, "k1", on_start_cancelled, &c), 0);
    ck_assert_int_eq(c.ops->stop(c.st, "k1", 1000, on_done, &c), 0);
    ck_assert_int_eq(c.last_exit, 0); /* not inside the stop call */
    ck_assert_uint_lt(dt_wait(&c, 2), 1000);
    ck_assert_int_eq(c.last_exit, -100);
    ck_assert_int_eq(c.last_status, 0);
    ck_assert_int_eq(c.events, 0); /* it never ran */
    ck_assert_int_eq(c.ops->destroy(c.st, "k1", on_done, &c), 0);
    dt_wait(&c, 3);
    baic_mock_host_free(c.m);
}
END_TEST

static void on_stats(void *arg, int status, const baic_rt_stats_t *st) {
    dt_t *c = arg;
    ck_assert_int_eq(status, 0);
    ck_assert_uint_eq(st->cpu_used_ns, 0);
    ck_assert_int_eq(st->mem_used_bytes, 0);
    c->done++;
}

static void on_exec(void *arg, int status, int exit_code, const char *out, size_t len) {
    dt_t *c = arg;
    ck_assert_int_eq(status, 0);
    ck_assert_int_eq(exit_code, 0);
    ck_assert_uint_eq(len, 0);
    c->done++;
}

START_TEST(stats_and_exec) {
    dt_t c;
    dt_load(&c, "{}");
    baic_container_spec_t s = dt_spec("k1", NULL);
    c.ops->create(c.st, &s, on_done, &c);
    dt_wait(&c, 1);
    static const char *const argv[] = {"true", NULL};
    baic_rt_exec_t ex = {.size = sizeof ex, .argv = argv};
    ck_assert_int_eq(c.ops->exec(c.st, "k1", &ex, on_exec, &c), BAIC_EBAD_INPUT); /* not running */
    c.ops->start(c.st, "k1", on_done, &c);
    dt_wait(&c, 2);
    ck_assert_int_eq(c.ops->stats(c.st, "k1", on_stats, &c), 0);
    ck_assert_int_eq(c.ops->exec(c.st, "k1", &ex, on_exec, &c), 0);
    ck_assert_int_eq(c.ops->stats(c.st, "nope", on_stats, &c), BAIC_ENOT_FOUND);
    dt_wait(&c, 4);
    /* Completions still pending at unload are dropped with the plugin. */
    ck_assert_int_eq(c.ops->stats(c.st, "k1", on_stats, &c), 0);
    baic_mock_host_free(c.m);
}
END_TEST

/* Many kernels through the whole lifecycle: cheap, and every one reports its exit. */
#define SCALE_N 5000

static void on_scale_event(void *arg, const baic_rt_event_t *ev) {
    ((dt_t *)arg)->events++;
}

START_TEST(scale) {
    dt_t c;
    dt_load(&c, "{\"create_delay_ms\": 5, \"start_delay_ms\": 5, \"stop_delay_ms\": 5}");
    c.ops->watch(c.st, on_scale_event, &c);
    char id[32];
    for (int i = 0; i < SCALE_N; i++) {
        snprintf(id, sizeof id, "kernel-%05d", i);
        baic_container_spec_t s = dt_spec(id, NULL);
        ck_assert_int_eq(c.ops->create(c.st, &s, on_done, &c), 0);
    }
    dt_wait(&c, SCALE_N);
    ck_assert_double_eq(baic_mock_host_metric(c.m, "baic_dummy_containers", NULL), SCALE_N);
    for (int i = 0; i < SCALE_N; i++) {
        snprintf(id, sizeof id, "kernel-%05d", i);
        ck_assert_int_eq(c.ops->start(c.st, id, on_done, &c), 0);
    }
    dt_wait(&c, 2 * SCALE_N);
    c.ops->list(c.st, on_list, &c);
    dt_wait(&c, 2 * SCALE_N + 1);
    ck_assert_uint_eq(c.listed, SCALE_N);
    for (int i = 0; i < SCALE_N; i++) {
        snprintf(id, sizeof id, "kernel-%05d", i);
        ck_assert_int_eq(c.ops->stop(c.st, id, 1000, on_done, &c), 0);
    }
    dt_wait(&c, 3 * SCALE_N + 1);
    ck_assert_int_eq(c.events, SCALE_N);
    for (int i = 0; i < SCALE_N; i++) {
        snprintf(id, sizeof id, "kernel-%05d", i);
        ck_assert_int_eq(c.ops->destroy(c.st, id, on_done, &c), 0);
    }
    dt_wait(&c, 4 * SCALE_N + 1);
    ck_assert_double_eq(baic_mock_host_metric(c.m, "baic_dummy_containers", NULL), 0);
    baic_mock_host_free(c.m);
}
END_TEST

START_TEST(bad_config) {
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    const baic_plugin_desc_t *d;
    void *st;
    static const char *const bad[] = {"{\"create_delay_ms\": -1}", "{\"run_ms\": \"soon\"}",
                                      "{\"exit_code\": 300}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *conf = json_loads(bad[i], 0, NULL);
        ck_assert_int_eq(baic_mock_host_load_named(m, "runtime", "dummy", conf, &d, &st),
                         BAIC_EPLUGIN_INIT);
        json_decref(conf);
    }
    ck_assert(baic_mock_host_log_contains(m, "event=bad_config key=create_delay_ms"));
    baic_mock_host_free(m);
}
END_TEST

static Suite *runtime_dummy_suite(void) {
    Suite *s = suite_create("runtime_dummy");
    BAIC_TCASE(s, tc, "dummy", 60);
    tcase_add_test(tc, lifecycle_with_delays);
    tcase_add_test(tc, stop_timeout_kills);
    tcase_add_test(tc, timed_exit_and_failures);
    tcase_add_test(tc, stop_overtakes_start);
    tcase_add_test(tc, stats_and_exec);
    tcase_add_test(tc, scale);
    tcase_add_test(tc, bad_config);
    return s;
}

BAIC_CHECK_MAIN(runtime_dummy_suite)
