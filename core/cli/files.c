/* SPDX-License-Identifier: Apache-2.0 */
/* What `baic up` writes into its files: generated secrets and TOML strings (the files
 * themselves are replaced through util/file.h, cli_write_file). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "cli/cli.h"
#include "util/hex.h"

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
