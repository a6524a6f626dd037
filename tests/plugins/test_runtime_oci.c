/* SPDX-License-Identifier: Apache-2.0 */
/* runtime/oci against real crun and runc, with busybox pulled from a private local registry. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "baic_check.h"
#include "plugins/mock_host.h"
#include <baic/errors.h>
#include <baic/runtime.h>

/*
 * Needs root, crun, runc, skopeo, umoci and docker-registry; without them every test
 * prints "SKIP: <reason>" and passes. The registry and the busybox image are made once
 * per run by an unchecked fixture (in the runner process, before the forked tests),
 * through tests/integration/images.sh; the image cache lives in the build dir, so a
 * second run only pushes.
 */

static const char *const runtimes[] = {"crun", "runc"};
static char g_skip[1024];
static char g_regdir[512];
static char g_cache[512];
static char g_image[256];

static int have_tool(const char *name) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

static const char *sh_helpers(void) {
    static char path[1024];
    const char *src = getenv("BAIC_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/integration/images.sh", src != NULL ? src : ".");
    return path;
}

static void suite_setup(void) {
    static const char *const tools[] = {"crun", "runc", "skopeo", "umoci", "docker-registry",
                                        "unshare", "setsid", "busybox", NULL};
    if (geteuid() != 0) {
        snprintf(g_skip, sizeof g_skip, "not root (containers need it)");
        return;
    }
    for (size_t i = 0; tools[i] != NULL; i++) {
        if (!have_tool(tools[i])) {
            snprintf(g_skip, sizeof g_skip, "%s not installed (contrib/install-deps.sh)", tools[i]);
            return;
        }
    }
    snprintf(g_regdir, sizeof g_regdir, "/tmp/baic-oci-reg.XXXXXX");
    if (mkdtemp(g_regdir) == NULL) {
        snprintf(g_skip, sizeof g_skip, "mkdtemp failed");
        return;
    }
    const char *bd = getenv("BAIC_BUILD_DIR");
    snprintf(g_cache, sizeof g_cache, "%s/image-cache", bd != NULL ? bd : "/tmp");
    char cmd[4096], addr[128] = "";
    snprintf(cmd, sizeof cmd,
             "bash -c '. %s && start_registry %s >/dev/null && ensure_images %s "
             "\"$(cat %s/registry.addr)\" busybox >/dev/null 2>&1 && cat %s/registry.addr'",
             sh_helpers(), g_regdir, g_cache, g_regdir, g_regdir);
    FILE *p = popen(cmd, "r");
    if (p == NULL || fgets(addr, sizeof addr, p) == NULL) {
        snprintf(g_skip, sizeof g_skip, "registry or image build failed (see %s)", g_regdir);
        if (p != NULL)
            pclose(p);
        return;
    }
    pclose(p);
    addr[strcspn(addr, "\n")] = '\0';
    snprintf(g_image, sizeof g_image, "%s/stable/busybox:1.35", addr);
}

static void suite_teardown(void) {
    if (g_regdir[0] == '\0')
        return;
    char cmd[4096];
    int k = snprintf(cmd, sizeof cmd, "bash -c '. %s && stop_registry %s' && rm -rf %s",
                     sh_helpers(), g_regdir, g_regdir);
    if (k < 0 || (size_t)k >= sizeof cmd || system(cmd) != 0)
        fprintf(stderr, "registry teardown failed\n");
}

#define SKIP_IF_UNAVAILABLE()                                                           \
    do {                                                                                \
        if (g_skip[0] != '\0') {                                                        \
            printf("SKIP: %s\n", g_skip);                                               \
            return;                                                                     \
        }                                                                               \
    } while (0)

/* ---- a small driver around the plugin ---- */

typedef struct env {
    baic_mock_host_t *m;
    const baic_plugin_desc_t *d;
    const baic_runtime_ops_t *ops;
    void *st;
    json_t *conf;
    char dir[256];
    /* last completion */
    int done, status;
    /* events */
    int exits, ooms, last_exit;
    char last_id[128];
    /* exec */
    int exec_code;
    char exec_out[4096];
    /* list */
    int listed;
    size_t n_items;
    baic_rt_state_t item_state;
    int item_oom;
    char item_label[256];
    /* stats */
    baic_rt_stats_t stats;
} env_t;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_done(void *arg, int status) {
    env_t *e = arg;
    e->done++;
    e->status = status;
}

static void on_event(void *arg, const baic_rt_event_t *ev) {
    env_t *e = arg;
    snprintf(e->last_id, sizeof e->last_id, "%s", ev->id);
    if (ev->type == BAIC_RT_EV_EXIT) {
        e->exits++;
        e->last_exit = ev->exit_code;
    } else if (ev->type == BAIC_RT_EV_OOM) {
        e->ooms++;
    }
}

