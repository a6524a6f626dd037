/* SPDX-License-Identifier: Apache-2.0 */
/* monitor/prometheus: exposition text from the mock host's metrics, the handler, and loading. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "baic_check.h"
#include "plugins/mock_host.h"

#include <baic/monitor.h>

/* The renderer is compiled in: the .so exports nothing but its entry point. */
#include "../../plugins/monitor/prometheus/render.c"

static char *render(baic_mock_host_t *m, size_t *skipped) {
    const baic_host_t *h = baic_mock_host_table(m);
    char *out = NULL;
    size_t len = 0, sk = 0;
    ck_assert_int_eq(prometheus_render(h, &out, &len, &sk), 0);
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(strlen(out), len);
    if (skipped)
        *skipped = sk;
    return out;
}

START_TEST(counters_gauges_histograms) {
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    const baic_host_t *h = baic_mock_host_table(m);
    h->metric_add(h, "baic_http_requests_total", "HTTP requests.", "route=\"/\",status=\"200\"", 3);
    h->metric_set(h, "baic_sessions", "Running sessions.", NULL, 7);
    h->metric_add(h, "baic_http_requests_total", "HTTP requests.", "route=\"/x\",status=\"404\"",
                  1);
    h->metric_observe(h, "baic_latency_seconds", "Latency.", "op=\"a\"", 0.25);
    h->metric_observe(h, "baic_latency_seconds", "Latency.", "op=\"a\"", 0.5);
    h->metric_observe(h, "baic_latency_seconds", "Latency.", "op=\"a\"", 4);
    h->metric_observe(h, "baic_plain_seconds", "No labels.", NULL, 20);
    h->metric_set(h, "baic_ratio", "A fraction.", "", 0.1);
    char *text = render(m, NULL);
    const char *want = "# HELP baic_http_requests_total HTTP requests.\n"
                       "# TYPE baic_http_requests_total counter\n"
                       "baic_http_requests_total{route=\"/\",status=\"200\"} 3\n"
                       "baic_http_requests_total{route=\"/x\",status=\"404\"} 1\n"
                       "# HELP baic_sessions Running sessions.\n"
                       "# TYPE baic_sessions gauge\n"
                       "baic_sessions 7\n"
                       "# HELP baic_latency_seconds Latency.\n"
                       "# TYPE baic_latency_seconds histogram\n"
                       "baic_latency_seconds_bucket{op=\"a\",le=\"0.005\"} 0\n"
                       "baic_latency_seconds_bucket{op=\"a\",le=\"0.01\"} 0\n"
                       "baic_latency_seconds_bucket{op=\"a\",le=\"0.025\"} 0\n"
                       "baic_latency_seconds_bucket{op=\"a\",le=\"0.05\"} 0\n"
                       "baic_latency_seconds_bucket{op=\"a\",le=\"0.1\"} 0\n"
                       "baic_latency_seconds_bucket{op=\"a\",le=\"0.25\"} 1\n"
                       "baic_latency_seconds_bucket{op=\"a\",le=\"0.5\"} 2\n"
                       "baic_latency_seconds_bucket{op=\"a\",le=\"1\"} 2\n"
                       "baic_latency_seconds_bucket{op=\"a\",le=\"2.5\"} 2\n"
                       "baic_latency_seconds_bucket{op=\"a\",le=\"5\"} 3\n"
                       "baic_latency_seconds_bucket{op=\"a\",le=\"10\"} 3\n"
                       "baic_latency_seconds_bucket{op=\"a\",le=\"+Inf\"} 3\n"
                       "baic_latency_seconds_sum{op=\"a\"} 4.75\n"
                       "baic_latency_seconds_count{op=\"a\"} 3\n"
                       "# HELP baic_plain_seconds No labels.\n"
                       "# TYPE baic_plain_seconds histogram\n"
                       "baic_plain_seconds_bucket{le=\"0.005\"} 0\n"
                       "baic_plain_seconds_bucket{le=\"0.01\"} 0\n"
                       "baic_plain_seconds_bucket{le=\"0.025\"} 0\n"
                       "baic_plain_seconds_bucket{le=\"0.05\"} 0\n"
                       "baic_plain_seconds_bucket{le=\"0.1\"} 0\n"
                       "baic_plain_seconds_bucket{le=\"0.25\"} 0\n"
                       "baic_plain_seconds_bucket{le=\"0.5\"} 0\n"
                       "baic_plain_seconds_bucket{le=\"1\"} 0\n"
                       "baic_plain_seconds_bucket{le=\"2.5\"} 0\n"
                       "baic_plain_seconds_bucket{le=\"5\"} 0\n"
                       "baic_plain_seconds_bucket{le=\"10\"} 0\n"
                       "baic_plain_seconds_bucket{le=\"+Inf\"} 1\n"
                       "baic_plain_seconds_sum 20\n"
                       "baic_plain_seconds_count 1\n"
                       "# HELP baic_ratio A fraction.\n"
                       "# TYPE baic_ratio gauge\n"
                       "baic_ratio 0.1\n";
    ck_assert_str_eq(text, want);
    h->free(text);
    baic_mock_host_free(m);
}
END_TEST

