/* SPDX-License-Identifier: Apache-2.0 */
/* baic-storage-proxy: serves virtual folders to the manager and file transfers to clients (docs/storage-proxy.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "log/log.h"
#include "proxy.h"

int sp_serve(json_t *config);

static void usage(FILE *f) {
    fprintf(f, "usage: baic-storage-proxy [-c FILE]\n"
               "\n"
               "FILE defaults to $BAIC_STORAGE_PROXY_CONFIG, else ./storage-proxy.toml, else\n"
               "/etc/baic/storage-proxy.toml.\n");
}

static const char *default_config(void) {
    const char *env = getenv("BAIC_STORAGE_PROXY_CONFIG");
    if (env != NULL && *env != '\0')
        return env;
    if (access("storage-proxy.toml", R_OK) == 0)
        return "storage-proxy.toml";
    return "/etc/baic/storage-proxy.toml";
}

int main(int argc, char **argv) {
    const char *config_path = NULL;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("baic-storage-proxy %s\n", SP_VERSION);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (config_path == NULL)
        config_path = default_config();
    json_t *config = NULL;
    char err[1024];
    if (baic_config_parse_file(config_path, &config, err, sizeof err) != 0) {
        fprintf(stderr, "baic-storage-proxy: %s\n", err);
        return 2;
    }
    const char *level = NULL;
    baic_log_level_t lvl;
    if (baic_config_get_string(config, "storage-proxy.log_level", NULL, &level, err, sizeof err) ==
            0 &&
        level != NULL && getenv("BAIC_LOG_LEVEL") == NULL && baic_log_parse_level(level, &lvl) == 0)
        baic_log_set_level(lvl);
    int status = sp_serve(config);
    json_decref(config);
    return status;
}
