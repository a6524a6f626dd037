/* SPDX-License-Identifier: Apache-2.0 */
/* The files `baic up` writes: whole-file replacement, generated secrets, TOML strings. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/hex.h"

int cli_write_file(const char *path, const char *text, mode_t mode) {
    char tmp[PATH_MAX + 8];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text), off = 0;
    int rc = fchmod(fd, mode) < 0 ? -errno : 0; /* the umask must not widen or narrow it */
    while (rc == 0 && off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno != EINTR)
            rc = -errno;
        else if (w > 0)
            off += (size_t)w;
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

int cli_random_hex(char *out, size_t hexlen) {
    unsigned char raw[64];
    size_t n = hexlen / 2;
    if (n > sizeof raw)
        return -EINVAL;
    if (getrandom(raw, n, 0) != (ssize_t)n)
        return -EIO;
    baic_hex(raw, n, out);
    explicit_bzero(raw, sizeof raw);
    return 0;
}

void cli_toml_str(const char *s, char *out, size_t outlen) {
    size_t n = 0;
    if (outlen < 3)
        return;
    out[n++] = '"';
    for (; *s && n + 8 < outlen; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            n += (size_t)snprintf(out + n, outlen - n, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            n += (size_t)snprintf(out + n, outlen - n, "\\u%04x", c);
        else
            out[n++] = (char)c;
    }
    out[n++] = '"';
    out[n] = '\0';
}
