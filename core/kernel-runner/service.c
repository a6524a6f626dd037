/* SPDX-License-Identifier: Apache-2.0 */
/* Service ports (ai.backend.service-ports): each started on demand from its definition file
 * and reported once its port accepts connections. */
#define _GNU_SOURCE
#include "runner.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define KR_SERVICE_WAIT_MS 15000
#define KR_SERVICE_POLL_MS 100

struct kr_service {
    char name[64];
    int ports[8];
    int nports;
    pid_t pid;
    int ready;
    int64_t deadline, next_check;
    /* callers waiting for it to come up */
    json_t *waiters; /* [[conn, id], ...] */
};

/* Finds name in the service-ports string ("a:http:8080,b:tcp:[2200,2201]"); fills ports
 * and protocol. Returns 0 or -ENOENT. */
static int ports_lookup(const char *spec, const char *name, int *ports, int *nports,
                        char *proto, size_t protolen)
{
    const char *p = spec;
    while (*p != '\0') {
        /* one entry runs to the next comma outside brackets */
        const char *end = p;
        int depth = 0;
        while (*end != '\0' && (*end != ',' || depth > 0)) {
            depth += *end == '[' ? 1 : *end == ']' ? -1 : 0;
            end++;
        }
        const char *c1 = memchr(p, ':', (size_t)(end - p));
        const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
        if (c2 != NULL && (size_t)(c1 - p) == strlen(name) && strncmp(p, name, strlen(name)) == 0) {
            snprintf(proto, protolen, "%.*s", (int)(c2 - c1 - 1), c1 + 1);
            *nports = 0;
            for (const char *q = c2 + 1; q < end && *nports < 8;) {
                while (q < end && (*q < '0' || *q > '9'))
                    q++;
                if (q >= end)
                    break;
                ports[(*nports)++] = atoi(q);
                while (q < end && *q >= '0' && *q <= '9')
                    q++;
            }
            return 0;
        }
        p = *end == ',' ? end + 1 : end;
    }
    return -ENOENT;
}

static int port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static json_t *ports_json(struct kr_service *s)
{
    json_t *a = json_array();
    for (int i = 0; i < s->nports; i++)
        json_array_append_new(a, json_integer(s->ports[i]));
    return a;
}

static void answer_waiters(struct kr *kr, struct kr_service *s, const char *slug, const char *msg)
{
    size_t i;
    json_t *w;
    json_array_foreach(s->waiters, i, w) {
        unsigned conn = (unsigned)json_integer_value(json_array_get(w, 0));
        json_t *id = json_array_get(w, 1);
        if (slug == NULL)
            kr_send(kr, conn, json_pack("{s:O,s:b,s:s,s:o,s:i,s:b}", "id", id, "ok", 1, "name",
                                        s->name, "ports", ports_json(s), "pid", (int)s->pid,
                                        "started", 1));
        else
            kr_send_error(kr, conn, id, slug, "service %s: %s", s->name, msg);
    }
    json_array_clear(s->waiters);
}

/* Replaces {port} and {ports[N]} in one argument. */
static char *subst(const char *arg, struct kr_service *s)
{
    struct kr_buf b = {0};
    for (const char *p = arg; *p != '\0';) {
        int idx = -1, skip = 0;
        if (strncmp(p, "{port}", 6) == 0) {
            idx = 0;
            skip = 6;
        } else if (strncmp(p, "{ports[", 7) == 0 && p[7] >= '0' && p[7] <= '7' &&
                   strncmp(p + 8, "]}", 2) == 0) {
            idx = p[7] - '0';
            skip = 10;
        }
        if (idx >= 0 && idx < s->nports) {
            char num[16];
            int l = snprintf(num, sizeof num, "%d", s->ports[idx]);
            kr_buf_add(&b, num, l > 0 ? (size_t)l : 0);
            p += skip;
        } else {
            kr_buf_add(&b, p, 1);
            p++;
        }
    }
    kr_buf_add(&b, "", 0);
    return b.p;
}

static int service_spawn(struct kr *kr, struct kr_service *s, const char **err)
{
    char path[4096];
    int l = snprintf(path, sizeof path, "%s/%s.json", kr->conf.service_defs, s->name);
    if (l < 0 || (size_t)l >= sizeof path) {
        *err = "definition path too long";
        return -ENAMETOOLONG;
    }
    json_error_t jerr;
    json_t *def = json_load_file(path, 0, &jerr);
    json_t *cmd = json_object_get(def, "command");
    if (!json_is_array(cmd) || json_array_size(cmd) == 0) {
        json_decref(def);
        *err = "no service definition (command) for it";
        return -ENOENT;
    }
    size_t n = json_array_size(cmd);
    char **argv = calloc(n + 1, sizeof *argv);
    for (size_t i = 0; i < n; i++)
        argv[i] = subst(json_string_value(json_array_get(cmd, i)) ?: "", s);
    const char *k;
    json_t *v;
    /* The env goes to the service only: set in the runner just around the fork. */
    json_object_foreach(json_object_get(def, "env"), k, v) {
        if (json_is_string(v))
            setenv(k, json_string_value(v), 1);
    }
    int fds[5] = {-1, -1, -1, -1, -1};
    pid_t pid = kr_spawn(argv, kr->conf.home, fds, -1);
    json_object_foreach(json_object_get(def, "env"), k, v) unsetenv(k);
    for (size_t i = 0; i < n; i++)
        free(argv[i]);
    free(argv);
    json_decref(def);
    if (pid < 0) {
        *err = strerror(-pid);
        return pid;
    }
    s->pid = pid;
    s->ready = 0;
    s->deadline = kr_now_ms() + KR_SERVICE_WAIT_MS;
    s->next_check = kr_now_ms() + KR_SERVICE_POLL_MS / 2;
    fprintf(stderr, "kernel-runner: event=service_started name=%s pid=%d\n", s->name, (int)pid);
    return 0;
}

