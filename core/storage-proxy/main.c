/* SPDX-License-Identifier: Apache-2.0 */
/* baic-storage-proxy: serves virtual folders to the manager and file transfers to clients (docs/storage-proxy.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "config/daemon.h"
#include "log/log.h"
#include "proxy.h"

int sp_serve(json_t *config);

static void usage(FILE *f) {
    fprintf(f, "usage: baic-storage-proxy [-c FILE]\n"
               "\n"
               "FILE defaults to $BAIC_STORAGE_PROXY_CONFIG, else ./storage-proxy.toml, else\n"
               "/etc/baic/storage-proxy.toml.\n");
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
        config_path = baic_daemon_config_path("BAIC_STORAGE_PROXY_CONFIG", "storage-proxy.toml");
    json_t *config = NULL;
    if (baic_daemon_config_load("baic-storage-proxy", config_path, "storage-proxy", &config) != 0)
        return 2;
    int status = sp_serve(config);
    json_decref(config);
    return status;
}
