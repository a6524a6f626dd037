/* SPDX-License-Identifier: Apache-2.0 */
/* compute/mem: capacity from a fake /proc/meminfo minus the reserve, exact bytes, no over-commit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <baic/compute.h>

#include "baic_check.h"
#include "plugins/mock_host.h"

#define GIB (INT64_C(1) << 30)

typedef struct mt {
    baic_mock_host_t *m;
    const baic_compute_ops_t *ops;
    void *st;
    char path[64];
} mt_t;

/* An 8 GiB host. */
static void mt_meminfo(mt_t *c) {
    snprintf(c->path, sizeof c->path, "/tmp/baic-meminfo-XXXXXX");
    int fd = mkstemp(c->path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs("MemTotal:        8388608 kB\nMemFree:         4000000 kB\n", f);
    fclose(f);
}

static int mt_try(mt_t *c, const char *extra) {
    char txt[256];
    mt_meminfo(c);
    snprintf(txt, sizeof txt, "{\"meminfo\": \"%s\"%s%s}", c->path, *extra ? ", " : "", extra);
    json_t *conf = json_loads(txt, 0, NULL);
    ck_assert_ptr_nonnull(conf);
    c->m = baic_mock_host_new(NULL);
    const baic_plugin_desc_t *d = NULL;
    int rc = baic_mock_host_load_named(c->m, "compute", "mem", conf, &d, &c->st);
    json_decref(conf);
    c->ops = d ? d->ops : NULL;
    return rc;
}

static void mt_load(mt_t *c, const char *extra) {
    int rc = mt_try(c, extra);
    ck_assert_msg(rc == 0, "load: %s", baic_mock_host_last_error(c->m));
}

static void mt_free(mt_t *c) {
    baic_mock_host_free(c->m);
    unlink(c->path);
}

static int64_t mt_capacity(mt_t *c) {
    const baic_device_t *const *devs;
    size_t n;
    ck_assert_int_eq(c->ops->list_devices(c->st, &devs, &n), 0);
    ck_assert_uint_eq(n, 1);
    return devs[0]->capacity;
}

static int mt_alloc(mt_t *c, int64_t bytes, baic_compute_alloc_t **out) {
    baic_slot_t s = {"mem", bytes};
    baic_compute_request_t req = {.size = sizeof req, .kernel_id = "k", .requested = {&s, 1}};
    return c->ops->allocate(c->st, &req, out);
}

START_TEST(default_reserve) {
    mt_t c;
    mt_load(&c, "");
    /* 10% of 8 GiB is less than 1 GiB, so 10% is kept. */
    ck_assert_int_eq(mt_capacity(&c), 8 * GIB - 8 * GIB / 10);
    const baic_slot_decl_t *const *decls;
    size_t n;
    c.ops->list_slots(c.st, &decls, &n);
    ck_assert_str_eq(decls[0]->name, "mem");
    ck_assert_int_eq(decls[0]->type, BAIC_SLOT_BYTES);
    mt_free(&c);
}
END_TEST

START_TEST(reserve_and_overcommit) {
    mt_t c;
    mt_load(&c, "\"reserve\": \"2g\"");
    ck_assert_int_eq(mt_capacity(&c), 6 * GIB);
    baic_compute_alloc_t *a, *b, *x;
    ck_assert_int_eq(mt_alloc(&c, 4 * GIB, &a), 0);
    ck_assert_int_eq(mt_alloc(&c, 2 * GIB + 1, &x), BAIC_ENO_RESOURCES);
    ck_assert(baic_mock_host_log_contains(c.m, "event=refused kernel=k want=2147483649"));
    ck_assert_int_eq(mt_alloc(&c, 2 * GIB, &b), 0);
    ck_assert_int_eq(mt_alloc(&c, 1, &x), BAIC_ENO_RESOURCES);
    ck_assert_double_eq(baic_mock_host_metric(c.m, "baic_mem_booked_bytes", NULL),
                        (double)(6 * GIB));
    ck_assert_int_eq(c.ops->free_allocation(c.st, b), 0);
    ck_assert_int_eq(c.ops->free_allocation(c.st, b), BAIC_ENOT_FOUND);
    ck_assert_int_eq(mt_alloc(&c, 1, &x), 0);

    /* The limit reaches the container and the agent's restart record. */
    json_t *j;
    ck_assert_int_eq(c.ops->alloc_to_json(c.st, a, &j), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "memory_limit")), 4 * GIB);
    ck_assert_int_eq(c.ops->alloc_from_json(c.st, "k2", j, &x), BAIC_ENO_RESOURCES);
    ck_assert_int_eq(c.ops->free_allocation(c.st, a), 0);
    ck_assert_int_eq(c.ops->alloc_from_json(c.st, "k2", j, &a), 0);
    json_decref(j);
    ck_assert_uint_eq(a->n_parts, 1);
    ck_assert_str_eq(a->parts[0].device_id, "host");
    mt_free(&c);
}
END_TEST

