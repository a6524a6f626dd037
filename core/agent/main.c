/* SPDX-License-Identifier: Apache-2.0 */
/* baic-agent: runs kernels on this node for the manager (docs/agent.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "config/config.h"
#include "config/daemon.h"
#include "log/log.h"

static void usage(FILE *f) {
    fprintf(f, "usage: baic-agent [-c FILE]\n"
               "\n"
               "FILE defaults to $BAIC_AGENT_CONFIG, else ./agent.toml, else\n"
               "/etc/baic/agent.toml.\n");
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
            printf("baic-agent %s\n", AGENT_VERSION);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (config_path == NULL)
        config_path = baic_daemon_config_path("BAIC_AGENT_CONFIG", "agent.toml");
    json_t *config = NULL;
    if (baic_daemon_config_load("baic-agent", config_path, "agent", &config) != 0)
        return 2;
    int status = agent_serve(config);
    json_decref(config);
    return status;
}