START_TEST(empty) {
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    char *text = render(m, NULL);
    ck_assert_str_eq(text, "");
    baic_mock_host_table(m)->free(text);
    baic_mock_host_free(m);
}
END_TEST

START_TEST(escaping) {
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    const baic_host_t *h = baic_mock_host_table(m);
    /* Already-escaped values pass unchanged; a raw newline and a lone backslash get
     * escaped; spaces around = and , are dropped. */
    h->metric_set(h, "g", "Help with \\ and\nnewline.", "path=\"a\\\"b\\\\c\\nd\"", 1);
    h->metric_set(h, "g", NULL, "path=\"line1\nline2\"", 2);
    h->metric_set(h, "g", NULL, "path=\"C:\\dir\"", 3);
    h->metric_set(h, "g", NULL, " a = \"1\" , b=\"2\" ", 4);
    h->metric_set(h, "g", NULL, "path=\"{},=\"", 5);
    char *text = render(m, NULL);
    ck_assert_str_eq(text, "# HELP g Help with \\\\ and\\nnewline.\n"
                           "# TYPE g gauge\n"
                           "g{path=\"a\\\"b\\\\c\\nd\"} 1\n"
                           "g{path=\"line1\\nline2\"} 2\n"
                           "g{path=\"C:\\\\dir\"} 3\n"
                           "g{a=\"1\",b=\"2\"} 4\n"
                           "g{path=\"{},=\"} 5\n");
    h->free(text);
    baic_mock_host_free(m);
}
END_TEST

START_TEST(invalid_samples_skipped) {
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    const baic_host_t *h = baic_mock_host_table(m);
    h->metric_set(h, "ok", "Fine.", NULL, 1);
    h->metric_set(h, "ok", "Fine.", "unterminated=\"x", 2);
    h->metric_set(h, "ok", "Fine.", "noquotes=x", 3);
    h->metric_set(h, "ok", "Fine.", "1bad=\"x\"", 4);
    h->metric_set(h, "ok", "Fine.", "a=\"1\"junk", 5);
    h->metric_set(h, "ok", "Fine.", "a=\"1\",", 6); /* trailing comma is fine */
    h->metric_set(h, "bad-name", "No.", NULL, 7);
    h->metric_set(h, "9lives", "No.", NULL, 8);
    size_t skipped = 0;
    char *text = render(m, &skipped);
    ck_assert_str_eq(text, "# HELP ok Fine.\n# TYPE ok gauge\nok 1\nok{a=\"1\"} 6\n");
    ck_assert_uint_eq(skipped, 6);
    h->free(text);
    baic_mock_host_free(m);
}
END_TEST

START_TEST(numbers) {
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    const baic_host_t *h = baic_mock_host_table(m);
    h->metric_set(h, "n", "Numbers.", "k=\"big\"", 1e15);
    h->metric_set(h, "n", "Numbers.", "k=\"tiny\"", 1e-9);
    h->metric_set(h, "n", "Numbers.", "k=\"neg\"", -2.5);
    h->metric_set(h, "n", "Numbers.", "k=\"third\"", 1.0 / 3);
    h->metric_set(h, "n", "Numbers.", "k=\"inf\"", INFINITY);
    h->metric_set(h, "n", "Numbers.", "k=\"ninf\"", -INFINITY);
    h->metric_set(h, "n", "Numbers.", "k=\"nan\"", NAN);
    h->metric_add(h, "c_total", "Big counter.", NULL, 123456789012.0);
    char *text = render(m, NULL);
    ck_assert_str_eq(text, "# HELP n Numbers.\n# TYPE n gauge\n"
                           "n{k=\"big\"} 1e+15\n"
                           "n{k=\"tiny\"} 1e-09\n"
                           "n{k=\"neg\"} -2.5\n"
                           "n{k=\"third\"} 0.3333333333333333\n"
                           "n{k=\"inf\"} +Inf\n"
                           "n{k=\"ninf\"} -Inf\n"
                           "n{k=\"nan\"} NaN\n"
                           "# HELP c_total Big counter.\n# TYPE c_total counter\n"
                           "c_total 123456789012\n");
    h->free(text);
    baic_mock_host_free(m);
}
END_TEST

