/* SPDX-License-Identifier: Apache-2.0 */
/* The storage side of `baic up`: etc/storage-proxy.toml written once, baic-storage-proxy started on
 * a vfs volume in DATA/vfolders, and the manager's [volumes] text for it. */
#define _GNU_SOURCE
#include "cli/storage.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/compute.h"
#include "cli/probe.h"
#include "cli/proc.h"
#include "config/config.h"

enum { READY_MS = 15000, STOP_MS = 10000, POLL_MS = 100 };
/* Backend.AI's storage proxy ports; taken ones are replaced by free ones. */
enum { PREFERRED_MANAGER_PORT = 6021, PREFERRED_CLIENT_PORT = 6022 };

__attribute__((format(printf, 2, 3))) static int fail(const char *log, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "baic up: storage proxy: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (log != NULL)
        cli_log_tail(log, 15);
    return -1;
}

static int executable(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0;
}

/* $BAIC_STORAGE_PROXY_BIN, beside this executable, the build tree's, then PATH. */
static int find_proxy(char *out, size_t outlen) {
    const char *env = getenv("BAIC_STORAGE_PROXY_BIN");
    if (env != NULL && *env != '\0')
        return (size_t)snprintf(out, outlen, "%s", env) < outlen && executable(out) ? 0 : -ENOENT;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        const char *dir = dirname(self);
        static const char *const rel[] = {"baic-storage-proxy",
                                          "../storage-proxy/baic-storage-proxy"};
        for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++)
            if ((size_t)snprintf(out, outlen, "%s/%s", dir, rel[i]) < outlen && executable(out))
                return 0;
    }
    return cli_which("baic-storage-proxy", out, outlen);
}

const char *cli_storage_unavailable(void) {
    char p[PATH_MAX];
    if (find_proxy(p, sizeof p) < 0)
        return "baic-storage-proxy not found beside baic or in PATH (BAIC_STORAGE_PROXY_BIN "
               "names one)";
    return NULL;
}




static int pick(int preferred, int avoid1, int avoid2, int *port) {
    if (preferred != avoid1 && preferred != avoid2 && cli_port_free(preferred)) {
        *port = preferred;
        return 0;
    }
    for (int tries = 0; tries < 20; tries++)
        if (cli_port_pick(port) == 0 && *port != avoid1 && *port != avoid2)
            return 0;
    return -1;
}

static int write_toml(cli_storage_t *s) {
    const cli_layout_t *L = s->L;
    int mport, cport;
    if (pick(PREFERRED_MANAGER_PORT, s->avoid_port, 0, &mport) < 0 ||
        pick(PREFERRED_CLIENT_PORT, s->avoid_port, mport, &cport) < 0)
        return fail(NULL, "no free port on 127.0.0.1");
    char msecret[65] = "", jsecret[65] = "", vol_q[2 * PATH_MAX], text[4096 + 2 * PATH_MAX];
    if (cli_random_hex(msecret, 64) < 0 || cli_random_hex(jsecret, 64) < 0)
        return fail(NULL, "no random bytes for its secrets");
    cli_toml_str(L->vfolders, vol_q, sizeof vol_q);
    int n = snprintf(
        text, sizeof text,
        "# baic-storage-proxy settings, written once by `baic up` (docs/storage-proxy.md).\n"
        "# The manager's [volumes.proxies." CLI_STORAGE_PROXY "] in manager.toml "
        "carries the same\n"
        "# ports and secrets: change both together.\n"
        "[storage-proxy]\n"
        "listen_manager = \"127.0.0.1:%d\"\n"
        "listen_client = \"127.0.0.1:%d\"\n"
        "manager_secret = \"%s\"\n"
        "jwt_secret = \"%s\"\n"
        "\n"
        "[volume." CLI_STORAGE_VOLUME "]\n"
        "backend = \"vfs\"\n"
        "path = %s\n",
        mport, cport, msecret, jsecret, vol_q);
    explicit_bzero(msecret, sizeof msecret);
    explicit_bzero(jsecret, sizeof jsecret);
    if (n < 0 || (size_t)n >= sizeof text)
        return fail(NULL, "storage-proxy.toml would be too long");
    int rc = cli_write_file(L->storage_toml, text, 0600);
    explicit_bzero(text, sizeof text);
    if (rc < 0)
        return fail(NULL, "cannot write %s: %s", L->storage_toml, strerror(-rc));
    return 0;
}

static int split_listen(const char *listen, char *host, size_t hostlen, int *port) {
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    if (colon == NULL || (size_t)(colon - listen) >= hostlen || colon == listen)
        return -1;
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || p <= 0 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}

