/* SPDX-License-Identifier: Apache-2.0 */
/* compute/cuda against the fake NVML: discovery, no-GPU cases, booking, container needs, stats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <baic/compute.h>

#include "baic_check.h"
#include "plugins/compute_fixture.h"
#include "plugins/mock_host.h"

#define U(x) ((int64_t)((x) * 1000000.0 + 0.5))

typedef cf_cut_t cut_t;

/* A fake /dev with the given node names (plain files stand in for char devices). */
static void cc_make_dev(cut_t *c, const char *const *nodes) {
    snprintf(c->dev, sizeof c->dev, "/tmp/baic-cuda-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(c->dev));
    for (size_t i = 0; nodes != NULL && nodes[i] != NULL; i++) {
        char p[128];
        snprintf(p, sizeof p, "%s/%s", c->dev, nodes[i]);
        FILE *f = fopen(p, "w");
        ck_assert_ptr_nonnull(f);
        fclose(f);
    }
}

/* Loads compute/cuda with ndev fake devices; extra is more JSON members or "". */
static void cc_load(cut_t *c, const char *ndev, const char *extra) {
    char lib[512], conf_txt[1024];
    if (ndev != NULL)
        setenv("FAKE_NVML_DEVICES", ndev, 1);
    if (c->dev[0] == '\0') {
        static const char *const nodes[] = {"nvidia0", "nvidia1", "nvidiactl", NULL};
        cc_make_dev(c, nodes);
    }
    cf_fake_lib(lib, sizeof lib, "fake-gpu/nvml/libnvidia-ml.so.1");
    snprintf(conf_txt, sizeof conf_txt, "{\"nvml_library\": \"%s\", \"dev_root\": \"%s\"%s%s}",
             lib, c->dev, *extra ? ", " : "", extra);
    cf_load(c, "cuda", conf_txt);
}

/* A builder that records env, devices and cgroup rules as text. */
typedef struct rec {
    char env[1024], devs[1024], rules[512], mounts[256];
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
    char t[256];
    snprintf(t, sizeof t, "%s:%s", strrchr(h, '/') + 1, ctr);
    rec_cat(((rec_t *)n)->devs, sizeof ((rec_t *)n)->devs, t);
    return 0;
}
static int rec_mount(baic_container_needs_t *n, const char *s, const char *t, int ro) {
    rec_cat(((rec_t *)n)->mounts, sizeof ((rec_t *)n)->mounts, t);
    return 0;
}
static int rec_rule(baic_container_needs_t *n, char type, int64_t ma, int64_t mi, const char *a) {
    char t[64];
    snprintf(t, sizeof t, "%c %lld:%lld %s", type, (long long)ma, (long long)mi, a);
    rec_cat(((rec_t *)n)->rules, sizeof ((rec_t *)n)->rules, t);
    return 0;
}

static void cc_needs(cut_t *c, const baic_compute_alloc_t *a, rec_t *r) {
    memset(r, 0, sizeof *r);
    baic_needs_builder_t b = {sizeof b, (baic_container_needs_t *)r, rec_env, rec_device,
                              rec_mount, rec_rule};
    ck_assert_int_eq(c->ops->container_needs(c->st, a, &b), 0);
}

#define UUID(i) "GPU-fa4e0000-0000-0000-0000-00000000000" #i

START_TEST(zero_devices_no_slots) {
    cut_t c = {0};
    cc_load(&c, "0", "");
    ck_assert_uint_eq(cf_nslots(&c), 0);
    const baic_device_t *const *devs;
    size_t n = 9;
    ck_assert_int_eq(c.ops->list_devices(c.st, &devs, &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert(baic_mock_host_log_contains(c.m, "event=no_gpus reason=\"NVML reports 0 devices\""));
    cf_free(&c);
}
END_TEST

START_TEST(init_failure_no_slots) {
    cut_t c = {0};
    setenv("FAKE_NVML_FAIL_INIT", "1", 1);
    cc_load(&c, "4", "");
    ck_assert_uint_eq(cf_nslots(&c), 0);
    ck_assert(baic_mock_host_log_contains(c.m, "reason=\"nvmlInit failed\" nvml=9"));
    ck_assert(baic_mock_host_log_contains(c.m, "Driver Not Loaded"));
    cf_free(&c);
}
END_TEST

START_TEST(library_missing_no_slots) {
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    const baic_plugin_desc_t *d;
    void *st;
    json_t *conf = json_pack("{s:s}", "nvml_library", "/nonexistent/libnvidia-ml.so.1");
    ck_assert_int_eq(baic_mock_host_load_named(m, "compute", "cuda", conf, &d, &st), 0);
    const baic_compute_ops_t *ops = d->ops;
    const baic_slot_decl_t *const *decls;
    size_t n = 9;
    ops->list_slots(st, &decls, &n);
    ck_assert_uint_eq(n, 0);
    ck_assert(baic_mock_host_log_contains(m, "reason=\"NVML library not loadable\""));
    /* A kernel asking for nothing of ours still gets an (empty) allocation. */
    baic_compute_request_t req = {.size = sizeof req, .kernel_id = "k"};
    baic_compute_alloc_t *a;
    ck_assert_int_eq(ops->allocate(st, &req, &a), 0);
    ck_assert_uint_eq(a->n_parts, 0);
    json_decref(conf);
    baic_mock_host_free(m);
}
END_TEST

/* Without nvml_library the default search finds libnvidia-ml.so.1 on the library path. */
START_TEST(default_search_path) {
    char lib[512];
    cf_fake_lib(lib, sizeof lib, "fake-gpu/nvml/libnvidia-ml.so.1");
    *strrchr(lib, '/') = '\0';
    setenv("LTDL_LIBRARY_PATH", lib, 1);
    setenv("FAKE_NVML_DEVICES", "2", 1);
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    const baic_plugin_desc_t *d;
    void *st;
    json_t *conf = json_object();
    ck_assert_int_eq(baic_mock_host_load_named(m, "compute", "cuda", conf, &d, &st), 0);
    const baic_slot_decl_t *const *decls;
    size_t n = 0;
    ((const baic_compute_ops_t *)d->ops)->list_slots(st, &decls, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert(baic_mock_host_log_contains(m, "event=devices_found slot=cuda.device count=2"));
    json_decref(conf);
    baic_mock_host_free(m);
}
END_TEST

START_TEST(one_device) {
    cut_t c = {0};
    cc_load(&c, "1", "");
    const baic_slot_decl_t *const *decls;
    size_t n;
    ck_assert_int_eq(c.ops->list_slots(c.st, &decls, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(decls[0]->name, "cuda.device");
    ck_assert_int_eq(decls[0]->fractional, 0);
    ck_assert_int_eq(decls[0]->quantum, U(1));
    const baic_device_t *const *devs;
    ck_assert_int_eq(c.ops->list_devices(c.st, &devs, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(devs[0]->id, "0");
    ck_assert_str_eq(devs[0]->model, "Fake GPU F100");
    ck_assert_int_eq(devs[0]->memory_bytes, INT64_C(16) << 30);
    ck_assert_int_eq(devs[0]->capacity, U(1));
    ck_assert_str_eq(strrchr(devs[0]->device_path, '/'), "/nvidia0");
    baic_compute_alloc_t *a, *x;
    ck_assert_int_eq(cf_alloc(&c, "cuda.device", U(0.5), &x), BAIC_EBAD_INPUT);
    ck_assert_int_eq(cf_alloc(&c, "cuda.device", U(2), &x), BAIC_ENO_RESOURCES);
    ck_assert_int_eq(cf_alloc(&c, "cuda.device", U(1), &a), 0);
    ck_assert_int_eq(cf_alloc(&c, "cuda.device", U(1), &x), BAIC_ENO_RESOURCES);
    ck_assert_double_eq(baic_mock_host_metric(c.m, "baic_cuda_device_booked", "device=\"0\""), 1.0);
    ck_assert_int_eq(c.ops->free_allocation(c.st, a), 0);
    ck_assert_int_eq(c.ops->free_allocation(c.st, a), BAIC_ENOT_FOUND);
    ck_assert_int_eq(cf_alloc(&c, "cuda.device", U(1), &a), 0);
    cf_free(&c);
}
END_TEST

START_TEST(four_devices_needs) {
    cut_t c = {0};
    cc_load(&c, "4", "");
    baic_compute_alloc_t *a, *b, *x;
    rec_t r;
    ck_assert_int_eq(cf_alloc(&c, "cuda.device", U(2), &a), 0);
    ck_assert_uint_eq(a->n_parts, 2);
    ck_assert_str_eq(a->parts[0].device_id, "0");
    ck_assert_str_eq(a->parts[1].device_id, "1");
    cc_needs(&c, a, &r);
    ck_assert_str_eq(r.env, "NVIDIA_VISIBLE_DEVICES=" UUID(0) "," UUID(1) ";"
                            "CUDA_VISIBLE_DEVICES=" UUID(0) "," UUID(1) ";"
                            "NVIDIA_DRIVER_CAPABILITIES=compute,utility;");
    /* Only nodes present on the host: no nvidia-uvm here. */
    ck_assert_str_eq(r.devs, "nvidia0:/dev/nvidia0;nvidia1:/dev/nvidia1;nvidiactl:/dev/nvidiactl;");
    ck_assert_str_eq(r.rules, "c 195:0 rwm;c 195:1 rwm;c 195:255 rwm;");
    ck_assert_int_eq(cf_alloc(&c, "cuda.device", U(3), &x), BAIC_ENO_RESOURCES);
    ck_assert_int_eq(cf_alloc(&c, "cuda.device", U(2), &b), 0);
    ck_assert_str_eq(b->parts[0].device_id, "2");
    /* nvidia2 and nvidia3 do not exist in this fake /dev: only the control node. */
    cc_needs(&c, b, &r);
    ck_assert_str_eq(r.devs, "nvidiactl:/dev/nvidiactl;");
    ck_assert_int_eq(cf_alloc(&c, "cuda.device", U(1), &x), BAIC_ENO_RESOURCES);
    /* A kernel pinned to a device by UUID gets that one once it is free. */
    c.ops->free_allocation(c.st, a);
    const char *pin[] = {UUID(1)};
    baic_slot_t s = {"cuda.device", U(1)};
    baic_compute_request_t req = {.size = sizeof req, .kernel_id = "p", .requested = {&s, 1},
                                  .device_ids = pin, .n_device_ids = 1};
    ck_assert_int_eq(c.ops->allocate(c.st, &req, &a), 0);
    ck_assert_str_eq(a->parts[0].device_id, "1");
    ck_assert_int_eq(c.ops->allocate(c.st, &req, &x), BAIC_ENO_RESOURCES);
    cf_free(&c);
}
END_TEST

START_TEST(index_visibility_and_mounts) {
    cut_t c = {0};
    cc_load(&c, "2", "\"visible\": \"index\", \"mounts\": [\"/usr/lib/libcuda.so.1\"]");
    baic_compute_alloc_t *a;
    rec_t r;
    ck_assert_int_eq(cf_alloc(&c, "cuda.device", U(2), &a), 0);
    cc_needs(&c, a, &r);
    ck_assert_ptr_nonnull(strstr(r.env, "NVIDIA_VISIBLE_DEVICES=0,1;"));
    ck_assert_str_eq(r.mounts, "/usr/lib/libcuda.so.1;");
    cf_free(&c);
}
END_TEST

START_TEST(fractional_shares) {
    cut_t c = {0};
    cc_load(&c, "2", "\"mode\": \"shares\", \"quantum\": \"0.05\"");
    const baic_slot_decl_t *const *decls;
    size_t n;
    c.ops->list_slots(c.st, &decls, &n);
    ck_assert_str_eq(decls[0]->name, "cuda.shares");
    ck_assert_int_eq(decls[0]->fractional, 1);
    ck_assert_int_eq(decls[0]->quantum, U(0.05));
    baic_compute_alloc_t *a1, *a2, *a3, *x;
    ck_assert_int_eq(cf_alloc(&c, "cuda.shares", U(0.01), &x), BAIC_EBAD_INPUT);
    ck_assert_int_eq(cf_alloc(&c, "cuda.shares", U(0.5), &a1), 0);
    ck_assert_int_eq(cf_alloc(&c, "cuda.shares", U(0.25), &a2), 0);
    ck_assert_str_eq(a2->parts[0].device_id, "0"); /* packs onto the used device */
    ck_assert_int_eq(cf_alloc(&c, "cuda.shares", U(1.5), &x), BAIC_ENO_RESOURCES);
    ck_assert_int_eq(cf_alloc(&c, "cuda.shares", U(1.25), &a3), 0);
    ck_assert_uint_eq(a3->n_parts, 2); /* device 1 whole + 0.25 of device 0 */
    ck_assert_str_eq(a3->parts[0].device_id, "1");
    ck_assert_int_eq(a3->parts[0].amount, U(1));
    ck_assert_str_eq(a3->parts[1].device_id, "0");
    ck_assert_int_eq(a3->parts[1].amount, U(0.25));
    ck_assert_int_eq(cf_alloc(&c, "cuda.shares", U(0.05), &x), BAIC_ENO_RESOURCES);
    rec_t r;
    cc_needs(&c, a3, &r);
    ck_assert_ptr_nonnull(strstr(r.env, "BACKENDAI_CUDA_SHARES=1:1,0:0.25;"));
    ck_assert_ptr_nonnull(strstr(r.env, "NVIDIA_VISIBLE_DEVICES=" UUID(1) "," UUID(0) ";"));

    /* Restore after an agent restart: the same amounts are booked again. */
    json_t *j;
    ck_assert_int_eq(c.ops->alloc_to_json(c.st, a3, &j), 0);
    char *txt = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    ck_assert_str_eq(txt, "{\"cuda.shares\":{\"0\":\"0.25\",\"1\":\"1\"}}");
    free(txt);
    ck_assert_int_eq(c.ops->alloc_from_json(c.st, "k2", j, &x), BAIC_ENO_RESOURCES);
    ck_assert_int_eq(c.ops->free_allocation(c.st, a3), 0);
    ck_assert_int_eq(c.ops->alloc_from_json(c.st, "k2", j, &a3), 0);
    ck_assert_int_eq(cf_alloc(&c, "cuda.shares", U(0.05), &x), BAIC_ENO_RESOURCES);
    json_decref(j);

    ck_assert_int_eq(c.ops->describe_device(c.st, "0", &j), 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "booked")), "1");
    ck_assert_str_eq(json_string_value(json_object_get(j, "uuid")), UUID(0));
    ck_assert_str_eq(json_string_value(json_object_get(j, "driver_version")), "535.0-fake");
    ck_assert_str_eq(json_string_value(json_object_get(j, "model")), "Fake GPU F100");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "memory_bytes")), INT64_C(16) << 30);
    json_decref(j);
    ck_assert_int_eq(c.ops->describe_device(c.st, "7", &j), BAIC_ENOT_FOUND);
    cf_free(&c);
}
END_TEST

typedef struct seen {
    int calls, status;
    size_t n;
    double util[4], power[4], temp[4];
    int64_t used[4];
} seen_t;

static void on_stats(void *arg, int status, const baic_device_stat_t *const *s, size_t n) {
    seen_t *v = arg;
    v->calls++;
    v->status = status;
    v->n = n;
    for (size_t i = 0; i < n && i < 4; i++) {
        v->util[i] = s[i]->util_pct;
        v->power[i] = s[i]->power_w;
        v->temp[i] = s[i]->temperature_c;
        v->used[i] = s[i]->mem_used_bytes;
    }
}

static int stats_seen(void *arg) {
    return ((seen_t *)arg)->calls > 0;
}

START_TEST(stats_off_loop) {
    cut_t c = {0};
    cc_load(&c, "4", "");
    seen_t v = {0};
    ck_assert_int_eq(c.ops->stats(c.st, on_stats, &v), 0);
    ck_assert_int_eq(v.calls, 0);
    ck_assert_int_eq(baic_mock_host_run_until(c.m, stats_seen, &v, 5000), 0);
    ck_assert_int_eq(v.status, 0);
    ck_assert_uint_eq(v.n, 4);
    ck_assert_double_eq_tol(v.util[3], 30.0, 1e-9);
    ck_assert_double_eq_tol(v.power[2], 52.0, 1e-9);
    ck_assert_double_eq_tol(v.temp[1], 41.0, 1e-9);
    ck_assert_int_eq(v.used[1], INT64_C(1) << 30);
    cf_free(&c);
}
END_TEST

START_TEST(bad_config) {
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    const baic_plugin_desc_t *d;
    void *st;
    static const char *const bad[] = {
        "{\"mode\": \"mig\"}",
        "{\"mode\": \"shares\", \"quantum\": \"0.3\"}",
        "{\"nvml_library\": 5}",
        "{\"visible\": \"serial\"}",
        "{\"mounts\": [\"relative/path\"]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *conf = json_loads(bad[i], 0, NULL);
        ck_assert_int_eq(baic_mock_host_load_named(m, "compute", "cuda", conf, &d, &st),
                         BAIC_EPLUGIN_INIT);
        json_decref(conf);
    }
    ck_assert(baic_mock_host_log_contains(m, "event=bad_config key=mode"));
    baic_mock_host_free(m);
}
END_TEST

static Suite *compute_cuda_suite(void) {
    Suite *s = suite_create("compute_cuda");
    BAIC_TCASE(s, tc, "cuda", 30);
    tcase_add_test(tc, zero_devices_no_slots);
    tcase_add_test(tc, init_failure_no_slots);
    tcase_add_test(tc, library_missing_no_slots);
    tcase_add_test(tc, default_search_path);
    tcase_add_test(tc, one_device);
    tcase_add_test(tc, four_devices_needs);
    tcase_add_test(tc, index_visibility_and_mounts);
    tcase_add_test(tc, fractional_shares);
    tcase_add_test(tc, stats_off_loop);
    tcase_add_test(tc, bad_config);
    return s;
}

BAIC_CHECK_MAIN(compute_cuda_suite)
