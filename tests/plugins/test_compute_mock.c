/* SPDX-License-Identifier: Apache-2.0 */
/* compute/mock: fake devices from config, exact fractional allocation, exhaustion, needs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <baic/compute.h>

#include "baic_check.h"
#include "plugins/mock_host.h"

#define U(x) ((int64_t)((x) * 1000000.0 + 0.5))

typedef struct cm {
    baic_mock_host_t *m;
    const baic_compute_ops_t *ops;
    void *st;
    char dir[64];
} cm_t;

static void cm_load(cm_t *c, const char *conf_json) {
    json_error_t e;
    json_t *conf = json_loads(conf_json, 0, &e);
    ck_assert_msg(conf != NULL, "%s", e.text);
    snprintf(c->dir, sizeof c->dir, "/tmp/baic-mock-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(c->dir));
    if (json_object_get(conf, "device_dir") != NULL)
        json_object_set_new(conf, "device_dir", json_string(c->dir));
    c->m = baic_mock_host_new(NULL);
    const baic_plugin_desc_t *d;
    int rc = baic_mock_host_load_named(c->m, "compute", "mock", conf, &d, &c->st);
    json_decref(conf);
    ck_assert_msg(rc == 0, "load: %s", baic_mock_host_last_error(c->m));
    c->ops = d->ops;
}

static void cm_free(cm_t *c) {
    baic_mock_host_free(c->m);
    rmdir(c->dir);
}

/* Allocates amount of slot for kernel; returns the code, *out the allocation. */
static int cm_alloc(cm_t *c, const char *slot, int64_t amount, baic_compute_alloc_t **out) {
    baic_slot_t s = {slot, amount};
    baic_compute_request_t req = {.size = sizeof req,
                                  .kernel_id = "k",
                                  .session_id = "s",
                                  .requested = {&s, 1}};
    *out = NULL;
    return c->ops->allocate(c->st, &req, out);
}

static const char *cm_dev(const baic_compute_alloc_t *a, size_t i) {
    ck_assert_uint_gt(a->n_parts, i);
    return a->parts[i].device_id;
}

#define FRACTIONAL_2                                                                    \
    "{\"slot\": \"mock.shares\", \"fractional\": true, \"count\": 2, \"capacity\": \"1\","  \
    " \"memory\": 17179869184, \"device_dir\": \"\"}"

