/* SPDX-License-Identifier: Apache-2.0 */
/* runtime/oci: kernels as OCI bundles on crun (default) or runc — the plugin's ops and state. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "oci.h"

#define OCI_CGROUP2_MAGIC 0x63677270
#define OCI_WATCH_MS 50
#define OCI_DEAD_TICKS 40 /* ~2 s without an exit file after the init process vanished */

/*
 * Life of a kernel here:
 *   create  bundle dir, overlay (image rootfs below, per-kernel upper), config.json,
 *           the plugin's cgroup with the memory limit; no runtime call yet
 *   start   `<runtime> run` under a detached `sh` that writes the exit status into
 *           <bundle>/exit: the shell is the container's only waiter, so the status
 *           survives an agent restart, and the runtime's create/start split (whose
 *           init process nobody may wait for) is not needed
 *   watch   a timer reads <bundle>/exit and the cgroup's OOM counter
 *   destroy `<runtime> delete`, unmount, remove cgroup and bundle contents
 * Each kernel also has <state_dir>/containers/<id>.json, so list finds them again.
 */

typedef struct oci_waiter {
    baic_rt_done_cb cb;
    void *arg;
    struct oci_waiter *next;
} oci_waiter_t;

typedef struct oci_ctr {
    char id[128];
    char name[192];           /* runtime container name: prefix + id */
    char bundle[OCI_PATH_MAX];
    int own_bundle;           /* we chose the dir, so we remove it */
    baic_rt_state_t state;
    int creating, destroying;
    int pid, exit_code, oom_killed, dead_ticks;
    int oom_fd;               /* v1 OOM eventfd, -1 when none */
    int kill_sent;            /* we sent SIGKILL: a 137 is ours, not the OOM killer's */
    int64_t oom_seen;
    int64_t started_at_ms;
    char **labels;
    oci_waiter_t *stop_waiters;
    baic_timer_t *kill_timer;
    struct oci_state *st;
    struct oci_ctr *next;
} oci_ctr_t;

typedef struct oci_state {
    const baic_host_t *host;
    oci_conf_t conf;
    oci_image_store_t *images;
    oci_ctr_t *ctrs;
    baic_timer_t *watch_timer;
    baic_rt_event_cb ev_cb;
    void *ev_arg;
    int closing;
} oci_state_t;

/* ---- helpers ---- */

static oci_ctr_t *oci_find(oci_state_t *st, const char *id) {
    for (oci_ctr_t *c = st->ctrs; c != NULL; c = c->next)
        if (strcmp(c->id, id) == 0)
            return c;
    return NULL;
}

