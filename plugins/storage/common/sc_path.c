/* SPDX-License-Identifier: Apache-2.0 */
/* Folder ids and confined path resolution: nothing outside a folder is ever opened. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include <baic/errors.h>

#include "storage_common.h"

int sc_errno(int e) {
    switch (e) {
    case ENOENT:
    case ENOTDIR:
        return BAIC_ENOT_FOUND;
    case EEXIST:
        return BAIC_EEXISTS;
    case EXDEV:
    case ELOOP:
    case EACCES:
    case EPERM:
        return BAIC_EPERMISSION;
    case EDQUOT:
    case ENOSPC:
        return BAIC_EQUOTA;
    default:
        return -e;
    }
}

static int is_hex(int c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* 32 hex digits, dashes allowed where a dashed UUID has them; out: lower-case hex. */
static int parse_uuid(const char *s, size_t n, char out[33]) {
    size_t o = 0;
    if (n != 32 && n != 36)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (n == 36 && (i == 8 || i == 13 || i == 18 || i == 23)) {
            if (s[i] != '-')
                return -1;
            continue;
        }
        if (!is_hex((unsigned char)s[i]) || o >= 32)
            return -1;
        char c = s[i];
        out[o++] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
    }
    out[o] = '\0';
    return o == 32 ? 0 : -1;
}

static int scope_ok(const char *s, size_t n) {
    if (n == 0 || n > SC_SCOPE_MAX || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == ':' || c == '.'))
            return 0;
    }
    return 1;
}

int sc_parse_folder(const char *id, char scope[SC_SCOPE_MAX + 1], char key[SC_SCOPE_MAX + 40]) {
    if (id == NULL)
        return BAIC_EBAD_INPUT;
    const char *slash = strchr(id, '/');
    const char *u = slash ? slash + 1 : id;
    size_t sl = slash ? (size_t)(slash - id) : strlen(SC_DEFAULT_SCOPE);
    const char *sp = slash ? id : SC_DEFAULT_SCOPE;
    char hex[33];
    if (!scope_ok(sp, sl) || parse_uuid(u, strlen(u), hex) != 0)
        return BAIC_EBAD_INPUT;
    memcpy(scope, sp, sl);
    scope[sl] = '\0';
    int n = snprintf(key, SC_SCOPE_MAX + 40, "%s/%s", scope, hex);
    return n > 0 && n < SC_SCOPE_MAX + 40 ? 0 : BAIC_EBAD_INPUT;
}

int sc_parse_scope(const char *id, char scope[SC_SCOPE_MAX + 1]) {
    char key[SC_SCOPE_MAX + 40];
    if (id != NULL && sc_parse_folder(id, scope, key) == 0)
        return 0; /* a folder id stands for its scope */
    if (id == NULL || !scope_ok(id, strlen(id)))
        return BAIC_EBAD_INPUT;
    memcpy(scope, id, strlen(id) + 1);
    return 0;
}

int sc_norm_path(const char *in, char *out) {
    if (in == NULL)
        return BAIC_EBAD_INPUT;
    if (in[0] == '/')
        return BAIC_EPERMISSION;
    size_t o = 0;
    const char *p = in;
    while (*p) {
        while (*p == '/')
            p++;
        if (*p == '\0')
            break;
        size_t n = strcspn(p, "/");
        if (n == 1 && p[0] == '.') {
            /* nothing */
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (o == 0)
                return BAIC_EPERMISSION;
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--; /* the slash before the dropped component */
        } else {
            if (o > 0)
                out[o++] = '/';
            memcpy(out + o, p, n);
            o += n;
        }
        p += n;
    }
    out[o] = '\0';
    return 0;
}

/* 1 when openat2 (Linux 5.6+) works here; probed at volume_open. BAIC_VFS_NO_OPENAT2=1
 * forces the fallback (tests). */
static int have_openat2 = 0;

static int open_walk(int dirfd, const char *path, int flags, mode_t mode) {
    /* Fallback without openat2: one component at a time, never following a symlink.
     * The path is normalised, so there is no ".." to climb out with. */
    int cur = dirfd;
    const char *p = path;
    for (;;) {
        size_t n = strcspn(p, "/");
        char name[256];
        if (n == 0 || n >= sizeof name) {
            if (cur != dirfd)
                close(cur);
            return n == 0 ? BAIC_EBAD_INPUT : -ENAMETOOLONG;
        }
        memcpy(name, p, n);
        name[n] = '\0';
        int last = p[n] == '\0';
        int fd = last ? openat(cur, name, flags | O_NOFOLLOW | O_CLOEXEC, mode)
                      : openat(cur, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        struct stat st;
        /* O_NOFOLLOW fails on a link with ELOOP, or ENOTDIR when a directory was asked
         * for: either way a link is refused, not reported missing. */
        if (fd < 0 && fstatat(cur, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
            e = ELOOP;
        if (cur != dirfd)
            close(cur);
        if (fd < 0)
            return sc_errno(e);
        if (last)
            return fd;
        cur = fd;
        p += n + 1;
    }
}

void sc_probe_openat2(int rootfd) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    long fd = syscall(SYS_openat2, rootfd, ".", &how, sizeof how);
    /* ENOSYS: kernel before 5.6; EPERM: a seccomp filter that refuses it. */
    const char *force = getenv("BAIC_VFS_NO_OPENAT2");
    have_openat2 = fd >= 0 && !(force != NULL && strcmp(force, "1") == 0);
    if (fd >= 0)
        close((int)fd);
}

int sc_open_beneath(int dirfd, const char *path, int flags, mode_t mode) {
    if (path[0] == '\0')
        path = ".";
    if (have_openat2 > 0) {
        struct open_how how;
        memset(&how, 0, sizeof how);
        how.flags = (uint64_t)(flags | O_CLOEXEC);
        how.mode = (flags & O_CREAT) ? mode : 0;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
        long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
        return fd >= 0 ? (int)fd : sc_errno(errno);
    }
    if (strcmp(path, ".") == 0) {
        int fd = openat(dirfd, ".", flags | O_CLOEXEC, mode);
        return fd < 0 ? sc_errno(errno) : fd;
    }
    return open_walk(dirfd, path, flags, mode);
}

int sc_open_parent(int dirfd, const char *path, const char **last) {
    const char *slash = strrchr(path, '/');
    if (path[0] == '\0')
        return BAIC_EPERMISSION; /* the folder root itself has no parent inside */
    if (slash == NULL) {
        *last = path;
        int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
        return fd < 0 ? sc_errno(errno) : fd;
    }
    char parent[4096];
    size_t n = (size_t)(slash - path);
    if (n >= sizeof parent)
        return -ENAMETOOLONG;
    memcpy(parent, path, n);
    parent[n] = '\0';
    *last = slash + 1;
    return sc_open_beneath(dirfd, parent, O_RDONLY | O_DIRECTORY, 0);
}