/* Ports and secrets from the file (the operator may have edited it). */
static int read_toml(cli_storage_t *s) {
    json_t *conf = NULL;
    char err[512];
    const char *lm = NULL, *lc = NULL, *ms = NULL, *js = NULL;
    if (baic_config_parse_file(s->L->storage_toml, &conf, err, sizeof err) != 0)
        return fail(NULL, "%s", err);
    int rc = 0;
    if (baic_config_get_string(conf, "storage-proxy.listen_manager", "127.0.0.1:6021", &lm, err,
                               sizeof err) != 0 ||
        baic_config_get_string(conf, "storage-proxy.listen_client", "127.0.0.1:6022", &lc, err,
                               sizeof err) != 0 ||
        baic_config_get_string(conf, "storage-proxy.manager_secret", NULL, &ms, err, sizeof err) !=
            0 ||
        baic_config_get_string(conf, "storage-proxy.jwt_secret", NULL, &js, err, sizeof err) != 0)
        rc = fail(NULL, "%s", err);
    else if (ms == NULL || js == NULL)
        rc = fail(NULL,
                  "%s lacks manager_secret or jwt_secret (delete it to have it written "
                  "again)",
                  s->L->storage_toml);
    else if (split_listen(lm, s->manager_host, sizeof s->manager_host, &s->manager_port) < 0 ||
             split_listen(lc, s->client_host, sizeof s->client_host, &s->client_port) < 0)
        rc = fail(NULL, "%s: listen_manager / listen_client are not host:port", s->L->storage_toml);
    else if ((size_t)snprintf(s->manager_secret, sizeof s->manager_secret, "%s", ms) >=
                 sizeof s->manager_secret ||
             (size_t)snprintf(s->jwt_secret, sizeof s->jwt_secret, "%s", js) >=
                 sizeof s->jwt_secret)
        rc = fail(NULL, "%s: secrets longer than %zu characters", s->L->storage_toml,
                  sizeof s->jwt_secret - 1);
    /* 0.0.0.0 listens everywhere; the manager reaches it on loopback. */
    if (strcmp(s->manager_host, "0.0.0.0") == 0)
        snprintf(s->manager_host, sizeof s->manager_host, "127.0.0.1");
    if (strcmp(s->client_host, "0.0.0.0") == 0)
        snprintf(s->client_host, sizeof s->client_host, "127.0.0.1");
    json_decref(conf);
    return rc;
}

static int answers(const cli_storage_t *s) {
    char hdr[256], out[1024];
    int status;
    snprintf(hdr, sizeof hdr, "X-BackendAI-Storage-Auth-Token: %s\r\n", s->manager_secret);
    int rc = cli_http_request(s->manager_host, s->manager_port, "GET", "/status", hdr, NULL, 1000,
                              &status, out, sizeof out);
    explicit_bzero(hdr, sizeof hdr);
    return rc == 0 && status == 200 ? 0 : -1;
}

