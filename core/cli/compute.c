/* SPDX-License-Identifier: Apache-2.0 */
/* `baic up`'s compute side: the cluster secret, a private docker-registry with the stock
 * images in it (rescanned into the manager), and one baic-agent on runtime/oci. */
#define _GNU_SOURCE
#include "cli/compute.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "auth/sign.h"
#include "cli/probe.h"
#include "cli/proc.h"
#include "config/config.h"

enum {
    REGISTRY_READY_MS = 15000,
    IMAGE_BUILD_MS = 1800000, /* debootstrap of the python image, the first time */
    IMAGE_PUSH_MS = 600000,
    RESCAN_MS = 120000,
    AGENT_READY_MS = 60000,
    STOP_MS = 15000,
    POLL_MS = 100,
};

static void nap(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

__attribute__((format(printf, 2, 3))) static int fail(const char *log, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "baic up: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (log != NULL)
        cli_log_tail(log, 15);
    return -1;
}



/* ---- cluster secret ------------------------------------------------------------------- */

int cli_cluster_secret(const cli_layout_t *L, const char *from_manager_toml, char *out,
                       size_t outlen) {
    if (from_manager_toml != NULL && *from_manager_toml != '\0')
        return (size_t)snprintf(out, outlen, "%s", from_manager_toml) < outlen ? 0 : -ENAMETOOLONG;
    FILE *f = fopen(L->cluster_secret, "re");
    if (f != NULL) {
        int ok = fgets(out, (int)outlen, f) != NULL;
        fclose(f);
        out[strcspn(out, "\r\n")] = '\0';
        if (ok && strlen(out) >= 16)
            return 0;
        return -EINVAL;
    }
    if (errno != ENOENT || outlen < 65)
        return errno != ENOENT ? -errno : -ENAMETOOLONG;
    char text[80];
    int rc = cli_random_hex(out, 64);
    if (rc < 0)
        return rc;
    snprintf(text, sizeof text, "%s\n", out);
    rc = cli_write_file(L->cluster_secret, text, 0600);
    explicit_bzero(text, sizeof text);
    return rc;
}

/* ---- prerequisites -------------------------------------------------------------------- */

const char *cli_compute_unavailable(void) {
    static char why[256];
    char path[PATH_MAX];
    if (geteuid() != 0)
        return "not root (containers, cgroups and image builds need it)";
    static const char *const progs[] = {"crun", "docker-registry", "skopeo", "umoci"};
    for (size_t i = 0; i < sizeof progs / sizeof progs[0]; i++) {
        if (cli_which(progs[i], path, sizeof path) < 0) {
            snprintf(why, sizeof why, "%s is not installed (contrib/install-deps.sh)", progs[i]);
            return why;
        }
    }
    if (cli_find_agent(path, sizeof path) < 0)
        return "baic-agent not found beside baic or in PATH (BAIC_AGENT_BIN names one)";
    if (cli_find_share("contrib/images/build.sh", path, sizeof path) < 0 ||
        cli_find_share("contrib/images/push.sh", path, sizeof path) < 0)
        return "contrib/images/build.sh not found (BAIC_SHARE_DIR names its directory)";
    return NULL;
}

/* ---- signed calls to the manager ------------------------------------------------------ */

int cli_signed_call(const char *host, int port, const char *ak, const char *sk, const char *method,
                    const char *path, const char *body, int timeout_ms, int *status, char *out,
                    size_t outlen) {
    static const char version[] = BAIC_AUTH_API_VERSION;
    char date[64], ymd[9], hostport[96], sig[160], headers[1024];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
    if (baic_auth_date_yyyymmdd((int64_t)now, 0, ymd) != 0)
        return -EINVAL;
    snprintf(hostport, sizeof hostport, "%s:%d", host, port);
    if (baic_auth_sign("sha256", sk, strlen(sk), method, path, date, ymd, hostport,
                       "application/json", "x-backendai-version", version, sig, sizeof sig) != 0)
        return -EINVAL;
    snprintf(headers, sizeof headers,
             "Date: %s\r\nContent-Type: application/json\r\nX-BackendAI-Version: %s\r\n"
             "Authorization: BackendAI signMethod=HMAC-SHA256, credential=%s:%s\r\n",
             date, version, ak, sig);
    return cli_http_request(host, port, method, path, headers, body, timeout_ms, status, out,
                            outlen);
}

/* ---- registry ------------------------------------------------------------------------- */

/* The port in registry.yml's http.addr, or 0. */
static int registry_port_of(const char *yml) {
    FILE *f = fopen(yml, "re");
    if (f == NULL)
        return 0;
    char line[512];
    int port = 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, " addr: 127.0.0.1:%d", &port) == 1)
            break;
    fclose(f);
    return port;
}

