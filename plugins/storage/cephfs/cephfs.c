/* SPDX-License-Identifier: Apache-2.0 */
/* storage/cephfs: quota scopes limited by the ceph.quota.max_bytes xattr of their directory, usage
 * read from ceph.dir.rbytes / ceph.dir.rfiles (the MDS's recursive statistics), the volume cap as a
 * quota on the root. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <baic/errors.h>
#include <baic/plugin.h>
#include <baic/storage.h>

#include "storage_common.h"

#define CEPH_SUPER_MAGIC_ 0x00c36400
#define X_QUOTA "ceph.quota.max_bytes"
#define X_RBYTES "ceph.dir.rbytes"
#define X_RFILES "ceph.dir.rfiles"

/* An xattr holding a decimal number; ENODATA (not set) reads as 0. */
static int xattr_num(int fd, const char *name, int64_t *out) {
    char buf[32];
    *out = 0;
    ssize_t n = fgetxattr(fd, name, buf, sizeof buf - 1);
    if (n < 0)
        return errno == ENODATA ? 0 : sc_errno(errno);
    buf[n] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno != 0 || end == buf || v < 0)
        return BAIC_EBACKEND; /* not what CephFS answers */
    *out = v;
    return 0;
}

static int dir_fd(sc_volume_t *vol, const char *rel) {
    int fd = openat(vol->rootfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return fd < 0 ? sc_errno(errno) : fd;
}

static int set_quota(int fd, int64_t limit) {
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%" PRId64, limit > 0 ? limit : 0);
    /* 0 removes the quota (CephFS has no removexattr for it). */
    if (fsetxattr(fd, X_QUOTA, buf, (size_t)n, 0) != 0)
        return sc_errno(errno);
    return 0;
}

static int ceph_quota_read(sc_volume_t *vol, const char *scope, int64_t *limit) {
    *limit = 0;
    int fd = dir_fd(vol, scope);
    if (fd == BAIC_ENOT_FOUND)
        return 0; /* no folder and no limit yet */
    if (fd < 0)
        return fd;
    int rc = xattr_num(fd, X_QUOTA, limit);
    close(fd);
    return rc;
}

static int ceph_quota_write(sc_volume_t *vol, const char *scope, int64_t limit) {
    int fd = dir_fd(vol, scope);
    if (fd < 0)
        return fd;
    int rc = set_quota(fd, limit);
    close(fd);
    return rc;
}

static int rstats(sc_volume_t *vol, const char *rel, int64_t *bytes, int64_t *files) {
    *bytes = 0;
    if (files != NULL)
        *files = 0;
    int fd = dir_fd(vol, rel);
    if (fd < 0)
        return fd;
    int rc = xattr_num(fd, X_RBYTES, bytes);
    if (rc == 0 && files != NULL)
        rc = xattr_num(fd, X_RFILES, files);
    close(fd);
    return rc;
}

static int ceph_scope_usage(sc_volume_t *vol, const char *scope, int64_t *bytes, int64_t *files) {
    int rc = rstats(vol, scope, bytes, files);
    return rc == BAIC_ENOT_FOUND ? 0 : rc; /* a scope without folders uses nothing */
}

static int ceph_folder_usage(sc_volume_t *vol, const char *key, int64_t *bytes, int64_t *files) {
    return rstats(vol, key, bytes, files);
}

static int ceph_volume_used(sc_volume_t *vol, int64_t *bytes) {
    return rstats(vol, ".", bytes, NULL);
}

/* The MDS enforces a quota on the root for every client: the cap needs no checks of ours. */
static int ceph_volume_cap(sc_volume_t *vol, int64_t cap) {
    int fd = dir_fd(vol, ".");
    if (fd < 0)
        return fd;
    int rc = set_quota(fd, cap);
    close(fd);
    return rc;
}

static int ceph_vol_open(sc_volume_t *vol, const json_t *conf) {
    (void)conf;
    const baic_host_t *h = vol->st->host;
    struct statfs sf;
    if (statfs(vol->root, &sf) != 0)
        return sc_errno(errno);
    if ((unsigned long)sf.f_type != CEPH_SUPER_MAGIC_) {
        h->log(h, BAIC_LOG_ERROR, "config_error",
               "volume=%s path=%s msg=\"not on a CephFS "
               "mount (kernel client)\"",
               vol->name, vol->root);
        return BAIC_ENOT_SUPPORTED;
    }
    return 0;
}

static const sc_backend_t ceph_backend = {
    .name = "cephfs",
    .vol_open = ceph_vol_open,
    .quota_read = ceph_quota_read,
    .quota_write = ceph_quota_write,
    .scope_usage = ceph_scope_usage,
    .folder_usage = ceph_folder_usage,
    .volume_used = ceph_volume_used,
    .volume_cap = ceph_volume_cap,
};

static int ceph_init(const baic_host_t *host, const json_t *conf, void **state) {
    return sc_init(host, conf, &ceph_backend, state);
}

BAIC_PLUGIN_DEFINE(storage, cephfs, "0.1.0", ceph_init, sc_fini, &sc_ops)
