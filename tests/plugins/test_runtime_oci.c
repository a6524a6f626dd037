/* SPDX-License-Identifier: Apache-2.0 */
/* runtime/oci against real crun and runc, with busybox pulled from a private local registry. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/vfs.h>
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
/* Every test's directory starts with this (the parent's pid): a test that fails part-way exits
 * its forked process before env_close, and the parent then removes what it left running. */
static char g_prefix[64];
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
    snprintf(g_prefix, sizeof g_prefix, "/tmp/baic-oci-test.%ld.", (long)getpid());
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

static void sweep_leftovers(void) {
    char cmd[2048];
    int k = snprintf(
        cmd, sizeof cmd,
        "for d in %s*; do [ -d \"$d\" ] || continue;"
        " for rt in crun runc; do command -v $rt >/dev/null || continue;"
        "  for c in $($rt --root \"$d/rt-root\" list -q 2>/dev/null); do"
        "   $rt --root \"$d/rt-root\" delete -f \"$c\" >/dev/null 2>&1; done; done;"
        " awk -v p=\"$d/\" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r |"
        "  while read -r m; do umount -l \"$m\"; done;"
        " rm -rf \"$d\"; done",
        g_prefix);
    if (k < 0 || (size_t)k >= sizeof cmd || system(cmd) != 0)
        fprintf(stderr, "sweeping leftover test containers failed\n");
}