static void oci_strv_free(char **v) {
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

static char **oci_strv_dup(const char *const *v) {
    size_t n = 0;
    while (v != NULL && v[n] != NULL)
        n++;
    char **d = calloc(n + 1, sizeof *d);
    if (d == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if ((d[i] = strdup(v[i])) == NULL) {
            oci_strv_free(d);
            return NULL;
        }
    }
    return d;
}

static void oci_unlink_ctr(oci_state_t *st, oci_ctr_t *c) {
    for (oci_ctr_t **pp = &st->ctrs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
}

static void oci_free_ctr(oci_ctr_t *c) {
    oci_waiter_t *w = c->stop_waiters;
    while (w != NULL) {
        oci_waiter_t *n = w->next;
        free(w);
        w = n;
    }
    if (c->kill_timer != NULL && c->st != NULL)
        c->st->host->timer_stop(c->st->host, c->kill_timer);
    if (c->oom_fd >= 0)
        close(c->oom_fd);
    oci_strv_free(c->labels);
    free(c);
}

static int oci_valid_id(const char *id) {
    size_t n = id != NULL ? strlen(id) : 0;
    if (n == 0 || n > 100)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return 0;
    }
    return id[0] != '.';
}

static void oci_meta_path(const oci_state_t *st, const char *id, char *out, size_t n) {
    snprintf(out, n, "%s/containers/%s.json", st->conf.state_dir, id);
}

/* Written on the pool thread at create and start; read back by init after a restart. */
static int oci_meta_write(const oci_conf_t *conf, const oci_ctr_t *c) {
    json_t *labels = json_array();
    for (size_t i = 0; c->labels != NULL && c->labels[i] != NULL; i++)
        json_array_append_new(labels, json_string(c->labels[i]));
    json_t *m = json_pack("{s:s, s:s, s:s, s:b, s:I, s:o}", "id", c->id, "name", c->name,
                          "bundle", c->bundle, "own_bundle", c->own_bundle, "started_at_ms",
                          (json_int_t)c->started_at_ms, "labels", labels);
    char *s = m != NULL ? json_dumps(m, 0) : NULL;
    json_decref(m);
    if (s == NULL)
        return UV_ENOMEM;
    char p[OCI_PATH_MAX];
    snprintf(p, sizeof p, "%s/containers/%s.json", conf->state_dir, c->id);
    int rc = oci_write_file(p, s, strlen(s));
    free(s);
    return rc;
}

/* The init pid the runtime recorded (crun: <root>/<name>/status, runc: state.json). */
static int oci_runtime_pid(const oci_conf_t *conf, const char *name) {
    static const char *const files[] = {"status", "state.json"};
    static const char *const keys[] = {"pid", "init_process_pid"};
    for (size_t i = 0; i < 2; i++) {
        char p[OCI_PATH_MAX];
        snprintf(p, sizeof p, "%s/%s/%s", conf->runtime_root, name, files[i]);
        json_t *j = json_load_file(p, 0, NULL);
        if (j == NULL)
            continue;
        json_int_t pid = json_integer_value(json_object_get(j, keys[i]));
        json_decref(j);
        if (pid > 0)
            return (int)pid;
    }
    return 0;
}

/* 1 and the status when <bundle>/exit holds one. */
static int oci_read_exit(const char *bundle, int *code) {
    char p[OCI_PATH_MAX + 8], buf[32];
    snprintf(p, sizeof p, "%s/exit", bundle);
    if (oci_read_file(p, buf, sizeof buf) <= 0)
        return 0;
    *code = atoi(buf);
    return 1;
}

static void oci_emit(oci_state_t *st, baic_rt_event_type_t type, const char *id, int code) {
    if (st->ev_cb == NULL)
        return;
    baic_rt_event_t ev = {.size = sizeof ev, .type = type, .id = id, .exit_code = code};
    st->ev_cb(st->ev_arg, &ev);
}

/* ---- work items ---- */

typedef struct oci_job {
    oci_state_t *st;
    oci_ctr_t *ctr;
    baic_rt_done_cb cb;
    void *arg;
    int status;
    char err[1024];
    /* create */
    char *config_json;
    char lower[OCI_PATH_MAX];
    char *image;
    int64_t memory_bytes;
    int need_home;
    uint32_t uid, gid;
    /* exec */
    char **argv;
    baic_rt_exec_cb exec_cb;
    char *out;
    size_t out_max;
    uint64_t timeout_ms;
    int exit_code;
    /* stats */
    baic_rt_stats_cb stats_cb;
    baic_rt_stats_t stats;
    /* list */
    baic_rt_list_cb list_cb;
    /* kill */
    char signal[8];
} oci_job_t;

static oci_job_t *oci_job_new(oci_state_t *st, oci_ctr_t *c, baic_rt_done_cb cb, void *arg) {
    oci_job_t *j = calloc(1, sizeof *j);
    if (j != NULL) {
        j->st = st;
        j->ctr = c;
        j->cb = cb;
        j->arg = arg;
    }
    return j;
}

static void oci_job_free(oci_job_t *j) {
    free(j->config_json);
    free(j->image);
    oci_strv_free(j->argv);
    free(j->out);
    free(j);
}

/* Runs a runtime subcommand; a non-zero exit becomes BAIC_EBACKEND with its output in err. */
static int oci_rt(const oci_conf_t *conf, const char *const *args, char *err, size_t errlen) {
    const char *argv[64];
    int st = 0;
    if (oci_runtime_argv(conf, argv, 64, args) < 0)
        return BAIC_EINTERNAL;
    int rc = oci_proc_run(argv, err, errlen, -1, conf->cmd_timeout_ms, &st);
    if (rc == 0 && st != 0)
        rc = BAIC_EBACKEND;
    return rc;
}

static void oci_bundle_path(const oci_ctr_t *c, const char *leaf, char *out, size_t n) {
    snprintf(out, n, "%s/%s", c->bundle, leaf);
}

/* Undoes what create made on disk; each step tolerates a missing piece. */
static int oci_teardown(const oci_conf_t *conf, oci_ctr_t *c, char *err, size_t errlen) {
    char p[OCI_PATH_MAX + 32];
    int rc = 0;
    oci_bundle_path(c, "rootfs", p, sizeof p);
    if (umount2(p, 0) != 0 && errno != EINVAL && errno != ENOENT) {
        /* Still busy (a process of the kernel lives on in another namespace): detach. */
        if (umount2(p, MNT_DETACH) != 0 && errno != EINVAL) {
            rc = -errno;
            snprintf(err, errlen, "umount %s: %s", p, strerror(errno));
        }
    }
    oci_cgroup_remove(conf, c->name);
    if (c->own_bundle) {
        int r = oci_rmtree(c->bundle);
        if (r != 0 && rc == 0) {
            rc = r;
            snprintf(err, errlen, "remove %s: %s", c->bundle, strerror(-r));
        }
    } else {
        static const char *const leaves[] = {"upper", "work", "rootfs", "home", "config.json",
                                             "exit", "exit.tmp", "output.log", NULL};
        for (size_t i = 0; leaves[i] != NULL; i++) {
            oci_bundle_path(c, leaves[i], p, sizeof p);
            int r = oci_rmtree(p);
            if (r != 0 && rc == 0) {
                rc = r;
                snprintf(err, errlen, "remove %s: %s", p, strerror(-r));
            }
        }
    }
    oci_meta_path(c->st, c->id, p, sizeof p);
    unlink(p);
    return rc;
}

static void oci_create_work(void *arg) {
    oci_job_t *j = arg;
    const oci_conf_t *conf = &j->st->conf;
    oci_ctr_t *c = j->ctr;
    char up[OCI_PATH_MAX + 32], wk[OCI_PATH_MAX + 32], mnt[OCI_PATH_MAX + 32],
        home[OCI_PATH_MAX + 32], cfg[OCI_PATH_MAX + 32], opts[3 * OCI_PATH_MAX + 64];
    oci_bundle_path(c, "upper", up, sizeof up);
    oci_bundle_path(c, "work", wk, sizeof wk);
    oci_bundle_path(c, "rootfs", mnt, sizeof mnt);
    oci_bundle_path(c, "home", home, sizeof home);
    oci_bundle_path(c, "config.json", cfg, sizeof cfg);
    int rc;
    if ((rc = oci_mkdirs(c->bundle, 0711)) != 0 || (rc = oci_mkdirs(up, 0755)) != 0 ||
        (rc = oci_mkdirs(wk, 0700)) != 0 || (rc = oci_mkdirs(mnt, 0755)) != 0) {
        snprintf(j->err, sizeof j->err, "mkdir in %s: %s", c->bundle, strerror(-rc));
        goto fail;
    }
    if (j->need_home) {
        if ((rc = oci_mkdirs(home, 0755)) != 0 || chown(home, j->uid, j->gid) != 0) {
            rc = rc != 0 ? rc : -errno;
            snprintf(j->err, sizeof j->err, "home %s: %s", home, strerror(-rc));
            goto fail;
        }
    }
    /* The image's rootfs is shared by every kernel of the image and never written:
     * each kernel's changes land in its own upper dir. */
    snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", j->lower, up, wk);
    if (mount("overlay", mnt, "overlay", MS_NODEV, opts) != 0) {
        rc = -errno;
        snprintf(j->err, sizeof j->err, "overlay mount on %s: %s", mnt, strerror(errno));
        goto fail;
    }
    if ((rc = oci_write_file(cfg, j->config_json, strlen(j->config_json))) != 0) {
        snprintf(j->err, sizeof j->err, "write %s: %s", cfg, strerror(-rc));
        goto fail;
    }
    if ((rc = oci_cgroup_create(conf, c->name, j->memory_bytes)) != 0) {
        snprintf(j->err, sizeof j->err, "cgroup %s: %s", c->name, strerror(-rc));
        goto fail;
    }
    if ((rc = oci_meta_write(conf, c)) != 0) {
        snprintf(j->err, sizeof j->err, "state file: %s", strerror(-rc));
        goto fail;
    }
    j->status = 0;
    return;
fail:
    j->status = rc;
    char ignored[256];
    oci_teardown(conf, c, ignored, sizeof ignored);
}

static void oci_create_done(void *arg, int status) {
    oci_job_t *j = arg;
    oci_state_t *st = j->st;
    oci_ctr_t *c = j->ctr;
    if (status != 0 && j->status == 0)
        j->status = status;
    c->creating = 0;
    if (j->status == 0) {
        c->state = BAIC_RT_CREATED;
        st->host->log(st->host, BAIC_LOG_INFO, "container_created", "kernel=%s bundle=%s",
                      c->id, c->bundle);
    } else {
        st->host->log(st->host, BAIC_LOG_ERROR, "container_create_failed",
                      "kernel=%s code=%d error=\"%s\"", c->id, j->status, j->err);
        oci_unlink_ctr(st, c);
        oci_free_ctr(c);
    }
    j->cb(j->arg, j->status);
    oci_job_free(j);
}

static void oci_image_ready(void *arg, int status, const char *rootfs) {
    oci_job_t *j = arg;
    oci_state_t *st = j->st;
    int rc = status;
    if (rc == 0) {
        snprintf(j->lower, sizeof j->lower, "%s", rootfs);
        rc = st->host->queue_work(st->host, oci_create_work, oci_create_done, j);
    }
    if (rc != 0) {
        snprintf(j->err, sizeof j->err, "image %s unavailable", j->image);
        j->status = rc;
        oci_create_done(j, 0);
    }
}

/* ---- ops ---- */

static int oci_create(void *state, const baic_container_spec_t *spec, baic_rt_done_cb cb,
                      void *arg) {
    oci_state_t *st = state;
    char err[256];
    if (spec == NULL || cb == NULL || !oci_valid_id(spec->id) || spec->argv == NULL ||
        spec->argv[0] == NULL)
        return BAIC_EBAD_INPUT;
    if ((spec->rootfs == NULL || spec->rootfs[0] != '/') && (spec->image == NULL || spec->image[0] == '\0'))
        return BAIC_EBAD_INPUT;
    if (oci_find(st, spec->id) != NULL)
        return BAIC_EEXISTS;
    oci_ctr_t *c = calloc(1, sizeof *c);
    oci_job_t *j = oci_job_new(st, c, cb, arg);
    if (c == NULL || j == NULL) {
        free(c);
        free(j);
        return UV_ENOMEM;
    }
    c->st = st;
    c->oom_fd = -1;
    snprintf(c->id, sizeof c->id, "%s", spec->id);
    snprintf(c->name, sizeof c->name, "%s%s", st->conf.name_prefix, spec->id);
    if (spec->bundle_dir != NULL && strlen(spec->bundle_dir) > OCI_DIR_MAX)
        return BAIC_EBAD_INPUT;
    if (spec->rootfs != NULL && strlen(spec->rootfs) > OCI_DIR_MAX)
        return BAIC_EBAD_INPUT;
    if (spec->bundle_dir != NULL && spec->bundle_dir[0] == '/') {
        snprintf(c->bundle, sizeof c->bundle, "%s", spec->bundle_dir);
    } else {
        snprintf(c->bundle, sizeof c->bundle, "%s/bundles/%s", st->conf.state_dir, spec->id);
        c->own_bundle = 1;
    }
    c->labels = oci_strv_dup(spec->labels);
    c->creating = 1;
    c->state = BAIC_RT_UNKNOWN;

    j->need_home = 1;
    for (size_t i = 0; i < spec->n_mounts; i++)
        if (spec->mounts[i] != NULL && spec->mounts[i]->target != NULL &&
            strcmp(spec->mounts[i]->target, "/home/work") == 0)
            j->need_home = 0;
    char rootfs[OCI_PATH_MAX + 32], home[OCI_PATH_MAX + 32], cgpath[512];
    oci_bundle_path(c, "rootfs", rootfs, sizeof rootfs);
    oci_bundle_path(c, "home", home, sizeof home);
    snprintf(cgpath, sizeof cgpath, "/%s/%s/c", st->conf.cgroup_parent, c->name);
    oci_spec_paths_t paths = {.rootfs = rootfs, .home = j->need_home ? home : NULL,
                              .cgroups_path = cgpath};
    int rc = 0;
    j->config_json = oci_spec_build(&st->conf, spec, &paths, &rc, err, sizeof err);
    if (j->config_json == NULL || c->labels == NULL) {
        if (rc == BAIC_EBAD_INPUT)
            st->host->log(st->host, BAIC_LOG_WARN, "container_spec_refused", "kernel=%s reason=\"%s\"",
                          spec->id, err);
        oci_job_free(j);
        oci_free_ctr(c);
        return rc != 0 ? rc : UV_ENOMEM;
    }
    j->memory_bytes = spec->memory_bytes;
    j->uid = spec->uid;
    j->gid = spec->gid;
    if (spec->net_mode == BAIC_RT_NET_PRIVATE)
        st->host->log(st->host, BAIC_LOG_DEBUG, "container_net_loopback",
                      "kernel=%s reason=\"no bridge yet: loopback-only namespace\"", spec->id);
    if (spec->rootfs != NULL && spec->rootfs[0] == '/') {
        snprintf(j->lower, sizeof j->lower, "%s", spec->rootfs);
        rc = st->host->queue_work(st->host, oci_create_work, oci_create_done, j);
    } else {
        j->image = strdup(spec->image);
        rc = j->image != NULL ? oci_image_get(st->images, spec->image, oci_image_ready, j) : UV_ENOMEM;
    }
    if (rc != 0) {
        oci_job_free(j);
        oci_free_ctr(c);
        return rc;
    }
    c->next = st->ctrs;
    st->ctrs = c;
    return 0;
}

static void oci_watch_tick(baic_timer_t *t, void *arg);

static void oci_watch_arm(oci_state_t *st) {
    if (st->watch_timer == NULL && !st->closing)
        st->host->timer_start(st->host, OCI_WATCH_MS, OCI_WATCH_MS, oci_watch_tick, st,
                              &st->watch_timer);
}

static void oci_start_work(void *arg) {
    oci_job_t *j = arg;
    const oci_conf_t *conf = &j->st->conf;
    oci_ctr_t *c = j->ctr;
    char p[OCI_PATH_MAX + 32];
    oci_bundle_path(c, "exit", p, sizeof p);
    unlink(p);
    const char *rt_args[] = {"run", "--bundle", c->bundle, c->name, NULL};
    const char *argv[72];
    int n = 0;
    argv[n++] = "/usr/bin/setsid";
    argv[n++] = "-f";
    argv[n++] = "/bin/sh";
    argv[n++] = "-c";
    /* The waiter: detached (own session, reparented to init) so neither an agent
     * restart nor a signal to the agent's process group ends the kernel. */
    argv[n++] = "b=$1; shift; \"$@\" </dev/null >>\"$b/output.log\" 2>&1; "
                "echo $? >\"$b/exit.tmp\" && mv -f \"$b/exit.tmp\" \"$b/exit\"";
    argv[n++] = "sh";
    argv[n++] = c->bundle;
    if (oci_runtime_argv(conf, argv + n, 72 - (size_t)n, rt_args) < 0) {
        j->status = BAIC_EINTERNAL;
        return;
    }
    int status = 0;
    j->status = oci_proc_run(argv, j->err, sizeof j->err, -1, conf->cmd_timeout_ms, &status);
    if (j->status == 0 && status != 0)
        j->status = BAIC_EBACKEND;
    if (j->status != 0)
        return;
    /* Started once the runtime recorded an init pid, or the process already ended. */
    struct timespec ts = {0, 2 * 1000 * 1000};
    uint64_t waited_ms = 0;
    int code;
    for (;;) {
        if ((c->pid = oci_runtime_pid(conf, c->name)) > 0 || oci_read_exit(c->bundle, &code))
            break;
        if (waited_ms >= conf->cmd_timeout_ms) {
            char log[OCI_PATH_MAX + 32];
            oci_bundle_path(c, "output.log", log, sizeof log);
            oci_read_file(log, j->err, sizeof j->err);
            j->status = BAIC_ETIMEOUT;
            return;
        }
        nanosleep(&ts, NULL);
        waited_ms += 2;
    }
    c->started_at_ms = oci_wall_ms();
    oci_meta_write(conf, c);
}

static void oci_start_done(void *arg, int status) {
    oci_job_t *j = arg;
    oci_state_t *st = j->st;
    oci_ctr_t *c = j->ctr;
    if (status != 0 && j->status == 0)
        j->status = status;
    c->creating = 0;
    if (j->status == 0) {
        c->state = BAIC_RT_RUNNING;
        c->oom_seen = 0;
        c->kill_sent = 0;
        st->host->log(st->host, BAIC_LOG_INFO, "container_started", "kernel=%s pid=%d runtime=%s",
                      c->id, c->pid, st->conf.runtime);
        oci_watch_arm(st);
    } else {
        char *nl = strchr(j->err, '\n');
        if (nl != NULL)
            *nl = '\0';
        st->host->log(st->host, BAIC_LOG_ERROR, "container_start_failed",
                      "kernel=%s code=%d error=\"%s\"", c->id, j->status, j->err);
    }
    j->cb(j->arg, j->status);
    oci_job_free(j);
}

static int oci_start(void *state, const char *id, baic_rt_done_cb cb, void *arg) {
    oci_state_t *st = state;
    oci_ctr_t *c = id != NULL ? oci_find(st, id) : NULL;
    if (c == NULL)
        return BAIC_ENOT_FOUND;
    if (cb == NULL || c->creating || c->destroying || c->state != BAIC_RT_CREATED)
        return BAIC_EBAD_INPUT;
    oci_job_t *j = oci_job_new(st, c, cb, arg);
    if (j == NULL)
        return UV_ENOMEM;
    if (c->oom_fd < 0)
        c->oom_fd = oci_cgroup_oom_watch(&st->conf, c->name);
    int rc = st->host->queue_work(st->host, oci_start_work, oci_start_done, j);
    if (rc != 0) {
        oci_job_free(j);
        return rc;
    }
    c->creating = 1; /* busy: no second start, no destroy meanwhile */
    return 0;
}

static void oci_kill_work(void *arg) {
    oci_job_t *j = arg;
    const char *args[] = {"kill", j->ctr->name, j->signal, NULL};
    j->status = oci_rt(&j->st->conf, args, j->err, sizeof j->err);
}

static void oci_kill_done(void *arg, int status) {
    oci_job_t *j = arg;
    (void)status;
    /* A failed kill of a container that just exited is expected; the watcher decides. */
    if (j->status != 0 && j->ctr->state == BAIC_RT_RUNNING)
        j->st->host->log(j->st->host, BAIC_LOG_DEBUG, "container_kill_failed",
                         "kernel=%s signal=%s", j->ctr->id, j->signal);
    oci_job_free(j);
}

static int oci_send_kill(oci_state_t *st, oci_ctr_t *c, const char *sig) {
    oci_job_t *j = oci_job_new(st, c, NULL, NULL);
    if (j == NULL)
        return UV_ENOMEM;
    snprintf(j->signal, sizeof j->signal, "%s", sig);
    int rc = st->host->queue_work(st->host, oci_kill_work, oci_kill_done, j);
    if (rc != 0)
        oci_job_free(j);
    return rc;
}

static void oci_kill_timeout(baic_timer_t *t, void *arg) {
    oci_ctr_t *c = arg;
    c->st->host->timer_stop(c->st->host, t);
    c->kill_timer = NULL;
    if (c->state == BAIC_RT_RUNNING) {
        c->kill_sent = 1;
        c->st->host->log(c->st->host, BAIC_LOG_INFO, "container_kill", "kernel=%s signal=KILL",
                         c->id);
        oci_send_kill(c->st, c, "KILL");
    }
}

static void oci_noop_work(void *arg) {
    (void)arg;
}

static void oci_noop_done(void *arg, int status) {
    oci_job_t *j = arg;
    j->cb(j->arg, status == UV_ECANCELED ? status : 0);
    oci_job_free(j);
}

static int oci_stop(void *state, const char *id, uint64_t timeout_ms, baic_rt_done_cb cb,
                    void *arg) {
    oci_state_t *st = state;
    oci_ctr_t *c = id != NULL ? oci_find(st, id) : NULL;
    if (c == NULL)
        return BAIC_ENOT_FOUND;
    if (cb == NULL)
        return BAIC_EBAD_INPUT;
    if (c->state != BAIC_RT_RUNNING) {
        oci_job_t *j = oci_job_new(st, c, cb, arg);
        if (j == NULL)
            return UV_ENOMEM;
        int rc = st->host->queue_work(st->host, oci_noop_work, oci_noop_done, j);
        if (rc != 0)
            oci_job_free(j);
        return rc;
    }
    oci_waiter_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return UV_ENOMEM;
    if (timeout_ms == 0)
        c->kill_sent = 1;
    int rc = oci_send_kill(st, c, timeout_ms == 0 ? "KILL" : "TERM");
    if (rc != 0) {
        free(w);
        return rc;
    }
    w->cb = cb;
    w->arg = arg;
    w->next = c->stop_waiters;
    c->stop_waiters = w;
    if (timeout_ms > 0 && c->kill_timer == NULL)
        st->host->timer_start(st->host, timeout_ms, 0, oci_kill_timeout, c, &c->kill_timer);
    return 0;
}

static void oci_destroy_work(void *arg) {
    oci_job_t *j = arg;
    const oci_conf_t *conf = &j->st->conf;
    oci_ctr_t *c = j->ctr;
    char p[OCI_PATH_MAX + 256];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", conf->runtime_root, c->name);
    if (stat(p, &sb) == 0) {
        const char *args[] = {"delete", "--force", c->name, NULL};
        j->status = oci_rt(conf, args, j->err, sizeof j->err);
        if (j->status != 0)
            return;
    }
    j->status = oci_teardown(conf, c, j->err, sizeof j->err);
}

static void oci_destroy_done(void *arg, int status) {
    oci_job_t *j = arg;
    oci_state_t *st = j->st;
    oci_ctr_t *c = j->ctr;
    if (status != 0 && j->status == 0)
        j->status = status;
    c->destroying = 0;
    if (j->status == 0) {
        st->host->log(st->host, BAIC_LOG_INFO, "container_destroyed", "kernel=%s", c->id);
        oci_unlink_ctr(st, c);
        oci_free_ctr(c);
    } else {
        char *nl = strchr(j->err, '\n');
        if (nl != NULL)
            *nl = '\0';
        st->host->log(st->host, BAIC_LOG_ERROR, "container_destroy_failed",
                      "kernel=%s code=%d error=\"%s\"", c->id, j->status, j->err);
    }
    j->cb(j->arg, j->status);
    oci_job_free(j);
}

static int oci_destroy(void *state, const char *id, baic_rt_done_cb cb, void *arg) {
    oci_state_t *st = state;
    oci_ctr_t *c = id != NULL ? oci_find(st, id) : NULL;
    if (c == NULL)
        return BAIC_ENOT_FOUND;
    if (cb == NULL || c->creating || c->destroying)
        return BAIC_EBAD_INPUT;
    if (c->state == BAIC_RT_RUNNING)
        return UV_EBUSY;
    oci_job_t *j = oci_job_new(st, c, cb, arg);
    if (j == NULL)
        return UV_ENOMEM;
    int rc = st->host->queue_work(st->host, oci_destroy_work, oci_destroy_done, j);
    if (rc != 0) {
        oci_job_free(j);
        return rc;
    }
    c->destroying = 1;
    return 0;
}

static void oci_list_done(void *arg, int status) {
    oci_job_t *j = arg;
    oci_state_t *st = j->st;
    size_t n = 0;
    for (oci_ctr_t *c = st->ctrs; c != NULL; c = c->next)
        n += c->creating && c->state == BAIC_RT_UNKNOWN ? 0 : 1;
    baic_rt_info_t *infos = calloc(n + 1, sizeof *infos);
    const baic_rt_info_t **items = calloc(n + 1, sizeof *items);
    if (status == 0 && (infos == NULL || items == NULL))
        status = UV_ENOMEM;
    size_t k = 0;
    for (oci_ctr_t *c = st->ctrs; status == 0 && c != NULL; c = c->next) {
        if (c->creating && c->state == BAIC_RT_UNKNOWN)
            continue;
        baic_rt_info_t *i = &infos[k];
        i->size = sizeof *i;
        i->id = c->id;
        i->state = c->state;
        i->pid = c->state == BAIC_RT_RUNNING ? c->pid : 0;
        i->exit_code = c->exit_code;
        i->oom_killed = c->oom_killed;
        i->started_at_ms = c->started_at_ms;
        i->labels = (const char *const *)c->labels;
        items[k] = i;
        k++;
    }
    j->list_cb(j->arg, status, status == 0 ? items : NULL, status == 0 ? k : 0);
    free(items);
    free(infos);
    oci_job_free(j);
}

static int oci_list(void *state, baic_rt_list_cb cb, void *arg) {
    oci_state_t *st = state;
    if (cb == NULL)
        return BAIC_EBAD_INPUT;
    oci_job_t *j = oci_job_new(st, NULL, NULL, arg);
    if (j == NULL)
        return UV_ENOMEM;
    j->list_cb = cb;
    int rc = st->host->queue_work(st->host, oci_noop_work, oci_list_done, j);
    if (rc != 0)
        oci_job_free(j);
    return rc;
}

static int oci_watch(void *state, baic_rt_event_cb cb, void *arg) {
    oci_state_t *st = state;
    st->ev_cb = cb;
    st->ev_arg = arg;
    return 0;
}

/*
 * The watcher: small file reads (the exit file, the cgroup's OOM counter) for running
 * kernels only, so it costs nothing when the node is idle.
 */
static void oci_watch_tick(baic_timer_t *t, void *arg) {
    oci_state_t *st = arg;
    int running = 0;
    (void)t;
    for (oci_ctr_t *c = st->ctrs, *next; c != NULL; c = next) {
        next = c->next;
        if (c->state != BAIC_RT_RUNNING)
            continue;
        int code = 0, exited = oci_read_exit(c->bundle, &code);
        int oom = oci_cgroup_oom_check(&st->conf, c->name, c->oom_fd, &c->oom_seen);
        /* A notification lost across an agent restart: SIGKILL we did not send after
         * the limit was hit is the OOM killer's. */
        if (!oom && exited && code == 137 && !c->kill_sent && !c->oom_killed &&
            oci_cgroup_failcnt(&st->conf, c->name) > 0)
            oom = 1;
        if (oom) {
            c->oom_killed = 1;
            st->host->log(st->host, BAIC_LOG_WARN, "container_oom", "kernel=%s oom_events=%lld",
                          c->id, (long long)c->oom_seen);
            oci_emit(st, BAIC_RT_EV_OOM, c->id, 0);
        }
        if (!exited && c->pid > 0 && kill(c->pid, 0) != 0 && errno == ESRCH &&
            ++c->dead_ticks >= OCI_DEAD_TICKS) {
            /* The waiting shell is gone too (killed with the agent's cgroup?): the
             * status is lost, say so rather than invent one. */
            exited = 1;
            code = 255;
            st->host->log(st->host, BAIC_LOG_WARN, "container_exit_unknown", "kernel=%s", c->id);
        }
        if (!exited) {
            running++;
            continue;
        }
        c->state = BAIC_RT_EXITED;
        c->exit_code = code;
        c->pid = 0;
        if (c->oom_fd >= 0) {
            close(c->oom_fd);
            c->oom_fd = -1;
        }
        if (c->kill_timer != NULL) {
            st->host->timer_stop(st->host, c->kill_timer);
            c->kill_timer = NULL;
        }
        st->host->log(st->host, BAIC_LOG_INFO, "container_exited",
                      "kernel=%s exit_code=%d oom_killed=%d", c->id, code, c->oom_killed);
        oci_emit(st, BAIC_RT_EV_EXIT, c->id, code);
        oci_waiter_t *w = c->stop_waiters;
        c->stop_waiters = NULL;
        while (w != NULL) {
            oci_waiter_t *n = w->next;
            w->cb(w->arg, 0);
            free(w);
            w = n;
        }
    }
    if (running == 0 && st->watch_timer != NULL) {
        st->host->timer_stop(st->host, st->watch_timer);
        st->watch_timer = NULL;
    }
}

static void oci_exec_work(void *arg) {
    oci_job_t *j = arg;
    const char *argv[256];
    int st = 0;
    if (oci_runtime_argv(&j->st->conf, argv, 256, (const char *const *)j->argv) < 0) {
        j->status = BAIC_EBAD_INPUT;
        return;
    }
    j->status = oci_proc_run(argv, j->out, j->out_max + 1, -1, j->timeout_ms, &st);
    j->exit_code = st;
}

static void oci_exec_done(void *arg, int status) {
    oci_job_t *j = arg;
    if (status != 0 && j->status == 0)
        j->status = status;
    j->exec_cb(j->arg, j->status, j->exit_code, j->out, j->out != NULL ? strlen(j->out) : 0);
    oci_job_free(j);
}

static int oci_exec(void *state, const char *id, const baic_rt_exec_t *spec, baic_rt_exec_cb cb,
                    void *arg) {
    oci_state_t *st = state;
    oci_ctr_t *c = id != NULL ? oci_find(st, id) : NULL;
    if (c == NULL)
        return BAIC_ENOT_FOUND;
    if (spec == NULL || cb == NULL || spec->argv == NULL || spec->argv[0] == NULL)
        return BAIC_EBAD_INPUT;
    if (c->state != BAIC_RT_RUNNING)
        return BAIC_EBAD_INPUT;
    size_t n = 0, ne = 0;
    while (spec->argv[n] != NULL)
        n++;
    while (spec->env != NULL && spec->env[ne] != NULL)
        ne++;
    if (n + 2 * ne + 12 > 200)
        return BAIC_EBAD_INPUT;
    oci_job_t *j = oci_job_new(st, c, NULL, arg);
    char **v = calloc(n + 2 * ne + 12, sizeof *v);
    if (j == NULL || v == NULL) {
        free(j);
        free(v);
        return UV_ENOMEM;
    }
    j->argv = v;
    size_t k = 0;
    char user[32];
    snprintf(user, sizeof user, "%u:%u", spec->uid, spec->gid);
    v[k++] = strdup("exec");
    v[k++] = strdup("--user");
    v[k++] = strdup(user);
    if (spec->cwd != NULL) {
        v[k++] = strdup("--cwd");
        v[k++] = strdup(spec->cwd);
    }
    for (size_t i = 0; i < ne; i++) {
        v[k++] = strdup("--env");
        v[k++] = strdup(spec->env[i]);
    }
    v[k++] = strdup(c->name);
    for (size_t i = 0; i < n; i++)
        v[k++] = strdup(spec->argv[i]);
    for (size_t i = 0; i < k; i++) {
        if (v[i] == NULL) {
            oci_job_free(j);
            return UV_ENOMEM;
        }
    }
    j->exec_cb = cb;
    j->out_max = spec->max_output > 0 ? spec->max_output : 65536;
    j->out = calloc(1, j->out_max + 1);
    j->timeout_ms = spec->timeout_ms;
    if (j->out == NULL) {
        oci_job_free(j);
        return UV_ENOMEM;
    }
    int rc = st->host->queue_work(st->host, oci_exec_work, oci_exec_done, j);
    if (rc != 0)
        oci_job_free(j);
    return rc;
}

static void oci_stats_work(void *arg) {
    oci_job_t *j = arg;
    j->stats.size = sizeof j->stats;
    j->stats.mem_used_bytes = -1;
    j->stats.mem_max_bytes = -1;
    oci_cgroup_stats(&j->st->conf, j->ctr->name, &j->stats);
}

static void oci_stats_done(void *arg, int status) {
    oci_job_t *j = arg;
    j->stats_cb(j->arg, status, status == 0 ? &j->stats : NULL);
    oci_job_free(j);
}

static int oci_stats(void *state, const char *id, baic_rt_stats_cb cb, void *arg) {
    oci_state_t *st = state;
    oci_ctr_t *c = id != NULL ? oci_find(st, id) : NULL;
    if (c == NULL)
        return BAIC_ENOT_FOUND;
    if (cb == NULL)
        return BAIC_EBAD_INPUT;
    oci_job_t *j = oci_job_new(st, c, NULL, arg);
    if (j == NULL)
        return UV_ENOMEM;
    j->stats_cb = cb;
    int rc = st->host->queue_work(st->host, oci_stats_work, oci_stats_done, j);
    if (rc != 0)
        oci_job_free(j);
    return rc;
}

/* ---- init ---- */

static int oci_conf_str(const baic_host_t *host, const json_t *conf, const char *key,
                        const char *def, char *out, size_t n) {
    const json_t *v = conf != NULL ? json_object_get(conf, key) : NULL;
    if (v == NULL) {
        snprintf(out, n, "%s", def);
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) >= n) {
        host->log(host, BAIC_LOG_ERROR, "config_invalid", "key=%s reason=\"must be a string\"", key);
        return BAIC_ECONFIG_TYPE;
    }
    snprintf(out, n, "%s", json_string_value(v));
    return 0;
}

