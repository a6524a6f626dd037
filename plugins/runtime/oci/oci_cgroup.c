/* SPDX-License-Identifier: Apache-2.0 */
/* runtime/oci: the per-kernel cgroup the plugin owns (limits, OOM counters, stats), v1 and v2. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci.h"

/*
 * Layout: <root>/<cgroup_parent>/<name> is ours and carries the memory limit; the
 * runtime's own cgroup is <name>/c beneath it (cgroupsPath in config.json). The
 * runtime removes its cgroup when the container goes, which would take the OOM
 * counter with it; ours stays until destroy, so an OOM is still readable after exit.
 */

static const char *cg_v1_dirs[] = {"memory", "cpuacct", "pids", "cpu,cpuacct"};

static int cg_write(const char *dir, const char *file, const char *val) {
    char p[OCI_PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    FILE *f = fopen(p, "we");
    if (f == NULL)
        return -errno;
    int rc = fputs(val, f) < 0 ? -EIO : 0;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

static int64_t cg_read_i64(const char *dir, const char *file) {
    char p[OCI_PATH_MAX], buf[64];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    if (oci_read_file(p, buf, sizeof buf) <= 0)
        return -1;
    if (strncmp(buf, "max", 3) == 0)
        return -1;
    return strtoll(buf, NULL, 10);
}

/* The value of "key N" in a flat-keyed file (memory.events, memory.oom_control, cpu.stat). */
static int64_t cg_read_key(const char *dir, const char *file, const char *key) {
    char p[OCI_PATH_MAX], buf[4096];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    if (oci_read_file(p, buf, sizeof buf) <= 0)
        return -1;
    size_t kl = strlen(key);
    for (char *line = buf; line != NULL && *line != '\0';) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ' ')
            return strtoll(line + kl + 1, NULL, 10);
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return -1;
}

static void cg_v1_path(const oci_conf_t *c, const char *ctrl, const char *name, char *out,
                       size_t n) {
    snprintf(out, n, "/sys/fs/cgroup/%s/%s/%s", ctrl, c->cgroup_parent, name);
}

static int cg_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

int oci_cgroup_create(const oci_conf_t *c, const char *name, int64_t memory_bytes) {
    char p[OCI_PATH_MAX], v[32];
    int rc;
    if (c->cgroup_v2) {
        /* Controllers must be enabled down the tree for the limit and the runtime's child. */
        snprintf(p, sizeof p, "/sys/fs/cgroup/%s", c->cgroup_parent);
        if ((rc = oci_mkdirs(p, 0755)) != 0)
            return rc;
        cg_write("/sys/fs/cgroup", "cgroup.subtree_control", "+memory +pids +cpu");
        cg_write(p, "cgroup.subtree_control", "+memory +pids +cpu");
        snprintf(p, sizeof p, "/sys/fs/cgroup/%s/%s", c->cgroup_parent, name);
        if ((rc = oci_mkdirs(p, 0755)) != 0)
            return rc;
        cg_write(p, "cgroup.subtree_control", "+memory +pids +cpu");
        if (memory_bytes > 0) {
            snprintf(v, sizeof v, "%lld", (long long)memory_bytes);
            if ((rc = cg_write(p, "memory.max", v)) != 0)
                return rc;
            cg_write(p, "memory.swap.max", "0");
        }
        return 0;
    }
    cg_v1_path(c, "memory", name, p, sizeof p);
    if ((rc = oci_mkdirs(p, 0755)) != 0)
        return rc;
    if (memory_bytes > 0) {
        snprintf(v, sizeof v, "%lld", (long long)memory_bytes);
        if ((rc = cg_write(p, "memory.limit_in_bytes", v)) != 0)
            return rc;
        /* No swap beyond the limit where the kernel accounts it (absent otherwise). */
        cg_write(p, "memory.memsw.limit_in_bytes", v);
    }
    return 0;
}

int oci_cgroup_remove(const oci_conf_t *c, const char *name) {
    char p[OCI_PATH_MAX], q[OCI_PATH_MAX];
    int rc = 0;
    if (c->cgroup_v2) {
        snprintf(p, sizeof p, "/sys/fs/cgroup/%s/%s", c->cgroup_parent, name);
        snprintf(q, sizeof q, "%s/c", p);
        rmdir(q);
        if (rmdir(p) != 0 && errno != ENOENT)
            rc = -errno;
        return rc;
    }
    /*
     * The runtime creates <name>/c in every hierarchy it joins (blkio, cpuset, devices,
     * freezer, the named systemd one, the unified tree of a hybrid host...) but removes
     * only c on delete: <name> is ours to remove wherever it exists. A symlinked
     * controller ("cpu" -> "cpu,cpuacct") is met twice; the second rmdir sees ENOENT.
     */
    DIR *d = opendir("/sys/fs/cgroup");
    if (d == NULL)
        return -errno;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (de->d_name[0] == '.')
            continue;
        cg_v1_path(c, de->d_name, name, p, sizeof p);
        snprintf(q, sizeof q, "%s/c", p);
        rmdir(q); /* left behind only when the runtime lost track of it */
        if (rmdir(p) != 0 && errno != ENOENT && errno != ENOTDIR && rc == 0)
            rc = -errno;
    }
    closedir(d);
    return rc;
}