typedef struct rec {
    char env[256];
} rec_t;
static int rec_env(baic_container_needs_t *n, const char *name, const char *value) {
    rec_t *r = (rec_t *)n;
    size_t l = strlen(r->env);
    snprintf(r->env + l, sizeof r->env - l, "%s=%s;", name, value);
    return 0;
}

START_TEST(needs_env) {
    mt_t c;
    mt_load(&c, "\"reserve\": \"25%\"");
    ck_assert_int_eq(mt_capacity(&c), 6 * GIB);
    baic_compute_alloc_t *a;
    ck_assert_int_eq(mt_alloc(&c, 268435456, &a), 0);
    rec_t r = {{0}};
    baic_needs_builder_t b = {sizeof b, (baic_container_needs_t *)&r, rec_env, NULL, NULL, NULL};
    ck_assert_int_eq(c.ops->container_needs(c.st, a, &b), 0);
    ck_assert_str_eq(r.env, "BACKENDAI_MEM_LIMIT=268435456;");
    /* A kernel asking for no memory of ours: nothing to add. */
    ck_assert_int_eq(mt_alloc(&c, 0, &a), 0);
    ck_assert_uint_eq(a->n_parts, 0);
    memset(&r, 0, sizeof r);
    ck_assert_int_eq(c.ops->container_needs(c.st, a, &b), 0);
    ck_assert_str_eq(r.env, "");
    mt_free(&c);
}
END_TEST

START_TEST(reserve_forms) {
    mt_t c;
    mt_load(&c, "\"reserve\": 0");
    ck_assert_int_eq(mt_capacity(&c), 8 * GIB);
    mt_free(&c);
    mt_load(&c, "\"reserve\": \"512MiB\"");
    ck_assert_int_eq(mt_capacity(&c), 8 * GIB - 512 * (INT64_C(1) << 20));
    mt_free(&c);
    static const char *const bad[] = {"\"reserve\": \"8g\"", "\"reserve\": \"lots\"",
                                      "\"reserve\": \"120%\"", "\"reserve\": -1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(mt_try(&c, bad[i]), BAIC_EPLUGIN_INIT);
        mt_free(&c);
    }
}
END_TEST

/* The real /proc/meminfo: some capacity, below MemTotal. */
START_TEST(real_host) {
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    const baic_plugin_desc_t *d;
    void *st;
    ck_assert_int_eq(baic_mock_host_load_named(m, "compute", "mem", NULL, &d, &st), 0);
    const baic_device_t *const *devs;
    size_t n;
    ((const baic_compute_ops_t *)d->ops)->list_devices(st, &devs, &n);
    ck_assert_int_gt(devs[0]->capacity, 0);
    ck_assert_int_lt(devs[0]->capacity, devs[0]->memory_bytes);
    baic_mock_host_free(m);
}
END_TEST

static Suite *compute_mem_suite(void) {
    Suite *s = suite_create("compute_mem");
    BAIC_TCASE(s, tc, "mem", 30);
    tcase_add_test(tc, default_reserve);
    tcase_add_test(tc, reserve_and_overcommit);
    tcase_add_test(tc, needs_env);
    tcase_add_test(tc, reserve_forms);
    tcase_add_test(tc, real_host);
    return s;
}

BAIC_CHECK_MAIN(compute_mem_suite)
