/* SPDX-License-Identifier: Apache-2.0 */
/* storage/nfs: folders on an NFS export the plugin mounts itself (mount -t nfs, soft by default),
 * health probes (statfs with a timeout) that fail the volume's ops fast while the server is away,
 * capacity from the export. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <baic/errors.h>
#include <baic/plugin.h>
#include <baic/storage.h>

#include "nfs_logic.h"
#include "storage_common.h"

extern char **environ;

typedef struct nfs_vol {
    nfs_conf_t conf;
    int mounted_by_us;
    nfs_health_t health;
    baic_timer_t *timer;
    sc_volume_t *vol;
    struct statfs probe; /* the probe's result, written on the pool thread */
    int probe_rc;
} nfs_vol_t;

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The filesystem type and source mounted exactly at path, from /proc/self/mountinfo. */
static int mount_at(const char *path, char *type, size_t tlen, char *src, size_t slen) {
    char real[4096];
    if (realpath(path, real) != NULL)
        path = real; /* mountinfo names the mount point without links or a trailing slash */
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL)
        return -errno;
    char line[8192], mp[4096];
    int found = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "%*d %*d %*u:%*u %*s %4095s", mp) != 1 || strcmp(mp, path) != 0)
            continue;
        const char *sep = strstr(line, " - ");
        char t[64], s[4096];
        if (sep == NULL || sscanf(sep + 3, "%63s %4095s", t, s) != 2)
            continue;
        snprintf(type, tlen, "%s", t);
        snprintf(src, slen, "%s", s);
        found = 1; /* the last one wins: it is on top */
    }
    fclose(f);
    return found ? 0 : BAIC_ENOT_FOUND;
}

