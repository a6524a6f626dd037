/* SPDX-License-Identifier: Apache-2.0 */
/* runtime/docker against a private dockerd started by the test, busybox loaded with `docker import`. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "baic_check.h"
#include "plugins/mock_host.h"
#include <baic/errors.h>
#include <baic/runtime.h>

/*
 * Needs root, docker.io (dockerd + docker) and busybox-static; without them the
 * tests that need a daemon print "SKIP: <reason>" and pass. The unchecked fixture
 * (in the runner process, before the forked tests) starts one dockerd of its own
 * with every path under a temporary directory, no bridge and no iptables, imports
 * a busybox rootfs as baic-test/busybox:1 and stops the daemon at the end. Config
 * and input checks run without a daemon.
 */

static char g_skip[1024];
static char g_dir[256];
static char g_sock[300];
static const char *g_image = "baic-test/busybox:1";

static int have_tool(const char *name) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof cmd)
        return -1;
    int rc = system(cmd);
    return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The last lines of a log in g_dir, for the skip message. */
static void log_tail(const char *leaf, char *out, size_t n) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "tail -n 3 %s/%s 2>/dev/null | tr '\\n' ' '", g_dir, leaf);
    FILE *p = popen(cmd, "r");
    out[0] = '\0';
    if (p != NULL) {
        size_t r = fread(out, 1, n - 1, p);
        out[r] = '\0';
        pclose(p);
    }
}

