/* SPDX-License-Identifier: Apache-2.0 */
/* The mock host itself: config paths, timers, work, events, metrics, logs, load errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "baic_check.h"
#include "plugins/mock_host.h"

static json_t *mock_test_config(void) {
    json_error_t err;
    json_t *c = json_loads("{\"agent\": {\"id\": \"i-1\"},"
                           " \"plugin\": {\"compute/mock\": {\"devices\": [{\"slot\": \"x\"}]},"
                           "              \"a.b\": {\"c\": 3}}}",
                           0, &err);
    ck_assert_ptr_nonnull(c);
    return c;
}

START_TEST(config_paths) {
    json_t *c = mock_test_config();
    baic_mock_host_t *m = baic_mock_host_new(c);
    json_decref(c);
    const baic_host_t *h = baic_mock_host_table(m);
    ck_assert_str_eq(json_string_value(h->config(h, "agent.id")), "i-1");
    ck_assert(json_is_array(h->config(h, "plugin.\"compute/mock\".devices")));
    ck_assert(json_is_array(h->config(h, "plugin.compute/mock.devices")));
    ck_assert_str_eq(json_string_value(h->config(h, "plugin.\"compute/mock\".devices.0.slot")),
                     "x");
    ck_assert_int_eq(json_integer_value(h->config(h, "plugin.\"a.b\".c")), 3);
    ck_assert_ptr_null(h->config(h, "plugin.a.b.c"));
    ck_assert_ptr_null(h->config(h, "agent..id"));
    ck_assert_ptr_null(h->config(h, "agent.id.deeper"));
    ck_assert_ptr_null(h->config(h, "plugin.\"unterminated"));
    baic_mock_host_free(m);
}
END_TEST

typedef struct {
    const baic_host_t *h;
    int fired;
    baic_timer_t *t;
} tick_t;

static void on_tick(baic_timer_t *t, void *arg) {
    tick_t *k = arg;
    if (++k->fired == 3)
        k->h->timer_stop(k->h, t);
}

static int tick_done(void *arg) {
    return ((tick_t *)arg)->fired >= 3;
}

START_TEST(timers_and_deadline) {
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    const baic_host_t *h = baic_mock_host_table(m);
    tick_t k = {.h = h};
    uint64_t t0 = h->now_ms(h);
    ck_assert_int_eq(h->timer_start(h, 5, 5, on_tick, &k, &k.t), 0);
    ck_assert_int_eq(baic_mock_host_run(m, 2000), 0); /* stops itself: loop goes idle */
    ck_assert_int_eq(k.fired, 3);
    ck_assert_uint_ge(h->now_ms(h) - t0, 15);

    /* A repeating timer nobody stops: run ends on the deadline. */
    tick_t k2 = {.h = h};
    baic_timer_t *t2;
    ck_assert_int_eq(h->timer_start(h, 1, 1000, on_tick, &k2, &t2), 0);
    ck_assert_int_eq(baic_mock_host_run(m, 50), BAIC_ETIMEOUT);
    ck_assert_int_eq(k2.fired, 1);
    tick_t k3 = {.h = h, .fired = 3};
    ck_assert_int_eq(baic_mock_host_run_until(m, tick_done, &k3, 10), 0); /* already true */
    baic_mock_host_free(m);                                                /* closes t2 */
}
END_TEST

static void work_fn(void *arg) {
    *(int *)arg += 40;
}
static void work_done(void *arg, int status) {
    *(int *)arg += status == 0 ? 2 : 1000;
}
static int work_finished(void *arg) {
    return *(int *)arg == 42;
}

START_TEST(queue_work) {
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    const baic_host_t *h = baic_mock_host_table(m);
    int v = 0;
    ck_assert_int_eq(h->queue_work(h, work_fn, work_done, &v), 0);
    ck_assert_int_eq(baic_mock_host_run_until(m, work_finished, &v, 5000), 0);
    ck_assert_int_eq(v, 42);
    baic_mock_host_free(m);
}
END_TEST

typedef struct {
    int n;
    char last[64];
} seen_t;

static void on_event(const char *name, const json_t *body, void *arg) {
    seen_t *s = arg;
    s->n++;
    snprintf(s->last, sizeof s->last, "%s", name);
}

START_TEST(events) {
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    const baic_host_t *h = baic_mock_host_table(m);
    seen_t s = {0};
    baic_subscription_t *sub;
    ck_assert_int_eq(h->event_subscribe(h, "session_", on_event, &s, &sub), 0);
    json_t *b = json_pack("{s:s}", "session_id", "s1");
    ck_assert_int_eq(h->event_publish(h, "session_started", b), 0);
    ck_assert_int_eq(h->event_publish(h, "kernel_started", NULL), 0);
    json_decref(b);
    ck_assert_int_eq(s.n, 0); /* delivered on the loop, not inside publish */
    ck_assert_int_eq(baic_mock_host_run(m, 1000), 0);
    ck_assert_int_eq(s.n, 1);
    ck_assert_str_eq(s.last, "session_started");
    ck_assert_int_eq(baic_mock_host_events(m, ""), 2);
    ck_assert_int_eq(baic_mock_host_events(m, "session_"), 1);
    ck_assert_str_eq(json_string_value(json_object_get(baic_mock_host_last_event(m, "session_"),
                                                       "session_id")),
                     "s1");
    ck_assert_int_eq(h->event_unsubscribe(h, sub), 0);
    ck_assert_int_eq(h->event_unsubscribe(h, sub), BAIC_ENOT_FOUND);
    ck_assert_int_eq(baic_mock_host_publish(m, "session_ended", NULL), 0);
    ck_assert_int_eq(baic_mock_host_run(m, 1000), 0);
    ck_assert_int_eq(s.n, 1);
    baic_mock_host_free(m);
}
END_TEST

