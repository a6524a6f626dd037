/* SPDX-License-Identifier: Apache-2.0 */
/* C tests' access to services.sh: start/stop/restart private PostgreSQL and Redis. */
#ifndef BAIC_TESTS_SERVICES_H
#define BAIC_TESTS_SERVICES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* Path of services.sh: $BAIC_SOURCE_DIR (set by CTest) or the source dir baked in. */
static inline const char *baic_svc_script(void) {
    static char path[4096];
    const char *src = getenv("BAIC_SOURCE_DIR");
#ifdef BAIC_SOURCE_DIR
    if (!src)
        src = BAIC_SOURCE_DIR;
#endif
    snprintf(path, sizeof path, "%s/tests/integration/services.sh", src ? src : ".");
    return path;
}

/* A fresh world-traversable temp dir (PostgreSQL runs as another user); caller frees. */
static inline char *baic_svc_tmpdir(const char *prefix) {
    char tmpl[256];
    snprintf(tmpl, sizeof tmpl, "/tmp/%s-XXXXXX", prefix);
    if (!mkdtemp(tmpl))
        return NULL;
    chmod(tmpl, 0755);
    return strdup(tmpl);
}

/* The shell command that runs `fn dir` from services.sh (for system() or uv_spawn). */
static inline void baic_svc_cmd(char *buf, size_t n, const char *fn, const char *dir) {
    snprintf(buf, n, ". '%s' && %s '%s'", baic_svc_script(), fn, dir);
}

/* Runs `fn dir` synchronously, puts the first line it printed in out (may be NULL).
 * Returns its exit status: 0, 77 for "not installed, skip", other for failure. */
static inline int baic_svc_run(const char *fn, const char *dir, char *out, size_t n) {
    char cmd[8192];
    char sh[8300];
    baic_svc_cmd(cmd, sizeof cmd, fn, dir);
    snprintf(sh, sizeof sh, "bash -c \"%s\"", cmd);
    FILE *p = popen(sh, "r");
    if (!p)
        return -1;
    char line[1024] = "";
    if (!fgets(line, sizeof line, p))
        line[0] = '\0';
    char rest[256];
    while (fgets(rest, sizeof rest, p)) {
    }
    int st = pclose(p);
    line[strcspn(line, "\n")] = '\0';
    if (out && n)
        snprintf(out, n, "%s", line);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static inline void baic_svc_rmdir(const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

#endif
