/* SPDX-License-Identifier: Apache-2.0 */
/* `baic up`: a working manager in one data directory, with private PostgreSQL and Redis
 * unless external ones are configured, plus a registry with the stock images and an agent;
 * safe to run again, it reuses what already runs. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/compute.h"
#include "cli/probe.h"
#include "cli/proc.h"
#include "cli/storage.h"
#include "config/config.h"

static const char usage[] =
    "usage: baic up [--data-dir DIR] [--no-python] [--no-agent]\n"
    "\n"
    "Starts a manager for DIR and waits until it answers. Unless DIR/etc/manager.toml\n"
    "(or BAIC_DB_DSN / BAIC_REDIS_URL) names external ones, it also runs a private\n"
    "PostgreSQL and Redis on free loopback ports, with their data in DIR. Then it writes\n"
    "DIR/admin.env and DIR/user.env (mode 0600) for the API clients.\n"
    "As root, with crun, docker-registry, skopeo and umoci installed, it then starts a\n"
    "private image registry, builds (once; cached in DIR/cache) and pushes the stock\n"
    "busybox and python images, has the manager rescan them (aliases busybox, python),\n"
    "and starts a baic-agent (runtime/oci on crun; compute cpu, mem and mock) that it waits\n"
    "for until the manager counts it ALIVE. Running it again reuses what is already\n"
    "running and restarts what died; `baic down` stops it all.\n"
    "It also runs a baic-storage-proxy with one vfs volume in DIR/vfolders for `baic folder`\n"
    "(etc/storage-proxy.toml; the manager finds it through [volumes] in manager.toml, which\n"
    "`up` appends when the file has none).\n"
    "DIR defaults to $BAIC_DATA_DIR, /var/lib/baic for root, else ~/.local/share/baic.\n"
    "\n"
    "  --no-python   busybox only (the python image takes minutes to build the first time)\n"
    "  --no-agent    the manager and its stores only: no registry, images or agent\n"
    "\n"
    "environment:\n"
    "  BAIC_NO_PYTHON=1   as --no-python\n"
    "  BAIC_NO_AGENT=1    as --no-agent\n"
    "  BAIC_AGENT_BIN     the agent program (default: baic-agent beside baic, or PATH)\n"
    "  BAIC_STORAGE_PROXY_BIN  the storage proxy (default: beside baic, or PATH)\n"
    "  BAIC_SHARE_DIR     where build.sh, push.sh and admin_call.sh are\n"
    "  BAIC_DB_DSN        external PostgreSQL (libpq DSN) for a new manager.toml\n"
    "  BAIC_REDIS_URL     external Redis (redis://[:password@]host[:port][/db])\n"
    "  BAIC_MANAGER_BIN   the manager program (default: baic-manager beside baic, or PATH)\n"
    "  BAIC_PG_BINDIR     PostgreSQL's programs (default: newest /usr/lib/postgresql/N/bin)\n"
    "  BAIC_PG_USER       user that runs PostgreSQL when baic runs as root (postgres)\n"
    "  BAIC_REDIS_SERVER  redis-server program\n";

/* Deadlines. initdb syncs its files; migrations and fixtures hash passwords. */
enum {
    LOCK_MS = 60000,
    INITDB_MS = 180000,
    PG_START_S = 60,
    PSQL_MS = 30000,
    REDIS_READY_MS = 10000,
    MANAGER_TOOL_MS = 300000,
    MANAGER_READY_MS = 30000,
    STOP_MS = 15000,
    POLL_MS = 100,
};

#define DEFAULT_MANAGER_PORT 8081

typedef struct up {
    cli_layout_t L;
    json_t *conf;           /* manager.toml once read or written */
    const char *step;       /* what is being done, for the failure message */
    const char *logs[2];    /* what to show when that step fails */
    int pg_private;         /* 0: [db] dsn names an external server */
    int redis_private;
    int pg_port;            /* private ones only */
    int redis_port;
    int no_python;          /* --no-python / BAIC_NO_PYTHON */
    int no_agent;           /* --no-agent / BAIC_NO_AGENT */
    char secret[256];       /* the cluster secret (never printed) */
    int secret_in_toml;     /* 1: manager.toml has it; 0: handed over as BAIC_CLUSTER_SECRET */
    cli_compute_t cc;
    cli_storage_t st;
    int storage_ok;         /* the proxy answers and manager.toml has [volumes] */
    int volumes_added;      /* this run appended [volumes] to manager.toml */
    char mgr_host[64];      /* from [manager] listen */
    int mgr_port;
    char pg_bindir[PATH_MAX];
    char redis_bin[PATH_MAX];
    char manager_bin[PATH_MAX];
    cli_proc_opts_t pg_as;  /* how PostgreSQL's programs run: as its own user when we are root */
    int started_pg;         /* what this run started, to undo on failure */
    pid_t started_redis;
    pid_t started_manager;
} up_t;

static void step(up_t *u, const char *what, const char *log1, const char *log2) {
    u->step = what;
    u->logs[0] = log1;
    u->logs[1] = log2;
}

/* Names the failing step, says why, shows the step's logs; returns -1 for `return fail()`. */
__attribute__((format(printf, 2, 3))) static int fail(up_t *u, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "baic up: %s failed: ", u->step);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    for (int i = 0; i < 2; i++)
        if (u->logs[i] != NULL)
            cli_log_tail(u->logs[i], 15);
    return -1;
}

/* ---- files ---------------------------------------------------------------------------- */

static int mkdir_p(const char *path, mode_t mode) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int rm_rf(const char *path) {
    if (access(path, F_OK) < 0)
        return 0;
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) < 0 ? -errno : 0;
}


static int append_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = write(fd, text, strlen(text)) == (ssize_t)strlen(text) ? 0 : -EIO;
    close(fd);
    return rc;
}


/* ---- configuration -------------------------------------------------------------------- */

static void private_dsn(int port, char *out, size_t outlen) {
    snprintf(out, outlen, "host=127.0.0.1 port=%d dbname=baic user=baic", port);
}

typedef struct redis_url {
    char host[256];
    int port;
    char password[256];
    int db; /* -1: not given */
} redis_url_t;