int cli_storage_up(cli_storage_t *s) {
    const cli_layout_t *L = s->L;
    char bin[PATH_MAX];
    if (find_proxy(bin, sizeof bin) < 0)
        return fail(NULL, "baic-storage-proxy not found (BAIC_STORAGE_PROXY_BIN names it)");
    if (mkdir(L->vfolders, 0755) < 0 && errno != EEXIST)
        return fail(NULL, "mkdir %s: %s", L->vfolders, strerror(errno));
    if (access(L->storage_toml, F_OK) < 0 && write_toml(s) < 0)
        return -1;
    if (read_toml(s) < 0)
        return -1;
    pid_t pid;
    if (cli_pidfile_live(L->storage_pid, L->storage_toml, &pid) == 1) {
        long long deadline = cli_now_ms() + READY_MS;
        while (answers(s) < 0 && cli_now_ms() < deadline) {
            struct timespec ts = {0, POLL_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (cli_now_ms() < deadline) {
            printf("storage proxy: running (pid %d), folders in %s\n", (int)pid, L->vfolders);
            return 0;
        }
        fprintf(stderr, "baic up: the storage proxy (pid %d) does not answer; restarting it\n",
                (int)pid);
        cli_proc_stop(pid, 1, STOP_MS);
    }
    unlink(L->storage_pid);
    if (!cli_port_free(s->manager_port) || !cli_port_free(s->client_port))
        return fail(NULL, "port %d or %d on 127.0.0.1 is taken by another program (edit %s)",
                    s->manager_port, s->client_port, L->storage_toml);
    char *argv[] = {bin, "-c", (char *)L->storage_toml, NULL};
    cli_proc_opts_t o = {.cwd = L->dir, .log_path = L->storage_log, .new_session = 1};
    int rc = cli_proc_spawn(argv, &o, &pid);
    if (rc < 0)
        return fail(NULL, "starting baic-storage-proxy: %s", strerror(-rc));
    s->started = pid;
    if ((rc = cli_pidfile_write(L->storage_pid, pid)) < 0)
        return fail(NULL, "cannot write %s: %s", L->storage_pid, strerror(-rc));
    long long deadline = cli_now_ms() + READY_MS;
    while (answers(s) < 0) {
        int code;
        if (cli_proc_wait(pid, 0, &code) == 0)
            return fail(L->storage_log, "baic-storage-proxy exited with status %d", code);
        if (cli_now_ms() >= deadline)
            return fail(L->storage_log, "no answer on 127.0.0.1:%d within %d s", s->manager_port,
                        READY_MS / 1000);
        struct timespec ts = {0, POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    printf("storage proxy: started (pid %d), folders in %s\n", (int)pid, L->vfolders);
    return 0;
}

int cli_storage_volumes_toml(const cli_storage_t *s, char *out, size_t outlen) {
    char ms[400], js[400];
    cli_toml_str(s->manager_secret, ms, sizeof ms);
    cli_toml_str(s->jwt_secret, js, sizeof js);
    int n = snprintf(out, outlen,
                     "\n"
                     "# Folders (`baic folder`): the storage proxy `baic up` runs\n"
                     "# (etc/storage-proxy.toml holds the same ports and secrets).\n"
                     "[volumes]\n"
                     "default_host = \"" CLI_STORAGE_PROXY ":" CLI_STORAGE_VOLUME "\"\n"
                     "\n"
                     "[volumes.proxies." CLI_STORAGE_PROXY "]\n"
                     "manager_api = \"http://%s:%d\"\n"
                     "client_api = \"http://%s:%d\"\n"
                     "secret = %s\n"
                     "jwt_secret = %s\n",
                     s->manager_host, s->manager_port, s->client_host, s->client_port, ms, js);
    explicit_bzero(ms, sizeof ms);
    explicit_bzero(js, sizeof js);
    return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

int cli_storage_grant(const char *mgr_host, int mgr_port, const char *admin_ak,
                      const char *admin_sk) {
    static const char host[] = CLI_STORAGE_PROXY ":" CLI_STORAGE_VOLUME;
    static const char path[] = "/admin/rest/domains/default";
    char out[65536] = "";
    int status = 0;
    if (cli_signed_call(mgr_host, mgr_port, admin_ak, admin_sk, "GET", path, NULL, 30000, &status,
                        out, sizeof out) < 0 ||
        status != 200)
        return fail(NULL, "GET %s: %s %d", path, status ? "status" : "no answer", status);
    json_t *row = json_loads(out, 0, NULL);
    json_t *hosts = json_object_get(row, "allowed_vfolder_hosts");
    if (json_is_string(hosts)) /* a jsonb column may come back as its text */
        hosts = json_loads(json_string_value(hosts), 0, NULL);
    else
        hosts = json_is_object(hosts) ? json_incref(hosts) : json_object();
    int rc = 0;
    if (!json_is_object(hosts)) {
        rc = fail(NULL, "domain default: allowed_vfolder_hosts is not an object");
    } else if (json_object_get(hosts, host) == NULL) {
        json_object_set_new(hosts, host,
                            json_pack("[s,s,s,s,s,s,s,s]", "create-vfolder", "modify-vfolder",
                                      "delete-vfolder", "mount-in-session", "upload-file",
                                      "download-file", "invite-others",
                                      "set-user-specific-permission"));
        json_t *patch = json_pack("{s:O}", "allowed_vfolder_hosts", hosts);
        char *text = json_dumps(patch, JSON_COMPACT);
        json_decref(patch);
        if (text == NULL ||
            cli_signed_call(mgr_host, mgr_port, admin_ak, admin_sk, "PATCH", path, text, 30000,
                            &status, out, sizeof out) < 0 ||
            status != 200)
            rc = fail(NULL, "PATCH %s: status %d %.200s", path, status, out);
        else
            rc = 1;
        free(text);
    }
    json_decref(hosts);
    json_decref(row);
    return rc;
}

void cli_storage_undo(cli_storage_t *s) {
    if (s->started > 0) {
        cli_proc_stop(s->started, 1, STOP_MS);
        unlink(s->L->storage_pid);
        s->started = 0;
    }
}
