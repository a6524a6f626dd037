/* SPDX-License-Identifier: Apache-2.0 */
/* Scope limits kept as a number in <scope>/.quota: the quota the proxy enforces on uploads where
 * the filesystem has none. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <baic/errors.h>

#include "storage_common.h"

int sc_quotafile_read(sc_volume_t *vol, const char *scope, int64_t *limit) {
    char p[SC_SCOPE_MAX + 16];
    snprintf(p, sizeof p, "%s/%s", scope, SC_QUOTA_FILE);
    *limit = 0;
    int fd = openat(vol->rootfd, p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : sc_errno(errno);
    char buf[32];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    *limit = strtoll(buf, NULL, 10);
    if (*limit < 0)
        *limit = 0;
    return 0;
}

int sc_quotafile_write(sc_volume_t *vol, const char *scope, int64_t limit) {
    char p[SC_SCOPE_MAX + 16], tmp[SC_SCOPE_MAX + 24];
    snprintf(p, sizeof p, "%s/%s", scope, SC_QUOTA_FILE);
    if (limit <= 0) {
        if (unlinkat(vol->rootfd, p, 0) != 0 && errno != ENOENT)
            return sc_errno(errno);
        return 0;
    }
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", scope, SC_QUOTA_FILE);
    int fd = openat(vol->rootfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return sc_errno(errno);
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld\n", (long long)limit);
    int ok = n > 0 && write(fd, buf, (size_t)n) == n;
    close(fd);
    if (!ok || renameat(vol->rootfd, tmp, vol->rootfd, p) != 0)
        return sc_errno(ok ? errno : EIO);
    return 0;
}