/* redis://[[user]:password@]host[:port][/db], or plain host:port. */
static int parse_redis_url(const char *url, redis_url_t *r) {
    memset(r, 0, sizeof *r);
    r->port = 6379;
    r->db = -1;
    const char *p = url;
    if (strncmp(p, "redis://", 8) == 0)
        p += 8;
    else if (strstr(p, "://") != NULL)
        return -EINVAL; /* rediss:// and the like need settings a URL alone cannot carry */
    const char *at = strrchr(p, '@');
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        if ((size_t)(at - pw) >= sizeof r->password)
            return -EINVAL;
        memcpy(r->password, pw, (size_t)(at - pw));
        p = at + 1;
    }
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= sizeof r->host)
        return -EINVAL;
    memcpy(r->host, p, hl);
    p += hl;
    if (*p == ':') {
        char *end;
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1 || v <= 0 || v > 65535)
            return -EINVAL;
        r->port = (int)v;
        p = end;
    }
    if (*p == '/' && p[1] != '\0') {
        char *end;
        long v = strtol(p + 1, &end, 10);
        if (*end != '\0' || v < 0)
            return -EINVAL;
        r->db = (int)v;
    } else if (*p != '\0' && strcmp(p, "/") != 0) {
        return -EINVAL;
    }
    return 0;
}

/* "host:port" -> parts; the wildcard address is reached over loopback. */
static int parse_listen(const char *listen, char *host, size_t hostlen, int *port) {
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || listen[0] == '[')
        return -EINVAL; /* IPv6 listeners are not probed here */
    char *end;
    long v = strtol(colon + 1, &end, 10);
    if (*end != '\0' || v <= 0 || v > 65535)
        return -EINVAL;
    size_t hl = (size_t)(colon - listen);
    if (hl >= hostlen)
        return -EINVAL;
    snprintf(host, hostlen, "%.*s", (int)hl, listen);
    if (hl == 0 || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "localhost") == 0)
        snprintf(host, hostlen, "127.0.0.1");
    /* The probes speak IPv4 literals only; say so now rather than time out later. */
    struct in_addr a;
    if (inet_pton(AF_INET, host, &a) != 1)
        return -EINVAL;
    *port = (int)v;
    return 0;
}

static int load_toml(up_t *u, const char *path, json_t **out) {
    char err[512];
    *out = NULL;
    if (access(path, F_OK) < 0)
        return 0;
    int rc = baic_config_parse_file(path, out, err, sizeof err);
    if (rc != 0)
        return fail(u, "%s", err);
    return 0;
}

/* A fresh port that differs from the ones already handed out in this run. */
static int pick_port(up_t *u, const int *taken, int ntaken, int *port) {
    for (int tries = 0; tries < 20; tries++) {
        int p, dup = 0;
        if (cli_port_pick(&p) < 0)
            break;
        for (int i = 0; i < ntaken; i++)
            dup |= taken[i] == p;
        if (!dup) {
            *port = p;
            return 0;
        }
    }
    return fail(u, "no free port on 127.0.0.1");
}

static int write_manager_toml(up_t *u, const redis_url_t *ext_redis, const char *ext_dsn,
                              int prom_port) {
    char dir_q[2 * PATH_MAX], dsn_q[2048], dsn[256], redis_host_q[600], pw_q[600];
    char text[8192];
    cli_toml_str(u->L.dir, dir_q, sizeof dir_q);
    if (ext_dsn == NULL) {
        private_dsn(u->pg_port, dsn, sizeof dsn);
        ext_dsn = dsn;
    }
    cli_toml_str(ext_dsn, dsn_q, sizeof dsn_q);
    cli_toml_str(ext_redis ? ext_redis->host : "127.0.0.1", redis_host_q, sizeof redis_host_q);
    int n = snprintf(text, sizeof text,
                     "# baic manager settings, written once by `baic up`. Edit freely: `up` never\n"
                     "# rewrites this file. Pointing [db] dsn or [redis] elsewhere makes `up`\n"
                     "# use those servers instead of starting private ones.\n"
                     "[manager]\n"
                     "listen = \"%s:%d\"\n"
                     "data_dir = %s\n"
                     "# cluster_secret: `baic up` hands etc/cluster_secret to the manager as\n"
                     "# BAIC_CLUSTER_SECRET and writes it into etc/agent.toml. A value set here\n"
                     "# wins (then agent.toml must carry the same).\n"
                     "\n"
                     "[db]\n"
                     "dsn = %s\n"
                     "pool_size = 8\n"
                     "\n"
                     "[redis]\n"
                     "host = %s\n"
                     "port = %d\n",
                     u->mgr_host, u->mgr_port, dir_q, dsn_q, redis_host_q,
                     ext_redis ? ext_redis->port : u->redis_port);
    if (ext_redis != NULL && ext_redis->password[0] != '\0') {
        cli_toml_str(ext_redis->password, pw_q, sizeof pw_q);
        n += snprintf(text + n, sizeof text - (size_t)n, "password = %s\n", pw_q);
    }
    if (ext_redis != NULL && ext_redis->db >= 0)
        n += snprintf(text + n, sizeof text - (size_t)n, "db = %d\n", ext_redis->db);
    n += snprintf(text + n, sizeof text - (size_t)n,
                  "\n"
                  "[plugins]\n"
                  "load = [\"auth/password\", \"monitor/prometheus\"]\n"
                  "\n"
                  "[plugin.\"auth/password\"]\n"
                  "iterations = 600000\n"
                  "\n"
                  "[plugin.\"monitor/prometheus\"]\n"
                  "addr = \"127.0.0.1:%d\"\n",
                  prom_port);
    if (n >= (int)sizeof text)
        return fail(u, "manager.toml would be too long");
    /* 0600: an external DSN or Redis password may sit in it. */
    int rc = cli_write_file(u->L.manager_toml, text, 0600);
    if (rc < 0)
        return fail(u, "cannot write %s: %s", u->L.manager_toml, strerror(-rc));
    return 0;
}

/* services.toml remembers private ports even while a service is external, so that
 * switching back finds the same cluster on the same port. svc_*: what the file says now. */
static int write_services(up_t *u, int svc_pg, int svc_redis) {
    int rec_pg = u->pg_private ? u->pg_port : svc_pg;
    int rec_redis = u->redis_private ? u->redis_port : svc_redis;
    if (rec_pg == svc_pg && rec_redis == svc_redis)
        return 0;
    char text[512];
    int n = snprintf(text, sizeof text,
                     "# Written by `baic up`: ports of the private servers it runs for this\n"
                     "# directory. PostgreSQL also has its port in pg/postgresql.conf.\n");
    if (rec_pg > 0)
        n += snprintf(text + n, sizeof text - (size_t)n, "[postgresql]\nport = %d\n", rec_pg);
    if (rec_redis > 0)
        snprintf(text + n, sizeof text - (size_t)n, "[redis]\nport = %d\n", rec_redis);
    int rc = cli_write_file(u->L.services_toml, text, 0644);
    if (rc < 0)
        return fail(u, "cannot write %s: %s", u->L.services_toml, strerror(-rc));
    return 0;
}

