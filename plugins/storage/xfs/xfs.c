/* SPDX-License-Identifier: Apache-2.0 */
/* storage/xfs: one XFS project per quota scope (project id and inherit flag on the scope
 * directory), limits and usage through quotactl (Q_XSETQLIM / Q_XGETQUOTA), enforced by the kernel
 * for every writer. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/quota.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <linux/dqblk_xfs.h>
#include <linux/fs.h>

#include <baic/errors.h>
#include <baic/plugin.h>
#include <baic/storage.h>

#include "storage_common.h"

#ifndef PRJQUOTA
#define PRJQUOTA 2
#endif
#ifndef SYS_quotactl_fd
#define SYS_quotactl_fd 443
#endif
#define XFS_SUPER_MAGIC_ 0x58465342
#define XFS_BB 512 /* quota limits and counts are in 512-byte basic blocks */
#define XFS_DEFAULT_PROJID_BASE 10000u

typedef struct xfs_vol {
    pthread_mutex_t lock; /* project id allocation */
    uint32_t next_id;
    uint32_t root_id; /* the volume root's own project id (scopes must differ) */
    char dev[4096];   /* block device, for kernels without quotactl_fd */
    int use_fd;       /* quotactl_fd works */
} xfs_vol_t;

/* quotactl on the volume's filesystem: quotactl_fd (5.14+) on the root, else the device. */
static int xquotactl(sc_volume_t *vol, int cmd, uint32_t id, void *addr) {
    xfs_vol_t *x = vol->priv;
    long rc;
    if (x->use_fd)
        rc = syscall(SYS_quotactl_fd, vol->rootfd, QCMD(cmd, PRJQUOTA), id, addr);
    else
        rc = quotactl(QCMD(cmd, PRJQUOTA), x->dev, (int)id, addr);
    return rc == 0 ? 0 : -errno;
}

/* The block device holding path, from /proc/self/mountinfo (major:minor of st_dev). */
static int find_device(const char *path, char *out, size_t outlen) {
    struct stat st;
    if (stat(path, &st) != 0)
        return -errno;
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL)
        return -errno;
    char line[8192];
    int rc = BAIC_ENOT_FOUND;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned maj, min;
        if (sscanf(line, "%*d %*d %u:%u", &maj, &min) != 2 || makedev(maj, min) != st.st_dev)
            continue;
        const char *sep = strstr(line, " - ");
        char type[64], src[4096];
        if (sep == NULL || sscanf(sep + 3, "%63s %4095s", type, src) != 2)
            continue;
        int n = snprintf(out, outlen, "%s", src);
        rc = n > 0 && (size_t)n < outlen ? 0 : -ENAMETOOLONG;
        break;
    }
    fclose(f);
    return rc;
}

/* The project id of a scope directory (0: none yet). fd of the directory. */
static int get_projid(int fd, uint32_t *id) {
    struct fsxattr fx;
    if (ioctl(fd, FS_IOC_FSGETXATTR, &fx) != 0)
        return sc_errno(errno);
    *id = fx.fsx_projid;
    return 0;
}