static int oci_is_cgroup2(const char *path) {
    struct statfs sf;
    return statfs(path, &sf) == 0 && (unsigned long)sf.f_type == OCI_CGROUP2_MAGIC;
}

/* Finds a tool on PATH (or keeps an absolute path); "" when absent. */
static void oci_which(const char *name, char *out, size_t n) {
    if (name[0] == '/') {
        snprintf(out, n, "%s", access(name, X_OK) == 0 ? name : "");
        return;
    }
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path != NULL ? path : "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin");
    size_t l = strlen(buf);
    snprintf(buf + l, sizeof buf - l, ":/usr/sbin:/sbin");
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d != NULL; d = strtok_r(NULL, ":", &save)) {
        snprintf(out, n, "%s/%s", d, name);
        if (access(out, X_OK) == 0)
            return;
    }
    out[0] = '\0';
}

/* Reads back the kernels a previous agent left (state_dir/containers/<id>.json). */
static void oci_recover(oci_state_t *st) {
    char dir[OCI_PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/containers", st->conf.state_dir);
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0)
            continue;
        char p[2 * OCI_PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        json_t *m = json_load_file(p, 0, NULL);
        const char *id = NULL, *name = NULL, *bundle = NULL;
        json_t *labels = NULL;
        int own = 0;
        json_int_t started = 0;
        if (m == NULL || json_unpack(m, "{s:s, s:s, s:s, s:b, s:I, s:o}", "id", &id, "name", &name,
                                     "bundle", &bundle, "own_bundle", &own, "started_at_ms",
                                     &started, "labels", &labels) != 0 ||
            !oci_valid_id(id) || oci_find(st, id) != NULL) {
            json_decref(m);
            continue;
        }
        oci_ctr_t *c = calloc(1, sizeof *c);
        if (c == NULL) {
            json_decref(m);
            break;
        }
        c->st = st;
        c->oom_fd = -1;
        snprintf(c->id, sizeof c->id, "%s", id);
        snprintf(c->name, sizeof c->name, "%s", name);
        snprintf(c->bundle, sizeof c->bundle, "%s", bundle);
        c->own_bundle = own;
        c->started_at_ms = started;
        size_t nl = json_array_size(labels);
        c->labels = calloc(nl + 1, sizeof *c->labels);
        for (size_t i = 0; c->labels != NULL && i < nl; i++)
            c->labels[i] = strdup(json_string_value(json_array_get(labels, i)) ?: "");
        json_decref(m);
        int code = 0;
        c->oom_seen = 0;
        oci_cgroup_oom_check(&st->conf, c->name, -1, &c->oom_seen);
        c->oom_killed = c->oom_seen > 0;
        if (oci_read_exit(c->bundle, &code)) {
            c->state = BAIC_RT_EXITED;
            c->exit_code = code;
        } else if (c->started_at_ms == 0) {
            c->state = BAIC_RT_CREATED;
        } else {
            c->state = BAIC_RT_RUNNING;
            c->pid = oci_runtime_pid(&st->conf, c->name);
            c->oom_fd = oci_cgroup_oom_watch(&st->conf, c->name);
        }
        c->next = st->ctrs;
        st->ctrs = c;
        st->host->log(st->host, BAIC_LOG_INFO, "container_recovered", "kernel=%s state=%d",
                      c->id, (int)c->state);
    }
    closedir(d);
}