/* Decides which services are private and on which ports, and writes manager.toml and
 * services.toml the first time. Everything later reads these two files only. */
static int configure(up_t *u) {
    step(u, "reading the configuration", NULL, NULL);
    json_t *svc = NULL;
    char err[512];
    const char *s;
    long long v;
    int svc_pg = 0, svc_redis = 0;
    if (load_toml(u, u->L.services_toml, &svc) < 0 || load_toml(u, u->L.manager_toml, &u->conf) < 0)
        goto failed;
    if (baic_config_get_int(svc, "postgresql.port", 0, &v, err, sizeof err) != 0)
        goto bad_config;
    svc_pg = (int)v;
    if (baic_config_get_int(svc, "redis.port", 0, &v, err, sizeof err) != 0)
        goto bad_config;
    svc_redis = (int)v;

    const char *env_dsn = getenv("BAIC_DB_DSN");
    const char *env_url = getenv("BAIC_REDIS_URL");
    if (env_dsn != NULL && *env_dsn == '\0')
        env_dsn = NULL;
    if (env_url != NULL && *env_url == '\0')
        env_url = NULL;
    redis_url_t ext_redis;
    if (env_url != NULL && parse_redis_url(env_url, &ext_redis) < 0) {
        fail(u, "BAIC_REDIS_URL is not redis://[:password@]host[:port][/db]");
        goto failed;
    }

    int taken[4], ntaken = 0;
    if (u->conf != NULL) {
        /* The file is the operator's: it decides, and the environment may only agree. */
        char dsn[256];
        const char *host, *listen;
        if (baic_config_get_string(u->conf, "db.dsn", NULL, &s, err, sizeof err) != 0 ||
            baic_config_get_string(u->conf, "redis.host", "127.0.0.1", &host, err, sizeof err) !=
                0 ||
            baic_config_get_int(u->conf, "redis.port", 6379, &v, err, sizeof err) != 0 ||
            baic_config_get_string(u->conf, "manager.listen", "127.0.0.1:8081", &listen, err,
                                   sizeof err) != 0)
            goto bad_config;
        if (s == NULL) {
            fail(u, "%s has no [db] dsn; set it, or delete the file to have it written again",
                 u->L.manager_toml);
            goto failed;
        }
        if (env_dsn != NULL && strcmp(env_dsn, s) != 0) {
            fail(u, "BAIC_DB_DSN differs from [db] dsn in %s; the file wins: edit it or unset "
                    "the variable", u->L.manager_toml);
            goto failed;
        }
        if (env_url != NULL && (strcmp(ext_redis.host, host) != 0 || ext_redis.port != v)) {
            fail(u, "BAIC_REDIS_URL differs from [redis] in %s; the file wins: edit it or "
                    "unset the variable", u->L.manager_toml);
            goto failed;
        }
        private_dsn(svc_pg, dsn, sizeof dsn);
        u->pg_private = svc_pg > 0 && strcmp(s, dsn) == 0;
        u->pg_port = svc_pg;
        u->redis_private = svc_redis > 0 && strcmp(host, "127.0.0.1") == 0 && v == svc_redis;
        u->redis_port = svc_redis;
        if (parse_listen(listen, u->mgr_host, sizeof u->mgr_host, &u->mgr_port) < 0) {
            fail(u, "[manager] listen = \"%s\" in %s is not IPv4 host:port", listen,
                 u->L.manager_toml);
            goto failed;
        }
    } else {
        u->pg_private = env_dsn == NULL;
        u->redis_private = env_url == NULL;
        u->pg_port = svc_pg;
        u->redis_port = svc_redis;
        if (u->pg_private && u->pg_port == 0 && pick_port(u, taken, ntaken, &u->pg_port) < 0)
            goto failed;
        taken[ntaken++] = u->pg_port;
        if (u->redis_private && u->redis_port == 0 &&
            pick_port(u, taken, ntaken, &u->redis_port) < 0)
            goto failed;
        taken[ntaken++] = u->redis_port;
        snprintf(u->mgr_host, sizeof u->mgr_host, "127.0.0.1");
        u->mgr_port = DEFAULT_MANAGER_PORT;
        /* The well-known port when it is free; the file then keeps whatever was chosen. */
        int clash = 0;
        for (int i = 0; i < ntaken; i++)
            clash |= taken[i] == u->mgr_port;
        if ((clash || !cli_port_free(u->mgr_port)) &&
            pick_port(u, taken, ntaken, &u->mgr_port) < 0)
            goto failed;
        taken[ntaken++] = u->mgr_port;
        int prom_port = 0;
        if (pick_port(u, taken, ntaken, &prom_port) < 0)
            goto failed;
        /* services.toml first: with manager.toml but without it, the next `up` would take
         * the private DSN for an external one. */
        if (write_services(u, svc_pg, svc_redis) < 0 ||
            write_manager_toml(u, env_url ? &ext_redis : NULL, env_dsn, prom_port) < 0 ||
            load_toml(u, u->L.manager_toml, &u->conf) < 0)
            goto failed;
    }

    json_decref(svc);
    return 0;

bad_config:
    fail(u, "%s", err);
failed:
    json_decref(svc);
    return -1;
}

/* ---- PostgreSQL ----------------------------------------------------------------------- */

static int pg_prog(up_t *u, const char *name, char *out, size_t outlen) {
    return (size_t)snprintf(out, outlen, "%s/%s", u->pg_bindir, name) < outlen ? 0 : -1;
}

/* Hands path to the PostgreSQL user (no-op unless we are root). */
static int pg_chown(up_t *u, const char *path) {
    if (!u->pg_as.as_user)
        return 0;
    return chown(path, u->pg_as.uid, u->pg_as.gid) < 0 ? -errno : 0;
}

static int pg_setup_user(up_t *u) {
    u->pg_as.log_path = u->L.setup_log;
    if (geteuid() != 0)
        return 0;
    /* PostgreSQL refuses to run as root. */
    const char *name = getenv("BAIC_PG_USER");
    if (name == NULL || *name == '\0')
        name = "postgres";
    struct passwd *pw = getpwnam(name);
    if (pw == NULL)
        return fail(u, "user '%s' does not exist (PostgreSQL will not run as root; set "
                       "BAIC_PG_USER)", name);
    u->pg_as.as_user = 1;
    u->pg_as.uid = pw->pw_uid;
    u->pg_as.gid = pw->pw_gid;
    /* That user must reach DIR/pg: let it through DIR (not list it). */
    struct stat st;
    if (stat(u->L.dir, &st) == 0 && st.st_uid == geteuid() && (st.st_mode & 0001) == 0 &&
        chmod(u->L.dir, (st.st_mode & 07777) | 0011) < 0)
        return fail(u, "chmod o+x %s: %s", u->L.dir, strerror(errno));
    return 0;
}

