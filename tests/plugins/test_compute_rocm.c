/* SPDX-License-Identifier: Apache-2.0 */
/* compute/rocm against the fake rocm-smi: discovery, no-GPU cases, booking, container needs, stats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <baic/compute.h>

#include "baic_check.h"
#include "plugins/compute_fixture.h"
#include "plugins/mock_host.h"

#define U(x) ((int64_t)((x) * 1000000.0 + 0.5))

typedef cf_cut_t rt_t;

/* Fake /dev with kfd and render nodes 128 and 129 (plain files). */
static void rt_load(rt_t *c, const char *ndev, const char *extra) {
    char lib[512], conf_txt[1024], p[128];
    setenv("FAKE_ROCM_DEVICES", ndev, 1);
    snprintf(c->dev, sizeof c->dev, "/tmp/baic-rocm-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(c->dev));
    snprintf(p, sizeof p, "%s/dri", c->dev);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    static const char *const nodes[] = {"kfd", "dri/renderD128", "dri/renderD129"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", c->dev, nodes[i]);
        FILE *f = fopen(p, "w");
        ck_assert_ptr_nonnull(f);
        fclose(f);
    }
    cf_fake_lib(lib, sizeof lib, "fake-gpu/rocm/librocm_smi64.so");
    snprintf(conf_txt, sizeof conf_txt, "{\"rsmi_library\": \"%s\", \"dev_root\": \"%s\"%s%s}",
             lib, c->dev, *extra ? ", " : "", extra);
    cf_load(c, "rocm", conf_txt);
}

typedef struct rec {
    char env[1024], devs[1024], rules[512];
} rec_t;

static void rec_cat(char *buf, size_t len, const char *s) {
    size_t l = strlen(buf);
    snprintf(buf + l, len - l, "%s;", s);
}
static int rec_env(baic_container_needs_t *n, const char *name, const char *value) {
    char t[512];
    snprintf(t, sizeof t, "%s=%s", name, value);
    rec_cat(((rec_t *)n)->env, sizeof ((rec_t *)n)->env, t);
    return 0;
}
static int rec_device(baic_container_needs_t *n, const char *h, const char *ctr, const char *a) {
    rec_cat(((rec_t *)n)->devs, sizeof ((rec_t *)n)->devs, ctr);
    return 0;
}
static int rec_mount(baic_container_needs_t *n, const char *s, const char *t, int ro) {
    return 0;
}
static int rec_rule(baic_container_needs_t *n, char type, int64_t ma, int64_t mi, const char *a) {
    char t[64];
    snprintf(t, sizeof t, "%c %lld:%lld", type, (long long)ma, (long long)mi);
    rec_cat(((rec_t *)n)->rules, sizeof ((rec_t *)n)->rules, t);
    return 0;
}

static void rt_needs(rt_t *c, const baic_compute_alloc_t *a, rec_t *r) {
    memset(r, 0, sizeof *r);
    baic_needs_builder_t b = {sizeof b, (baic_container_needs_t *)r, rec_env, rec_device,
                              rec_mount, rec_rule};
    ck_assert_int_eq(c->ops->container_needs(c->st, a, &b), 0);
}

START_TEST(no_gpu_cases) {
    rt_t c;
    rt_load(&c, "0", "");
    ck_assert_uint_eq(cf_nslots(&c), 0);
    ck_assert(baic_mock_host_log_contains(c.m, "reason=\"rocm-smi reports 0 devices\""));
    cf_free(&c);

    setenv("FAKE_ROCM_FAIL_INIT", "1", 1);
    rt_load(&c, "2", "");
    ck_assert_uint_eq(cf_nslots(&c), 0);
    ck_assert(baic_mock_host_log_contains(c.m, "reason=\"rsmi_init failed\" rsmi=8"));
    cf_free(&c);
    unsetenv("FAKE_ROCM_FAIL_INIT");

    baic_mock_host_t *m = baic_mock_host_new(NULL);
    const baic_plugin_desc_t *d;
    void *st;
    json_t *conf = json_pack("{s:s}", "rsmi_library", "/nonexistent/librocm_smi64.so");
    ck_assert_int_eq(baic_mock_host_load_named(m, "compute", "rocm", conf, &d, &st), 0);
    const baic_slot_decl_t *const *decls;
    size_t n = 9;
    ((const baic_compute_ops_t *)d->ops)->list_slots(st, &decls, &n);
    ck_assert_uint_eq(n, 0);
    ck_assert(baic_mock_host_log_contains(m, "reason=\"rocm-smi library not loadable\""));
    json_decref(conf);
    baic_mock_host_free(m);
}
END_TEST

START_TEST(whole_devices_needs) {
    rt_t c;
    rt_load(&c, "4", "");
    const baic_slot_decl_t *const *decls;
    size_t n;
    c.ops->list_slots(c.st, &decls, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(decls[0]->name, "rocm.device");
    const baic_device_t *const *devs;
    c.ops->list_devices(c.st, &devs, &n);
    ck_assert_uint_eq(n, 4);
    ck_assert_str_eq(devs[3]->model, "Fake Instinct MI0");
    ck_assert_int_eq(devs[3]->memory_bytes, INT64_C(64) << 30);
    ck_assert_str_eq(strrchr(devs[3]->device_path, '/'), "/renderD131");
    baic_compute_alloc_t *a, *b, *x;
    ck_assert_int_eq(cf_alloc(&c, "rocm.device", U(2), &a), 0);
    rec_t r;
    rt_needs(&c, a, &r);
    ck_assert_str_eq(r.env, "ROCR_VISIBLE_DEVICES=GPU-fa4e000000000000,GPU-fa4e000000000001;"
                            "HIP_VISIBLE_DEVICES=0,1;");
    ck_assert_str_eq(r.devs, "/dev/kfd;/dev/dri/renderD128;/dev/dri/renderD129;");
    ck_assert_str_eq(r.rules, "c 226:128;c 226:129;"); /* kfd is a plain file here: no rule */
    ck_assert_int_eq(cf_alloc(&c, "rocm.device", U(2), &b), 0);
    ck_assert_int_eq(cf_alloc(&c, "rocm.device", U(1), &x), BAIC_ENO_RESOURCES);
    ck_assert_int_eq(cf_alloc(&c, "rocm.device", U(0.5), &x), BAIC_EBAD_INPUT);
    rt_needs(&c, b, &r);
    ck_assert_str_eq(r.devs, "/dev/kfd;"); /* renderD130/131 do not exist here */
    json_t *j;
    ck_assert_int_eq(c.ops->describe_device(c.st, "1", &j), 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "uuid")), "GPU-fa4e000000000001");
    ck_assert_str_eq(json_string_value(json_object_get(j, "driver_version")), "6.7.0-fake");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "render_minor")), 129);
    json_decref(j);
    cf_free(&c);
}
END_TEST