static void on_exec(void *arg, int status, int code, const char *out, size_t len) {
    env_t *e = arg;
    e->done++;
    e->status = status;
    e->exec_code = code;
    snprintf(e->exec_out, sizeof e->exec_out, "%.*s", (int)len, out != NULL ? out : "");
}

static void on_list(void *arg, int status, const baic_rt_info_t *const *items, size_t n) {
    env_t *e = arg;
    e->done++;
    e->status = status;
    e->listed = 1;
    e->n_items = n;
    e->item_label[0] = '\0';
    if (n > 0) {
        e->item_state = items[0]->state;
        e->item_oom = items[0]->oom_killed;
        if (items[0]->labels != NULL && items[0]->labels[0] != NULL)
            snprintf(e->item_label, sizeof e->item_label, "%s", items[0]->labels[0]);
    }
}

static void on_stats(void *arg, int status, const baic_rt_stats_t *st) {
    env_t *e = arg;
    e->done++;
    e->status = status;
    if (st != NULL)
        e->stats = *st;
}

static int pred_done(void *arg) {
    return ((env_t *)arg)->done > 0;
}

static int pred_exit(void *arg) {
    return ((env_t *)arg)->exits > 0;
}

static int wait_done(env_t *e, uint64_t ms) {
    int rc = baic_mock_host_run_until(e->m, pred_done, e, ms);
    ck_assert_msg(rc == 0, "no completion within %llu ms (%d)", (unsigned long long)ms, rc);
    e->done = 0;
    return e->status;
}

static void wait_exit(env_t *e, uint64_t ms) {
    int rc = baic_mock_host_run_until(e->m, pred_exit, e, ms);
    ck_assert_msg(rc == 0, "no exit event within %llu ms (%d)", (unsigned long long)ms, rc);
}

static void env_load(env_t *e) {
    ck_assert_int_eq(baic_mock_host_load_named(e->m, "runtime", "oci", e->conf, &e->d, &e->st), 0);
    e->ops = e->d->ops;
    ck_assert_int_eq(e->ops->watch(e->st, on_event, e), 0);
}

static void env_open(env_t *e, const char *runtime) {
    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "/tmp/baic-oci-test.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(e->dir));
    char state[600], images[600], root[600];
    snprintf(state, sizeof state, "%s/state", e->dir);
    snprintf(root, sizeof root, "%s/rt-root", e->dir);
    /* Shared by the tests of one run (the point of the store is pulling once) and
     * removed with the registry, since its keys name the registry's random port. */
    snprintf(images, sizeof images, "%s/oci-store", g_regdir);
    e->conf = json_pack("{s:s, s:s, s:s, s:s, s:s}", "runtime", runtime, "state_dir", state,
                        "image_dir", images, "runtime_root", root, "cgroup_parent",
                        "baic-test");
    e->m = baic_mock_host_new(NULL);
    ck_assert_ptr_nonnull(e->m);
    env_load(e);
}

static void env_close(env_t *e) {
    baic_mock_host_free(e->m);
    json_decref(e->conf);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", e->dir);
    ck_assert_int_eq(system(cmd), 0);
}

typedef struct kspec {
    const char *id;
    const char *script;
    int64_t memory;
    int64_t pids;
    int as_root;
} kspec_t;

static int create(env_t *e, const kspec_t *k) {
    const char *argv[] = {"/bin/sh", "-c", k->script, NULL};
    char kid[160];
    snprintf(kid, sizeof kid, "BACKENDAI_KERNEL_ID=%s", k->id);
    const char *env[] = {"BACKENDAI_SESSION_ID=sess-1", "BACKENDAI_SESSION_NAME=test",
                         kid, "BACKENDAI_ACCESS_KEY=AKIATEST", NULL};
    const char *labels[] = {"ai.backend.kernel-id=test", NULL};
    baic_container_spec_t spec = {
        .size = sizeof spec,
        .id = k->id,
        .image = g_image,
        .argv = argv,
        .env = env,
        .cwd = "/home/work",
        .hostname = "main1",
        .uid = k->as_root ? 0 : 1000,
        .gid = k->as_root ? 0 : 1000,
        .cpu_limit = 1000000,
        .memory_bytes = k->memory > 0 ? k->memory : 128LL << 20,
        .pids_max = k->pids > 0 ? k->pids : 256,
        .net_mode = BAIC_RT_NET_NONE,
        .labels = labels,
    };
    int rc = e->ops->create(e->st, &spec, on_done, e);
    if (rc != 0)
        return rc;
    return wait_done(e, 120000);
}

