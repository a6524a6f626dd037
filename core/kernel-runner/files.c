/* SPDX-License-Identifier: Apache-2.0 */
/* File list, upload and download, confined to the kernel's home (/home/work). */
#define _GNU_SOURCE
#include "runner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifdef __has_include
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#define KR_HAVE_OPENAT2_H 1
#endif
#endif
#ifndef KR_HAVE_OPENAT2_H
struct open_how {
    unsigned long long flags, mode, resolve;
};
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_BENEATH 0x08
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

/* The container's home as users write it; clients may send absolute paths inside it. */
#define KR_HOME_PREFIX "/home/work"

/* Rewrites path into a clean relative form (no ".", "..", empty parts) in out.
 * Returns 0, or -EPERM with *err set when the path leaves the root. */
static int normalize(const char *path, char *out, size_t outlen, const char **err)
{
    size_t plen = strlen(KR_HOME_PREFIX);
    if (strncmp(path, KR_HOME_PREFIX, plen) == 0 && (path[plen] == '/' || path[plen] == '\0'))
        path += plen;
    else if (path[0] == '/') {
        *err = "absolute paths outside /home/work are refused";
        return -EPERM;
    }
    size_t len = 0;
    size_t marks[256];
    int depth = 0;
    while (*path != '\0') {
        while (*path == '/')
            path++;
        const char *end = strchrnul(path, '/');
        size_t n = (size_t)(end - path);
        if (n == 0)
            break;
        if (n == 1 && path[0] == '.') {
            /* nothing */
        } else if (n == 2 && path[0] == '.' && path[1] == '.') {
            if (depth == 0) {
                *err = "path escapes /home/work through \"..\"";
                return -EPERM;
            }
            len = marks[--depth];
        } else {
            if (depth == (int)(sizeof marks / sizeof marks[0]) || len + n + 2 > outlen) {
                *err = "path too long";
                return -ENAMETOOLONG;
            }
            marks[depth++] = len;
            if (len > 0)
                out[len++] = '/';
            memcpy(out + len, path, n);
            len += n;
        }
        path = end;
    }
    if (len == 0)
        out[len++] = '.';
    out[len] = '\0';
    return 0;
}