START_TEST(shares_and_restore) {
    rt_t c;
    rt_load(&c, "2", "\"mode\": \"shares\"");
    baic_compute_alloc_t *a, *b, *x;
    ck_assert_int_eq(cf_alloc(&c, "rocm.shares", U(0.4), &a), 0);
    ck_assert_int_eq(cf_alloc(&c, "rocm.shares", U(1.6), &b), 0);
    ck_assert_int_eq(cf_alloc(&c, "rocm.shares", U(0.01), &x), BAIC_ENO_RESOURCES);
    rec_t r;
    rt_needs(&c, b, &r);
    ck_assert_ptr_nonnull(strstr(r.env, "BACKENDAI_ROCM_SHARES=1:1,0:0.6;"));
    json_t *j;
    ck_assert_int_eq(c.ops->alloc_to_json(c.st, b, &j), 0);
    ck_assert_int_eq(c.ops->free_allocation(c.st, b), 0);
    ck_assert_int_eq(c.ops->alloc_from_json(c.st, "k", j, &b), 0);
    ck_assert_int_eq(cf_alloc(&c, "rocm.shares", U(0.01), &x), BAIC_ENO_RESOURCES);
    json_decref(j);
    cf_free(&c);
}
END_TEST

typedef struct seen {
    int calls;
    size_t n;
    double util, power, temp;
} seen_t;

static void on_stats(void *arg, int status, const baic_device_stat_t *const *s, size_t n) {
    seen_t *v = arg;
    v->calls++;
    v->n = n;
    if (n >= 2) {
        v->util = s[1]->util_pct;
        v->power = s[1]->power_w;
        v->temp = s[1]->temperature_c;
    }
}

static int stats_seen(void *arg) {
    return ((seen_t *)arg)->calls > 0;
}

START_TEST(stats_off_loop) {
    rt_t c;
    rt_load(&c, "2", "");
    seen_t v = {0};
    ck_assert_int_eq(c.ops->stats(c.st, on_stats, &v), 0);
    ck_assert_int_eq(v.calls, 0);
    ck_assert_int_eq(baic_mock_host_run_until(c.m, stats_seen, &v, 5000), 0);
    ck_assert_uint_eq(v.n, 2);
    ck_assert_double_eq_tol(v.util, 10.0, 1e-9);
    ck_assert_double_eq_tol(v.power, 101.0, 1e-9);
    ck_assert_double_eq_tol(v.temp, 41.0, 1e-9);
    cf_free(&c);
}
END_TEST

static Suite *compute_rocm_suite(void) {
    Suite *s = suite_create("compute_rocm");
    BAIC_TCASE(s, tc, "rocm", 30);
    tcase_add_test(tc, no_gpu_cases);
    tcase_add_test(tc, whole_devices_needs);
    tcase_add_test(tc, shares_and_restore);
    tcase_add_test(tc, stats_off_loop);
    return s;
}

BAIC_CHECK_MAIN(compute_rocm_suite)
