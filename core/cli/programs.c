/* SPDX-License-Identifier: Apache-2.0 */
/* Finding baic-manager, baic-agent, the shared scripts, PostgreSQL's server programs and redis-server on this host. */
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

/* dir of this executable, or -ENOENT. */
static int self_dir(char *out, size_t outlen) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return -ENOENT;
    self[n] = '\0';
    return (size_t)snprintf(out, outlen, "%s", dirname(self)) < outlen ? 0 : -ENAMETOOLONG;
}

int cli_find_agent(char *out, size_t outlen) {
    if (from_env("BAIC_AGENT_BIN", out, outlen) == 0)
        return executable(out) ? 0 : -ENOENT;
    char dir[PATH_MAX];
    if (self_dir(dir, sizeof dir) == 0) {
        static const char *const rel[] = {"baic-agent", "../agent/baic-agent"};
        for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++)
            if ((size_t)snprintf(out, outlen, "%s/%s", dir, rel[i]) < outlen && executable(out))
                return 0;
    }
    return cli_which("baic-agent", out, outlen);
}

int cli_find_share(const char *rel, char *out, size_t outlen) {
    const char *base = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
    const char *env = getenv("BAIC_SHARE_DIR");
    if (env != NULL && *env != '\0' && (size_t)snprintf(out, outlen, "%s/%s", env, base) < outlen &&
        access(out, R_OK) == 0)
        return 0;
    char dir[PATH_MAX];
    if (self_dir(dir, sizeof dir) == 0 &&
        (size_t)snprintf(out, outlen, "%s/../share/baic/%s", dir, base) < outlen &&
        access(out, R_OK) == 0)
        return 0;
#ifdef BAIC_SOURCE_DIR
    if ((size_t)snprintf(out, outlen, "%s/%s", BAIC_SOURCE_DIR, rel) < outlen && access(out, R_OK) == 0)
        return 0;
#endif
    return -ENOENT;
}