/* Component walk for kernels without openat2: never follows a symlink at all. */
static int walk_open(int root, char *rel, int flags, mode_t mode, int mkparents)
{
    int cur = dup(root);
    if (cur < 0)
        return -errno;
    char *p = rel;
    for (;;) {
        char *slash = strchr(p, '/');
        if (slash == NULL)
            break;
        *slash = '\0';
        int next = openat(cur, p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (next < 0 && errno == ENOTDIR && fstatat(cur, p, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISLNK(st.st_mode))
            errno = ELOOP;
        if (next < 0 && errno == ENOENT && mkparents) {
            if (mkdirat(cur, p, 0755) < 0 && errno != EEXIST) {
                int e = -errno;
                *slash = '/';
                close(cur);
                return e;
            }
            next = openat(cur, p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        int e = -errno;
        *slash = '/';
        close(cur);
        if (next < 0)
            return e;
        cur = next;
        p = slash + 1;
    }
    int fd = openat(cur, p, flags | O_NOFOLLOW | O_CLOEXEC, mode);
    int e = -errno;
    close(cur);
    return fd >= 0 ? fd : e;
}

static int beneath_open(struct kr *kr, const char *rel, int flags, mode_t mode)
{
    struct open_how how = {.flags = (unsigned long long)(flags | O_CLOEXEC),
                           .mode = (flags & O_CREAT) ? mode : 0,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    long fd = syscall(SYS_openat2, kr->root_fd, rel, &how, sizeof how);
    return fd >= 0 ? (int)fd : -errno;
}

int kr_files_open(struct kr *kr, const char *path, int flags, mode_t mode, int mkparents,
                  const char **err)
{
    char rel[4096];
    int rc = normalize(path, rel, sizeof rel, err);
    if (rc < 0)
        return rc;
    *err = NULL;
    if (!kr->conf.no_openat2) {
        if (mkparents) {
            /* Each missing parent is made inside the one already opened beneath the root. */
            for (char *s = strchr(rel, '/'); s != NULL; s = strchr(s + 1, '/')) {
                *s = '\0';
                int d = beneath_open(kr, rel, O_PATH | O_DIRECTORY, 0);
                if (d == -ENOENT) {
                    char *base = strrchr(rel, '/');
                    int parent = base ? (*base = '\0', beneath_open(kr, rel, O_PATH | O_DIRECTORY, 0))
                                      : dup(kr->root_fd);
                    if (base)
                        *base = '/';
                    if (parent >= 0) {
                        if (mkdirat(parent, base ? base + 1 : rel, 0755) < 0 && errno != EEXIST)
                            d = -errno;
                        else
                            d = 0;
                        close(parent);
                    } else {
                        d = parent;
                    }
                } else if (d >= 0) {
                    close(d);
                    d = 0;
                }
                *s = '/';
                if (d < 0) {
                    rc = d;
                    goto out;
                }
            }
        }
        rc = beneath_open(kr, rel, flags, mode);
        if (rc != -ENOSYS)
            goto out;
    }
    rc = walk_open(kr->root_fd, rel, flags, mode, mkparents);
out:
    if (rc == -EXDEV || rc == -ELOOP)
        *err = "refused: the path leaves /home/work through a symbolic link";
    else if (rc < 0)
        *err = strerror(-rc);
    return rc;
}

static void mode_string(mode_t m, char out[11])
{
    out[0] = S_ISDIR(m) ? 'd' : S_ISLNK(m) ? 'l' : S_ISCHR(m) ? 'c' : S_ISBLK(m) ? 'b'
             : S_ISFIFO(m) ? 'p' : S_ISSOCK(m) ? 's' : '-';
    static const char rwx[] = "rwxrwxrwx";
    for (int i = 0; i < 9; i++)
        out[1 + i] = (m & (0400u >> i)) ? rwx[i] : '-';
    out[10] = '\0';
}

static double ts(struct timespec t)
{
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void files_list(struct kr *kr, unsigned conn, json_t *id, const char *path)
{
    const char *err;
    int fd = kr_files_open(kr, path, O_RDONLY | O_DIRECTORY, 0, 0, &err);
    if (fd < 0) {
        kr_send_error(kr, conn, id, fd == -ENOENT ? "not-found" : "refused", "%s: %s", path, err);
        return;
    }
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        kr_send_error(kr, conn, id, "failed", "%s: %s", path, strerror(errno));
        return;
    }
    json_t *files = json_array();
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        char mode[11];
        mode_string(st.st_mode, mode);
        json_array_append_new(files,
                              json_pack("{s:s,s:s,s:I,s:f,s:f,s:f}", "filename", de->d_name,
                                        "mode", mode, "size", (json_int_t)st.st_size, "ctime",
                                        ts(st.st_ctim), "mtime", ts(st.st_mtim), "atime",
                                        ts(st.st_atim)));
    }
    closedir(d);
    kr_send(kr, conn, json_pack("{s:O?,s:b,s:s,s:o}", "id", id, "ok", 1, "abspath", path, "files",
                                files));
}

static void files_upload(struct kr *kr, unsigned conn, json_t *id, const char *path,
                         const char *b64, size_t b64len)
{
    unsigned char *data;
    size_t len;
    if (kr_b64_decode(b64, b64len, &data, &len) < 0) {
        kr_send_error(kr, conn, id, "invalid-request", "data_b64 is not base64");
        return;
    }
    if (len > kr->conf.max_file) {
        free(data);
        kr_send_error(kr, conn, id, "too-large", "%zu bytes is over the %zu byte limit", len,
                      kr->conf.max_file);
        return;
    }
    const char *err;
    int fd = kr_files_open(kr, path, O_WRONLY | O_CREAT | O_TRUNC, 0644, 1, &err);
    if (fd < 0) {
        free(data);
        kr_send_error(kr, conn, id, "refused", "%s: %s", path, err);
        return;
    }
    size_t off = 0;
    int rc = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = -errno;
            break;
        }
        off += (size_t)w;
    }
    close(fd);
    free(data);
    if (rc < 0)
        kr_send_error(kr, conn, id, "failed", "%s: %s", path, strerror(-rc));
    else
        kr_send(kr, conn, json_pack("{s:O?,s:b,s:s,s:I}", "id", id, "ok", 1, "path", path, "size",
                                    (json_int_t)len));
}

static void files_download(struct kr *kr, unsigned conn, json_t *id, const char *path)
{
    const char *err;
    int fd = kr_files_open(kr, path, O_RDONLY, 0, 0, &err);
    if (fd < 0) {
        kr_send_error(kr, conn, id, fd == -ENOENT ? "not-found" : "refused", "%s: %s", path, err);
        return;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        kr_send_error(kr, conn, id, "refused", "%s: not a regular file", path);
        return;
    }
    if ((size_t)st.st_size > kr->conf.max_file) {
        close(fd);
        kr_send_error(kr, conn, id, "too-large", "%s: %lld bytes is over the %zu byte limit",
                      path, (long long)st.st_size, kr->conf.max_file);
        return;
    }
    struct kr_buf b = {0};
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0 && b.len + (size_t)n <= kr->conf.max_file)
            kr_buf_add(&b, buf, (size_t)n);
    close(fd);
    char *enc = kr_b64_encode(b.p ? b.p : "", b.len);
    kr_send(kr, conn, json_pack("{s:O?,s:b,s:s,s:I,s:s}", "id", id, "ok", 1, "path", path, "size",
                                (json_int_t)b.len, "data_b64", enc ? enc : ""));
    free(enc);
    kr_buf_free(&b);
}

void kr_files_request(struct kr *kr, unsigned conn, json_t *id, const char *op, json_t *req)
{
    const char *path = ".";
    const char *b64 = NULL;
    size_t b64len = 0;
    json_error_t jerr;
    if (json_unpack_ex(req, &jerr, 0, "{s?s,s?s%}", "path", &path, "data_b64", &b64, &b64len) <
        0) {
        kr_send_error(kr, conn, id, "invalid-request", "files.%s: %s", op, jerr.text);
        return;
    }
    if (strcmp(op, "list") == 0) {
        files_list(kr, conn, id, path);
    } else if (strcmp(op, "upload") == 0) {
        if (b64 == NULL || strcmp(path, ".") == 0) {
            kr_send_error(kr, conn, id, "invalid-request", "files.upload needs path and data_b64");
            return;
        }
        files_upload(kr, conn, id, path, b64, b64len);
    } else if (strcmp(op, "download") == 0) {
        files_download(kr, conn, id, path);
    } else {
        kr_send_error(kr, conn, id, "unknown-op", "unknown op \"files.%s\"", op);
    }
}
