/* SPDX-License-Identifier: Apache-2.0 */
/* The compute side of `baic up`: cluster secret, private registry, stock images, one agent. */
#ifndef BAIC_CLI_COMPUTE_H
#define BAIC_CLI_COMPUTE_H

#include <sys/types.h>

#include "cli/cli.h"

/* What `up` knows when it gets to the compute side; filled by up.c, borrowed here. */
typedef struct cli_compute {
    const cli_layout_t *L;
    const char *mgr_host; /* the manager, IPv4 literal */
    int mgr_port;
    const char *redis_host;
    int redis_port;
    const char *redis_password; /* NULL: none */
    const char *admin_ak;       /* signs the admin calls (rescan, check-presets) */
    const char *admin_sk;
    const char *secret; /* the cluster secret */
    int no_python;      /* busybox only */
    /* out */
    int registry_port;
    int python_ok;       /* the python image is in the registry */
    pid_t started_registry; /* what this run started, for undo */
    pid_t started_agent;
} cli_compute_t;

/*
 * The cluster secret into out: from_manager_toml ([manager] cluster_secret, NULL when the
 * file has none) when given, else the content of L->cluster_secret, generated (64 hex
 * digits, mode 0600) on first use. Returns 0 or a negative errno; never prints it.
 */
int cli_cluster_secret(const cli_layout_t *L, const char *from_manager_toml, char *out,
                       size_t outlen);

/*
 * Why this host cannot run the compute side, or NULL when it can: not root, or crun,
 * docker-registry, skopeo, umoci, baic-agent or contrib/images/build.sh missing.
 */
const char *cli_compute_unavailable(void);

/* Each returns 0, or -1 after printing what failed (with the log's tail). Idempotent:
 * what runs and answers is reused, what died is restarted on the same port. */
int cli_registry_up(cli_compute_t *c);
int cli_images_up(cli_compute_t *c);
int cli_agent_up(cli_compute_t *c);

/* Stops what this run started (agent, registry), newest first. */
void cli_compute_undo(cli_compute_t *c);

/*
 * A Backend.AI-signed request to the manager (api-contract §1) with a JSON body (NULL:
 * none). Returns 0 with the status and the body (truncated to outlen - 1), or a negative
 * errno.
 */
int cli_signed_call(const char *host, int port, const char *ak, const char *sk, const char *method,
                    const char *path, const char *body, int timeout_ms, int *status, char *out,
                    size_t outlen);

#endif