/* Runs mount(8) for the export, within the mount timeout; its stderr goes to msg. */
static int run_mount(const nfs_conf_t *c, const char *path, char *msg, size_t msglen) {
    const char *argv[8];
    nfs_mount_argv(c, path, argv);
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return -errno;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    pid_t pid;
    int rc = posix_spawnp(&pid, "mount", &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (rc != 0) {
        close(pfd[0]);
        snprintf(msg, msglen, "cannot run mount: %s", strerror(rc));
        return BAIC_EBACKEND;
    }
    size_t got = 0;
    int64_t deadline = mono_ms() + c->mount_timeout_ms;
    int status = 0, done = 0, timed_out = 0;
    while (!done) {
        int64_t left = deadline - mono_ms();
        if (left <= 0) {
            kill(pid, SIGKILL);
            timed_out = 1;
            waitpid(pid, &status, 0);
            break;
        }
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        if (poll(&p, 1, (int)(left < 200 ? left : 200)) > 0) {
            char buf[512];
            ssize_t n = read(pfd[0], buf, sizeof buf);
            for (ssize_t i = 0; i < n && got + 1 < msglen; i++)
                msg[got++] = buf[i]; /* what does not fit is dropped */
        }
        done = waitpid(pid, &status, WNOHANG) == pid;
    }
    close(pfd[0]);
    msg[got] = '\0';
    for (char *q = msg; *q; q++)
        if (*q == '\n' || *q == '"')
            *q = *q == '\n' ? ' ' : '\'';
    if (timed_out) {
        snprintf(msg, msglen, "mount did not finish within %lld ms",
                 (long long)c->mount_timeout_ms);
        return BAIC_ETIMEOUT;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : BAIC_EBACKEND;
}

/* ---- health ---- */

static void probe_work(void *arg) {
    nfs_vol_t *n = arg;
    n->probe_rc = statfs(n->vol->root, &n->probe) == 0 ? 0 : -errno;
}

static void probe_done(void *arg, int status) {
    nfs_vol_t *n = arg;
    sc_volume_t *vol = n->vol;
    const baic_host_t *h = vol->st->host;
    int was = n->health.healthy;
    nfs_health_result(&n->health, status != 0 ? status : n->probe_rc,
                      (unsigned long)n->probe.f_type);
    if (was != n->health.healthy)
        h->log(h, n->health.healthy ? BAIC_LOG_INFO : BAIC_LOG_WARN, "volume_health",
               "volume=%s healthy=%d reason=\"%s\"", vol->name, n->health.healthy,
               n->health.reason);
    sc_vol_unref(vol); /* may free the volume */
}

static void probe_tick(baic_timer_t *t, void *arg) {
    nfs_vol_t *n = arg;
    sc_volume_t *vol = n->vol;
    const baic_host_t *h = vol->st->host;
    (void)t;
    if (vol->closing)
        return;
    int was = n->health.healthy;
    int start = nfs_health_tick(&n->health, mono_ms(), n->conf.health_timeout_ms);
    if (was && !n->health.healthy)
        h->log(h, BAIC_LOG_WARN, "volume_health", "volume=%s healthy=0 reason=\"%s\"", vol->name,
               n->health.reason);
    if (!start)
        return;
    nfs_health_started(&n->health, mono_ms());
    if (h->queue_work(h, probe_work, probe_done, n) != 0) {
        n->health.inflight = 0;
        return;
    }
    sc_vol_ref(vol); /* the probe holds the volume */
}

static int nfs_health(sc_volume_t *vol, const char **reason) {
    nfs_vol_t *n = vol->priv;
    /* A probe stuck past the timeout counts now, not only at the next tick. */
    nfs_health_tick(&n->health, mono_ms(), n->conf.health_timeout_ms);
    if (!n->health.healthy && reason != NULL)
        *reason = n->health.reason;
    return n->health.healthy;
}

/* ---- volume ---- */

static void nfs_vol_close(sc_volume_t *vol) {
    nfs_vol_t *n = vol->priv;
    const baic_host_t *h = vol->st->host;
    if (n->timer != NULL)
        h->timer_stop(h, n->timer);
    if (n->mounted_by_us && umount2(vol->root, MNT_DETACH) != 0)
        h->log(h, BAIC_LOG_WARN, "volume_unmount_failed", "volume=%s path=%s error=\"%s\"",
               vol->name, vol->root, strerror(errno));
    free(n);
    vol->priv = NULL;
}

static int nfs_vol_open(sc_volume_t *vol, const json_t *conf) {
    const baic_host_t *h = vol->st->host;
    nfs_vol_t *n = calloc(1, sizeof *n);
    if (n == NULL)
        return -ENOMEM;
    n->vol = vol;
    char err[512] = "";
    int rc = nfs_conf_parse(conf, &n->conf, err, sizeof err);
    if (rc != 0) {
        h->log(h, BAIC_LOG_ERROR, "config_error", "volume=%s msg=\"%s\"", vol->name, err);
        free(n);
        return rc;
    }
    char type[64] = "", src[4096] = "";
    int at = mount_at(vol->root, type, sizeof type, src, sizeof src);
    int is_nfs = at == 0 && strncmp(type, "nfs", 3) == 0;
    if (n->conf.server[0] == '\0') {
        if (!is_nfs) {
            h->log(h, BAIC_LOG_ERROR, "config_error",
                   "volume=%s path=%s msg=\"not an NFS mount; "
                   "set server and export to have the plugin mount it\"",
                   vol->name, vol->root);
            free(n);
            return BAIC_ENOT_SUPPORTED;
        }
    } else if (is_nfs) {
        if (strcmp(src, n->conf.source) != 0) {
            h->log(h, BAIC_LOG_ERROR, "config_error",
                   "volume=%s path=%s msg=\"%s is mounted "
                   "there, not %s\"",
                   vol->name, vol->root, src, n->conf.source);
            free(n);
            return BAIC_EEXISTS;
        }
    } else {
        rc = run_mount(&n->conf, vol->root, err, sizeof err);
        if (rc != 0) {
            h->log(h, BAIC_LOG_ERROR, "volume_mount_failed",
                   "volume=%s source=%s path=%s "
                   "error=\"%s\" msg=\"%s\"",
                   vol->name, n->conf.source, vol->root, h->strerror(rc), err);
            free(n);
            return rc;
        }
        n->mounted_by_us = 1;
        h->log(h, BAIC_LOG_INFO, "volume_mounted", "volume=%s source=%s path=%s options=%s",
               vol->name, n->conf.source, vol->root, n->conf.options);
    }
    vol->priv = n;
    struct statfs sf;
    rc = statfs(vol->root, &sf) == 0 ? 0 : -errno;
    nfs_health_result(&n->health, rc, (unsigned long)sf.f_type);
    if (!n->health.healthy) {
        h->log(h, BAIC_LOG_ERROR, "volume_health", "volume=%s healthy=0 reason=\"%s\"", vol->name,
               n->health.reason);
        nfs_vol_close(vol);
        return BAIC_EBACKEND;
    }
    if (h->timer_start(h, (uint64_t)n->conf.health_interval_ms,
                       (uint64_t)n->conf.health_interval_ms, probe_tick, n, &n->timer) != 0)
        n->timer = NULL;
    return 0;
}

static const sc_backend_t nfs_backend = {
    .name = "nfs",
    .vol_open = nfs_vol_open,
    .vol_close = nfs_vol_close,
    .quota_read = sc_quotafile_read,
    .quota_write = sc_quotafile_write,
    .health = nfs_health,
};

static int nfs_init(const baic_host_t *host, const json_t *conf, void **state) {
    return sc_init(host, conf, &nfs_backend, state);
}

BAIC_PLUGIN_DEFINE(storage, nfs, "0.1.0", nfs_init, sc_fini, &sc_ops)