/* A scope's project id; 0 when it has none of its own (one inherited from the root is not). */
static int scope_projid(sc_volume_t *vol, const char *scope, uint32_t *id) {
    xfs_vol_t *x = vol->priv;
    int fd = openat(vol->rootfd, scope, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return sc_errno(errno);
    int rc = get_projid(fd, id);
    close(fd);
    if (rc == 0 && *id == x->root_id)
        *id = 0;
    return rc;
}

/* 1 when project id is charged with anything or has limits on this filesystem (another
 * volume's scope, an administrator's project). */
static int id_in_use(sc_volume_t *vol, uint32_t id) {
    struct fs_disk_quota d;
    memset(&d, 0, sizeof d);
    int rc = xquotactl(vol, Q_XGETQUOTA, id, &d);
    if (rc == -ENOENT || rc == -ESRCH)
        return 0;
    if (rc != 0)
        return 1; /* cannot tell: do not take it */
    return d.d_icount != 0 || d.d_bcount != 0 || d.d_blk_hardlimit != 0 || d.d_blk_softlimit != 0 ||
           d.d_ino_hardlimit != 0 || d.d_ino_softlimit != 0;
}

static int xfs_scope_prepare(sc_volume_t *vol, const char *scope) {
    xfs_vol_t *x = vol->priv;
    int fd = openat(vol->rootfd, scope, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return sc_errno(errno);
    struct fsxattr fx;
    int rc = 0;
    pthread_mutex_lock(&x->lock);
    if (ioctl(fd, FS_IOC_FSGETXATTR, &fx) != 0) {
        rc = sc_errno(errno);
    } else if (fx.fsx_projid == 0 || fx.fsx_projid == x->root_id ||
               !(fx.fsx_xflags & FS_XFLAG_PROJINHERIT)) {
        if (fx.fsx_projid == 0 || fx.fsx_projid == x->root_id) {
            uint32_t id = x->next_id;
            for (int tries = 0; tries < 65536 && (id == x->root_id || id_in_use(vol, id)); tries++)
                id++;
            fx.fsx_projid = id;
            x->next_id = id + 1;
        }
        fx.fsx_xflags |= FS_XFLAG_PROJINHERIT;
        if (ioctl(fd, FS_IOC_FSSETXATTR, &fx) != 0)
            rc = sc_errno(errno);
    }
    pthread_mutex_unlock(&x->lock);
    close(fd);
    return rc;
}

static int get_dquot(sc_volume_t *vol, uint32_t id, struct fs_disk_quota *d) {
    memset(d, 0, sizeof *d);
    int rc = xquotactl(vol, Q_XGETQUOTA, id, d);
    if (rc == -ENOENT || rc == -ESRCH) {
        memset(d, 0, sizeof *d); /* no dquot yet: nothing used, no limit */
        return 0;
    }
    return rc == 0 ? 0 : sc_errno(-rc);
}

static int xfs_quota_read(sc_volume_t *vol, const char *scope, int64_t *limit) {
    uint32_t id;
    *limit = 0;
    int rc = scope_projid(vol, scope, &id);
    if (rc == BAIC_ENOT_FOUND || (rc == 0 && id == 0))
        return 0; /* no folder and no limit yet */
    struct fs_disk_quota d;
    if (rc == 0)
        rc = get_dquot(vol, id, &d);
    if (rc == 0)
        *limit = (int64_t)d.d_blk_hardlimit * XFS_BB;
    return rc;
}

static int xfs_quota_write(sc_volume_t *vol, const char *scope, int64_t limit) {
    uint32_t id;
    int rc = scope_projid(vol, scope, &id); /* the engine prepared the directory */
    if (rc != 0)
        return rc;
    if (id == 0)
        return BAIC_EINTERNAL;
    struct fs_disk_quota d;
    memset(&d, 0, sizeof d);
    d.d_version = FS_DQUOT_VERSION;
    d.d_flags = FS_PROJ_QUOTA;
    d.d_id = id;
    d.d_fieldmask = FS_DQ_BHARD | FS_DQ_BSOFT;
    uint64_t bb = limit > 0 ? ((uint64_t)limit + XFS_BB - 1) / XFS_BB : 0;
    d.d_blk_hardlimit = bb;
    d.d_blk_softlimit = bb;
    rc = xquotactl(vol, Q_XSETQLIM, id, &d);
    return rc == 0 ? 0 : sc_errno(-rc);
}

static int xfs_scope_usage(sc_volume_t *vol, const char *scope, int64_t *bytes, int64_t *files) {
    uint32_t id;
    *bytes = *files = 0;
    int rc = scope_projid(vol, scope, &id);
    if (rc == BAIC_ENOT_FOUND || (rc == 0 && id == 0))
        return 0;
    struct fs_disk_quota d;
    if (rc == 0)
        rc = get_dquot(vol, id, &d);
    if (rc == 0) {
        *bytes = (int64_t)d.d_bcount * XFS_BB;
        /* Inodes of the project, less the scope directory itself. */
        *files = d.d_icount > 0 ? (int64_t)d.d_icount - 1 : 0;
    }
    return rc;
}

/* Calls fn(vol, scope, projid, arg) for each scope directory under the root. */
static int each_scope(sc_volume_t *vol, int (*fn)(sc_volume_t *, uint32_t, void *), void *arg) {
    int fd = fcntl(vol->rootfd, F_DUPFD_CLOEXEC, 0);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return sc_errno(errno);
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        char scope[SC_SCOPE_MAX + 1];
        if (e->d_name[0] == '.' || sc_parse_scope(e->d_name, scope) != 0 ||
            strcmp(scope, e->d_name) != 0)
            continue;
        uint32_t id = 0;
        if (scope_projid(vol, scope, &id) != 0 || id == 0)
            continue; /* not a directory, or not prepared */
        rc = fn(vol, id, arg);
    }
    closedir(d);
    return rc;
}

static int add_used(sc_volume_t *vol, uint32_t id, void *arg) {
    struct fs_disk_quota d;
    int rc = get_dquot(vol, id, &d);
    if (rc == 0)
        *(int64_t *)arg += (int64_t)d.d_bcount * XFS_BB;
    return rc;
}

static int xfs_volume_used(sc_volume_t *vol, int64_t *bytes) {
    *bytes = 0;
    return each_scope(vol, add_used, bytes);
}

static int max_id(sc_volume_t *vol, uint32_t id, void *arg) {
    (void)vol;
    uint32_t *m = arg;
    if (id >= *m)
        *m = id + 1;
    return 0;
}

static void xfs_vol_close(sc_volume_t *vol) {
    xfs_vol_t *x = vol->priv;
    pthread_mutex_destroy(&x->lock);
    free(x);
    vol->priv = NULL;
}

static int xfs_vol_open(sc_volume_t *vol, const json_t *conf) {
    const baic_host_t *h = vol->st->host;
    struct statfs sf;
    if (statfs(vol->root, &sf) != 0)
        return sc_errno(errno);
    if ((unsigned long)sf.f_type != XFS_SUPER_MAGIC_) {
        h->log(h, BAIC_LOG_ERROR, "config_error",
               "volume=%s path=%s msg=\"not on an XFS "
               "filesystem\"",
               vol->name, vol->root);
        return BAIC_ENOT_SUPPORTED;
    }
    int64_t base = XFS_DEFAULT_PROJID_BASE;
    const json_t *b = json_object_get(conf, "project_id_base");
    if (b != NULL) {
        base = json_integer_value(b);
        if (!json_is_integer(b) || base < 1 || base > 0x7fffffff) {
            h->log(h, BAIC_LOG_ERROR, "config_error",
                   "volume=%s msg=\"project_id_base must be an "
                   "integer from 1 to 2147483647\"",
                   vol->name);
            return BAIC_ECONFIG_TYPE;
        }
    }
    xfs_vol_t *x = calloc(1, sizeof *x);
    if (x == NULL)
        return -ENOMEM;
    pthread_mutex_init(&x->lock, NULL);
    vol->priv = x;
    /* Project quotas must be accounted and enforced (mount -o prjquota / pquota). */
    int rfd = open(vol->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rfd < 0) {
        int rc = sc_errno(errno);
        xfs_vol_close(vol);
        return rc;
    }
    struct fs_quota_stat qs;
    memset(&qs, 0, sizeof qs);
    x->use_fd = 1;
    long qrc = syscall(SYS_quotactl_fd, rfd, QCMD(Q_XGETQSTAT, PRJQUOTA), 0, &qs);
    int err = qrc == 0 ? 0 : errno;
    if (qrc != 0 && err == ENOSYS) {
        x->use_fd = 0;
        int rc = find_device(vol->root, x->dev, sizeof x->dev);
        qrc = rc == 0 ? quotactl(QCMD(Q_XGETQSTAT, PRJQUOTA), x->dev, 0, (caddr_t)&qs) : -1;
        err = qrc == 0 ? 0 : (rc != 0 ? -rc : errno);
    }
    close(rfd);
    if (qrc != 0 || !(qs.qs_flags & FS_QUOTA_PDQ_ACCT) || !(qs.qs_flags & FS_QUOTA_PDQ_ENFD)) {
        h->log(h, BAIC_LOG_ERROR, "config_error",
               "volume=%s path=%s msg=\"XFS project quotas are "
               "not %s: mount the filesystem with -o prjquota\" error=\"%s\"",
               vol->name, vol->root, qrc != 0 ? "available" : "enforced",
               qrc != 0 ? strerror(err) : "-");
        xfs_vol_close(vol);
        return BAIC_ENOT_SUPPORTED;
    }
    /* New scopes take ids above every id in use under this root. */
    uint32_t next = (uint32_t)base;
    vol->rootfd = open(vol->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (vol->rootfd >= 0 && get_projid(vol->rootfd, &x->root_id) != 0)
        x->root_id = 0;
    if (vol->rootfd >= 0) {
        each_scope(vol, max_id, &next);
        close(vol->rootfd);
        vol->rootfd = -1;
    }
    x->next_id = next;
    return 0;
}

static const sc_backend_t xfs_backend = {
    .name = "xfs",
    .vol_open = xfs_vol_open,
    .vol_close = xfs_vol_close,
    .scope_prepare = xfs_scope_prepare,
    .quota_read = xfs_quota_read,
    .quota_write = xfs_quota_write,
    .scope_usage = xfs_scope_usage,
    .volume_used = xfs_volume_used,
};

static int xfs_init(const baic_host_t *host, const json_t *conf, void **state) {
    return sc_init(host, conf, &xfs_backend, state);
}

BAIC_PLUGIN_DEFINE(storage, xfs, "0.1.0", xfs_init, sc_fini, &sc_ops)
