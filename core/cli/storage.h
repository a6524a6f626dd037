/* SPDX-License-Identifier: Apache-2.0 */
/* The storage side of `baic up`: one baic-storage-proxy with a vfs volume in DATA/vfolders. */
#ifndef BAIC_CLI_STORAGE_H
#define BAIC_CLI_STORAGE_H

#include <stddef.h>
#include <sys/types.h>

#include "cli/cli.h"

/* The proxy's name in the manager's [volumes.proxies.*] and its one volume: folder hosts
 * are "local:local". */
#define CLI_STORAGE_PROXY "local"
#define CLI_STORAGE_VOLUME "local"

typedef struct cli_storage {
    const cli_layout_t *L;
    int avoid_port; /* the manager's, never handed to the proxy */
    /* out, from etc/storage-proxy.toml */
    char manager_host[64];
    int manager_port;
    char client_host[64];
    int client_port;
    char manager_secret[160];
    char jwt_secret[160];
    pid_t started; /* what this run started, for undo */
} cli_storage_t;

/* Why the proxy cannot run here (no baic-storage-proxy program), or NULL. */
const char *cli_storage_unavailable(void);

/* Writes etc/storage-proxy.toml once (ports 6021/6022 when free, fresh secrets, mode
 * 0600), makes DATA/vfolders, starts the proxy unless it runs, and waits until it answers.
 * 0, or -1 after printing what failed (with its log's tail). */
int cli_storage_up(cli_storage_t *s);

/* The manager's [volumes] section for this proxy (TOML text). 0 or -ENAMETOOLONG. */
int cli_storage_volumes_toml(const cli_storage_t *s, char *out, size_t outlen);

/* Lets the fixture domain "default" use the proxy's volume host: when the domain's
 * allowed_vfolder_hosts has no entry for it, adds one with every folder permission
 * (PATCH /admin/rest/domains/default, signed with the admin keypair). An entry the
 * operator set is left as it is. Returns 1 when it added one, 0 when one was there, or
 * -1 after printing why. */
int cli_storage_grant(const char *mgr_host, int mgr_port, const char *admin_ak,
                      const char *admin_sk);

/* Stops the proxy this run started. */
void cli_storage_undo(cli_storage_t *s);

#endif
