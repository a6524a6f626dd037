/* SPDX-License-Identifier: Apache-2.0 */
/* compute/cpu: cores from a fake sysfs, NUMA-aware pinning, quota booking, limits in env. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <baic/compute.h>

#include "baic_check.h"
#include "plugins/mock_host.h"

#define U(x) ((int64_t)((x) * 1000000.0 + 0.5))

typedef struct ct {
    baic_mock_host_t *m;
    const baic_compute_ops_t *ops;
    void *st;
    char sys[64];
} ct_t;

static void ct_mkdir(const char *p) {
    ck_assert_int_eq(mkdir(p, 0700), 0);
}

/* A fake sysfs: CPUs 0-7 online, 0-3 on NUMA node 0 and 4-7 on node 1. */
static void ct_make_sysfs(ct_t *c) {
    char p[256];
    snprintf(c->sys, sizeof c->sys, "/tmp/baic-cpu-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(c->sys));
    snprintf(p, sizeof p, "%s/devices", c->sys);
    ct_mkdir(p);
    snprintf(p, sizeof p, "%s/devices/system", c->sys);
    ct_mkdir(p);
    snprintf(p, sizeof p, "%s/devices/system/cpu", c->sys);
    ct_mkdir(p);
    snprintf(p, sizeof p, "%s/devices/system/cpu/online", c->sys);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs("0-7\n", f);
    fclose(f);
    for (int i = 0; i < 8; i++) {
        snprintf(p, sizeof p, "%s/devices/system/cpu/cpu%d", c->sys, i);
        ct_mkdir(p);
        snprintf(p, sizeof p, "%s/devices/system/cpu/cpu%d/node%d", c->sys, i, i / 4);
        ct_mkdir(p);
    }
}

static void ct_load(ct_t *c, const char *extra) {
    char txt[512];
    ct_make_sysfs(c);
    snprintf(txt, sizeof txt, "{\"sysfs\": \"%s\"%s%s}", c->sys, *extra ? ", " : "", extra);
    json_error_t e;
    json_t *conf = json_loads(txt, 0, &e);
    ck_assert_msg(conf != NULL, "%s", e.text);
    c->m = baic_mock_host_new(NULL);
    const baic_plugin_desc_t *d;
    int rc = baic_mock_host_load_named(c->m, "compute", "cpu", conf, &d, &c->st);
    json_decref(conf);
    ck_assert_msg(rc == 0, "load: %s", baic_mock_host_last_error(c->m));
    c->ops = d->ops;
}

static void ct_free(ct_t *c) {
    baic_mock_host_free(c->m);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", c->sys);
    ck_assert_int_eq(system(cmd), 0);
}

static int ct_alloc(ct_t *c, int64_t amount, baic_compute_alloc_t **out) {
    baic_slot_t s = {"cpu", amount};
    baic_compute_request_t req = {.size = sizeof req, .kernel_id = "k", .requested = {&s, 1}};
    return c->ops->allocate(c->st, &req, out);
}

typedef struct rec {
    char env[512];
} rec_t;

static int rec_env(baic_container_needs_t *n, const char *name, const char *value) {
    rec_t *r = (rec_t *)n;
    size_t l = strlen(r->env);
    snprintf(r->env + l, sizeof r->env - l, "%s=%s;", name, value);
    return 0;
}
static int rec_device(baic_container_needs_t *n, const char *h, const char *c, const char *a) {
    return BAIC_EBAD_INPUT; /* the cpu plugin needs no device nodes */
}
static int rec_mount(baic_container_needs_t *n, const char *s, const char *t, int ro) {
    return BAIC_EBAD_INPUT;
}
static int rec_rule(baic_container_needs_t *n, char t, int64_t ma, int64_t mi, const char *a) {
    return BAIC_EBAD_INPUT;
}

static const char *ct_env(ct_t *c, const baic_compute_alloc_t *a, rec_t *r) {
    memset(r, 0, sizeof *r);
    baic_needs_builder_t b = {sizeof b, (baic_container_needs_t *)r, rec_env, rec_device,
                              rec_mount, rec_rule};
    ck_assert_int_eq(c->ops->container_needs(c->st, a, &b), 0);
    return r->env;
}

START_TEST(cores_limited_and_numa) {
    ct_t c;
    ct_load(&c, "\"cores\": \"1-6\", \"pin\": true");
    const baic_device_t *const *devs;
    size_t n;
    ck_assert_int_eq(c.ops->list_devices(c.st, &devs, &n), 0);
    ck_assert_uint_eq(n, 6);
    ck_assert_str_eq(devs[0]->id, "1");
    ck_assert_str_eq(devs[5]->id, "6");
    ck_assert_int_eq(devs[2]->numa_node, 0);
    ck_assert_int_eq(devs[3]->numa_node, 1);
    ck_assert_int_eq(devs[0]->capacity, U(1));
    const baic_slot_decl_t *const *decls;
    ck_assert_int_eq(c.ops->list_slots(c.st, &decls, &n), 0);
    ck_assert_str_eq(decls[0]->name, "cpu");
    ck_assert_int_eq(decls[0]->fractional, 1);
    ck_assert(baic_mock_host_log_contains(c.m, "cores=1-6 pin=1"));
    ct_free(&c);
}
END_TEST

START_TEST(pinning) {
    ct_t c;
    rec_t r;
    ct_load(&c, "\"cores\": [1, 2, 3, 4, 5, 6], \"pin\": true");
    baic_compute_alloc_t *a2, *a3, *q1, *q2, *x;
    ck_assert_int_eq(ct_alloc(&c, U(2), &a2), 0); /* both nodes hold 3 idle: node 0 */
    ck_assert_str_eq(ct_env(&c, a2, &r), "BACKENDAI_CPU_QUOTA=2;BACKENDAI_CPU_CORES=1-2;");
    ck_assert_int_eq(ct_alloc(&c, U(3), &a3), 0); /* node 0 has 1 idle left: node 1 */
    ck_assert_str_eq(ct_env(&c, a3, &r), "BACKENDAI_CPU_QUOTA=3;BACKENDAI_CPU_CORES=4-6;");
    /* A fraction gets a quota on the remaining core, cpuset = the offered cores. */
    ck_assert_int_eq(ct_alloc(&c, U(0.5), &q1), 0);
    ck_assert_str_eq(q1->parts[0].device_id, "3");
    ck_assert_str_eq(ct_env(&c, q1, &r), "BACKENDAI_CPU_QUOTA=0.5;BACKENDAI_CPU_CORES=1-6;");
    ck_assert_int_eq(ct_alloc(&c, U(1), &x), BAIC_ENO_RESOURCES); /* core 3 is half used */
    ck_assert_int_eq(ct_alloc(&c, U(0.5), &q2), 0);
    ck_assert_int_eq(ct_alloc(&c, U(0.01), &x), BAIC_ENO_RESOURCES);
    ck_assert_int_eq(ct_alloc(&c, U(0.005), &x), BAIC_EBAD_INPUT);

    /* Restore a pinned allocation after freeing it: the same cores come back. */
    json_t *j;
    ck_assert_int_eq(c.ops->alloc_to_json(c.st, a3, &j), 0);
    ck_assert(json_is_true(json_object_get(j, "pinned")));
    ck_assert_str_eq(json_string_value(json_object_get(j, "cpuset")), "4-6");
    ck_assert_str_eq(json_string_value(json_object_get(j, "cpu_quota")), "3");
    ck_assert_int_eq(c.ops->alloc_from_json(c.st, "k2", j, &x), BAIC_ENO_RESOURCES);
    ck_assert_int_eq(c.ops->free_allocation(c.st, a3), 0);
    ck_assert_int_eq(ct_alloc(&c, U(4), &x), BAIC_ENO_RESOURCES); /* only 3 idle */
    ck_assert_int_eq(c.ops->alloc_from_json(c.st, "k2", j, &a3), 0);
    ck_assert_str_eq(ct_env(&c, a3, &r), "BACKENDAI_CPU_QUOTA=3;BACKENDAI_CPU_CORES=4-6;");
    json_decref(j);
    ck_assert_int_eq(c.ops->describe_device(c.st, "5", &j), 0);
    ck_assert(json_is_true(json_object_get(j, "pinned")));
    ck_assert_int_eq(json_integer_value(json_object_get(j, "numa_node")), 1);
    json_decref(j);
    ck_assert_int_eq(c.ops->describe_device(c.st, "0", &j), BAIC_ENOT_FOUND); /* not offered */
    ct_free(&c);
}
END_TEST

START_TEST(pinning_spans_nodes) {
    ct_t c;
    rec_t r;
    ct_load(&c, "\"cores\": \"1-6\", \"pin\": true");
    baic_compute_alloc_t *a, *x;
    ck_assert_int_eq(ct_alloc(&c, U(5), &a), 0); /* no node holds 5: both, fullest first */
    ck_assert_str_eq(ct_env(&c, a, &r), "BACKENDAI_CPU_QUOTA=5;BACKENDAI_CPU_CORES=1-5;");
    ck_assert_int_eq(ct_alloc(&c, U(2), &x), BAIC_ENO_RESOURCES);
    ck_assert_int_eq(ct_alloc(&c, U(7), &x), BAIC_ENO_RESOURCES);
    ck_assert_int_eq(c.ops->free_allocation(c.st, a), 0);
    ck_assert_int_eq(ct_alloc(&c, U(6), &a), 0);
    ct_free(&c);
}
END_TEST

START_TEST(quota_without_pinning) {
    ct_t c;
    rec_t r;
    ct_load(&c, "\"count\": 2");
    baic_compute_alloc_t *a, *b, *x;
    ck_assert_int_eq(ct_alloc(&c, U(1.5), &a), 0);
    ck_assert_uint_eq(a->n_parts, 2);
    /* count narrows the host's cores, so even quota kernels get a cpuset. */
    ck_assert_str_eq(ct_env(&c, a, &r), "BACKENDAI_CPU_QUOTA=1.5;BACKENDAI_CPU_CORES=0-1;");
    ck_assert_int_eq(ct_alloc(&c, U(0.6), &x), BAIC_ENO_RESOURCES);
    ck_assert_int_eq(ct_alloc(&c, U(0.5), &b), 0);
    ck_assert_int_eq(c.ops->free_allocation(c.st, a), 0);
    ck_assert_int_eq(ct_alloc(&c, U(1.5), &a), 0);
    ct_free(&c);

    /* The whole host, no limits: quota only. */
    ct_load(&c, "");
    const baic_device_t *const *devs;
    size_t n;
    c.ops->list_devices(c.st, &devs, &n);
    ck_assert_uint_eq(n, 8);
    ck_assert_int_eq(ct_alloc(&c, U(2), &a), 0);
    ck_assert_str_eq(ct_env(&c, a, &r), "BACKENDAI_CPU_QUOTA=2;");
    ct_free(&c);
}
END_TEST

/* Against the real /sys of the test machine: at least one core, all of them offered. */
START_TEST(real_host) {
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    const baic_plugin_desc_t *d;
    void *st;
    ck_assert_int_eq(baic_mock_host_load_named(m, "compute", "cpu", NULL, &d, &st), 0);
    const baic_device_t *const *devs;
    size_t n = 0;
    ((const baic_compute_ops_t *)d->ops)->list_devices(st, &devs, &n);
    ck_assert_uint_eq(n, (size_t)sysconf(_SC_NPROCESSORS_ONLN));
    baic_mock_host_free(m);
}
END_TEST

START_TEST(bad_config) {
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    const baic_plugin_desc_t *d;
    void *st;
    static const char *const bad[] = {
        "{\"cores\": \"3-1\"}", "{\"cores\": [\"a\"]}", "{\"count\": 0}",
        "{\"pin\": \"yes\"}",   "{\"quantum\": \"0.3\"}", "{\"cores\": [9000]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *conf = json_loads(bad[i], 0, NULL);
        ck_assert_msg(baic_mock_host_load_named(m, "compute", "cpu", conf, &d, &st) ==
                          BAIC_EPLUGIN_INIT,
                      "%s loaded", bad[i]);
        json_decref(conf);
    }
    ck_assert(baic_mock_host_log_contains(m, "event=bad_config key=cores"));
    baic_mock_host_free(m);
}
END_TEST

static Suite *compute_cpu_suite(void) {
    Suite *s = suite_create("compute_cpu");
    BAIC_TCASE(s, tc, "cpu", 30);
    tcase_add_test(tc, cores_limited_and_numa);
    tcase_add_test(tc, pinning);
    tcase_add_test(tc, pinning_spans_nodes);
    tcase_add_test(tc, quota_without_pinning);
    tcase_add_test(tc, real_host);
    tcase_add_test(tc, bad_config);
    return s;
}

BAIC_CHECK_MAIN(compute_cpu_suite)