static int start(env_t *e, const char *id) {
    int rc = e->ops->start(e->st, id, on_done, e);
    if (rc != 0)
        return rc;
    return wait_done(e, 30000);
}

static int destroy(env_t *e, const char *id) {
    int rc = e->ops->destroy(e->st, id, on_done, e);
    if (rc != 0)
        return rc;
    return wait_done(e, 30000);
}

static void home_path(env_t *e, const char *id, const char *leaf, char *out, size_t n) {
    snprintf(out, n, "%s/state/bundles/%s/home/%s", e->dir, id, leaf);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int mounted(const char *path) {
    char *mi = slurp("/proc/self/mountinfo");
    int r = mi != NULL && strstr(mi, path) != NULL;
    free(mi);
    return r;
}

/* ---- tests ---- */

START_TEST(image_build_labels) {
    SKIP_IF_UNAVAILABLE();
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "skopeo inspect --tls-verify=false docker://%s", g_image);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    json_error_t err;
    json_t *j = json_loadf(p, 0, &err);
    pclose(p);
    ck_assert_msg(j != NULL, "skopeo inspect: %s", err.text);
    json_t *l = json_object_get(j, "Labels");
    ck_assert_str_eq(json_string_value(json_object_get(l, "ai.backend.kernelspec")), "1");
    ck_assert_str_eq(json_string_value(json_object_get(l, "ai.backend.runtime-type")), "app");
    ck_assert_str_eq(json_string_value(json_object_get(l, "ai.backend.runtime-path")), "/bin/sh");
    ck_assert_str_eq(json_string_value(json_object_get(l, "ai.backend.resource.min.mem")), "16m");
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(l, "ai.backend.features")),
                                 "uid-match"));
    json_decref(j);
}
END_TEST

START_TEST(hello_env_net_list_destroy) {
    SKIP_IF_UNAVAILABLE();
    env_t e;
    env_open(&e, runtimes[_i]);
    kspec_t k = {.id = "k-hello",
                 .script = "echo hello > /home/work/out; env > /home/work/env; "
                           "cat /proc/net/dev > /home/work/net; hostname > /home/work/host; "
                           "grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status > /home/work/status; "
                           "id -u > /home/work/uid"};
    double t0 = now_s();
    ck_assert_int_eq(create(&e, &k), 0);
    double t1 = now_s();
    ck_assert_int_eq(start(&e, k.id), 0);
    double t2 = now_s();
    wait_exit(&e, 20000);
    fprintf(stderr, "runtime=%s create(incl. pull if cold)=%.3fs start=%.3fs start-to-exit=%.3fs\n",
            runtimes[_i], t1 - t0, t2 - t1, now_s() - t2);
    ck_assert_int_eq(e.last_exit, 0);
    ck_assert_str_eq(e.last_id, k.id);
    ck_assert_int_ge(baic_mock_host_events(e.m, "image_pull"), 1);

    char p[512];
    char *s;
    home_path(&e, k.id, "out", p, sizeof p);
    ck_assert_ptr_nonnull(s = slurp(p));
    ck_assert_str_eq(s, "hello\n");
    free(s);
    home_path(&e, k.id, "env", p, sizeof p);
    ck_assert_ptr_nonnull(s = slurp(p));
    ck_assert_ptr_nonnull(strstr(s, "BACKENDAI_SESSION_ID=sess-1"));
    ck_assert_ptr_nonnull(strstr(s, "BACKENDAI_KERNEL_ID=k-hello"));
    ck_assert_ptr_nonnull(strstr(s, "BACKENDAI_KERNEL_IMAGE="));
    ck_assert_ptr_nonnull(strstr(s, "HOME=/home/work"));
    free(s);
    home_path(&e, k.id, "net", p, sizeof p);
    ck_assert_ptr_nonnull(s = slurp(p));
    ck_assert_ptr_nonnull(strstr(s, "lo:"));
    /* two header lines plus lo: nothing else in the namespace */
    int lines = 0;
    for (char *q = s; *q; q++)
        lines += *q == '\n';
    ck_assert_int_eq(lines, 3);
    free(s);
    home_path(&e, k.id, "host", p, sizeof p);
    ck_assert_ptr_nonnull(s = slurp(p));
    ck_assert_str_eq(s, "main1\n");
    free(s);
    home_path(&e, k.id, "status", p, sizeof p);
    ck_assert_ptr_nonnull(s = slurp(p));
    ck_assert_ptr_nonnull(strstr(s, "Seccomp:\t2"));
    ck_assert_ptr_nonnull(strstr(s, "NoNewPrivs:\t1"));
    ck_assert_ptr_nonnull(strstr(s, "CapEff:\t0000000000000000"));
    free(s);
    home_path(&e, k.id, "uid", p, sizeof p);
    ck_assert_ptr_nonnull(s = slurp(p));
    ck_assert_str_eq(s, "1000\n");
    free(s);

    ck_assert_int_eq(e.ops->list(e.st, on_list, &e), 0);
    ck_assert_int_eq(wait_done(&e, 5000), 0);
    ck_assert_int_eq(e.n_items, 1);
    ck_assert_int_eq(e.item_state, BAIC_RT_EXITED);
    ck_assert_str_eq(e.item_label, "ai.backend.kernel-id=test");

    char bundle[512];
    snprintf(bundle, sizeof bundle, "%s/state/bundles/%s", e.dir, k.id);
    ck_assert(mounted(bundle));
    ck_assert_int_eq(destroy(&e, k.id), 0);
    struct stat sb;
    ck_assert_int_ne(stat(bundle, &sb), 0);
    ck_assert(!mounted(bundle));
    ck_assert_int_eq(e.ops->list(e.st, on_list, &e), 0);
    ck_assert_int_eq(wait_done(&e, 5000), 0);
    ck_assert_int_eq(e.n_items, 0);
    ck_assert_int_eq(e.ops->start(e.st, k.id, on_done, &e), BAIC_ENOT_FOUND);
    env_close(&e);
}
END_TEST

