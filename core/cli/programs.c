/* SPDX-License-Identifier: Apache-2.0 */
/* Finding baic-manager, PostgreSQL's server programs and redis-server on this host. */
#define _GNU_SOURCE
#include <errno.h>
#include <glob.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/proc.h"

static int executable(const char *path) {
    return access(path, X_OK) == 0;
}

static int from_env(const char *var, char *out, size_t outlen) {
    const char *v = getenv(var);
    if (v == NULL || *v == '\0')
        return -ENOENT;
    if ((size_t)snprintf(out, outlen, "%s", v) >= outlen)
        return -ENAMETOOLONG;
    return 0;
}

int cli_find_manager(char *out, size_t outlen) {
    if (from_env("BAIC_MANAGER_BIN", out, outlen) == 0)
        return executable(out) ? 0 : -ENOENT;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        const char *dir = dirname(self);
        /* Installed side by side; or run from the build tree, core/cli beside core/manager. */
        static const char *const rel[] = {"baic-manager", "../manager/baic-manager"};
        for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
            if ((size_t)snprintf(out, outlen, "%s/%s", dir, rel[i]) < outlen && executable(out))
                return 0;
        }
    }
    return cli_which("baic-manager", out, outlen);
}

int cli_find_pg_bindir(char *out, size_t outlen) {
    char probe[PATH_MAX];
    if (from_env("BAIC_PG_BINDIR", out, outlen) == 0) {
        snprintf(probe, sizeof probe, "%s/initdb", out);
        return executable(probe) ? 0 : -ENOENT;
    }
    glob_t g;
    int found = -ENOENT;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) == 0) {
        /* Several majors may be installed side by side: take the newest. */
        const char *best = NULL;
        for (size_t i = 0; i < g.gl_pathc; i++)
            if (executable(g.gl_pathv[i]) && (best == NULL || strverscmp(g.gl_pathv[i], best) > 0))
                best = g.gl_pathv[i];
        if (best != NULL && (size_t)snprintf(out, outlen, "%s", best) < outlen) {
            *strrchr(out, '/') = '\0';
            found = 0;
        }
        globfree(&g);
    }
    if (found == 0)
        return 0;
    if (cli_which("initdb", probe, sizeof probe) < 0)
        return -ENOENT;
    *strrchr(probe, '/') = '\0';
    return (size_t)snprintf(out, outlen, "%s", probe) < outlen ? 0 : -ENAMETOOLONG;
}

int cli_find_redis(char *out, size_t outlen) {
    if (from_env("BAIC_REDIS_SERVER", out, outlen) == 0)
        return executable(out) ? 0 : -ENOENT;
    return cli_which("redis-server", out, outlen);
}
