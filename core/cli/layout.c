/* SPDX-License-Identifier: Apache-2.0 */
/* Where `baic up` keeps its state: the default data directory, its layout and its lock. */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/proc.h"

int cli_data_dir_default(char *out, size_t outlen) {
    const char *env = getenv("BAIC_DATA_DIR");
    int n;
    if (env != NULL && *env != '\0') {
        n = snprintf(out, outlen, "%s", env);
    } else if (geteuid() == 0) {
        n = snprintf(out, outlen, "/var/lib/baic");
    } else {
        const char *home = getenv("HOME");
        if (home == NULL || *home == '\0')
            return -ENOENT;
        n = snprintf(out, outlen, "%s/.local/share/baic", home);
    }
    return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

static int join(char *out, const char *dir, const char *rel) {
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, rel);
    return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

int cli_layout_init(cli_layout_t *L, const char *dir) {
    memset(L, 0, sizeof *L);
    if (dir[0] == '/') {
        if (snprintf(L->dir, sizeof L->dir, "%s", dir) >= (int)sizeof L->dir)
            return -ENAMETOOLONG;
    } else {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof cwd) == NULL)
            return -errno;
        if (join(L->dir, cwd, dir) < 0)
            return -ENAMETOOLONG;
    }
    /* Trailing slashes would double up in every path below. */
    size_t len = strlen(L->dir);
    while (len > 1 && L->dir[len - 1] == '/')
        L->dir[--len] = '\0';

    struct {
        char *dst;
        const char *rel;
    } paths[] = {
        {L->etc, "etc"},
        {L->run, "run"},
        {L->log, "log"},
        {L->pg, "pg"},
        {L->redis, "redis"},
        {L->manager_toml, "etc/manager.toml"},
        {L->services_toml, "etc/services.toml"},
        {L->keys_json, "etc/keys.json"},
        {L->admin_env, "admin.env"},
        {L->user_env, "user.env"},
        {L->manager_pid, "run/manager.pid"},
        {L->redis_pid, "run/redis.pid"},
        {L->manager_log, "log/manager.log"},
        {L->redis_log, "log/redis.log"},
        {L->pg_log, "log/postgres.log"},
        {L->setup_log, "log/setup.log"},
        {L->cluster_secret, "etc/cluster_secret"},
        {L->registry_yml, "etc/registry.yml"},
        {L->agent_toml, "etc/agent.toml"},
        {L->registry, "registry"},
        {L->agent, "agent"},
        {L->cache, "cache"},
        {L->registry_pid, "run/registry.pid"},
        {L->agent_pid, "run/agent.pid"},
        {L->registry_log, "log/registry.log"},
        {L->agent_log, "log/agent.log"},
        {L->images_log, "log/images.log"},
        {L->storage_toml, "etc/storage-proxy.toml"},
        {L->storage_pid, "run/storage-proxy.pid"},
        {L->storage_log, "log/storage-proxy.log"},
        {L->vfolders, "vfolders"},
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (join(paths[i].dst, L->dir, paths[i].rel) < 0)
            return -ENAMETOOLONG;
    return 0;
}

int cli_layout_lock(const cli_layout_t *L, int timeout_ms) {
    char path[PATH_MAX];
    if (join(path, L->run, "baic.lock") < 0)
        return -ENAMETOOLONG;
    if ((mkdir(L->dir, 0755) < 0 && errno != EEXIST) || (mkdir(L->run, 0755) < 0 && errno != EEXIST))
        return -errno;
    /* O_CLOEXEC matters: a daemon inheriting this fd would hold the lock for its lifetime. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    long long deadline = cli_now_ms() + timeout_ms;
    while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            int rc = -errno;
            close(fd);
            return rc;
        }
        if (cli_now_ms() >= deadline) {
            close(fd);
            return -EWOULDBLOCK;
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return fd;
}

int cli_parse_data_dir_args(int argc, char **argv, const char *usage, cli_layout_t *L) {
    static const struct option longopts[] = {
        {"data-dir", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL;
    char def[PATH_MAX];
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            dir = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 1;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "baic %s: unexpected argument '%s'\n%s", argv[0], argv[optind], usage);
        return 2;
    }
    if (dir == NULL) {
        if (cli_data_dir_default(def, sizeof def) < 0) {
            fprintf(stderr, "baic %s: no data directory: pass --data-dir or set BAIC_DATA_DIR\n",
                    argv[0]);
            return 2;
        }
        dir = def;
    }
    if (*dir == '\0' || cli_layout_init(L, dir) < 0) {
        fprintf(stderr, "baic %s: bad data directory '%s'\n", argv[0], dir);
        return 2;
    }
    return 0;
}