static int pg_init(up_t *u) {
    char version[PATH_MAX + 16], tmp[PATH_MAX + 16], initdb[PATH_MAX + 16], conf[PATH_MAX + 32];
    snprintf(version, sizeof version, "%s/PG_VERSION", u->L.pg);
    if (access(version, F_OK) == 0)
        return 0;
    step(u, "initialising PostgreSQL (initdb)", u->L.setup_log, NULL);
    /* An empty DIR/pg is ours to replace; anything else is not ours to delete. */
    if (rmdir(u->L.pg) < 0 && errno != ENOENT)
        return fail(u, "%s exists and is not a PostgreSQL cluster; move it away", u->L.pg);
    /* initdb works in a side directory renamed into place when complete, so an interrupted
     * run leaves nothing that looks like a cluster and the next `up` simply starts over. */
    snprintf(tmp, sizeof tmp, "%s.init", u->L.pg);
    int rc = rm_rf(tmp);
    if (rc < 0 || mkdir(tmp, 0700) < 0 || pg_chown(u, tmp) < 0)
        return fail(u, "cannot prepare %s: %s", tmp, strerror(rc < 0 ? -rc : errno));
    char *test_argv[] = {"test", "-w", tmp, "-a", "-x", tmp, NULL};
    int code;
    if (cli_proc_run(test_argv, &u->pg_as, 10000, &code) < 0 || code != 0)
        return fail(u, "user %u cannot write %s: every parent directory needs o+x, or choose "
                       "another --data-dir", (unsigned)u->pg_as.uid, tmp);
    pg_prog(u, "initdb", initdb, sizeof initdb);
    char *argv[] = {initdb, "-D", tmp, "-U", "baic", "--auth=trust", "-E", "UTF8", "--no-locale",
                    NULL};
    rc = cli_proc_run(argv, &u->pg_as, INITDB_MS, &code);
    if (rc < 0 || code != 0)
        return fail(u, "initdb %s", rc < 0 ? strerror(-rc) : "exited non-zero");

    /* The socket directory is optional: a too-long path would stop the server, so then
     * PostgreSQL listens on TCP only. Quotes are doubled for postgresql.conf. */
    char sockdir[PATH_MAX * 2] = "";
    struct sockaddr_un sun;
    if (strlen(u->L.pg) + sizeof "/.s.PGSQL.65535" <= sizeof sun.sun_path) {
        size_t n = 0;
        for (const char *p = u->L.pg; *p && n + 3 < sizeof sockdir; p++) {
            if (*p == '\'')
                sockdir[n++] = '\'';
            sockdir[n++] = *p;
        }
        sockdir[n] = '\0';
    }
    char text[PATH_MAX * 2 + 256];
    snprintf(text, sizeof text,
             "\n# baic up: loopback only, on the port recorded in etc/services.toml\n"
             "listen_addresses = '127.0.0.1'\n"
             "port = %d\n"
             "unix_socket_directories = '%s'\n",
             u->pg_port, sockdir);
    snprintf(conf, sizeof conf, "%s/postgresql.conf", tmp);
    if ((rc = append_file(conf, text)) < 0)
        return fail(u, "cannot append to %s: %s", conf, strerror(-rc));
    if (rename(tmp, u->L.pg) < 0)
        return fail(u, "rename %s: %s", tmp, strerror(errno));
    printf("postgresql: initialised %s\n", u->L.pg);
    return 0;
}

/* 0 running, 3 not running (pg_ctl's own codes), or a negative errno. */
static int pg_status(up_t *u) {
    char pg_ctl[PATH_MAX + 16];
    pg_prog(u, "pg_ctl", pg_ctl, sizeof pg_ctl);
    char *argv[] = {pg_ctl, "-D", u->L.pg, "status", NULL};
    int code;
    int rc = cli_proc_run(argv, &u->pg_as, PSQL_MS, &code);
    return rc < 0 ? rc : code;
}

static int pg_stop(up_t *u) {
    char pg_ctl[PATH_MAX + 16];
    pg_prog(u, "pg_ctl", pg_ctl, sizeof pg_ctl);
    char *argv[] = {pg_ctl, "-D", u->L.pg, "-m", "fast", "-w", "stop", NULL};
    int code;
    return cli_proc_run(argv, &u->pg_as, (PG_START_S + 10) * 1000, &code);
}

static int pg_start(up_t *u) {
    step(u, "starting PostgreSQL", u->L.setup_log, u->L.pg_log);
    if (pg_status(u) == 0) {
        if (cli_tcp_probe("127.0.0.1", u->pg_port, 2000) < 0)
            return fail(u, "PostgreSQL runs from %s but does not answer on 127.0.0.1:%d; "
                           "compare its port with %s", u->L.pg, u->pg_port, u->L.services_toml);
        printf("postgresql: running on 127.0.0.1:%d\n", u->pg_port);
        return 0;
    }
    if (!cli_port_free(u->pg_port))
        return fail(u, "port %d on 127.0.0.1 is taken by another program", u->pg_port);
    /* pg_ctl opens the log as the PostgreSQL user: the file must already be theirs. */
    int fd = open(u->L.pg_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0 || fchown(fd, u->pg_as.as_user ? u->pg_as.uid : geteuid(),
                         u->pg_as.as_user ? u->pg_as.gid : getegid()) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return fail(u, "cannot prepare %s: %s", u->L.pg_log, strerror(e));
    }
    close(fd);
    char pg_ctl[PATH_MAX + 16], timeout[16];
    pg_prog(u, "pg_ctl", pg_ctl, sizeof pg_ctl);
    snprintf(timeout, sizeof timeout, "%d", PG_START_S);
    char *argv[] = {pg_ctl, "-D", u->L.pg, "-l", u->L.pg_log, "-w", "-t", timeout, "start", NULL};
    int code;
    int rc = cli_proc_run(argv, &u->pg_as, (PG_START_S + 10) * 1000, &code);
    if (rc < 0 || code != 0) {
        if (pg_status(u) == 0)
            pg_stop(u); /* started but never became ready: do not leave it half up */
        return fail(u, "pg_ctl start %s", rc < 0 ? strerror(-rc) : "exited non-zero");
    }
    u->started_pg = 1;
    printf("postgresql: started on 127.0.0.1:%d\n", u->pg_port);
    return 0;
}