static void count_samples(const baic_metric_sample_t *smp, void *arg) {
    if (smp->type == BAIC_METRIC_HISTOGRAM)
        ck_assert_uint_eq(smp->nbuckets, 11);
    (*(int *)arg)++;
}

START_TEST(metrics_logs_strerror) {
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    const baic_host_t *h = baic_mock_host_table(m);
    ck_assert(isnan(baic_mock_host_metric(m, "x_total", NULL)));
    ck_assert_int_eq(h->metric_add(h, "x_total", "x", NULL, 1), 0);
    ck_assert_int_eq(h->metric_add(h, "x_total", "x", NULL, 2), 0);
    ck_assert_int_eq(h->metric_add(h, "x_total", "x", "dev=\"0\"", 5), 0);
    ck_assert_int_eq(h->metric_set(h, "x_total", "x", NULL, 1), UV_EINVAL);
    ck_assert_int_eq(h->metric_set(h, "g", "g", NULL, 7), 0);
    ck_assert_int_eq(h->metric_set(h, "g", "g", NULL, 4), 0);
    ck_assert_int_eq(h->metric_observe(h, "lat_seconds", "l", NULL, 0.2), 0);
    ck_assert_int_eq(h->metric_observe(h, "lat_seconds", "l", NULL, 0.3), 0);
    ck_assert_double_eq(baic_mock_host_metric(m, "x_total", ""), 3);
    ck_assert_double_eq(baic_mock_host_metric(m, "x_total", "dev=\"0\""), 5);
    ck_assert_double_eq(baic_mock_host_metric(m, "g", NULL), 4);
    ck_assert_double_eq_tol(baic_mock_host_metric(m, "lat_seconds", NULL), 0.5, 1e-9);
    ck_assert_uint_eq(baic_mock_host_metric_count(m, "lat_seconds", NULL), 2);
    int n = 0;
    h->metric_walk(h, count_samples, &n);
    ck_assert_int_eq(n, 4);

    h->log(h, BAIC_LOG_INFO, "hello", "k=%d", 17);
    ck_assert(baic_mock_host_log_contains(m, "event=hello k=17"));
    ck_assert(baic_mock_host_log_contains(m, "level=info plugin=test/mock"));
    baic_mock_host_log_clear(m);
    ck_assert(!baic_mock_host_log_contains(m, "hello"));

    ck_assert_str_eq(h->strerror(BAIC_EPLUGIN_BAD_MAGIC), "bad magic number");
    ck_assert_str_eq(h->strerror(UV_ENOENT), strerror(ENOENT));
    ck_assert_int_eq(h->http_serve(h, "127.0.0.1:0", NULL, NULL, NULL), BAIC_ENOT_SUPPORTED);
    baic_mock_host_free(m);
}
END_TEST

START_TEST(load_errors) {
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    const baic_plugin_desc_t *d;
    void *st;
    ck_assert_int_eq(baic_mock_host_load(m, "/nonexistent/x.so", "scheduler", "x", NULL, &d, &st),
                     BAIC_EPLUGIN_OPEN);
    ck_assert(baic_mock_host_log_contains(m, "event=plugin_load_failed"));
    ck_assert(strstr(baic_mock_host_last_error(m), "/nonexistent/x.so") != NULL);
    ck_assert_int_eq(baic_mock_host_load(m, "/nonexistent/x.so", "bogus", "x", NULL, &d, &st),
                     BAIC_EPLUGIN_BAD_KIND);
    /* libc is a shared object without our entry point. */
    ck_assert_int_eq(baic_mock_host_load(m, "libc.so.6", "scheduler", "x", NULL, &d, &st),
                     BAIC_EPLUGIN_NO_ENTRY);
    baic_mock_host_free(m);
}
END_TEST

static Suite *mock_host_suite(void) {
    Suite *s = suite_create("mock_host");
    BAIC_TCASE(s, tc, "core", 30);
    tcase_add_test(tc, config_paths);
    tcase_add_test(tc, timers_and_deadline);
    tcase_add_test(tc, queue_work);
    tcase_add_test(tc, events);
    tcase_add_test(tc, metrics_logs_strerror);
    tcase_add_test(tc, load_errors);
    return s;
}

BAIC_CHECK_MAIN(mock_host_suite)