START_TEST(oom_reported) {
    SKIP_IF_UNAVAILABLE();
    env_t e;
    env_open(&e, runtimes[_i]);
    /* A string doubling forever: well past 100 MB, far over the 32 MiB limit. */
    kspec_t k = {.id = "k-oom", .memory = 32LL << 20,
                 .script = "exec awk 'BEGIN { s = \"xxxxxxxxxxxxxxxx\"; for (;;) s = s s }'"};
    ck_assert_int_eq(create(&e, &k), 0);
    ck_assert_int_eq(start(&e, k.id), 0);
    wait_exit(&e, 30000);
    ck_assert_int_eq(e.last_exit, 137);
    ck_assert_int_ge(e.ooms, 1);
    ck_assert_int_eq(e.ops->list(e.st, on_list, &e), 0);
    ck_assert_int_eq(wait_done(&e, 5000), 0);
    ck_assert_int_eq(e.item_oom, 1);
    ck_assert(baic_mock_host_log_contains(e.m, "event=container_oom"));
    ck_assert_int_eq(destroy(&e, k.id), 0);
    env_close(&e);
}
END_TEST

START_TEST(pids_limited) {
    SKIP_IF_UNAVAILABLE();
    env_t e;
    env_open(&e, runtimes[_i]);
    kspec_t k = {.id = "k-pids", .pids = 8,
                 .script = "i=0; ok=0; while [ $i -lt 20 ]; do sleep 2 & [ $? = 0 ] && ok=$((ok+1)); "
                           "i=$((i+1)); done 2>/home/work/err; echo $ok > /home/work/ok; kill $(jobs -p) 2>/dev/null; exit 0"};
    ck_assert_int_eq(create(&e, &k), 0);
    ck_assert_int_eq(start(&e, k.id), 0);
    wait_exit(&e, 30000);
    char p[512];
    home_path(&e, k.id, "err", p, sizeof p);
    char *s = slurp(p);
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(strstr(s, "fork") != NULL, "no fork failure: %s", s);
    free(s);
    ck_assert_int_eq(destroy(&e, k.id), 0);
    env_close(&e);
}
END_TEST

START_TEST(two_kernels_separate) {
    SKIP_IF_UNAVAILABLE();
    env_t e;
    env_open(&e, runtimes[_i]);
    /* root in the container (uid 1000 cannot write /etc) changes the image's files */
    kspec_t a = {.id = "k-a", .as_root = 1,
                 .script = "echo a > /etc/marker && cat /etc/marker > /home/work/seen"};
    kspec_t b = {.id = "k-b", .script = "test ! -e /etc/marker && echo clean > /home/work/seen"};
    ck_assert_int_eq(create(&e, &a), 0);
    ck_assert_int_eq(create(&e, &b), 0);
    ck_assert_int_eq(start(&e, a.id), 0);
    wait_exit(&e, 20000);
    ck_assert_int_eq(e.last_exit, 0);
    e.exits = 0;
    ck_assert_int_eq(start(&e, b.id), 0);
    wait_exit(&e, 20000);
    ck_assert_int_eq(e.last_exit, 0);
    char p[512];
    home_path(&e, b.id, "seen", p, sizeof p);
    char *s = slurp(p);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, "clean\n");
    free(s);
    /* the marker lives in A's upper dir only */
    snprintf(p, sizeof p, "%s/state/bundles/%s/upper/etc/marker", e.dir, a.id);
    struct stat sb;
    ck_assert_int_eq(stat(p, &sb), 0);
    ck_assert_int_eq(destroy(&e, a.id), 0);
    ck_assert_int_eq(destroy(&e, b.id), 0);
    env_close(&e);
}
END_TEST