static int pg_create_db(up_t *u) {
    step(u, "creating database baic", u->L.setup_log, u->L.pg_log);
    char psql[PATH_MAX + 16], createdb[PATH_MAX + 16], port[16], out[64];
    pg_prog(u, "psql", psql, sizeof psql);
    pg_prog(u, "createdb", createdb, sizeof createdb);
    snprintf(port, sizeof port, "%d", u->pg_port);
    cli_proc_opts_t o = {.log_path = u->L.setup_log};
    char *query[] = {psql, "-X", "-q", "-tA", "-h", "127.0.0.1", "-p", port, "-U", "baic",
                     "-d", "postgres", "-c",
                     "SELECT count(*) FROM pg_database WHERE datname = 'baic'", NULL};
    int code;
    int rc = cli_proc_capture(query, &o, PSQL_MS, out, sizeof out, &code);
    if (rc < 0 || code != 0)
        return fail(u, "psql %s", rc < 0 ? strerror(-rc) : "exited non-zero");
    if (atoi(out) > 0)
        return 0;
    char *create[] = {createdb, "-h", "127.0.0.1", "-p", port, "-U", "baic", "baic", NULL};
    rc = cli_proc_run(create, &o, PSQL_MS, &code);
    if (rc < 0 || code != 0)
        return fail(u, "createdb %s", rc < 0 ? strerror(-rc) : "exited non-zero");
    return 0;
}

static int postgres_up(up_t *u) {
    step(u, "finding PostgreSQL", NULL, NULL);
    if (cli_find_pg_bindir(u->pg_bindir, sizeof u->pg_bindir) < 0)
        return fail(u, "initdb not found: install postgresql, or set BAIC_PG_BINDIR (or point "
                       "[db] dsn in %s at a server)", u->L.manager_toml);
    if (pg_setup_user(u) < 0 || pg_init(u) < 0 || pg_start(u) < 0 || pg_create_db(u) < 0)
        return -1;
    return 0;
}

/* ---- Redis ---------------------------------------------------------------------------- */