static int registry_answers(int port, int timeout_ms) {
    int status;
    char body[256];
    return cli_http_get("127.0.0.1", port, "/v2/", timeout_ms, &status, body, sizeof body) == 0 &&
                   status == 200
               ? 0
               : -1;
}

static int write_registry_yml(cli_compute_t *c) {
    const cli_layout_t *L = c->L;
    int port;
    if (cli_port_pick(&port) < 0)
        return fail(NULL, "no free port on 127.0.0.1 for the registry");
    char secret[65], text[PATH_MAX + 512];
    if (cli_random_hex(secret, 64) < 0)
        return fail(NULL, "no random bytes for the registry's secret");
    /* Our own file: the packaged one listens on every address and wants htpasswd. */
    snprintf(text, sizeof text,
             "# docker-registry settings of `baic up`, written once. Its port is part of every\n"
             "# image name the manager knows: keep it.\n"
             "version: 0.1\n"
             "log:\n"
             "  level: warn\n"
             "  accesslog:\n"
             "    disabled: true\n"
             "storage:\n"
             "  filesystem:\n"
             "    rootdirectory: %s\n"
             "  delete:\n"
             "    enabled: true\n"
             "http:\n"
             "  addr: 127.0.0.1:%d\n"
             "  secret: %s\n",
             L->registry, port, secret);
    int rc = cli_write_file(L->registry_yml, text, 0600);
    explicit_bzero(text, sizeof text);
    explicit_bzero(secret, sizeof secret);
    if (rc < 0)
        return fail(NULL, "cannot write %s: %s", L->registry_yml, strerror(-rc));
    return 0;
}

int cli_registry_up(cli_compute_t *c) {
    const cli_layout_t *L = c->L;
    if (access(L->registry_yml, F_OK) < 0 && write_registry_yml(c) < 0)
        return -1;
    c->registry_port = registry_port_of(L->registry_yml);
    if (c->registry_port <= 0)
        return fail(NULL, "%s has no \"addr: 127.0.0.1:PORT\" line", L->registry_yml);
    pid_t pid;
    if (cli_pidfile_live(L->registry_pid, L->registry_yml, &pid) == 1) {
        if (registry_answers(c->registry_port, 2000) == 0) {
            printf("registry: running on 127.0.0.1:%d (pid %d)\n", c->registry_port, (int)pid);
            return 0;
        }
        fprintf(stderr, "baic up: the registry (pid %d) does not answer; restarting it\n",
                (int)pid);
        cli_proc_stop(pid, 1, STOP_MS);
    }
    unlink(L->registry_pid);
    if (!cli_port_free(c->registry_port))
        return fail(NULL, "port %d on 127.0.0.1 (the registry's, in %s) is taken by another "
                          "program", c->registry_port, L->registry_yml);
    if (mkdir(L->registry, 0700) < 0 && errno != EEXIST)
        return fail(NULL, "mkdir %s: %s", L->registry, strerror(errno));
    char prog[PATH_MAX];
    if (cli_which("docker-registry", prog, sizeof prog) < 0)
        return fail(NULL, "docker-registry is not installed");
    char *argv[] = {prog, "serve", (char *)L->registry_yml, NULL};
    cli_proc_opts_t o = {.cwd = L->registry, .log_path = L->registry_log, .new_session = 1};
    int rc = cli_proc_spawn(argv, &o, &pid);
    if (rc < 0)
        return fail(NULL, "starting docker-registry: %s", strerror(-rc));
    c->started_registry = pid;
    if ((rc = cli_pidfile_write(L->registry_pid, pid)) < 0)
        return fail(NULL, "cannot write %s: %s", L->registry_pid, strerror(-rc));
    long long deadline = cli_now_ms() + REGISTRY_READY_MS;
    while (registry_answers(c->registry_port, 1000) < 0) {
        int code;
        if (cli_proc_wait(pid, 0, &code) == 0)
            return fail(L->registry_log, "docker-registry exited with status %d", code);
        if (cli_now_ms() >= deadline)
            return fail(L->registry_log, "the registry did not answer GET /v2/ on 127.0.0.1:%d "
                                         "within %d s", c->registry_port, REGISTRY_READY_MS / 1000);
        nap(POLL_MS);
    }
    printf("registry: started on 127.0.0.1:%d (pid %d)\n", c->registry_port, (int)pid);
    return 0;
}