static int oci_init(const baic_host_t *host, const json_t *conf, void **state) {
    oci_state_t *st = host->calloc(1, sizeof *st);
    if (st == NULL)
        return UV_ENOMEM;
    st->host = host;
    oci_conf_t *c = &st->conf;
    char rt_path[OCI_PATH_MAX], skopeo[OCI_PATH_MAX], umoci[OCI_PATH_MAX], root[OCI_PATH_MAX];
    char hybrid[16];
    int rc = 0;
    if (conf != NULL && !json_is_object(conf)) {
        host->log(host, BAIC_LOG_ERROR, "config_invalid", "reason=\"plugin table expected\"");
        rc = BAIC_ECONFIG_TYPE;
    }
    if (rc == 0)
        rc = oci_conf_str(host, conf, "runtime", "crun", c->runtime, sizeof c->runtime);
    if (rc == 0 && strcmp(c->runtime, "crun") != 0 && strcmp(c->runtime, "runc") != 0) {
        host->log(host, BAIC_LOG_ERROR, "config_invalid", "key=runtime reason=\"crun or runc\"");
        rc = BAIC_ECONFIG_TYPE;
    }
    if (rc == 0)
        rc = oci_conf_str(host, conf, "runtime_path", c->runtime, rt_path, sizeof rt_path);
    if (rc == 0)
        rc = oci_conf_str(host, conf, "state_dir", "/var/lib/baic/oci", c->state_dir, sizeof c->state_dir);
    if (rc == 0) {
        char def[OCI_PATH_MAX + 16];
        snprintf(def, sizeof def, "%s/images", c->state_dir);
        rc = oci_conf_str(host, conf, "image_dir", def, c->image_dir, sizeof c->image_dir);
    }
    if (rc == 0) {
        char def[OCI_PATH_MAX + 16];
        snprintf(def, sizeof def, "/run/baic-%s", c->runtime);
        rc = oci_conf_str(host, conf, "runtime_root", def, root, sizeof root);
    }
    if (rc == 0)
        rc = oci_conf_str(host, conf, "skopeo", "skopeo", skopeo, sizeof skopeo);
    if (rc == 0)
        rc = oci_conf_str(host, conf, "umoci", "umoci", umoci, sizeof umoci);
    if (rc == 0)
        rc = oci_conf_str(host, conf, "kernel_runner", "", c->kernel_runner, sizeof c->kernel_runner);
    if (rc == 0)
        rc = oci_conf_str(host, conf, "kernel_runner_target", "/opt/backend.ai/bin/baic-kernel-runner",
                          c->kernel_runner_target, sizeof c->kernel_runner_target);
    if (rc == 0)
        rc = oci_conf_str(host, conf, "name_prefix", "baic-", c->name_prefix, sizeof c->name_prefix);
    if (rc == 0)
        rc = oci_conf_str(host, conf, "cgroup_parent", "baic", c->cgroup_parent, sizeof c->cgroup_parent);
    if (rc == 0)
        rc = oci_conf_str(host, conf, "hybrid_workaround", "auto", hybrid, sizeof hybrid);
    const json_t *v = conf != NULL ? json_object_get(conf, "registry_insecure") : NULL;
    if (rc == 0 && v != NULL && !json_is_boolean(v)) {
        host->log(host, BAIC_LOG_ERROR, "config_invalid", "key=registry_insecure reason=\"boolean\"");
        rc = BAIC_ECONFIG_TYPE;
    }
    c->registry_insecure = json_is_true(v);
    v = conf != NULL ? json_object_get(conf, "command_timeout_ms") : NULL;
    c->cmd_timeout_ms = 30000;
    if (rc == 0 && v != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) <= 0) {
            host->log(host, BAIC_LOG_ERROR, "config_invalid", "key=command_timeout_ms reason=\"positive integer\"");
            rc = BAIC_ECONFIG_TYPE;
        } else {
            c->cmd_timeout_ms = (uint64_t)json_integer_value(v);
        }
    }
    if (rc == 0 && (c->state_dir[0] != '/' || c->image_dir[0] != '/' || root[0] != '/' ||
                    strlen(c->state_dir) > OCI_DIR_MAX || strlen(c->image_dir) > OCI_DIR_MAX ||
                    strlen(root) > OCI_DIR_MAX)) {
        host->log(host, BAIC_LOG_ERROR, "config_invalid",
                  "key=state_dir reason=\"absolute paths of at most 1024 bytes needed\"");
        rc = BAIC_ECONFIG_TYPE;
    }
    if (rc != 0) {
        host->free(st);
        return rc;
    }
    snprintf(c->runtime_root, sizeof c->runtime_root, "%s", root);
    oci_which(rt_path, c->runtime_path, sizeof c->runtime_path);
    oci_which(skopeo, c->skopeo, sizeof c->skopeo);
    oci_which(umoci, c->umoci, sizeof c->umoci);
    if (c->runtime_path[0] == '\0') {
        host->log(host, BAIC_LOG_ERROR, "runtime_missing", "runtime=%s path=%s", c->runtime, rt_path);
        host->free(st);
        return BAIC_ECONFIG_MISSING;
    }
    c->cgroup_v2 = oci_is_cgroup2("/sys/fs/cgroup");
    int hybrid_host = !c->cgroup_v2 && oci_is_cgroup2("/sys/fs/cgroup/unified");
    c->hybrid_workaround = strcmp(hybrid, "auto") == 0 ? hybrid_host : strcmp(hybrid, "true") == 0;
    char sub[OCI_PATH_MAX + 16];
    snprintf(sub, sizeof sub, "%s/containers", c->state_dir);
    if ((rc = oci_mkdirs(sub, 0700)) != 0 || (rc = oci_mkdirs(c->image_dir, 0700)) != 0 ||
        (rc = oci_mkdirs(c->runtime_root, 0700)) != 0) {
        host->log(host, BAIC_LOG_ERROR, "state_dir_failed", "dir=%s error=\"%s\"", c->state_dir,
                  strerror(-rc));
        host->free(st);
        return rc;
    }
    if ((rc = oci_image_store_new(host, c, &st->images)) != 0) {
        host->free(st);
        return rc;
    }
    oci_recover(st);
    for (oci_ctr_t *k = st->ctrs; k != NULL; k = k->next)
        if (k->state == BAIC_RT_RUNNING)
            oci_watch_arm(st);
    host->log(host, BAIC_LOG_INFO, "oci_ready",
              "runtime=%s path=%s cgroup=%s hybrid_workaround=%d skopeo=%s umoci=%s",
              c->runtime, c->runtime_path, c->cgroup_v2 ? "v2" : "v1", c->hybrid_workaround,
              c->skopeo[0] ? c->skopeo : "missing", c->umoci[0] ? c->umoci : "missing");
    *state = st;
    return 0;
}

static void oci_fini(void *state) {
    oci_state_t *st = state;
    st->closing = 1;
    if (st->watch_timer != NULL)
        st->host->timer_stop(st->host, st->watch_timer);
    /* Kernels keep running: the next agent finds them through list. */
    for (oci_ctr_t *c = st->ctrs, *n; c != NULL; c = n) {
        n = c->next;
        oci_free_ctr(c);
    }
    oci_image_store_free(st->images);
    st->host->free(st);
}

static const baic_runtime_ops_t oci_ops = {
    .create = oci_create,
    .start = oci_start,
    .stop = oci_stop,
    .destroy = oci_destroy,
    .list = oci_list,
    .watch = oci_watch,
    .exec = oci_exec,
    .stats = oci_stats,
};

BAIC_PLUGIN_DEFINE(runtime, oci, "0.1.0", oci_init, oci_fini, &oci_ops)