static void suite_teardown(void) {
    if (g_prefix[0] != '\0')
        sweep_leftovers();
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
    const char *want_id; /* list: is this id among the items? */
    int want_found;
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
    e->want_found = 0;
    for (size_t i = 0; e->want_id != NULL && i < n; i++)
        e->want_found |= strcmp(items[i]->id, e->want_id) == 0;
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
    snprintf(e->dir, sizeof e->dir, "%sXXXXXX", g_prefix);
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
    int64_t cpu; /* 1e-6 cores; 0 = one core */
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
        .cpu_limit = k->cpu > 0 ? k->cpu : 1000000,
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
    /* 16, not less: runc's Go init counts its own threads against the limit while it
     * sets the container up, and a tighter limit can fail the start itself. */
    kspec_t k = {.id = "k-pids", .pids = 16,
                 .script = "i=0; ok=0; while [ $i -lt 40 ]; do sleep 2 & [ $? = 0 ] && ok=$((ok+1)); "
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

/* ---- isolation: cpu quota, fork bomb, the filesystem view, what destroy frees ---- */

#define CGROUP2_MAGIC 0x63677270

static void pathf(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pathf(char *out, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(out, n, fmt, ap);
    va_end(ap);
    ck_assert_msg(k >= 0 && (size_t)k < n, "does not fit %zu bytes: %s", n, fmt);
}

static int host_cgroup_v2(void) {
    struct statfs sf;
    return statfs("/sys/fs/cgroup", &sf) == 0 && sf.f_type == CGROUP2_MAGIC;
}

/* Ids unique per test process: runs of this file in parallel share /sys/fs/cgroup. */
static void unique_id(char *out, size_t n, const char *stem) {
    pathf(out, n, "%s-%ld", stem, (long)getpid());
}

/* The runtime's cgroup of a kernel (cgroupsPath /baic-test/baic-<id>/c) in controller
 * ctrl's v1 hierarchy, or in the unified tree. */
static void rt_cgroup(const char *ctrl, const char *id, char *out, size_t n) {
    if (host_cgroup_v2())
        pathf(out, n, "/sys/fs/cgroup/baic-test/baic-%s/c", id);
    else
        pathf(out, n, "/sys/fs/cgroup/%s/baic-test/baic-%s/c", ctrl, id);
}

/* A cgroup file's number ("max" reads as INT64_MAX), or the value of "key N" in it;
 * -1 when unreadable. */
static int64_t cg_num(const char *dir, const char *file, const char *key) {
    char p[1024];
    pathf(p, sizeof p, "%s/%s", dir, file);
    char *s = slurp(p);
    if (s == NULL)
        return -1;
    int64_t v = -1;
    char *at = s;
    if (key != NULL) {
        size_t kl = strlen(key);
        for (at = s; at != NULL; at = strchr(at, '\n'), at = at != NULL ? at + 1 : NULL)
            if (strncmp(at, key, kl) == 0 && at[kl] == ' ') {
                at += kl + 1;
                break;
            }
    }
    if (at != NULL)
        v = strncmp(at, "max", 3) == 0 ? INT64_MAX : strtoll(at, NULL, 10);
    free(s);
    return v;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int stop(env_t *e, const char *id, uint64_t timeout_ms) {
    int rc = e->ops->stop(e->st, id, timeout_ms, on_done, e);
    if (rc != 0)
        return rc;
    return wait_done(e, 10000);
}

/* Nothing of the kernel is left on the host: cgroups in every hierarchy, overlay,
 * bundle, the runtime's state, the plugin's record, the list entry. */
static void assert_freed(env_t *e, const char *id) {
    char p[1024];
    struct stat sb;
    if (host_cgroup_v2()) {
        pathf(p, sizeof p, "/sys/fs/cgroup/baic-test/baic-%s", id);
        ck_assert_msg(stat(p, &sb) != 0, "cgroup left: %s", p);
    } else {
        /* every v1 hierarchy, the named systemd one and a hybrid host's unified tree */
        DIR *d = opendir("/sys/fs/cgroup");
        ck_assert_ptr_nonnull(d);
        int hierarchies = 0;
        for (struct dirent *de; (de = readdir(d)) != NULL;) {
            if (de->d_name[0] == '.')
                continue;
            hierarchies++;
            pathf(p, sizeof p, "/sys/fs/cgroup/%s/baic-test/baic-%s", de->d_name, id);
            ck_assert_msg(stat(p, &sb) != 0, "cgroup left: %s", p);
        }
        closedir(d);
        ck_assert_int_gt(hierarchies, 0);
    }
    pathf(p, sizeof p, "%s/state/bundles/%s", e->dir, id);
    ck_assert_msg(!mounted(p), "overlay still mounted: %s", p);
    ck_assert_msg(stat(p, &sb) != 0, "bundle left: %s", p);
    pathf(p, sizeof p, "%s/rt-root/baic-%s", e->dir, id);
    ck_assert_msg(stat(p, &sb) != 0, "runtime state left: %s", p);
    pathf(p, sizeof p, "%s/state/containers/%s.json", e->dir, id);
    ck_assert_msg(stat(p, &sb) != 0, "plugin record left: %s", p);
    e->want_id = id;
    ck_assert_int_eq(e->ops->list(e->st, on_list, e), 0);
    ck_assert_int_eq(wait_done(e, 5000), 0);
    ck_assert_msg(!e->want_found, "%s still listed", id);
    e->want_id = NULL;
}

START_TEST(cpu_quota_honoured) {
    SKIP_IF_UNAVAILABLE();
    env_t e;
    env_open(&e, runtimes[_i]);
    char id[64], cpu[512], acct[512];
    unique_id(id, sizeof id, "k-cpu");
    kspec_t k = {.id = id, .cpu = 500000, .script = "while :; do :; done"};
    ck_assert_int_eq(create(&e, &k), 0);
    ck_assert_int_eq(start(&e, id), 0);
    rt_cgroup("cpu", id, cpu, sizeof cpu);
    rt_cgroup("cpuacct", id, acct, sizeof acct);
    int v2 = host_cgroup_v2();
    if (v2) {
        char p[1024];
        pathf(p, sizeof p, "%s/cpu.max", cpu);
        char *s = slurp(p);
        ck_assert_ptr_nonnull(s);
        ck_assert_str_eq(s, "50000 100000\n");
        free(s);
    } else {
        ck_assert_int_eq(cg_num(cpu, "cpu.cfs_quota_us", NULL), 50000);
        ck_assert_int_eq(cg_num(cpu, "cpu.cfs_period_us", NULL), 100000);
    }
    /* ns of CPU the kernel's cgroup has used */
#define USAGE() (v2 ? cg_num(cpu, "cpu.stat", "usage_usec") * 1000 : cg_num(acct, "cpuacct.usage", NULL))
    int64_t u0 = USAGE();
    double t0 = now_s();
    sleep_s(1.5);
    int64_t u1 = USAGE();
    double wall = now_s() - t0;
#undef USAGE
    ck_assert_int_ge(u0, 0);
    double cores = (double)(u1 - u0) / 1e9 / wall;
    fprintf(stderr, "runtime=%s cpu_limit=0.5 busy loop: %.3f s CPU in %.3f s wall = %.2f cores\n",
            runtimes[_i], (double)(u1 - u0) / 1e9, wall, cores);
    ck_assert_msg(cores <= 0.65, "%.2f cores used under a 0.5 quota", cores);
    ck_assert_msg(cores >= 0.2, "%.2f cores: the loop did not run", cores);
    /* the plugin's own stats read the same counter */
    ck_assert_int_eq(e.ops->stats(e.st, id, on_stats, &e), 0);
    ck_assert_int_eq(wait_done(&e, 5000), 0);
    ck_assert_uint_ge(e.stats.cpu_used_ns, (uint64_t)u1);
    ck_assert_int_eq(stop(&e, id, 0), 0);
    ck_assert_int_eq(destroy(&e, id), 0);
    assert_freed(&e, id);
    env_close(&e);
}
END_TEST

START_TEST(fork_bomb_contained) {
    SKIP_IF_UNAVAILABLE();
    env_t e;
    env_open(&e, runtimes[_i]);
    char id[64], pids[512];
    unique_id(id, sizeof id, "k-bomb");
    /* pid 1 lights the bomb once, then reaps orphans (jobs) without ever forking, so
     * it survives the bomb and the bomb keeps its slots churning. */
    kspec_t k = {.id = id, .pids = 32, .cpu = 500000,
                 .script = "f() { f | f & }; f; while :; do jobs; done >/dev/null 2>&1"};
    ck_assert_int_eq(create(&e, &k), 0);
    ck_assert_int_eq(start(&e, id), 0);
    rt_cgroup("pids", id, pids, sizeof pids);
    ck_assert_int_eq(cg_num(pids, "pids.max", NULL), 32);
    int64_t peak = 0, n = 0;
    double worst_fork = 0, t0 = now_s();
    while (now_s() - t0 < 1.0) {
        int64_t cur = cg_num(pids, "pids.current", NULL);
        ck_assert_int_ge(cur, 0);
        peak = cur > peak ? cur : peak;
        if (n++ % 50 == 0) {
            /* the host still forks and execs promptly */
            double f0 = now_s();
            ck_assert_int_eq(system("exit 0"), 0);
            worst_fork = now_s() - f0 > worst_fork ? now_s() - f0 : worst_fork;
        }
        sleep_s(0.002);
    }
    int64_t refused = cg_num(pids, "pids.events", "max");
    fprintf(stderr, "runtime=%s fork bomb under pids_max=32: peak pids.current=%lld over %lld "
            "samples, forks refused=%lld, slowest host fork+exec=%.3f s\n", runtimes[_i],
            (long long)peak, (long long)n, (long long)refused, worst_fork);
    ck_assert_int_le(peak, 32);
    ck_assert_int_ge(peak, 16);
    ck_assert_int_gt(refused, 0);
    ck_assert_msg(worst_fork < 1.0, "host fork+exec took %.3f s", worst_fork);
    /* Still running and answering: list sees it, stats reads it. These also run the
     * loop, whose clock the sampling above left behind (stop's timer counts from it). */
    e.want_id = id;
    ck_assert_int_eq(e.ops->list(e.st, on_list, &e), 0);
    ck_assert_int_eq(wait_done(&e, 5000), 0);
    ck_assert(e.want_found);
    ck_assert_int_eq(e.item_state, BAIC_RT_RUNNING);
    e.want_id = NULL;
    ck_assert_int_eq(e.exits, 0);
    ck_assert_int_eq(e.ops->stats(e.st, id, on_stats, &e), 0);
    ck_assert_int_eq(wait_done(&e, 5000), 0);
    ck_assert_int_le(e.stats.pids, 32);
    /* pid 1 of the namespace ignores SIGTERM: stop has to escalate, bomb or not */
    double s0 = now_s();
    ck_assert_int_eq(stop(&e, id, 200), 0);
    double s1 = now_s();
    ck_assert(baic_mock_host_log_contains(e.m, "signal=KILL"));
    ck_assert_int_eq(e.ooms, 0);
    ck_assert_int_eq(e.exits, 1);
    ck_assert_int_eq(e.last_exit, 137);
    ck_assert_int_eq(destroy(&e, id), 0);
    double s2 = now_s();
    fprintf(stderr, "runtime=%s fork bomb: stop=%.3f s destroy=%.3f s\n", runtimes[_i], s1 - s0,
            s2 - s1);
    ck_assert_msg(s1 - s0 < 5.0, "stop took %.3f s", s1 - s0);
    ck_assert_msg(s2 - s1 < 5.0, "destroy took %.3f s", s2 - s1);
    assert_freed(&e, id);
    env_close(&e);
}
END_TEST

/* A mount point of the kernel's own: its root, or one of the mounts config.json asks for. */
static int own_mount_point(const char *mp) {
    static const char *const roots[] = {"/proc", "/dev", "/sys", "/tmp", "/home/work", NULL};
    if (strcmp(mp, "/") == 0)
        return 1;
    for (size_t i = 0; roots[i] != NULL; i++) {
        size_t n = strlen(roots[i]);
        if (strncmp(mp, roots[i], n) == 0 && (mp[n] == '\0' || mp[n] == '/'))
            return 1;
    }
    return 0;
}

START_TEST(host_files_invisible) {
    SKIP_IF_UNAVAILABLE();
    env_t e;
    env_open(&e, runtimes[_i]);
    char a[64], b[64], marker[512], bfile[512], script[4096], p[1024];
    unique_id(a, sizeof a, "k-look");
    unique_id(b, sizeof b, "k-other");
    pathf(marker, sizeof marker, "%s/host-marker", e.dir);
    FILE *f = fopen(marker, "w");
    ck_assert_ptr_nonnull(f);
    fputs("host secret\n", f);
    ck_assert_int_eq(fclose(f), 0);
    home_path(&e, b, "other-file", bfile, sizeof bfile);
    /* A looks as root (file modes hide nothing from it) for the host's marker and B's
     * home file: at their host paths, through /proc/1/root, and by name anywhere. */
    pathf(script, sizeof script,
          "r=/home/work/found; : > $r; "
          "for f in %s %s; do test -e $f && echo \"path $f\" >> $r; "
          "test -e /proc/1/root$f && echo \"proc1 $f\" >> $r; done; "
          "test -e /home/work/other-file && echo home >> $r; "
          "find / \\( -path /proc -o -path /sys \\) -prune -o \\( -name host-marker -o "
          "-name other-file \\) -print >> $r 2>/dev/null; "
          "cat /proc/self/mountinfo > /home/work/mountinfo",
          marker, bfile);
    kspec_t ka = {.id = a, .as_root = 1, .script = script};
    kspec_t kb = {.id = b, .script = "echo other secret > /home/work/other-file"};
    ck_assert_int_eq(create(&e, &kb), 0);
    ck_assert_int_eq(create(&e, &ka), 0);
    ck_assert_int_eq(start(&e, b), 0);
    wait_exit(&e, 20000);
    ck_assert_int_eq(e.last_exit, 0);
    struct stat sb;
    ck_assert_int_eq(stat(bfile, &sb), 0); /* B's file is there, on the host */
    e.exits = 0;
    ck_assert_int_eq(start(&e, a), 0);
    wait_exit(&e, 20000);
    ck_assert_int_eq(e.last_exit, 0);

    home_path(&e, a, "found", p, sizeof p);
    char *s = slurp(p);
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(s[0] == '\0', "visible in the kernel: %s", s);
    free(s);
    home_path(&e, a, "mountinfo", p, sizeof p);
    ck_assert_ptr_nonnull(s = slurp(p));
    int lines = 0, root_overlay = 0;
    for (char *save = NULL, *line = strtok_r(s, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        /* id parent major:minor root mount-point options ... - fstype source ... */
        char mp[512] = "", fstype[64] = "";
        ck_assert_int_eq(sscanf(line, "%*s %*s %*s %*s %511s", mp), 1);
        const char *dash = strstr(line, " - ");
        ck_assert_ptr_nonnull(dash);
        ck_assert_int_eq(sscanf(dash + 3, "%63s", fstype), 1);
        ck_assert_msg(own_mount_point(mp), "host mount visible in the kernel: %s", line);
        root_overlay |= strcmp(mp, "/") == 0 && strcmp(fstype, "overlay") == 0;
        lines++;
    }
    free(s);
    fprintf(stderr, "runtime=%s kernel sees %d mounts, none of the host's\n", runtimes[_i], lines);
    ck_assert(root_overlay);
    ck_assert_int_lt(lines, 40);
    ck_assert_int_eq(destroy(&e, a), 0);
    ck_assert_int_eq(destroy(&e, b), 0);
    assert_freed(&e, a);
    assert_freed(&e, b);
    env_close(&e);
}
END_TEST

START_TEST(destroy_frees_everything) {
    SKIP_IF_UNAVAILABLE();
    env_t e;
    env_open(&e, runtimes[_i]);
    /* never started, exited on its own, killed while running */
    char fresh[64], done[64], live[64], p[1024];
    unique_id(fresh, sizeof fresh, "k-fresh");
    unique_id(done, sizeof done, "k-done");
    unique_id(live, sizeof live, "k-live");
    kspec_t kf = {.id = fresh, .script = "exit 0"};
    kspec_t kd = {.id = done, .script = "exit 0"};
    kspec_t kl = {.id = live, .script = "exec sleep 100"};
    ck_assert_int_eq(create(&e, &kf), 0);
    ck_assert_int_eq(create(&e, &kd), 0);
    ck_assert_int_eq(create(&e, &kl), 0);
    /* create leaves nothing running: the kernel's cgroup holds no process yet */
    if (host_cgroup_v2())
        pathf(p, sizeof p, "/sys/fs/cgroup/baic-test/baic-%s/cgroup.procs", fresh);
    else
        pathf(p, sizeof p, "/sys/fs/cgroup/memory/baic-test/baic-%s/cgroup.procs", fresh);
    char *s = slurp(p);
    ck_assert_msg(s != NULL, "no cgroup after create: %s", p);
    ck_assert_str_eq(s, "");
    free(s);
    ck_assert_int_eq(start(&e, done), 0);
    wait_exit(&e, 20000);
    ck_assert_int_eq(start(&e, live), 0);
    ck_assert_int_eq(stop(&e, live, 0), 0);
    double t0 = now_s();
    ck_assert_int_eq(destroy(&e, fresh), 0);
    ck_assert_int_eq(destroy(&e, done), 0);
    ck_assert_int_eq(destroy(&e, live), 0);
    fprintf(stderr, "runtime=%s three destroys took %.3f s\n", runtimes[_i], now_s() - t0);
    assert_freed(&e, fresh);
    assert_freed(&e, done);
    assert_freed(&e, live);
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
    tcase_add_loop_test(tc, cpu_quota_honoured, 0, 2);
    tcase_add_loop_test(tc, fork_bomb_contained, 0, 2);
    tcase_add_loop_test(tc, host_files_invisible, 0, 2);
    tcase_add_loop_test(tc, destroy_frees_everything, 0, 2);
    return s;
}

BAIC_CHECK_MAIN(suite)