/* ---- images --------------------------------------------------------------------------- */

/* Runs a contrib/images script; returns its exit code, or a negative errno. */
static int image_script(cli_compute_t *c, const char *script, char *const args[], int timeout_ms) {
    char path[PATH_MAX];
    char rel[64];
    snprintf(rel, sizeof rel, "contrib/images/%s", script);
    if (cli_find_share(rel, path, sizeof path) < 0)
        return -ENOENT;
    char *argv[12] = {"/bin/bash", path};
    int n = 2;
    for (int i = 0; args[i] != NULL && n < 11; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    cli_proc_opts_t o = {.cwd = c->L->dir, .log_path = c->L->images_log};
    int code;
    int rc = cli_proc_run(argv, &o, timeout_ms, &code);
    return rc < 0 ? rc : code;
}

/* Builds (or finds in the cache) and pushes one image; 0, or -1 after printing why. */
static int image_one(cli_compute_t *c, const char *name) {
    char reg[64];
    snprintf(reg, sizeof reg, "127.0.0.1:%d", c->registry_port);
    char *build[] = {"--cache", (char *)c->L->cache, "--only", (char *)name, NULL};
    int rc = image_script(c, "build.sh", build, IMAGE_BUILD_MS);
    if (rc != 0)
        return fail(c->L->images_log, "building the %s image failed (%s; log %s)", name,
                    rc < 0 ? strerror(-rc) : rc == 77 ? "a tool is missing" : "exit status",
                    c->L->images_log);
    char *push[] = {reg, "--cache", (char *)c->L->cache, "--only", (char *)name, NULL};
    rc = image_script(c, "push.sh", push, IMAGE_PUSH_MS);
    if (rc != 0)
        return fail(c->L->images_log, "pushing the %s image to %s failed (%s)", name, reg,
                    rc < 0 ? strerror(-rc) : "exit status");
    return 0;
}

static int rescan(cli_compute_t *c) {
    char body[128], out[16384];
    int status;
    snprintf(body, sizeof body, "{\"registry\": \"127.0.0.1:%d\"}", c->registry_port);
    int rc = cli_signed_call(c->mgr_host, c->mgr_port, c->admin_ak, c->admin_sk, "POST",
                             "/admin/rest/images/rescan", body, RESCAN_MS, &status, out, sizeof out);
    if (rc < 0)
        return fail(NULL, "POST /admin/rest/images/rescan: %s", strerror(-rc));
    if (status != 200)
        return fail(NULL, "POST /admin/rest/images/rescan answered %d: %.300s", status, out);
    json_t *doc = json_loads(out, 0, NULL);
    json_t *images = json_object_get(doc, "images"), *errs = json_object_get(doc, "errors");
    size_t i;
    json_t *v;
    printf("images: rescanned 127.0.0.1:%d:", c->registry_port);
    json_array_foreach(images, i, v) printf(" %s", json_string_value(v));
    printf("\n");
    json_array_foreach(errs, i, v) {
        char *e = json_dumps(v, JSON_COMPACT);
        fprintf(stderr, "baic up: rescan error: %s\n", e ? e : "?");
        free(e);
    }
    json_decref(doc);
    return 0;
}

int cli_images_up(cli_compute_t *c) {
    if (mkdir(c->L->cache, 0700) < 0 && errno != EEXIST)
        return fail(NULL, "mkdir %s: %s", c->L->cache, strerror(errno));
    printf("images: busybox (log %s)\n", c->L->images_log);
    fflush(stdout);
    if (image_one(c, "busybox") < 0)
        return -1;
    c->python_ok = 0;
    if (!c->no_python) {
        char tar[PATH_MAX + 40];
        snprintf(tar, sizeof tar, "%s/python-bookworm-rootfs.tar", c->L->cache);
        printf("images: python%s\n", access(tar, F_OK) == 0
                                         ? " (from the cached root file system)"
                                         : " (debootstrap: a few minutes the first time)");
        fflush(stdout);
        /* busybox alone still makes a working system: a python failure is a warning. */
        if (image_one(c, "python") == 0)
            c->python_ok = 1;
        else
            fprintf(stderr, "baic up: continuing without the python image; `baic up` again "
                            "retries it\n");
    }
    return rescan(c);
}

/* ---- agent ---------------------------------------------------------------------------- */

/* A short stable tag of the data directory, so that two data dirs never share crun state. */
static unsigned long dir_tag(const char *dir) {
    unsigned long h = 5381;
    for (const unsigned char *p = (const unsigned char *)dir; *p; p++)
        h = h * 33u ^ *p;
    return h & 0xffffffffu;
}


static int write_agent_toml(cli_compute_t *c) {
    const cli_layout_t *L = c->L;
    int port;
    if (cli_port_pick(&port) < 0 || port == c->mgr_port || port == c->registry_port)
        return fail(NULL, "no free port on 127.0.0.1 for the agent");
    char secret_q[600], data_q[2 * PATH_MAX], state_q[2 * PATH_MAX + 8], host_q[600], pw_q[640];
    char state[PATH_MAX + 8], text[8192];
    cli_toml_str(c->secret, secret_q, sizeof secret_q);
    cli_toml_str(L->agent, data_q, sizeof data_q);
    snprintf(state, sizeof state, "%s/oci", L->agent);
    cli_toml_str(state, state_q, sizeof state_q);
    cli_toml_str(c->redis_host, host_q, sizeof host_q);
    pw_q[0] = '\0';
    if (c->redis_password != NULL) {
        char q[600];
        cli_toml_str(c->redis_password, q, sizeof q);
        snprintf(pw_q, sizeof pw_q, "password = %s\n", q);
    }
    int n = snprintf(
        text, sizeof text,
        "# baic-agent settings, written once by `baic up` (docs/agent.md). Edit freely;\n"
        "# cluster_secret must stay equal to the manager's (etc/cluster_secret).\n"
        "[agent]\n"
        "listen = \"127.0.0.1:%d\"\n"
        "region = \"local\"\n"
        "scaling_group = \"default\"\n"
        "cluster_secret = %s\n"
        "data_dir = %s\n"
        "heartbeat_interval_ms = 2000\n"
        "\n"
        "[redis]\n"
        "host = %s\n"
        "port = %d\n"
        "%s"
        "\n"
        "[plugins]\n"
        "load = [\"compute/cpu\", \"compute/mem\", \"compute/mock\", \"runtime/oci\"]\n"
        "\n"
        "[plugin.\"compute/mem\"]\n"
        "reserve = \"10%%\"\n"
        "\n"
        "# Two fake devices (mock.device slots) to try device requests without a GPU.\n"
        "[plugin.\"compute/mock\"]\n"
        "count = 2\n"
        "\n"
        "[plugin.\"runtime/oci\"]\n"
        "runtime = \"crun\"\n"
        "state_dir = %s\n"
        "runtime_root = \"/run/baic-up-%08lx\"\n"
        "registry_insecure = true\n",
        port, secret_q, data_q, host_q, c->redis_port, pw_q, state_q, dir_tag(L->dir));
    explicit_bzero(secret_q, sizeof secret_q);
    if (n >= (int)sizeof text) {
        explicit_bzero(text, sizeof text);
        return fail(NULL, "agent.toml would be too long");
    }
    int rc = cli_write_file(L->agent_toml, text, 0600);
    explicit_bzero(text, sizeof text);
    if (rc < 0)
        return fail(NULL, "cannot write %s: %s", L->agent_toml, strerror(-rc));
    return 0;
}

/* 0 when the manager counts free capacity from an ALIVE agent in the default group. */
static int agent_alive(cli_compute_t *c) {
    char out[32768];
    int status;
    if (cli_signed_call(c->mgr_host, c->mgr_port, c->admin_ak, c->admin_sk, "POST",
                        "/resource/check-presets", "{}", 5000, &status, out, sizeof out) < 0 ||
        status != 200)
        return -1;
    json_t *doc = json_loads(out, 0, NULL);
    json_t *cpu = json_object_get(json_object_get(doc, "scaling_group_remaining"), "cpu");
    int alive = cpu != NULL && ((json_is_string(cpu) && atof(json_string_value(cpu)) > 0) ||
                                (json_is_number(cpu) && json_number_value(cpu) > 0));
    json_decref(doc);
    return alive ? 0 : -1;
}

/* The secret agent.toml holds must be the manager's, or every RPC would be refused. */
static int agent_secret_matches(cli_compute_t *c) {
    json_t *conf = NULL;
    char err[512];
    const char *s = NULL;
    if (baic_config_parse_file(c->L->agent_toml, &conf, err, sizeof err) != 0)
        return fail(NULL, "%s", err);
    int rc = baic_config_get_string(conf, "agent.cluster_secret", NULL, &s, err, sizeof err);
    int same = rc == 0 && s != NULL && strcmp(s, c->secret) == 0;
    json_decref(conf);
    if (!same)
        return fail(NULL, "[agent] cluster_secret in %s differs from the manager's: make them "
                          "equal (or delete %s to have it written again)",
                    c->L->agent_toml, c->L->agent_toml);
    return 0;
}

int cli_agent_up(cli_compute_t *c) {
    const cli_layout_t *L = c->L;
    char bin[PATH_MAX];
    if (cli_find_agent(bin, sizeof bin) < 0)
        return fail(NULL, "baic-agent not found (BAIC_AGENT_BIN names it)");
    if (mkdir(L->agent, 0700) < 0 && errno != EEXIST)
        return fail(NULL, "mkdir %s: %s", L->agent, strerror(errno));
    if (access(L->agent_toml, F_OK) < 0 && write_agent_toml(c) < 0)
        return -1;
    if (agent_secret_matches(c) < 0)
        return -1;
    pid_t pid;
    int fresh = 0;
    if (cli_pidfile_live(L->agent_pid, L->agent_toml, &pid) == 1) {
        printf("agent: running (pid %d)\n", (int)pid);
    } else {
        unlink(L->agent_pid);
        char *argv[] = {bin, "-c", (char *)L->agent_toml, NULL};
        cli_proc_opts_t o = {.cwd = L->dir, .log_path = L->agent_log, .new_session = 1};
        int rc = cli_proc_spawn(argv, &o, &pid);
        if (rc < 0)
            return fail(NULL, "starting baic-agent: %s", strerror(-rc));
        c->started_agent = pid;
        fresh = 1;
        if ((rc = cli_pidfile_write(L->agent_pid, pid)) < 0)
            return fail(NULL, "cannot write %s: %s", L->agent_pid, strerror(-rc));
    }
    long long deadline = cli_now_ms() + AGENT_READY_MS;
    while (agent_alive(c) < 0) {
        int code;
        if (fresh && cli_proc_wait(pid, 0, &code) == 0)
            return fail(L->agent_log, "baic-agent exited with status %d", code);
        if (!fresh && !cli_proc_alive(pid, L->agent_toml))
            return fail(L->agent_log, "baic-agent (pid %d) went away", (int)pid);
        if (cli_now_ms() >= deadline)
            return fail(L->agent_log, "the agent did not show up ALIVE in the manager within "
                                      "%d s", AGENT_READY_MS / 1000);
        nap(200);
    }
    if (fresh)
        printf("agent: started (pid %d), ALIVE in the manager\n", (int)pid);
    return 0;
}

void cli_compute_undo(cli_compute_t *c) {
    if (c->started_agent > 0) {
        cli_proc_stop(c->started_agent, 1, STOP_MS);
        unlink(c->L->agent_pid);
    }
    if (c->started_registry > 0) {
        cli_proc_stop(c->started_registry, 1, STOP_MS);
        unlink(c->L->registry_pid);
    }
}