static void handle(baic_mock_host_t *m, const char *method, const char *path,
                   baic_http_simple_response_t *res) {
    prometheus_endpoint_t ep = {.host = baic_mock_host_table(m), .path = "/metrics"};
    baic_http_simple_request_t req = {.method = method, .path = path, .body = "", .body_len = 0};
    memset(res, 0, sizeof(*res));
    prometheus_handle(&req, res, &ep);
}

START_TEST(handler) {
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    const baic_host_t *h = baic_mock_host_table(m);
    h->metric_add(h, "hits_total", "Hits.", NULL, 2);
    baic_http_simple_response_t res;

    handle(m, "GET", "/metrics", &res);
    ck_assert_int_eq(res.status, 200);
    ck_assert_str_eq(res.content_type, "text/plain; version=0.0.4; charset=utf-8");
    ck_assert_uint_eq(res.body_len, strlen(res.body));
    ck_assert_ptr_nonnull(strstr(res.body, "\nhits_total 2\n"));
    h->free(res.body);

    handle(m, "GET", "/metrics?name[]=x", &res);
    ck_assert_int_eq(res.status, 200);
    h->free(res.body);

    handle(m, "HEAD", "/metrics", &res);
    ck_assert_int_eq(res.status, 200);
    ck_assert_uint_eq(res.body_len, 0);
    h->free(res.body);

    handle(m, "GET", "/metricsx", &res);
    ck_assert_int_eq(res.status, 404);
    h->free(res.body);
    handle(m, "GET", "/", &res);
    ck_assert_int_eq(res.status, 404);
    h->free(res.body);

    handle(m, "POST", "/metrics", &res);
    ck_assert_int_eq(res.status, 405);
    ck_assert_str_eq(res.body, "method not allowed\n");
    h->free(res.body);
    baic_mock_host_free(m);
}
END_TEST

/* Loading under the mock host: its http_serve is unsupported, so the plugin stays loaded
 * without a listener and says so; bad config is refused. */
START_TEST(load_plugin) {
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    const baic_plugin_desc_t *d;
    void *st;
    json_t *conf = json_pack("{s:s}", "addr", "127.0.0.1:0");
    int rc = baic_mock_host_load_named(m, "monitor", "prometheus", conf, &d, &st);
    json_decref(conf);
    ck_assert_msg(rc == 0, "load: %s", baic_mock_host_last_error(m));
    ck_assert_str_eq(d->name, "prometheus");
    ck_assert_uint_ge(d->ops_size, BAIC_MONITOR_OPS_MIN_SIZE);
    const baic_monitor_ops_t *ops = d->ops;
    ck_assert_ptr_null(ops->on_event);
    ck_assert_ptr_null(ops->flush);
    ck_assert(baic_mock_host_log_contains(m, "event=not_serving"));
    ck_assert(baic_mock_host_log_contains(m, "addr=127.0.0.1:0"));
    ck_assert_int_eq(baic_mock_host_unload(m, d), 0);

    ck_assert_int_eq(baic_mock_host_load_named(m, "monitor", "prometheus", NULL, &d, &st), 0);
    ck_assert(baic_mock_host_log_contains(m, "addr=127.0.0.1:9091"));
    ck_assert_int_eq(baic_mock_host_unload(m, d), 0);

    static const char *bad[] = {"{\"addr\": 9091}", "{\"addr\": \"\"}", "{\"path\": \"metrics\"}",
                                "[1]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *c = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        ck_assert_msg(baic_mock_host_load_named(m, "monitor", "prometheus", c, &d, &st) != 0,
                      "accepted %s", bad[i]);
        json_decref(c);
    }
    ck_assert(baic_mock_host_log_contains(m, "event=config_invalid"));
    baic_mock_host_free(m);
}
END_TEST

static Suite *monitor_prometheus_suite(void) {
    Suite *s = suite_create("monitor_prometheus");
    BAIC_TCASE(s, tr, "render", 10);
    tcase_add_test(tr, counters_gauges_histograms);
    tcase_add_test(tr, empty);
    tcase_add_test(tr, escaping);
    tcase_add_test(tr, invalid_samples_skipped);
    tcase_add_test(tr, numbers);
    BAIC_TCASE(s, th, "plugin", 10);
    tcase_add_test(th, handler);
    tcase_add_test(th, load_plugin);
    return s;
}

BAIC_CHECK_MAIN(monitor_prometheus_suite)
