/* SPDX-License-Identifier: Apache-2.0 */
/* What the `baic` subcommands share: their entry points and the data directory layout. */
#ifndef BAIC_CLI_CLI_H
#define BAIC_CLI_CLI_H

#include <limits.h>
#include <sys/types.h>
#include <stddef.h>
#include <string.h>

#include "util/file.h"

/* A subcommand: argv[0] is its name; returns the process exit status. */
typedef int (*cli_cmd_fn)(int argc, char **argv);

int cli_cmd_up(int argc, char **argv);
int cli_cmd_down(int argc, char **argv);

/* Everything `baic up` keeps under its data directory. All paths are absolute. */
typedef struct cli_layout {
    char dir[PATH_MAX];
    char etc[PATH_MAX];           /* configuration: manager.toml, services.toml, keys.json */
    char run[PATH_MAX];           /* pid files and the lock */
    char log[PATH_MAX];           /* one log per daemon, setup.log for one-shot commands */
    char pg[PATH_MAX];            /* the private PostgreSQL cluster */
    char redis[PATH_MAX];         /* the private Redis append-only file */
    char manager_toml[PATH_MAX];  /* operators may edit it; `up` writes it only when absent */
    char services_toml[PATH_MAX]; /* ports of the private PostgreSQL and Redis */
    char keys_json[PATH_MAX];     /* written by `baic-manager fixture populate`, mode 0600 */
    char admin_env[PATH_MAX];
    char user_env[PATH_MAX];
    char manager_pid[PATH_MAX];
    char redis_pid[PATH_MAX];
    char manager_log[PATH_MAX];
    char redis_log[PATH_MAX];
    char pg_log[PATH_MAX];
    char setup_log[PATH_MAX];
    /* The compute side: registry, stock images and one agent. */
    char cluster_secret[PATH_MAX]; /* etc/cluster_secret, 0600: manager <-> agent RPC key */
    char registry_yml[PATH_MAX];   /* etc/registry.yml, 0600 (holds the registry's secret) */
    char agent_toml[PATH_MAX];     /* etc/agent.toml, 0600; written once like manager.toml */
    char registry[PATH_MAX];       /* the registry's storage */
    char agent[PATH_MAX];          /* the agent's data_dir (records, bundles, image store) */
    char cache[PATH_MAX];          /* contrib/images/build.sh's cache (python rootfs tarball) */
    char registry_pid[PATH_MAX];
    char agent_pid[PATH_MAX];
    char registry_log[PATH_MAX];
    char agent_log[PATH_MAX];
    char images_log[PATH_MAX];
    /* The storage side: one storage proxy, its vfs volume holding the folders. */
    char storage_toml[PATH_MAX];   /* etc/storage-proxy.toml, 0600 (its secrets) */
    char storage_pid[PATH_MAX];
    char storage_log[PATH_MAX];
    char vfolders[PATH_MAX];       /* the volume's root */
} cli_layout_t;

/* The default data directory: $BAIC_DATA_DIR, /var/lib/baic for root, else
 * ~/.local/share/baic. Returns 0 or -ENAMETOOLONG / -ENOENT (no HOME). */
int cli_data_dir_default(char *out, size_t outlen);

/* Fills L for dir (made absolute against the working directory; need not exist yet).
 * Returns 0 or -ENAMETOOLONG. */
int cli_layout_init(cli_layout_t *L, const char *dir);

/* Takes the data directory's lock so that two `up`/`down` never interleave. Creates
 * L->run if needed. Returns an fd to keep open (closing it unlocks) or a negative errno;
 * -EWOULDBLOCK when another command holds it past timeout_ms. */
int cli_layout_lock(const cli_layout_t *L, int timeout_ms);

/* Parses the options every data-dir command takes (--data-dir DIR, -h) from argv, leaving
 * the layout filled. Returns 0, 1 when help was printed, or 2 on a usage error (printed). */
int cli_parse_data_dir_args(int argc, char **argv, const char *usage, cli_layout_t *L);

/* Where the programs `up` and `down` run are. Each returns 0 with a path, or -ENOENT.
 *   manager:   $BAIC_MANAGER_BIN (tests point it at a stand-in), baic-manager beside this
 *              executable, ../manager/baic-manager (the build tree), then PATH.
 *   pg bindir: $BAIC_PG_BINDIR, the newest /usr/lib/postgresql/N/bin, then initdb's dir in PATH.
 *   redis:     $BAIC_REDIS_SERVER, then redis-server in PATH. */
int cli_find_manager(char *out, size_t outlen);
int cli_find_pg_bindir(char *out, size_t outlen);
int cli_find_redis(char *out, size_t outlen);
/*   agent:     $BAIC_AGENT_BIN, baic-agent beside this executable, ../agent/baic-agent, PATH.
 *   share:     a file of baic's shared scripts by its path in the source tree
 *              ("contrib/images/build.sh", "tests/bench/admin_call.sh"): $BAIC_SHARE_DIR/<base>,
 *              <exe>/../share/baic/<base> (installed), then the source tree this was built from. */
int cli_find_agent(char *out, size_t outlen);
int cli_find_share(const char *rel, char *out, size_t outlen);

/* files.c: what `baic up` writes. Replaces path with text (util/file.h: one fsynced rename,
 * exactly mode); 0 or -errno. */
static inline int cli_write_file(const char *path, const char *text, mode_t mode) {
    return baic_file_replace(path, text, strlen(text), mode);
}
/* hexlen random lower-case hex digits (hexlen even, at most 128) and a NUL; 0 or -errno. */
int cli_random_hex(char *out, size_t hexlen);
/* A TOML basic string for s, quotes included. */
void cli_toml_str(const char *s, char *out, size_t outlen);

#endif
