/* SPDX-License-Identifier: Apache-2.0 */
/* Configuration files: reading them from disk, and dotted-path typed lookups into the tree. */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <baic/errors.h>

#include "config/config.h"

/* A configuration file this big is a mistake (or an attack), not a configuration. */
#define CONFIG_MAX_FILE ((size_t)16 << 20)

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt,
                                                          ...) {
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int io_fail(const char *path, int e, char *err, size_t errlen) {
    set_err(err, errlen, "%s: %s", path, strerror(e));
    return -e;
}

int baic_config_parse_file(const char *path, json_t **out, char *err, size_t errlen) {
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return io_fail(path, errno, err, errlen);
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return io_fail(path, e, err, errlen);
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return io_fail(path, EISDIR, err, errlen);
    }
    /* Read to EOF rather than trusting st_size: pipes and /proc files report 0. */
    size_t len = 0, cap = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1 : 4096;
    if (cap > CONFIG_MAX_FILE + 1)
        cap = CONFIG_MAX_FILE + 1;
    char *text = malloc(cap);
    if (!text) {
        close(fd);
        return io_fail(path, ENOMEM, err, errlen);
    }
    for (;;) {
        if (len == cap) {
            if (cap > CONFIG_MAX_FILE) {
                free(text);
                close(fd);
                return io_fail(path, EFBIG, err, errlen);
            }
            size_t ncap = cap * 2 > CONFIG_MAX_FILE + 1 ? CONFIG_MAX_FILE + 1 : cap * 2;
            char *n = realloc(text, ncap);
            if (!n) {
                free(text);
                close(fd);
                return io_fail(path, ENOMEM, err, errlen);
            }
            text = n;
            cap = ncap;
        }
        ssize_t r = read(fd, text + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(text);
            close(fd);
            return io_fail(path, e, err, errlen);
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    if (len > CONFIG_MAX_FILE) {
        free(text);
        return io_fail(path, EFBIG, err, errlen);
    }
    int rc = baic_config_parse_string(text, len, path, out, err, errlen);
    free(text);
    return rc;
}

/* Copies the next path segment into *seg (grown as needed) and advances *s past it.
 * Returns the segment length, or -1 when the path is malformed or memory runs out. */
static long next_segment(const char **s, char **seg, size_t *cap, char *stackbuf) {
    const char *p = *s;
    size_t n = 0;
    int quoted = *p == '"';
    if (quoted)
        p++;
    for (;;) {
        char c = *p;
        if (c == '\0') {
            if (quoted)
                return -1;
            break;
        }
        if (quoted && c == '"') {
            p++;
            break;
        }
        if (!quoted && c == '.')
            break;
        if (quoted && c == '\\') {
            if (p[1] != '"' && p[1] != '\\')
                return -1;
            c = *++p;
        }
        if (n + 1 >= *cap) {
            size_t ncap = *cap * 2;
            char *nb = *seg == stackbuf ? malloc(ncap) : realloc(*seg, ncap);
            if (!nb)
                return -1;
            if (*seg == stackbuf)
                memcpy(nb, stackbuf, n);
            *seg = nb;
            *cap = ncap;
        }
        (*seg)[n++] = c;
        p++;
    }
    if (!quoted && n == 0)
        return -1;
    (*seg)[n] = '\0';
    *s = p;
    return (long)n;
}

const json_t *baic_config_get(const json_t *root, const char *path) {
    if (!root || !path)
        return NULL;
    if (!*path)
        return root;
    char stackbuf[128];
    char *seg = stackbuf;
    size_t cap = sizeof(stackbuf);
    const json_t *cur = root;
    const char *s = path;
    for (;;) {
        if (!json_is_object(cur) || next_segment(&s, &seg, &cap, stackbuf) < 0) {
            cur = NULL;
            break;
        }
        cur = json_object_get(cur, seg);
        if (!cur || *s == '\0')
            break;
        if (*s != '.') {
            cur = NULL; /* text after a closing quote */
            break;
        }
        s++;
    }
    if (seg != stackbuf)
        free(seg);
    return cur;
}

static const char *kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "table";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "float";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

static int type_fail(const char *path, const char *want, const json_t *v, char *err,
                     size_t errlen) {
    set_err(err, errlen, "%s: expected %s, found %s", path, want, kind(v));
    return BAIC_ECONFIG_TYPE;
}

int baic_config_get_string(const json_t *root, const char *path, const char *def, const char **out,
                           char *err, size_t errlen) {
    const json_t *v = baic_config_get(root, path);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_string(v))
        return type_fail(path, "string", v, err, errlen);
    *out = json_string_value(v);
    return 0;
}

int baic_config_get_int(const json_t *root, const char *path, long long def, long long *out,
                        char *err, size_t errlen) {
    const json_t *v = baic_config_get(root, path);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v))
        return type_fail(path, "integer", v, err, errlen);
    *out = json_integer_value(v);
    return 0;
}

int baic_config_get_bool(const json_t *root, const char *path, int def, int *out, char *err,
                         size_t errlen) {
    const json_t *v = baic_config_get(root, path);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v))
        return type_fail(path, "boolean", v, err, errlen);
    *out = json_is_true(v);
    return 0;
}