/* Waits for PONG while pid (0: not ours to watch) stays alive. */
static int redis_wait(up_t *u, pid_t pid, int timeout_ms) {
    long long deadline = cli_now_ms() + timeout_ms;
    for (;;) {
        int code;
        if (pid > 0 && cli_proc_wait(pid, 0, &code) == 0)
            return fail(u, "redis-server exited with status %d", code);
        if (cli_redis_ping("127.0.0.1", u->redis_port, 1000) == 0)
            return 0;
        if (cli_now_ms() >= deadline)
            return fail(u, "no PONG from 127.0.0.1:%d within %d s", u->redis_port,
                        timeout_ms / 1000);
        struct timespec ts = {0, POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static int redis_up(up_t *u) {
    step(u, "starting Redis", u->L.redis_log, NULL);
    if (cli_find_redis(u->redis_bin, sizeof u->redis_bin) < 0)
        return fail(u, "redis-server not found: install redis-server, or set BAIC_REDIS_SERVER "
                       "(or point [redis] in %s at a server)", u->L.manager_toml);
    pid_t pid;
    int live = cli_pidfile_live(u->L.redis_pid, "redis-server", &pid);
    if (live == 1) {
        if (cli_redis_ping("127.0.0.1", u->redis_port, 2000) == 0 ||
            redis_wait(u, 0, REDIS_READY_MS) == 0) {
            printf("redis: running on 127.0.0.1:%d (pid %d)\n", u->redis_port, (int)pid);
            return 0;
        }
        /* Ours, but deaf: replace it rather than leave `up` stuck on it forever. */
        fprintf(stderr, "baic up: restarting redis (pid %d)\n", (int)pid);
        cli_proc_stop(pid, 1, STOP_MS);
    }
    unlink(u->L.redis_pid);
    if (!cli_port_free(u->redis_port))
        return fail(u, "port %d on 127.0.0.1 is taken by another program", u->redis_port);
    char port[16];
    snprintf(port, sizeof port, "%d", u->redis_port);
    /* The append-only file is Redis's durability here; RDB snapshots would only add pauses. */
    char *argv[] = {u->redis_bin, "--bind", "127.0.0.1", "--port", port, "--protected-mode",
                    "yes", "--save", "", "--appendonly", "yes", "--dir", u->L.redis,
                    "--daemonize", "no", NULL};
    cli_proc_opts_t o = {.cwd = u->L.redis, .log_path = u->L.redis_log, .new_session = 1};
    int rc = cli_proc_spawn(argv, &o, &pid);
    if (rc < 0)
        return fail(u, "fork: %s", strerror(-rc));
    u->started_redis = pid;
    if ((rc = cli_pidfile_write(u->L.redis_pid, pid)) < 0)
        return fail(u, "cannot write %s: %s", u->L.redis_pid, strerror(-rc));
    if (redis_wait(u, pid, REDIS_READY_MS) < 0)
        return -1;
    printf("redis: started on 127.0.0.1:%d (pid %d)\n", u->redis_port, (int)pid);
    return 0;
}

/* ---- manager -------------------------------------------------------------------------- */

/* 0 when GET / gives 200 with the version document the contract promises. */
static int manager_answers(up_t *u, int timeout_ms, char *version, size_t versionlen) {
    int status;
    char body[4096];
    int rc = cli_http_get(u->mgr_host, u->mgr_port, "/", timeout_ms, &status, body, sizeof body);
    if (rc < 0)
        return rc;
    if (status != 200)
        return -EPROTO;
    /* Chunked or not, the document starts at its first brace. */
    const char *brace = strchr(body, '{');
    json_t *doc = brace ? json_loads(brace, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
    const char *v = json_string_value(json_object_get(doc, "version"));
    rc = v != NULL ? 0 : -EPROTO;
    if (v != NULL && version != NULL)
        snprintf(version, versionlen, "%s", v);
    json_decref(doc);
    return rc;
}

/* Runs `baic-manager -c manager.toml <args...>` to completion. */
static int manager_tool(up_t *u, char *const args[]) {
    char *argv[12] = {u->manager_bin, "-c", u->L.manager_toml};
    int n = 3;
    for (int i = 0; args[i] != NULL && n < 11; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    cli_proc_opts_t o = {.cwd = u->L.dir, .log_path = u->L.setup_log};
    int code;
    int rc = cli_proc_run(argv, &o, MANAGER_TOOL_MS, &code);
    if (rc < 0)
        return fail(u, "%s", rc == -ETIMEDOUT ? "timed out" : strerror(-rc));
    if (code != 0)
        return fail(u, "baic-manager exited with status %d", code);
    return 0;
}

static int manager_wait(up_t *u, pid_t pid, char *version, size_t versionlen) {
    long long deadline = cli_now_ms() + MANAGER_READY_MS;
    for (;;) {
        int code;
        if (cli_proc_wait(pid, 0, &code) == 0)
            return fail(u, "the manager exited with status %d", code);
        if (manager_answers(u, 1000, version, versionlen) == 0)
            return 0;
        if (cli_now_ms() >= deadline)
            return fail(u, "no answer to GET http://%s:%d/ within %d s", u->mgr_host,
                        u->mgr_port, MANAGER_READY_MS / 1000);
        struct timespec ts = {0, POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static int manager_up(up_t *u, char *version, size_t versionlen) {
    step(u, "checking for a running manager", u->L.manager_log, NULL);
    pid_t pid;
    if (cli_pidfile_live(u->L.manager_pid, u->L.manager_toml, &pid) == 1) {
        long long deadline = cli_now_ms() + MANAGER_READY_MS;
        while (manager_answers(u, 1000, version, versionlen) < 0 && cli_now_ms() < deadline) {
            struct timespec ts = {0, POLL_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (cli_now_ms() < deadline) {
            printf("manager: running on http://%s:%d (pid %d)\n", u->mgr_host, u->mgr_port,
                   (int)pid);
            return 0;
        }
        fprintf(stderr, "baic up: the manager (pid %d) does not answer; restarting it\n",
                (int)pid);
        cli_proc_stop(pid, 1, STOP_MS);
    }
    unlink(u->L.manager_pid);

    step(u, "applying database migrations (baic-manager schema upgrade)", u->L.setup_log, NULL);
    char *schema[] = {"schema", "upgrade", NULL};
    if (manager_tool(u, schema) < 0)
        return -1;

    step(u, "starting the manager", u->L.manager_log, NULL);
    if (!cli_port_free(u->mgr_port))
        return fail(u, "port %d on %s is taken by a program other than this directory's "
                       "manager", u->mgr_port, u->mgr_host);
    char *argv[] = {u->manager_bin, "-c", u->L.manager_toml, NULL};
    cli_proc_opts_t o = {.cwd = u->L.dir, .log_path = u->L.manager_log, .new_session = 1};
    /* The manager reads the secret from its environment when its file has none; only the
     * manager gets it that way. */
    if (!u->secret_in_toml && u->secret[0] != '\0')
        setenv("BAIC_CLUSTER_SECRET", u->secret, 1);
    int rc = cli_proc_spawn(argv, &o, &pid);
    unsetenv("BAIC_CLUSTER_SECRET");
    if (rc < 0)
        return fail(u, "fork: %s", strerror(-rc));
    u->started_manager = pid;
    if ((rc = cli_pidfile_write(u->L.manager_pid, pid)) < 0)
        return fail(u, "cannot write %s: %s", u->L.manager_pid, strerror(-rc));
    if (manager_wait(u, pid, version, versionlen) < 0)
        return -1;
    printf("manager: started on http://%s:%d (pid %d)\n", u->mgr_host, u->mgr_port, (int)pid);
    return 0;
}

/* Fixtures go in once: their keys file is the record that they did. */
static int fixtures_up(up_t *u) {
    if (access(u->L.keys_json, F_OK) == 0)
        return 0;
    step(u, "populating fixtures (baic-manager fixture populate)", u->L.setup_log, NULL);
    char *args[] = {"fixture", "populate", "--keys-out", u->L.keys_json, NULL};
    if (manager_tool(u, args) < 0)
        return -1;
    if (chmod(u->L.keys_json, 0600) < 0)
        return fail(u, "%s was not written: %s", u->L.keys_json, strerror(errno));
    return 0;
}

/* ---- credentials ---------------------------------------------------------------------- */

/* Keys are printable tokens; anything else is single-quoted so `source` cannot run it. */
static void shell_word(const char *s, char *out, size_t outlen) {
    if (strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~+/=:-") ==
            strlen(s) && *s != '\0') {
        snprintf(out, outlen, "%s", s);
        return;
    }
    size_t n = 0;
    out[n++] = '\'';
    for (; *s && n + 6 < outlen; s++) {
        if (*s == '\'') {
            memcpy(out + n, "'\\''", 4);
            n += 4;
        } else {
            out[n++] = *s;
        }
    }
    out[n++] = '\'';
    out[n] = '\0';
}

static int write_env(up_t *u, const char *path, const char *who, const char *endpoint,
                     const char *ak, const char *sk) {
    char akq[600], skq[600], text[2048];
    shell_word(ak, akq, sizeof akq);
    shell_word(sk, skq, sizeof skq);
    snprintf(text, sizeof text,
             "# baic %s credentials for this data directory, written by `baic up`.\n"
             "export BACKEND_ENDPOINT=%s\n"
             "export BACKEND_ACCESS_KEY=%s\n"
             "export BACKEND_SECRET_KEY=%s\n",
             who, endpoint, akq, skq);
    int rc = cli_write_file(path, text, 0600);
    explicit_bzero(text, sizeof text);
    explicit_bzero(skq, sizeof skq);
    if (rc < 0)
        return fail(u, "cannot write %s: %s", path, strerror(-rc));
    return 0;
}

static int env_files(up_t *u) {
    step(u, "writing admin.env and user.env", NULL, NULL);
    json_error_t jerr;
    json_t *keys = json_load_file(u->L.keys_json, 0, &jerr);
    const char *aak, *ask, *uak, *usk;
    /* The message names the file and the position only: the text near it may be a secret. */
    if (keys == NULL || json_unpack_ex(keys, &jerr, 0, "{s:{s:s,s:s},s:{s:s,s:s}}", "admin",
                                       "access_key", &aak, "secret_key", &ask, "user",
                                       "access_key", &uak, "secret_key", &usk) != 0) {
        json_decref(keys);
        return fail(u, "%s: line %d: not {\"admin\":{\"access_key\",\"secret_key\"},\"user\":"
                       "{...}}", u->L.keys_json, jerr.line);
    }
    char endpoint[128];
    snprintf(endpoint, sizeof endpoint, "http://%s:%d", u->mgr_host, u->mgr_port);
    int rc = write_env(u, u->L.admin_env, "admin", endpoint, aak, ask);
    if (rc == 0)
        rc = write_env(u, u->L.user_env, "user", endpoint, uak, usk);
    json_decref(keys);
    return rc;
}

/* ---- the command ---------------------------------------------------------------------- */

/* Stops what this run started, newest first, so a failed `up` leaves what it found. */
static void undo(up_t *u) {
    cli_compute_undo(&u->cc);
    cli_storage_undo(&u->st);
    if (u->started_manager > 0) {
        cli_proc_stop(u->started_manager, 1, STOP_MS);
        unlink(u->L.manager_pid);
    }
    if (u->started_redis > 0) {
        cli_proc_stop(u->started_redis, 1, STOP_MS);
        unlink(u->L.redis_pid);
    }
    if (u->started_pg)
        pg_stop(u);
}

static int prepare_dirs(up_t *u) {
    step(u, "preparing the data directory", NULL, NULL);
    /* etc holds keys and DSNs; log must let the PostgreSQL user reach its own log file. */
    struct {
        const char *path;
        mode_t mode;
    } dirs[] = {{u->L.dir, 0755},   {u->L.etc, 0700},  {u->L.run, 0755},
                {u->L.log, 0711},   {u->L.redis, 0700}};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        int rc = mkdir_p(dirs[i].path, dirs[i].mode);
        if (rc < 0)
            return fail(u, "mkdir %s: %s", dirs[i].path, strerror(-rc));
    }
    return 0;
}

/* The secret the manager and the agent share: manager.toml's when set, else etc/cluster_secret. */
static int secret_up(up_t *u) {
    step(u, "reading the cluster secret", NULL, NULL);
    const char *s = NULL;
    char err[512];
    if (baic_config_get_string(u->conf, "manager.cluster_secret", NULL, &s, err, sizeof err) != 0)
        return fail(u, "%s", err);
    u->secret_in_toml = s != NULL && *s != '\0';
    int rc = cli_cluster_secret(&u->L, s, u->secret, sizeof u->secret);
    if (rc < 0)
        return fail(u, "%s: %s", u->L.cluster_secret,
                    rc == -EINVAL ? "shorter than 16 characters" : strerror(-rc));
    return 0;
}

/* The storage proxy, and [volumes] in manager.toml for it unless the file names its own.
 * Before the manager, which reads [volumes] when it starts. */
static int storage_up(up_t *u) {
    const char *why = cli_storage_unavailable();
    if (why != NULL) {
        printf("storage proxy: not started: %s; `baic folder` will not work\n", why);
        return 0;
    }
    step(u, "starting the storage proxy", u->L.storage_log, NULL);
    u->st.L = &u->L;
    u->st.avoid_port = u->mgr_port;
    if (cli_storage_up(&u->st) < 0)
        return fail(u, "see above");
    if (json_object_get(u->conf, "volumes") == NULL) {
        step(u, "adding [volumes] to manager.toml", NULL, NULL);
        char text[2048];
        int rc = cli_storage_volumes_toml(&u->st, text, sizeof text);
        if (rc == 0)
            rc = append_file(u->L.manager_toml, text);
        explicit_bzero(text, sizeof text);
        if (rc < 0)
            return fail(u, "%s: %s", u->L.manager_toml, strerror(-rc));
        json_decref(u->conf);
        u->conf = NULL;
        if (load_toml(u, u->L.manager_toml, &u->conf) < 0)
            return -1;
        u->volumes_added = 1;
    }
    u->storage_ok = 1;
    return 0;
}

/* The fixture domain may use the proxy's volume (folders need a host permission). */
static int storage_grant(up_t *u) {
    if (!u->storage_ok)
        return 0;
    step(u, "allowing the default domain to use the folder host", NULL, NULL);
    json_error_t jerr;
    json_t *keys = json_load_file(u->L.keys_json, 0, &jerr);
    const char *ak = NULL, *sk = NULL;
    if (keys == NULL || json_unpack_ex(keys, &jerr, 0, "{s:{s:s,s:s}}", "admin", "access_key",
                                       &ak, "secret_key", &sk) != 0) {
        json_decref(keys);
        return fail(u, "%s: line %d: no admin keypair", u->L.keys_json, jerr.line);
    }
    int rc = cli_storage_grant(u->mgr_host, u->mgr_port, ak, sk);
    json_decref(keys);
    if (rc < 0)
        return fail(u, "see above");
    if (rc == 1)
        printf("folders: domain default may use host " CLI_STORAGE_PROXY ":" CLI_STORAGE_VOLUME
               "\n");
    return 0;
}

/* Registry, stock images, agent; skipped with a note where this host cannot run them. */
static int compute_up(up_t *u) {
    if (u->no_agent) {
        printf("agent: not started (--no-agent)\n");
        return 0;
    }
    const char *why = cli_compute_unavailable();
    if (why != NULL) {
        printf("agent: not started: %s; sessions stay PENDING until an agent joins\n", why);
        return 0;
    }
    step(u, "reading the admin keypair", NULL, NULL);
    json_error_t jerr;
    json_t *keys = json_load_file(u->L.keys_json, 0, &jerr);
    const char *ak = NULL, *sk = NULL, *host = "127.0.0.1", *pw = NULL;
    long long port = u->redis_port;
    char err[512];
    if (keys == NULL ||
        json_unpack_ex(keys, &jerr, 0, "{s:{s:s,s:s}}", "admin", "access_key", &ak, "secret_key",
                       &sk) != 0) {
        json_decref(keys);
        return fail(u, "%s: line %d: no admin keypair", u->L.keys_json, jerr.line);
    }
    if (baic_config_get_string(u->conf, "redis.host", "127.0.0.1", &host, err, sizeof err) != 0 ||
        baic_config_get_int(u->conf, "redis.port", 6379, &port, err, sizeof err) != 0 ||
        baic_config_get_string(u->conf, "redis.password", NULL, &pw, err, sizeof err) != 0) {
        json_decref(keys);
        return fail(u, "%s", err);
    }
    cli_compute_t *c = &u->cc;
    c->L = &u->L;
    c->mgr_host = u->mgr_host;
    c->mgr_port = u->mgr_port;
    c->redis_host = host;
    c->redis_port = (int)port;
    c->redis_password = pw;
    c->admin_ak = ak;
    c->admin_sk = sk;
    c->secret = u->secret;
    c->no_python = u->no_python;
    int rc = 0;
    step(u, "starting the image registry", u->L.registry_log, NULL);
    if (cli_registry_up(c) < 0)
        rc = fail(u, "see above");
    step(u, "building, pushing and rescanning the stock images", NULL, NULL);
    if (rc == 0 && cli_images_up(c) < 0)
        rc = fail(u, "see above");
    step(u, "starting the agent", NULL, NULL);
    if (rc == 0 && cli_agent_up(c) < 0)
        rc = fail(u, "see above");
    c->admin_ak = c->admin_sk = NULL;
    json_decref(keys);
    return rc;
}

/* The closing lines: how to reach what runs, with a request that works as printed. */
static void print_usage(up_t *u, const char *version) {
    printf("\nbaic is up: manager http://%s:%d%s%s%s\n", u->mgr_host, u->mgr_port,
           version[0] ? " (" : "", version, version[0] ? ")" : "");
    if (u->cc.registry_port > 0)
        printf("  images: registry 127.0.0.1:%d, aliases busybox%s\n", u->cc.registry_port,
               u->cc.python_ok ? ", python" : "");
    printf("  admin:  source %s\n", u->L.admin_env);
    printf("  user:   source %s\n", u->L.user_env);
    printf("  logs:   %s\n", u->L.log);
    if (u->storage_ok)
        printf("  folders: %s (storage proxy 127.0.0.1:%d)\n", u->L.vfolders, u->st.client_port);
    printf("  stop:   baic down --data-dir %s\n", u->L.dir);
    char call[PATH_MAX];
    if (cli_find_share("tests/bench/admin_call.sh", call, sizeof call) < 0)
        return;
    if (u->cc.registry_port > 0) {
        const char *img = u->cc.python_ok ? "python" : "busybox";
        printf("\ntry a session (signed requests; any Backend.AI client works too):\n"
               "  . %s\n"
               "  sh %s POST /session '{\"image\": \"%s\", \"name\": \"hello\", "
               "\"config\": {\"resources\": {\"cpu\": \"1\", \"mem\": \"256m\"}}}'\n"
               "  sh %s GET /session/hello\n"
               "  sh %s DELETE /session/hello\n",
               u->L.user_env, call, img, call, call);
        printf("\nor run code in a new session with the baic CLI (same user.env):\n  %s\n",
               u->cc.python_ok ? "baic run python -c 'print(1)' --rm"
                               : "baic run busybox -c 'echo 1' --rm");
        if (u->storage_ok)
            printf("\nkeep files in a folder and mount it into sessions:\n"
                   "  baic folder create data\n"
                   "  baic folder upload data ./notes.txt\n"
                   "  baic run busybox --mount data -c 'cat /home/work/data/notes.txt' --rm\n"
                   "  baic folder download data notes.txt ./notes-copy.txt\n");
    } else {
        printf("\ntry a signed request:\n  . %s\n  sh %s GET /config/resource-slots\n",
               u->L.admin_env, call);
        if (u->storage_ok)
            printf("\nkeep files in a folder (same user.env):\n"
                   "  baic folder create data\n"
                   "  baic folder upload data ./notes.txt\n"
                   "  baic folder files data\n");
    }
}

static int run_up(up_t *u) {
    char version[128] = "";
    /* Before anything starts: without a manager there is no point in its stores. */
    step(u, "finding baic-manager", NULL, NULL);
    if (cli_find_manager(u->manager_bin, sizeof u->manager_bin) < 0)
        return fail(u, "no baic-manager beside baic, in ../manager/ or in PATH (BAIC_MANAGER_BIN "
                       "names another)");
    if (secret_up(u) < 0)
        return -1;
    if (u->pg_private && postgres_up(u) < 0)
        return -1;
    if (!u->pg_private)
        printf("postgresql: external ([db] dsn in %s)\n", u->L.manager_toml);
    if (u->redis_private && redis_up(u) < 0)
        return -1;
    if (!u->redis_private)
        printf("redis: external ([redis] in %s)\n", u->L.manager_toml);
    if (storage_up(u) < 0)
        return -1;
    pid_t running;
    if (u->volumes_added && cli_pidfile_live(u->L.manager_pid, u->L.manager_toml, &running) == 1)
        printf("manager.toml: [volumes] added; folders work after the manager restarts "
               "(baic down, then baic up)\n");
    if (manager_up(u, version, sizeof version) < 0)
        return -1;
    /* Fixtures need the migrated schema, which a running manager implies. */
    if (fixtures_up(u) < 0 || env_files(u) < 0 || storage_grant(u) < 0)
        return -1;
    if (compute_up(u) < 0)
        return -1;
    print_usage(u, version);
    return 0;
}

static int env_flag(const char *name) {
    const char *v = getenv(name);
    return v != NULL && *v != '\0' && strcmp(v, "0") != 0;
}

int cli_cmd_up(int argc, char **argv) {
    static up_t u; /* large (paths); one per process */
    memset(&u, 0, sizeof u);
    /* up's own flags first; the rest are those every data-dir command takes. */
    char *rest[argc + 1];
    int nrest = 0;
    for (int i = 0; i < argc; i++) {
        if (i > 0 && strcmp(argv[i], "--no-python") == 0)
            u.no_python = 1;
        else if (i > 0 && strcmp(argv[i], "--no-agent") == 0)
            u.no_agent = 1;
        else
            rest[nrest++] = argv[i];
    }
    rest[nrest] = NULL;
    u.no_python |= env_flag("BAIC_NO_PYTHON");
    u.no_agent |= env_flag("BAIC_NO_AGENT");
    int rc = cli_parse_data_dir_args(nrest, rest, usage, &u.L);
    if (rc != 0)
        return rc == 1 ? 0 : rc;
    /* A reader of our output that goes away must not kill us between two steps. */
    signal(SIGPIPE, SIG_IGN);
    if (prepare_dirs(&u) < 0)
        return 1;
    int lock = cli_layout_lock(&u.L, LOCK_MS);
    if (lock < 0) {
        fprintf(stderr, "baic up: cannot lock %s: %s\n", u.L.dir,
                lock == -EWOULDBLOCK ? "another baic up/down is running there" : strerror(-lock));
        return 1;
    }
    rc = configure(&u);
    if (rc == 0)
        rc = run_up(&u);
    if (rc < 0) {
        undo(&u);
        fprintf(stderr, "baic up: nothing was left half-started; fix the cause and run "
                        "`baic up --data-dir %s` again\n", u.L.dir);
    }
    json_decref(u.conf);
    explicit_bzero(u.secret, sizeof u.secret);
    close(lock);
    return rc < 0 ? 1 : 0;
}