START_TEST(exec_stats_stop_recover) {
    SKIP_IF_UNAVAILABLE();
    env_t e;
    env_open(&e, runtimes[_i]);
    kspec_t k = {.id = "k-sleep", .script = "exec sleep 100"};
    ck_assert_int_eq(create(&e, &k), 0);
    ck_assert_int_eq(start(&e, k.id), 0);

    const char *argv[] = {"/bin/sh", "-c", "echo hi from $BACKENDAI_KERNEL_ID; exit 3", NULL};
    baic_rt_exec_t x = {.size = sizeof x, .argv = argv, .uid = 1000, .gid = 1000,
                        .max_output = 1024, .timeout_ms = 10000};
    ck_assert_int_eq(e.ops->exec(e.st, k.id, &x, on_exec, &e), 0);
    ck_assert_int_eq(wait_done(&e, 15000), 0);
    ck_assert_int_eq(e.exec_code, 3);
    ck_assert_str_eq(e.exec_out, "hi from k-sleep\n");

    ck_assert_int_eq(e.ops->stats(e.st, k.id, on_stats, &e), 0);
    ck_assert_int_eq(wait_done(&e, 5000), 0);
    ck_assert_int_gt(e.stats.mem_used_bytes, 0);
    ck_assert_int_ge(e.stats.pids, 1);

    /* An agent restart: the kernel keeps running and list finds it again. */
    ck_assert_int_eq(baic_mock_host_unload(e.m, e.d), 0);
    env_load(&e);
    ck_assert_int_eq(e.ops->list(e.st, on_list, &e), 0);
    ck_assert_int_eq(wait_done(&e, 5000), 0);
    ck_assert_int_eq(e.n_items, 1);
    ck_assert_int_eq(e.item_state, BAIC_RT_RUNNING);
    ck_assert_int_eq(e.ops->destroy(e.st, k.id, on_done, &e), UV_EBUSY);

    /* sleep as pid 1 ignores SIGTERM: stop must escalate to SIGKILL. */
    double t0 = now_s();
    ck_assert_int_eq(e.ops->stop(e.st, k.id, 300, on_done, &e), 0);
    ck_assert_int_eq(wait_done(&e, 10000), 0);
    ck_assert_int_eq(e.exits, 1);
    ck_assert_int_eq(e.last_exit, 137);
    ck_assert(now_s() - t0 >= 0.25);
    ck_assert_int_eq(destroy(&e, k.id), 0);
    env_close(&e);
}
END_TEST

START_TEST(bad_input_refused) {
    SKIP_IF_UNAVAILABLE();
    env_t e;
    env_open(&e, runtimes[_i]);
    const char *argv[] = {"/bin/true", NULL};
    baic_container_spec_t spec = {.size = sizeof spec, .id = "../evil", .image = g_image, .argv = argv};
    ck_assert_int_eq(e.ops->create(e.st, &spec, on_done, &e), BAIC_EBAD_INPUT);
    spec.id = "k-ok";
    spec.image = NULL;
    ck_assert_int_eq(e.ops->create(e.st, &spec, on_done, &e), BAIC_EBAD_INPUT);
    ck_assert_int_eq(e.ops->start(e.st, "nope", on_done, &e), BAIC_ENOT_FOUND);
    env_close(&e);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("runtime_oci");
    BAIC_TCASE(s, tc, "oci", 240);
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_test(tc, image_build_labels);
    tcase_add_loop_test(tc, hello_env_net_list_destroy, 0, 2);
    tcase_add_loop_test(tc, oom_reported, 0, 2);
    tcase_add_loop_test(tc, pids_limited, 0, 2);
    tcase_add_loop_test(tc, two_kernels_separate, 0, 2);
    tcase_add_loop_test(tc, exec_stats_stop_recover, 0, 2);
    tcase_add_loop_test(tc, bad_input_refused, 0, 1);
    return s;
}

BAIC_CHECK_MAIN(suite)