START_TEST(declares_slots_and_devices) {
    cm_t c;
    cm_load(&c, FRACTIONAL_2);
    const baic_slot_decl_t *const *decls;
    size_t n;
    ck_assert_int_eq(c.ops->list_slots(c.st, &decls, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(decls[0]->name, "mock.shares");
    ck_assert_int_eq(decls[0]->type, BAIC_SLOT_COUNT);
    ck_assert_int_eq(decls[0]->fractional, 1);
    ck_assert_int_eq(decls[0]->quantum, U(0.01));
    const baic_device_t *const *devs;
    ck_assert_int_eq(c.ops->list_devices(c.st, &devs, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(devs[1]->id, "1");
    ck_assert_int_eq(devs[1]->capacity, U(1));
    ck_assert_int_eq(devs[1]->memory_bytes, INT64_C(17179869184));
    ck_assert_ptr_nonnull(devs[0]->device_path);
    ck_assert_int_eq(access(devs[0]->device_path, R_OK), 0); /* the fake device file */
    ck_assert(baic_mock_host_log_contains(c.m, "plugin=compute/mock event=devices_found"));
    char path[256];
    snprintf(path, sizeof path, "%s", devs[0]->device_path);
    cm_free(&c);
    ck_assert_int_ne(access(path, F_OK), 0); /* removed at fini */
}
END_TEST

START_TEST(fractional_until_exhausted) {
    cm_t c;
    cm_load(&c, FRACTIONAL_2);
    baic_compute_alloc_t *a1, *a2, *a3, *a4, *a5, *x;
    ck_assert_int_eq(cm_alloc(&c, "mock.shares", U(0.5), &a1), 0);
    ck_assert_str_eq(cm_dev(a1, 0), "0");
    ck_assert_int_eq(cm_alloc(&c, "mock.shares", U(0.5), &a2), 0);
    ck_assert_str_eq(cm_dev(a2, 0), "0"); /* best fit: fills device 0 first */
    ck_assert_int_eq(cm_alloc(&c, "mock.shares", U(0.75), &a3), 0);
    ck_assert_str_eq(cm_dev(a3, 0), "1");
    ck_assert_int_eq(cm_alloc(&c, "mock.shares", U(0.3), &x), BAIC_ENO_RESOURCES);
    ck_assert_int_eq(cm_alloc(&c, "mock.shares", U(0.25), &a4), 0);
    ck_assert_str_eq(cm_dev(a4, 0), "1");
    ck_assert_int_eq(cm_alloc(&c, "mock.shares", U(0.01), &x), BAIC_ENO_RESOURCES);
    ck_assert_double_eq(baic_mock_host_metric(c.m, "baic_mock_device_used", "device=\"0\""), 1.0);
    /* Freeing gives back exactly what was taken. */
    ck_assert_int_eq(c.ops->free_allocation(c.st, a1), 0);
    ck_assert_int_eq(c.ops->free_allocation(c.st, a1), BAIC_ENOT_FOUND);
    ck_assert_int_eq(cm_alloc(&c, "mock.shares", U(0.51), &x), BAIC_ENO_RESOURCES);
    ck_assert_int_eq(cm_alloc(&c, "mock.shares", U(0.5), &a5), 0);
    ck_assert_str_eq(cm_dev(a5, 0), "0");
    /* Spanning: free everything, then 1.5 takes one whole device and half the other. */
    c.ops->free_allocation(c.st, a2);
    c.ops->free_allocation(c.st, a3);
    c.ops->free_allocation(c.st, a4);
    c.ops->free_allocation(c.st, a5);
    ck_assert_int_eq(cm_alloc(&c, "mock.shares", U(1.5), &x), 0);
    ck_assert_uint_eq(x->n_parts, 2);
    ck_assert_int_eq(x->parts[0].amount + x->parts[1].amount, U(1.5));
    ck_assert_int_eq(cm_alloc(&c, "mock.shares", U(0.6), &a1), BAIC_ENO_RESOURCES);
    /* Below the quantum, or not a multiple of it. */
    ck_assert_int_eq(cm_alloc(&c, "mock.shares", U(0.005), &a1), BAIC_EBAD_INPUT);
    /* A kernel that asks for none of our slots gets an empty allocation. */
    ck_assert_int_eq(cm_alloc(&c, "cpu", U(4), &a1), 0);
    ck_assert_uint_eq(a1->n_parts, 0);
    cm_free(&c);
}
END_TEST

/* 100 x 0.01 fills a device exactly; floating point would drift. */
START_TEST(exact_accounting) {
    cm_t c;
    cm_load(&c, "{\"slot\": \"mock.shares\", \"fractional\": true}");
    baic_compute_alloc_t *a;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(cm_alloc(&c, "mock.shares", U(0.33), &a), 0);
    for (int i = 0; i < 1; i++)
        ck_assert_int_eq(cm_alloc(&c, "mock.shares", U(0.01), &a), 0);
    ck_assert_int_eq(cm_alloc(&c, "mock.shares", U(0.01), &a), BAIC_ENO_RESOURCES);
    cm_free(&c);

    cm_load(&c, "{\"slot\": \"mock.shares\", \"fractional\": true}");
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(cm_alloc(&c, "mock.shares", U(0.01), &a), 0);
    ck_assert_int_eq(cm_alloc(&c, "mock.shares", U(0.01), &a), BAIC_ENO_RESOURCES);
    cm_free(&c);
}
END_TEST

START_TEST(whole_devices_only) {
    cm_t c;
    cm_load(&c, "{\"count\": 3}"); /* mock.device, not fractional */
    baic_compute_alloc_t *a, *b;
    ck_assert_int_eq(cm_alloc(&c, "mock.device", U(0.5), &a), BAIC_EBAD_INPUT);
    ck_assert_int_eq(cm_alloc(&c, "mock.device", U(2), &a), 0);
    ck_assert_uint_eq(a->n_parts, 2);
    ck_assert_int_eq(a->parts[0].amount, U(1));
    ck_assert_int_eq(cm_alloc(&c, "mock.device", U(2), &b), BAIC_ENO_RESOURCES);
    ck_assert_int_eq(cm_alloc(&c, "mock.device", U(1), &b), 0);
    cm_free(&c);
}
END_TEST

/* A builder that records what it is told. */
typedef struct rec {
    char env[512];
    char mounts[512];
} rec_t;

static int rec_env(baic_container_needs_t *n, const char *name, const char *value) {
    rec_t *r = (rec_t *)n;
    size_t l = strlen(r->env);
    snprintf(r->env + l, sizeof r->env - l, "%s=%s;", name, value);
    return 0;
}
static int rec_mount(baic_container_needs_t *n, const char *src, const char *dst, int ro) {
    rec_t *r = (rec_t *)n;
    size_t l = strlen(r->mounts);
    snprintf(r->mounts + l, sizeof r->mounts - l, "%s:%s:%s;", strrchr(src, '/') + 1, dst,
             ro ? "ro" : "rw");
    return 0;
}
static int rec_device(baic_container_needs_t *n, const char *h, const char *c, const char *a) {
    return 0;
}
static int rec_rule(baic_container_needs_t *n, char t, int64_t ma, int64_t mi, const char *a) {
    return 0;
}

START_TEST(container_needs) {
    cm_t c;
    cm_load(&c, FRACTIONAL_2);
    baic_compute_alloc_t *a;
    ck_assert_int_eq(cm_alloc(&c, "mock.shares", U(1.25), &a), 0);
    rec_t r = {{0}, {0}};
    baic_needs_builder_t b = {sizeof b, (baic_container_needs_t *)&r, rec_env, rec_device,
                              rec_mount, rec_rule};
    ck_assert_int_eq(c.ops->container_needs(c.st, a, &b), 0);
    ck_assert_str_eq(r.env, "BACKENDAI_MOCK_DEVICES=0,1;BACKENDAI_MOCK_SHARES=0:1,1:0.25;");
    ck_assert_str_eq(r.mounts, "mock0:/dev/mock0:ro;mock1:/dev/mock1:ro;");
    cm_free(&c);
}
END_TEST

typedef struct seen {
    int calls, status;
    double util[2];
} seen_t;

static void on_stats(void *arg, int status, const baic_device_stat_t *const *s, size_t n) {
    seen_t *v = arg;
    v->calls++;
    v->status = status;
    for (size_t i = 0; i < n && i < 2; i++)
        v->util[i] = s[i]->util_pct;
}

START_TEST(stats_async) {
    cm_t c;
    cm_load(&c, FRACTIONAL_2);
    baic_compute_alloc_t *a;
    ck_assert_int_eq(cm_alloc(&c, "mock.shares", U(0.25), &a), 0);
    seen_t v = {0};
    ck_assert_int_eq(c.ops->stats(c.st, on_stats, &v), 0);
    ck_assert_int_eq(v.calls, 0); /* never inside the call */
    ck_assert_int_eq(baic_mock_host_run(c.m, 5000), 0);
    ck_assert_int_eq(v.calls, 1);
    ck_assert_int_eq(v.status, 0);
    ck_assert_double_eq_tol(v.util[0], 25.0, 1e-9);
    ck_assert_double_eq_tol(v.util[1], 0.0, 1e-9);
    cm_free(&c);
}
END_TEST

START_TEST(restore_and_describe) {
    cm_t c;
    cm_load(&c, FRACTIONAL_2);
    baic_compute_alloc_t *a, *b, *x;
    ck_assert_int_eq(cm_alloc(&c, "mock.shares", U(1.5), &a), 0);
    json_t *j;
    ck_assert_int_eq(c.ops->alloc_to_json(c.st, a, &j), 0);
    char *txt = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    ck_assert_str_eq(txt, "{\"mock.shares\":{\"0\":\"1\",\"1\":\"0.5\"}}");
    free(txt);
    /* While booked, restoring the same again cannot fit. */
    ck_assert_int_eq(c.ops->alloc_from_json(c.st, "k2", j, &x), BAIC_ENO_RESOURCES);
    ck_assert_int_eq(c.ops->free_allocation(c.st, a), 0);
    ck_assert_int_eq(c.ops->alloc_from_json(c.st, "k", j, &b), 0);
    ck_assert_int_eq(cm_alloc(&c, "mock.shares", U(0.51), &x), BAIC_ENO_RESOURCES);
    ck_assert_int_eq(cm_alloc(&c, "mock.shares", U(0.5), &x), 0);
    json_decref(j);

    ck_assert_ptr_nonnull(c.ops->describe_device);
    ck_assert_int_eq(c.ops->describe_device(c.st, "1", &j), 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "allocated")), "1");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "memory_bytes")), INT64_C(17179869184));
    json_decref(j);
    ck_assert_int_eq(c.ops->describe_device(c.st, "9", &j), BAIC_ENOT_FOUND);
    cm_free(&c);
}
END_TEST

