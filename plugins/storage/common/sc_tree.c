/* SPDX-License-Identifier: Apache-2.0 */
/* Whole-tree walks (usage, removal, copy) that never follow a symlink; run on pool threads. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <baic/errors.h>

#include "storage_common.h"

#define SC_MAX_DEPTH 256

static int tree_usage(int dirfd, int64_t *bytes, int64_t *files, int depth) {
    if (depth > SC_MAX_DEPTH)
        return -ELOOP;
    int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return sc_errno(errno);
    }
    rewinddir(d); /* the dup shares its offset with the caller's fd, which may have been read */
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue; /* raced with a removal */
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0)
                continue;
            rc = tree_usage(sub, bytes, files, depth + 1);
            close(sub);
        } else if (S_ISREG(st.st_mode)) {
            *bytes += st.st_size;
            *files += 1;
        }
    }
    closedir(d);
    return rc;
}

int sc_tree_usage(int dirfd, int64_t *bytes, int64_t *files) {
    *bytes = *files = 0;
    return tree_usage(dirfd, bytes, files, 0);
}

static int tree_remove(int dirfd, const char *name, int64_t *bytes, int64_t *files, int depth) {
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return sc_errno(errno);
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(dirfd, name, 0) != 0)
            return sc_errno(errno);
        if (S_ISREG(st.st_mode)) {
            *bytes += st.st_size;
            *files += 1;
        }
        return 0;
    }
    if (depth > SC_MAX_DEPTH)
        return -ELOOP;
    int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0)
        return sc_errno(errno);
    int fd = fcntl(sub, F_DUPFD_CLOEXEC, 0);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        close(sub);
        return sc_errno(errno);
    }
    rewinddir(d); /* the dup shares its offset with the caller's fd, which may have been read */
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        rc = tree_remove(sub, e->d_name, bytes, files, depth + 1);
    }
    closedir(d);
    close(sub);
    if (rc == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) != 0)
        rc = sc_errno(errno);
    return rc;
}

int sc_tree_remove(int dirfd, const char *name, int64_t *bytes, int64_t *files) {
    return tree_remove(dirfd, name, bytes, files, 0);
}

static int copy_file(int src, int dst, int64_t size) {
    int64_t left = size;
    while (left > 0) {
        ssize_t n = copy_file_range(src, NULL, dst, NULL, (size_t)left, 0);
        if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL))
            break; /* plain copy below */
        if (n < 0)
            return sc_errno(errno);
        if (n == 0)
            return 0;
        left -= n;
    }
    char buf[65536];
    while (left > 0) {
        ssize_t n = read(src, buf, sizeof buf);
        if (n < 0)
            return sc_errno(errno);
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(dst, buf + off, (size_t)(n - off));
            if (w < 0)
                return sc_errno(errno);
            off += w;
        }
        left -= n;
    }
    return 0;
}

static int tree_copy(int srcfd, int dstfd, int64_t *bytes, int64_t *files, int depth) {
    if (depth > SC_MAX_DEPTH)
        return -ELOOP;
    int fd = fcntl(srcfd, F_DUPFD_CLOEXEC, 0);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return sc_errno(errno);
    }
    rewinddir(d); /* the dup shares its offset with the caller's fd, which may have been read */
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(srcfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (mkdirat(dstfd, e->d_name, st.st_mode & 07777) != 0) {
                rc = sc_errno(errno);
                break;
            }
            int s = openat(srcfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            int t = openat(dstfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            rc = (s < 0 || t < 0) ? sc_errno(errno) : tree_copy(s, t, bytes, files, depth + 1);
            if (s >= 0)
                close(s);
            if (t >= 0)
                close(t);
        } else if (S_ISREG(st.st_mode)) {
            int s = openat(srcfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            int t = openat(dstfd, e->d_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                           st.st_mode & 07777);
            rc = (s < 0 || t < 0) ? sc_errno(errno) : copy_file(s, t, st.st_size);
            if (s >= 0)
                close(s);
            if (t >= 0)
                close(t);
            if (rc == 0) {
                *bytes += st.st_size;
                *files += 1;
            }
        } else if (S_ISLNK(st.st_mode)) {
            /* Copied as the link it is, never followed. */
            char target[4096];
            ssize_t n = readlinkat(srcfd, e->d_name, target, sizeof target - 1);
            if (n >= 0) {
                target[n] = '\0';
                if (symlinkat(target, dstfd, e->d_name) != 0)
                    rc = sc_errno(errno);
            }
        }
    }
    closedir(d);
    return rc;
}

int sc_tree_copy(int srcfd, int dstfd, int64_t *bytes, int64_t *files) {
    *bytes = *files = 0;
    return tree_copy(srcfd, dstfd, bytes, files, 0);
}