static void suite_setup(void) {
    if (!have_tool("dockerd") || !have_tool("docker")) {
        snprintf(g_skip, sizeof g_skip, "docker.io not installed (contrib/install-deps.sh)");
        return;
    }
    if (geteuid() != 0) {
        snprintf(g_skip, sizeof g_skip, "not root (dockerd needs it)");
        return;
    }
    if (access("/bin/busybox", X_OK) != 0) {
        snprintf(g_skip, sizeof g_skip, "busybox-static not installed");
        return;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/baic-dk.XXXXXX");
    if (mkdtemp(g_dir) == NULL) {
        snprintf(g_skip, sizeof g_skip, "mkdtemp: %s", strerror(errno));
        g_dir[0] = '\0';
        return;
    }
    snprintf(g_sock, sizeof g_sock, "%s/docker.sock", g_dir);
    double t0 = now_s();
    /* Everything private to this run; no bridge, no iptables: the kernels use
     * NetworkMode none, and the host's firewall stays untouched. */
    if (sh("setsid dockerd --data-root %s/data --exec-root %s/exec --pidfile %s/dockerd.pid "
           "-H unix://%s --bridge=none --iptables=false --ip6tables=false --ip-masq=false "
           "--userland-proxy=false --containerd-namespace baic-test --log-level warn "
           "</dev/null >%s/dockerd.log 2>&1 & echo $! >%s/spawn.pid",
           g_dir, g_dir, g_dir, g_sock, g_dir, g_dir) != 0) {
        snprintf(g_skip, sizeof g_skip, "dockerd did not start: could not spawn it");
        return;
    }
    int up = 0, spawned = 0;
    char p[300];
    snprintf(p, sizeof p, "%s/spawn.pid", g_dir);
    FILE *f = fopen(p, "r");
    if (f == NULL || fscanf(f, "%d", &spawned) != 1)
        spawned = 0;
    if (f != NULL)
        fclose(f);
    for (int i = 0; i < 300 && !up; i++) {
        /* A daemon that died (no cgroups, no storage driver...) is not waited for. */
        if (spawned > 1 && kill(spawned, 0) != 0)
            break;
        up = sh("docker -H unix://%s version >/dev/null 2>&1", g_sock) == 0;
        if (!up) {
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    if (!up) {
        char tail[512];
        log_tail("dockerd.log", tail, sizeof tail);
        snprintf(g_skip, sizeof g_skip, "dockerd did not start: %s", tail[0] ? tail : "no log");
        return;
    }
    double t1 = now_s();
    /* The rootfs contrib/images/build.sh makes, without umoci: busybox, its applet
     * links, a work user (uid 1000) owning /home/work. */
    if (sh("exec 2>%s/import.log; set -e; r=%s/rootfs; mkdir -p $r/bin $r/sbin $r/usr/bin $r/usr/sbin $r/etc $r/tmp "
           "$r/proc $r/sys $r/dev $r/home/work; chmod 1777 $r/tmp; cp /bin/busybox $r/bin/busybox; "
           /* busybox links its applets at their full paths itself, in one process */
           "chroot $r /bin/busybox --install -s; "
           "printf 'root:x:0:0:root:/root:/bin/sh\\nwork:x:1000:1000:work:/home/work:/bin/sh\\n' >$r/etc/passwd; "
           "printf 'root:x:0:\\nwork:x:1000:\\n' >$r/etc/group; chown 1000:1000 $r/home/work; "
           "tar -C $r --numeric-owner -cf - . | docker -H unix://%s import "
           "-c 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' -c 'WORKDIR /home/work' - %s >/dev/null",
           g_dir, g_dir, g_sock, g_image) != 0) {
        char tail[512];
        log_tail("import.log", tail, sizeof tail);
        snprintf(g_skip, sizeof g_skip, "docker import of the busybox rootfs failed: %s", tail);
        return;
    }
    fprintf(stderr, "dockerd up in %.2fs, busybox imported in %.2fs\n", t1 - t0, now_s() - t1);
}

static void suite_teardown(void) {
    if (g_dir[0] == '\0')
        return;
    /* SIGTERM lets dockerd stop its containerd and unmount its layers; only then is
     * the directory safe to remove. */
    int pid = 0;
    /* The daemon's own pidfile, or the spawned pid when it never got that far. */
    for (int i = 0; i < 2 && pid <= 1; i++) {
        char p[300];
        snprintf(p, sizeof p, "%s/%s", g_dir, i == 0 ? "dockerd.pid" : "spawn.pid");
        FILE *f = fopen(p, "r");
        if (f != NULL) {
            if (fscanf(f, "%d", &pid) != 1)
                pid = 0;
            fclose(f);
        }
    }
    if (pid > 1) {
        sh("docker -H unix://%s rm -f $(docker -H unix://%s ps -aq) >/dev/null 2>&1", g_sock, g_sock);
        kill(pid, SIGTERM);
        for (int i = 0; i < 200 && kill(pid, 0) == 0; i++) {
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (kill(pid, 0) == 0) {
            fprintf(stderr, "dockerd %d ignored SIGTERM for 10 s: killing it\n", pid);
            kill(pid, SIGKILL);
        }
    }
    if (sh("grep -q ' %s/' /proc/self/mounts", g_dir) == 0) {
        fprintf(stderr, "mounts left under %s: not removing it\n", g_dir);
        return;
    }
    if (sh("rm -rf %s", g_dir) != 0)
        fprintf(stderr, "could not remove %s\n", g_dir);
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
    int done, status;
    int exits, ooms, last_exit;
    char last_id[128];
    int exec_code;
    char exec_out[4096];
    size_t n_items;
    baic_rt_state_t item_state;
    int item_oom, item_pid;
    char item_label[256];
    baic_rt_stats_t stats;
} env_t;

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
    e->n_items = n;
    e->item_label[0] = '\0';
    if (n > 0) {
        e->item_state = items[0]->state;
        e->item_oom = items[0]->oom_killed;
        e->item_pid = items[0]->pid;
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
    ck_assert_msg(baic_mock_host_load_named(e->m, "runtime", "docker", e->conf, &e->d, &e->st) == 0,
                  "load: %s", baic_mock_host_last_error(e->m));
    e->ops = e->d->ops;
    ck_assert_int_eq(e->ops->watch(e->st, on_event, e), 0);
}

static void env_open(env_t *e) {
    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "/tmp/baic-dk-test.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(e->dir));
    /* The kernel's /home/work: a host directory the work user may write. */
    char home[300];
    snprintf(home, sizeof home, "%s/home", e->dir);
    ck_assert_int_eq(mkdir(home, 0755), 0);
    ck_assert_int_eq(chown(home, 1000, 1000), 0);
    e->conf = json_pack("{s:s, s:s, s:s}", "socket", g_sock[0] ? g_sock : "/nonexistent.sock",
                        "name_prefix", "baic-test-", "pull", "never");
    e->m = baic_mock_host_new(NULL);
    ck_assert_ptr_nonnull(e->m);
    env_load(e);
}

static void env_close(env_t *e) {
    baic_mock_host_free(e->m);
    json_decref(e->conf);
    ck_assert_int_eq(sh("rm -rf %s", e->dir), 0);
}

typedef struct kspec {
    const char *id;
    const char *script;
    int64_t memory;
    int64_t pids;
} kspec_t;

static int create(env_t *e, const kspec_t *k) {
    const char *argv[] = {"/bin/sh", "-c", k->script, NULL};
    char kid[160], home[300];
    snprintf(kid, sizeof kid, "BACKENDAI_KERNEL_ID=%s", k->id);
    snprintf(home, sizeof home, "%s/home", e->dir);
    const char *env[] = {"BACKENDAI_SESSION_ID=sess-1", kid, "HOME=/home/work", NULL};
    const char *labels[] = {"ai.backend.kernel-id=test", "ai.backend.role=main", NULL};
    baic_rt_mount_t work = {.source = home, .target = "/home/work", .type = "bind"};
    const baic_rt_mount_t *mounts[] = {&work};
    baic_container_spec_t spec = {
        .size = sizeof spec,
        .id = k->id,
        .image = g_image,
        .argv = argv,
        .env = env,
        .cwd = "/home/work",
        .hostname = "main1",
        .uid = 1000,
        .gid = 1000,
        .mounts = mounts,
        .n_mounts = 1,
        .cpu_limit = 1000000,
        .memory_bytes = k->memory > 0 ? k->memory : 128LL << 20,
        .shm_bytes = 16LL << 20,
        .pids_max = k->pids > 0 ? k->pids : 256,
        .net_mode = BAIC_RT_NET_PRIVATE,
        .labels = labels,
    };
    int rc = e->ops->create(e->st, &spec, on_done, e);
    if (rc != 0)
        return rc;
    return wait_done(e, 30000);
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

static size_t list(env_t *e) {
    ck_assert_int_eq(e->ops->list(e->st, on_list, e), 0);
    ck_assert_int_eq(wait_done(e, 10000), 0);
    return e->n_items;
}

static char *slurp_home(env_t *e, const char *leaf) {
    char p[400];
    snprintf(p, sizeof p, "%s/home/%s", e->dir, leaf);
    FILE *f = fopen(p, "r");
    if (f == NULL)
        return NULL;
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int docker_has(const char *name) {
    return sh("docker -H unix://%s inspect %s >/dev/null 2>&1", g_sock, name) == 0;
}

/* ---- tests that need no daemon ---- */

START_TEST(bad_config_refused) {
    static const char *const bad[] = {
        "{\"socket\": 5}",
        "{\"socket\": \"relative.sock\"}",
        "{\"socket\": \"/a/very/long/path/that/does/not/fit/into/sun_path/because/unix/sockets/are/limited/to/108/bytes/so/this/one/is/refused/x.sock\"}",
        "{\"api_version\": \"1.41\"}",
        "{\"api_version\": \"v2.0\"}",
        "{\"name_prefix\": \"bad/prefix\"}",
        "{\"pull\": \"always\"}",
        "{\"cap_add\": \"ALL\"}",
        "{\"cap_add\": [\"sys_admin\"]}",
        "{\"request_timeout_ms\": 0}",
        "{\"sockett\": \"/var/run/docker.sock\"}",
        "[1]",
        NULL};
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    for (size_t i = 0; bad[i] != NULL; i++) {
        json_t *conf = json_loads(bad[i], 0, NULL);
        ck_assert_ptr_nonnull(conf);
        const baic_plugin_desc_t *d;
        void *st;
        ck_assert_msg(baic_mock_host_load_named(m, "runtime", "docker", conf, &d, &st) == BAIC_EPLUGIN_INIT,
                      "accepted %s", bad[i]);
        json_decref(conf);
    }
    ck_assert(baic_mock_host_log_contains(m, "event=config_invalid key=socket"));
    ck_assert(baic_mock_host_log_contains(m, "key=sockett"));
    baic_mock_host_free(m);
}
END_TEST

START_TEST(bad_input_refused) {
    env_t e;
    env_open(&e);
    const char *argv[] = {"/bin/true", NULL};
    baic_container_spec_t spec = {.size = sizeof spec, .id = "../evil", .image = g_image, .argv = argv};
    ck_assert_int_eq(e.ops->create(e.st, &spec, on_done, &e), BAIC_EBAD_INPUT);
    spec.id = "k-ok";
    spec.image = NULL;
    ck_assert_int_eq(e.ops->create(e.st, &spec, on_done, &e), BAIC_EBAD_INPUT);
    spec.image = g_image;
    spec.net_mode = BAIC_RT_NET_JOIN;
    spec.netns_path = "/run/netns/x";
    ck_assert_int_eq(e.ops->create(e.st, &spec, on_done, &e), BAIC_EBAD_INPUT);
    spec.net_mode = BAIC_RT_NET_NONE;
    baic_rt_mount_t m = {.source = "/tmp/a:b", .target = "/x", .type = "bind"};
    const baic_rt_mount_t *mounts[] = {&m};
    spec.mounts = mounts;
    spec.n_mounts = 1;
    ck_assert_int_eq(e.ops->create(e.st, &spec, on_done, &e), BAIC_EBAD_INPUT);
    ck_assert(baic_mock_host_log_contains(e.m, "event=container_spec_refused"));
    const char *bad_labels[] = {"ai.backend.baic=0", NULL};
    spec.n_mounts = 0;
    spec.labels = bad_labels;
    ck_assert_int_eq(e.ops->create(e.st, &spec, on_done, &e), BAIC_EBAD_INPUT);
    ck_assert_int_eq(e.ops->start(e.st, "nope", on_done, &e), BAIC_ENOT_FOUND);
    ck_assert_int_eq(e.ops->stop(e.st, "nope", 0, on_done, &e), BAIC_ENOT_FOUND);
    ck_assert_int_eq(e.ops->destroy(e.st, "nope", on_done, &e), BAIC_ENOT_FOUND);
    env_close(&e);
}
END_TEST

/* ---- tests against the private daemon ---- */

START_TEST(hello_env_hostname_list_destroy) {
    SKIP_IF_UNAVAILABLE();
    env_t e;
    env_open(&e);
    kspec_t k = {.id = "k-hello",
                 .script = "echo hello > /home/work/out; env > /home/work/env; "
                           "hostname > /home/work/host; cat /proc/net/dev > /home/work/net; "
                           "grep -E '^(NoNewPrivs|CapEff):' /proc/self/status > /home/work/status; "
                           "id -u > /home/work/uid; pwd > /home/work/cwd"};
    double t0 = now_s();
    ck_assert_int_eq(create(&e, &k), 0);
    double t1 = now_s();
    ck_assert_int_eq(start(&e, k.id), 0);
    double t2 = now_s();
    wait_exit(&e, 20000);
    fprintf(stderr, "runtime=docker create=%.3fs start=%.3fs start-to-exit=%.3fs\n", t1 - t0,
            t2 - t1, now_s() - t2);
    ck_assert_int_eq(e.last_exit, 0);
    ck_assert_str_eq(e.last_id, k.id);
    ck_assert_int_eq(e.exits, 1);

    char *s;
    ck_assert_ptr_nonnull(s = slurp_home(&e, "out"));
    ck_assert_str_eq(s, "hello\n");
    free(s);
    ck_assert_ptr_nonnull(s = slurp_home(&e, "env"));
    ck_assert_ptr_nonnull(strstr(s, "BACKENDAI_SESSION_ID=sess-1"));
    ck_assert_ptr_nonnull(strstr(s, "BACKENDAI_KERNEL_ID=k-hello"));
    ck_assert_ptr_nonnull(strstr(s, "PATH=/usr/sbin:/usr/bin:/sbin:/bin")); /* the image's */
    free(s);
    ck_assert_ptr_nonnull(s = slurp_home(&e, "host"));
    ck_assert_str_eq(s, "main1\n");
    free(s);
    ck_assert_ptr_nonnull(s = slurp_home(&e, "net"));
    ck_assert_ptr_nonnull(strstr(s, "lo:"));
    ck_assert_ptr_null(strstr(s, "eth0")); /* private loopback only */
    free(s);
    ck_assert_ptr_nonnull(s = slurp_home(&e, "status"));
    ck_assert_ptr_nonnull(strstr(s, "NoNewPrivs:\t1"));
    ck_assert_ptr_nonnull(strstr(s, "CapEff:\t0000000000000000"));
    free(s);
    ck_assert_ptr_nonnull(s = slurp_home(&e, "uid"));
    ck_assert_str_eq(s, "1000\n");
    free(s);
    ck_assert_ptr_nonnull(s = slurp_home(&e, "cwd"));
    ck_assert_str_eq(s, "/home/work\n");
    free(s);

    /* What the daemon was told, beyond what the process can see. */
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "docker -H unix://%s inspect -f '{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} "
             "{{.HostConfig.NanoCpus}} {{.HostConfig.ShmSize}} {{.HostConfig.NetworkMode}} "
             "{{.HostConfig.CapDrop}} {{.HostConfig.SecurityOpt}} "
             "{{index .Config.Labels \"ai.backend.baic.kernel-id\"}}' baic-test-k-hello",
             g_sock);
    FILE *p = popen(cmd, "r");
    char line[512] = "";
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, p));
    pclose(p);
    ck_assert_str_eq(line, "134217728 256 1000000000 16777216 none [ALL] [no-new-privileges] k-hello\n");

    ck_assert_int_eq(list(&e), 1);
    ck_assert_int_eq(e.item_state, BAIC_RT_EXITED);
    ck_assert_str_eq(e.item_label, "ai.backend.kernel-id=test");

    ck_assert(docker_has("baic-test-k-hello"));
    ck_assert_int_eq(destroy(&e, k.id), 0);
    ck_assert(!docker_has("baic-test-k-hello"));
    ck_assert_int_eq(list(&e), 0);
    ck_assert_int_eq(e.ops->start(e.st, k.id, on_done, &e), BAIC_ENOT_FOUND);
    ck_assert(baic_mock_host_log_contains(e.m, "event=docker_events_connected"));
    env_close(&e);
}
END_TEST

START_TEST(oom_reported) {
    SKIP_IF_UNAVAILABLE();
    env_t e;
    env_open(&e);
    /* A string doubling forever: far over the 32 MiB limit within a second. */
    kspec_t k = {.id = "k-oom", .memory = 32LL << 20,
                 .script = "exec awk 'BEGIN { s = \"xxxxxxxxxxxxxxxx\"; for (;;) s = s s }'"};
    ck_assert_int_eq(create(&e, &k), 0);
    ck_assert_int_eq(start(&e, k.id), 0);
    wait_exit(&e, 30000);
    ck_assert_int_eq(e.last_exit, 137);
    ck_assert_int_ge(e.ooms, 1);
    ck_assert_int_eq(list(&e), 1);
    ck_assert_int_eq(e.item_oom, 1);
    ck_assert(baic_mock_host_log_contains(e.m, "event=container_oom"));
    ck_assert_int_eq(destroy(&e, k.id), 0);
    env_close(&e);
}
END_TEST

START_TEST(pids_limited) {
    SKIP_IF_UNAVAILABLE();
    env_t e;
    env_open(&e);
    kspec_t k = {.id = "k-pids", .pids = 8,
                 .script = "i=0; while [ $i -lt 20 ]; do sleep 2 & i=$((i+1)); done 2>/home/work/err; "
                           "kill $(jobs -p) 2>/dev/null; exit 0"};
    ck_assert_int_eq(create(&e, &k), 0);
    ck_assert_int_eq(start(&e, k.id), 0);
    wait_exit(&e, 30000);
    char *s = slurp_home(&e, "err");
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(strstr(s, "fork") != NULL, "no fork failure: %s", s);
    free(s);
    ck_assert_int_eq(destroy(&e, k.id), 0);
    env_close(&e);
}
END_TEST

START_TEST(exec_stats_stop_recover) {
    SKIP_IF_UNAVAILABLE();
    env_t e;
    env_open(&e);
    kspec_t k = {.id = "k-sleep", .script = "exec sleep 100"};
    ck_assert_int_eq(create(&e, &k), 0);
    ck_assert_int_eq(start(&e, k.id), 0);

    const char *argv[] = {"/bin/sh", "-c", "echo hi from $BACKENDAI_KERNEL_ID $X; echo oops >&2; exit 3", NULL};
    const char *xenv[] = {"X=extra", NULL};
    baic_rt_exec_t x = {.size = sizeof x, .argv = argv, .env = xenv, .uid = 1000, .gid = 1000,
                        .max_output = 1024, .timeout_ms = 10000};
    ck_assert_int_eq(e.ops->exec(e.st, k.id, &x, on_exec, &e), 0);
    ck_assert_int_eq(wait_done(&e, 15000), 0);
    ck_assert_int_eq(e.exec_code, 3);
    ck_assert_str_eq(e.exec_out, "hi from k-sleep extra\noops\n");

    /* A hung exec is killed at its timeout. */
    const char *hang[] = {"/bin/sleep", "30", NULL};
    baic_rt_exec_t h = {.size = sizeof h, .argv = hang, .uid = 1000, .gid = 1000, .timeout_ms = 300};
    double t0 = now_s();
    ck_assert_int_eq(e.ops->exec(e.st, k.id, &h, on_exec, &e), 0);
    ck_assert_int_eq(wait_done(&e, 15000), BAIC_ETIMEOUT);
    ck_assert(now_s() - t0 < 5);

    ck_assert_int_eq(e.ops->stats(e.st, k.id, on_stats, &e), 0);
    ck_assert_int_eq(wait_done(&e, 10000), 0);
    ck_assert_int_gt(e.stats.mem_used_bytes, 0);
    ck_assert_int_ge(e.stats.pids, 1);

    /* An agent restart: the kernel keeps running and list finds it again. */
    ck_assert_int_eq(baic_mock_host_unload(e.m, e.d), 0);
    env_load(&e);
    ck_assert_int_eq(e.ops->start(e.st, k.id, on_done, &e), BAIC_ENOT_FOUND);
    ck_assert_int_eq(list(&e), 1);
    ck_assert_int_eq(e.item_state, BAIC_RT_RUNNING);
    ck_assert_int_gt(e.item_pid, 0);
    ck_assert_str_eq(e.item_label, "ai.backend.kernel-id=test");
    ck_assert_int_eq(e.ops->destroy(e.st, k.id, on_done, &e), UV_EBUSY);

    /* sleep as pid 1 ignores SIGTERM: the daemon escalates to SIGKILL after the grace. */
    t0 = now_s();
    ck_assert_int_eq(e.ops->stop(e.st, k.id, 300, on_done, &e), 0);
    ck_assert_int_eq(wait_done(&e, 15000), 0);
    ck_assert_int_eq(e.exits, 1);
    ck_assert_int_eq(e.last_exit, 137);
    ck_assert(now_s() - t0 >= 0.25);
    /* Stopping what already exited succeeds without a second exit event. */
    ck_assert_int_eq(e.ops->stop(e.st, k.id, 300, on_done, &e), 0);
    ck_assert_int_eq(wait_done(&e, 5000), 0);
    ck_assert_int_eq(e.exits, 1);
    ck_assert_int_eq(destroy(&e, k.id), 0);
    env_close(&e);
}
END_TEST

START_TEST(missing_image_not_found) {
    SKIP_IF_UNAVAILABLE();
    env_t e;
    env_open(&e);
    const char *argv[] = {"/bin/true", NULL};
    baic_container_spec_t spec = {.size = sizeof spec, .id = "k-noimg", .image = "baic-test/absent:1",
                                  .argv = argv, .net_mode = BAIC_RT_NET_NONE};
    ck_assert_int_eq(e.ops->create(e.st, &spec, on_done, &e), 0);
    ck_assert_int_eq(wait_done(&e, 10000), BAIC_ENOT_FOUND);
    ck_assert(baic_mock_host_log_contains(e.m, "event=container_create_failed"));
    ck_assert_int_eq(list(&e), 0);
    /* the id is free again */
    ck_assert_int_eq(e.ops->start(e.st, "k-noimg", on_done, &e), BAIC_ENOT_FOUND);
    env_close(&e);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("runtime_docker");
    BAIC_TCASE(s, tc, "docker", 120);
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_test(tc, bad_config_refused);
    tcase_add_test(tc, bad_input_refused);
    tcase_add_test(tc, hello_env_hostname_list_destroy);
    tcase_add_test(tc, oom_reported);
    tcase_add_test(tc, pids_limited);
    tcase_add_test(tc, exec_stats_stop_recover);
    tcase_add_test(tc, missing_image_not_found);
    return s;
}

BAIC_CHECK_MAIN(suite)