START_TEST(bad_config) {
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    const baic_plugin_desc_t *d;
    void *st;
    static const char *const bad[] = {
        "{\"slot_type\": \"liters\"}",
        "{\"count\": -1}",
        "{\"capacity\": \"1.5x\"}",
        "{\"quantum\": \"0.5\"}",
        "{\"fractional\": true, \"capacity\": \"1\", \"quantum\": \"0.3\"}",
        "{\"devices\": [{\"id\": \"a\"}, {\"id\": \"a\"}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *conf = json_loads(bad[i], 0, NULL);
        ck_assert_int_eq(baic_mock_host_load_named(m, "compute", "mock", conf, &d, &st),
                         BAIC_EPLUGIN_INIT);
        json_decref(conf);
    }
    ck_assert(baic_mock_host_log_contains(m, "event=bad_config"));
    baic_mock_host_free(m);
}
END_TEST

START_TEST(devices_from_list) {
    cm_t c;
    cm_load(&c, "{\"slot\": \"mock.mem\", \"slot_type\": \"bytes\","
                " \"devices\": [{\"id\": \"gpu-a\", \"capacity\": 1000}, {\"id\": \"gpu-b\","
                " \"capacity\": \"500\"}]}");
    baic_compute_alloc_t *a;
    ck_assert_int_eq(cm_alloc(&c, "mock.mem", 400, &a), 0);
    ck_assert_str_eq(cm_dev(a, 0), "gpu-b"); /* best fit */
    ck_assert_int_eq(cm_alloc(&c, "mock.mem", 1001, &a), 0); /* spans: 1000 + 1 */
    ck_assert_uint_eq(a->n_parts, 2);
    ck_assert_int_eq(cm_alloc(&c, "mock.mem", 100, &a), BAIC_ENO_RESOURCES);
    cm_free(&c);
}
END_TEST

static Suite *compute_mock_suite(void) {
    Suite *s = suite_create("compute_mock");
    BAIC_TCASE(s, tc, "mock", 30);
    tcase_add_test(tc, declares_slots_and_devices);
    tcase_add_test(tc, fractional_until_exhausted);
    tcase_add_test(tc, exact_accounting);
    tcase_add_test(tc, whole_devices_only);
    tcase_add_test(tc, container_needs);
    tcase_add_test(tc, stats_async);
    tcase_add_test(tc, restore_and_describe);
    tcase_add_test(tc, bad_config);
    tcase_add_test(tc, devices_from_list);
    return s;
}

BAIC_CHECK_MAIN(compute_mock_suite)
