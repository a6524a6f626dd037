/* SPDX-License-Identifier: Apache-2.0 */
/* Config file lookup, loading and logged getters shared by baic-manager, -agent and -storage-proxy. */
#include "config/daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config/config.h"
#include "log/log.h"

const char *baic_daemon_config_path(const char *env, const char *file) {
    static char buf[512];
    const char *v = env ? getenv(env) : NULL;
    if (v != NULL && *v != '\0')
        return v;
    if (access(file, R_OK) == 0)
        return file;
    snprintf(buf, sizeof buf, "/etc/baic/%s", file);
    return buf;
}

int baic_daemon_config_load(const char *prog, const char *path, const char *section,
                            json_t **out) {
    char err[1024];
    *out = NULL;
    if (baic_config_parse_file(path, out, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 2;
    }
    char key[128];
    snprintf(key, sizeof key, "%s.log_level", section);
    const char *level = NULL;
    baic_log_level_t lvl;
    if (baic_config_get_string(*out, key, NULL, &level, err, sizeof err) == 0 && level != NULL &&
        getenv("BAIC_LOG_LEVEL") == NULL && baic_log_parse_level(level, &lvl) == 0)
        baic_log_set_level(lvl);
    return 0;
}

int baic_cfg_str(const json_t *root, const char *path, const char *def, const char **out) {
    char err[256];
    int rc = baic_config_get_string(root, path, def, out, err, sizeof err);
    if (rc != 0)
        BAIC_LOG_E("config_error", "msg=\"%s\"", err);
    return rc;
}

int baic_cfg_int(const json_t *root, const char *path, long long def, long long *out) {
    char err[256];
    int rc = baic_config_get_int(root, path, def, out, err, sizeof err);
    if (rc != 0)
        BAIC_LOG_E("config_error", "msg=\"%s\"", err);
    return rc;
}

int baic_daemon_open_files(unsigned want) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -errno;
    if (rl.rlim_cur >= want)
        return 0;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -errno;
    return rl.rlim_cur >= want ? 0 : -EMFILE;
}