void kr_service_request(struct kr *kr, unsigned conn, json_t *id, json_t *req)
{
    const char *name = NULL;
    json_error_t jerr;
    if (json_unpack_ex(req, &jerr, 0, "{s:s}", "name", &name) < 0) {
        kr_send_error(kr, conn, id, "invalid-request", "service.start: %s", jerr.text);
        return;
    }
    struct kr_service *s = NULL;
    int free_slot = -1;
    for (int i = 0; i < KR_MAX_SERVICE; i++) {
        if (kr->svc[i] != NULL && strcmp(kr->svc[i]->name, name) == 0)
            s = kr->svc[i];
        else if (kr->svc[i] == NULL && free_slot < 0)
            free_slot = i;
    }
    if (s == NULL) {
        int ports[8], nports = 0;
        char proto[16];
        if (strlen(name) >= sizeof s->name ||
            ports_lookup(kr->conf.service_ports, name, ports, &nports, proto, sizeof proto) < 0) {
            kr_send_error(kr, conn, id, "not-found", "no service port named \"%s\"", name);
            return;
        }
        if (strcmp(proto, "preopen") == 0) {
            kr_send_error(kr, conn, id, "invalid-request",
                          "\"%s\" is a preopen port: the user starts what listens there", name);
            return;
        }
        if (free_slot < 0) {
            kr_send_error(kr, conn, id, "too-many", "at most %d services", KR_MAX_SERVICE);
            return;
        }
        s = calloc(1, sizeof *s);
        snprintf(s->name, sizeof s->name, "%s", name);
        memcpy(s->ports, ports, sizeof ports);
        s->nports = nports;
        s->waiters = json_array();
        kr->svc[free_slot] = s;
    }
    if (s->pid > 0 && s->ready) {
        kr_send(kr, conn, json_pack("{s:O?,s:b,s:s,s:o,s:i,s:b}", "id", id, "ok", 1, "name",
                                    s->name, "ports", ports_json(s), "pid", (int)s->pid,
                                    "started", 0));
        return;
    }
    if (s->pid == 0) {
        const char *err = NULL;
        if (service_spawn(kr, s, &err) < 0) {
            kr_send_error(kr, conn, id, "failed", "service %s: %s", name, err);
            return;
        }
    }
    json_array_append_new(s->waiters, json_pack("[iO]", (int)conn, id ? id : json_null()));
}

int kr_service_child_exited(struct kr *kr, pid_t pid, int status)
{
    for (int i = 0; i < KR_MAX_SERVICE; i++) {
        struct kr_service *s = kr->svc[i];
        if (s == NULL || s->pid != pid)
            continue;
        char msg[64];
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (snprintf(msg, sizeof msg, "exited with code %d", code) < 0)
            msg[0] = '\0';
        answer_waiters(kr, s, "service-failed", msg);
        fprintf(stderr, "kernel-runner: event=service_exited name=%s exit_code=%d\n", s->name,
                code);
        s->pid = 0;
        s->ready = 0;
        return 1;
    }
    return 0;
}

int64_t kr_service_timeout(struct kr *kr, int64_t now)
{
    int64_t next = -1;
    for (int i = 0; i < KR_MAX_SERVICE; i++) {
        struct kr_service *s = kr->svc[i];
        if (s == NULL || s->pid == 0 || s->ready)
            continue;
        if (now >= s->next_check) {
            int up = s->nports > 0;
            for (int k = 0; k < s->nports; k++)
                up = up && port_open(s->ports[k]);
            if (up) {
                s->ready = 1;
                answer_waiters(kr, s, NULL, NULL);
                continue;
            }
            if (now >= s->deadline) {
                kill(-s->pid, SIGTERM);
                answer_waiters(kr, s, "service-timeout", "its port did not open in time");
                continue;
            }
            s->next_check = now + KR_SERVICE_POLL_MS;
        }
        if (next < 0 || s->next_check < next)
            next = s->next_check;
    }
    return next;
}

void kr_service_shutdown(struct kr *kr)
{
    for (int i = 0; i < KR_MAX_SERVICE; i++) {
        struct kr_service *s = kr->svc[i];
        if (s == NULL)
            continue;
        if (s->pid > 0)
            kill(-s->pid, SIGTERM);
        json_decref(s->waiters);
        free(s);
        kr->svc[i] = NULL;
    }
}
