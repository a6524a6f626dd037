/* SPDX-License-Identifier: Apache-2.0 */
/* `baic down`: stops the agent, manager, storage proxy, registry, Redis and PostgreSQL that `baic up` started. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/proc.h"

static const char usage[] =
    "usage: baic down [--data-dir DIR]\n"
    "\n"
    "Stops what `baic up` started for DIR: the agent, the manager, the storage proxy, the\n"
    "image registry, then the private Redis and PostgreSQL. Data stays in DIR. The agent's containers keep\n"
    "running: the next `baic up` starts the agent again, which adopts them (or reports\n"
    "them lost if they died meanwhile). Delete sessions first to have none left.\n"
    "Nothing running is not an error.\n"
    "DIR defaults to $BAIC_DATA_DIR, /var/lib/baic for root, else ~/.local/share/baic.\n";

/* Stop deadlines: the manager drains requests, Redis flushes its append-only file. */
enum { AGENT_STOP_MS = 15000, MANAGER_STOP_MS = 15000, STORAGE_STOP_MS = 15000,
       REGISTRY_STOP_MS = 10000, REDIS_STOP_MS = 15000, PG_STOP_S = 60 };

/* Stops the daemon a pid file names. Returns 1 when it stopped one, 0 when none ran, or -1. */
static int stop_pidfile(const char *what, const char *pidfile, const char *name, int group,
                        int timeout_ms) {
    pid_t pid;
    int rc = cli_pidfile_live(pidfile, name, &pid);
    if (rc < 0) {
        fprintf(stderr, "baic down: cannot read %s: %s\n", pidfile, strerror(-rc));
        return -1;
    }
    if (rc == 0) {
        unlink(pidfile); /* stale or absent: nothing of ours runs under it */
        return 0;
    }
    rc = cli_proc_stop(pid, group, timeout_ms);
    if (rc < 0) {
        fprintf(stderr, "baic down: %s (pid %d) did not stop: %s\n", what, (int)pid,
                strerror(-rc));
        return -1;
    }
    if (rc == 1)
        fprintf(stderr, "baic down: %s (pid %d) ignored SIGTERM for %d s and was killed\n",
                what, (int)pid, timeout_ms / 1000);
    unlink(pidfile);
    printf("stopped %s (pid %d)\n", what, (int)pid);
    return 1;
}

/* pg_ctl decides whether the cluster runs (it reads postmaster.pid and checks the process),
 * run as the cluster's owner because PostgreSQL will not act for root. */
static int stop_postgres(const cli_layout_t *L) {
    char pidfile[PATH_MAX + 32];
    snprintf(pidfile, sizeof pidfile, "%s/postmaster.pid", L->pg);
    struct stat st;
    if (access(pidfile, F_OK) < 0 || stat(L->pg, &st) < 0)
        return 0;
    char bindir[PATH_MAX], pg_ctl[PATH_MAX + 16];
    if (cli_find_pg_bindir(bindir, sizeof bindir) < 0) {
        fprintf(stderr, "baic down: %s exists but pg_ctl is not installed\n", pidfile);
        return -1;
    }
    snprintf(pg_ctl, sizeof pg_ctl, "%s/pg_ctl", bindir);
    cli_proc_opts_t o = {.log_path = L->setup_log};
    if (geteuid() == 0 && st.st_uid != 0) {
        o.as_user = 1;
        o.uid = st.st_uid;
        o.gid = st.st_gid;
    }
    char *status_argv[] = {pg_ctl, "-D", (char *)L->pg, "status", NULL};
    int code;
    int rc = cli_proc_run(status_argv, &o, 30000, &code);
    if (rc == 0 && code == 3)
        return 0; /* "no server running": the pid file is stale, PostgreSQL clears it */
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", PG_STOP_S);
    char *stop_argv[] = {pg_ctl, "-D", (char *)L->pg, "-m", "fast", "-w", "-t", timeout,
                         "stop", NULL};
    rc = cli_proc_run(stop_argv, &o, (PG_STOP_S + 10) * 1000, &code);
    if (rc < 0 || code != 0) {
        fprintf(stderr, "baic down: pg_ctl stop failed (%s)\n",
                rc < 0 ? strerror(-rc) : "non-zero exit");
        cli_log_tail(L->setup_log, 10);
        cli_log_tail(L->pg_log, 10);
        return -1;
    }
    printf("stopped postgresql (%s)\n", L->pg);
    return 1;
}

int cli_cmd_down(int argc, char **argv) {
    cli_layout_t L;
    int rc = cli_parse_data_dir_args(argc, argv, usage, &L);
    if (rc != 0)
        return rc == 1 ? 0 : rc;
    struct stat st;
    if (stat(L.dir, &st) < 0 && errno == ENOENT) {
        printf("baic: already stopped (%s does not exist)\n", L.dir);
        return 0;
    }
    int lock = cli_layout_lock(&L, 60000);
    if (lock < 0) {
        fprintf(stderr, "baic down: cannot lock %s: %s\n", L.dir,
                lock == -EWOULDBLOCK ? "another baic up/down is running there" : strerror(-lock));
        return 1;
    }
    /* Reverse start order: the agent first, while Redis still takes its agent_terminated;
     * the manager before its stores, so it never sees them vanish under it. Containers
     * run in sessions of their own, so the agent's process group holds none of them.
     * One statement each: initialiser lists leave the order of evaluation open. */
    int results[6];
    results[0] = stop_pidfile("agent", L.agent_pid, L.agent_toml, 1, AGENT_STOP_MS);
    results[1] = stop_pidfile("manager", L.manager_pid, L.manager_toml, 1, MANAGER_STOP_MS);
    results[2] = stop_pidfile("storage proxy", L.storage_pid, L.storage_toml, 1, STORAGE_STOP_MS);
    results[3] = stop_pidfile("registry", L.registry_pid, L.registry_yml, 1, REGISTRY_STOP_MS);
    results[4] = stop_pidfile("redis", L.redis_pid, "redis-server", 1, REDIS_STOP_MS);
    results[5] = stop_postgres(&L);
    int stopped = 0, failed = 0;
    for (size_t i = 0; i < sizeof results / sizeof results[0]; i++) {
        stopped += results[i] > 0;
        failed += results[i] < 0;
    }
    close(lock);
    if (failed)
        return 1;
    if (stopped == 0)
        printf("baic: already stopped (%s)\n", L.dir);
    return 0;
}