int oci_cgroup_oom_watch(const oci_conf_t *c, const char *name) {
    if (c->cgroup_v2)
        return -1; /* memory.events is hierarchical there: no registration needed */
    /*
     * v1 counts an OOM kill in the victim's own cgroup (the runtime's, gone when the
     * container is) and not in its parents. The OOM notification, however, fires on
     * the cgroup whose limit was hit, which is ours: register an eventfd for it.
     */
    char p[OCI_PATH_MAX], line[64];
    cg_v1_path(c, "memory", name, p, sizeof p);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0)
        return -1;
    char f[OCI_PATH_MAX + 32];
    snprintf(f, sizeof f, "%s/memory.oom_control", p);
    int ofd = open(f, O_RDONLY | O_CLOEXEC);
    if (ofd < 0) {
        close(efd);
        return -1;
    }
    snprintf(line, sizeof line, "%d %d", efd, ofd);
    int rc = cg_write(p, "cgroup.event_control", line);
    close(ofd);
    if (rc != 0) {
        close(efd);
        return -1;
    }
    return efd;
}

int oci_cgroup_oom_check(const oci_conf_t *c, const char *name, int efd, int64_t *seen) {
    if (c->cgroup_v2) {
        char p[OCI_PATH_MAX];
        snprintf(p, sizeof p, "/sys/fs/cgroup/%s/%s", c->cgroup_parent, name);
        int64_t n = cg_read_key(p, "memory.events", "oom_kill");
        if (n > *seen) {
            *seen = n;
            return 1;
        }
        return 0;
    }
    uint64_t v = 0;
    if (efd >= 0 && read(efd, &v, sizeof v) == (ssize_t)sizeof v && v > 0) {
        *seen += (int64_t)v;
        return 1;
    }
    return 0;
}

int64_t oci_cgroup_failcnt(const oci_conf_t *c, const char *name) {
    char p[OCI_PATH_MAX];
    if (c->cgroup_v2) {
        snprintf(p, sizeof p, "/sys/fs/cgroup/%s/%s", c->cgroup_parent, name);
        return cg_read_key(p, "memory.events", "max");
    }
    cg_v1_path(c, "memory", name, p, sizeof p);
    return cg_read_i64(p, "memory.failcnt");
}

void oci_cgroup_stats(const oci_conf_t *c, const char *name, baic_rt_stats_t *st) {
    char p[OCI_PATH_MAX], q[OCI_PATH_MAX];
    int64_t v;
    if (c->cgroup_v2) {
        snprintf(p, sizeof p, "/sys/fs/cgroup/%s/%s", c->cgroup_parent, name);
        st->mem_used_bytes = cg_read_i64(p, "memory.current");
        st->mem_max_bytes = cg_read_i64(p, "memory.peak");
        v = cg_read_key(p, "cpu.stat", "usage_usec");
        st->cpu_used_ns = v > 0 ? (uint64_t)v * 1000 : 0;
        v = cg_read_i64(p, "pids.current");
        st->pids = v > 0 ? v : 0;
        return;
    }
    cg_v1_path(c, "memory", name, p, sizeof p);
    st->mem_used_bytes = cg_read_i64(p, "memory.usage_in_bytes");
    st->mem_max_bytes = cg_read_i64(p, "memory.max_usage_in_bytes");
    /* cpu and pids are counted by the runtime's cgroup (nested in ours for memory only). */
    for (size_t i = 1; i < sizeof cg_v1_dirs / sizeof cg_v1_dirs[0]; i++) {
        if (strcmp(cg_v1_dirs[i], "pids") == 0)
            continue;
        cg_v1_path(c, cg_v1_dirs[i], name, p, sizeof p);
        snprintf(q, sizeof q, "%s/c", p);
        if (cg_exists(q)) {
            v = cg_read_i64(q, "cpuacct.usage");
            st->cpu_used_ns = v > 0 ? (uint64_t)v : 0;
            break;
        }
    }
    cg_v1_path(c, "pids", name, p, sizeof p);
    snprintf(q, sizeof q, "%s/c", p);
    v = cg_read_i64(q, "pids.current");
    st->pids = v > 0 ? v : 0;
}
