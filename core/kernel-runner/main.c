/* SPDX-License-Identifier: Apache-2.0 */
/* baic-kernel-runner: configuration, bootstrap, the poll loop and request dispatch. */
#define _GNU_SOURCE
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef BAIC_VERSION
#define BAIC_VERSION "0.0.0"
#endif

/* The one global: a signal handler can reach nothing else. */
static int sig_wfd = -1;

static void on_signal(int sig)
{
    int e = errno;
    unsigned char b = (unsigned char)sig;
    (void)!write(sig_wfd, &b, 1);
    errno = e;
}

int kr_watch_add(struct kr *kr, int fd, short events, kr_watch_cb cb, void *arg)
{
    if (kr->nwatch == KR_MAX_WATCH)
        return -ENOSPC;
    kr->watch[kr->nwatch++] = (struct kr_watch){fd, events, cb, arg};
    return 0;
}

void kr_watch_events(struct kr *kr, int fd, short events)
{
    for (size_t i = 0; i < kr->nwatch; i++)
        if (kr->watch[i].fd == fd)
            kr->watch[i].events = events;
}

void kr_watch_del(struct kr *kr, int fd)
{
    for (size_t i = 0; i < kr->nwatch; i++) {
        if (kr->watch[i].fd == fd) {
            kr->watch[i] = kr->watch[--kr->nwatch];
            return;
        }
    }
}

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : def;
}

json_t *kr_hello(struct kr *kr)
{
    return json_pack("{s:s,s:s,s:s,s:i,s:[sssssssss],s:O?}", "op", "hello", "version",
                     BAIC_VERSION, "runtimeType", kr->conf.runtime_type, "pid", (int)getpid(),
                     "features", "query", "batch", "input", "interrupt", "complete", "files",
                     "pty", "service", "startup", "bootstrap", kr->bootstrap);
}

void kr_dispatch(struct kr *kr, unsigned conn, json_t *req)
{
    json_t *id = json_object_get(req, "id");
    const char *op = json_string_value(json_object_get(req, "op"));
    if (op == NULL) {
        kr_send_error(kr, conn, id, "invalid-request", "\"op\" (string) is required");
    } else if (strcmp(op, "execute") == 0) {
        kr_exec_request(kr, conn, id, req);
    } else if (strcmp(op, "interrupt") == 0) {
        kr_exec_interrupt(kr, conn, id);
    } else if (strcmp(op, "complete") == 0) {
        kr_exec_complete(kr, conn, id, req);
    } else if (strncmp(op, "files.", 6) == 0) {
        kr_files_request(kr, conn, id, op + 6, req);
    } else if (strncmp(op, "pty.", 4) == 0) {
        kr_pty_request(kr, conn, id, op + 4, req);
    } else if (strcmp(op, "service.start") == 0) {
        kr_service_request(kr, conn, id, req);
    } else if (strcmp(op, "hello") == 0 || strcmp(op, "ping") == 0) {
        json_t *h = kr_hello(kr);
        json_object_set(h, "id", id);
        json_object_set_new(h, "ok", json_true());
        kr_send(kr, conn, h);
    } else {
        kr_send_error(kr, conn, id, "unknown-op", "unknown op \"%s\"", op);
    }
}

static void reap(struct kr *kr)
{
    int status;
    pid_t pid;
    /* As PID 1 of a container the runner also reaps orphans nobody else waits for. */
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (kr_exec_child_exited(kr, pid, status))
            continue;
        if (kr_pty_child_exited(kr, pid, status))
            continue;
        kr_service_child_exited(kr, pid, status);
    }
}

static void signal_cb(struct kr *kr, int fd, short revents, void *arg)
{
    unsigned char b[64];
    ssize_t n = read(fd, b, sizeof b);
    for (ssize_t i = 0; i < n; i++) {
        if (b[i] == SIGTERM || b[i] == SIGINT || b[i] == SIGHUP)
            kr->stop = 1;
    }
    reap(kr);
}

/* Runs the session's bootstrap script once, before the agent is told the kernel is up,
 * the way Backend.AI kernels do; its output and exit code go into the hello. */
static void run_bootstrap(struct kr *kr)
{
    const char *script = getenv("BACKENDAI_BOOTSTRAP_SCRIPT");
    const char *file = env_or("BAIC_RUNNER_BOOTSTRAP_FILE", "/home/config/bootstrap.sh");
    char *argv[4] = {(char *)kr->conf.shell, "-c", NULL, NULL};
    struct stat st;
    if (script != NULL && script[0] != '\0') {
        argv[2] = (char *)script;
    } else if (stat(file, &st) == 0 && S_ISREG(st.st_mode)) {
        argv[1] = (char *)file;
    } else {
        return;
    }
    int p[2];
    if (kr_pipe(p) < 0)
        return;
    int fds[5] = {-1, p[1], p[1], -1, -1};
    pid_t pid = kr_spawn(argv, kr->conf.home, fds, -1);
    close(p[1]);
    struct kr_buf out = {0};
    char buf[4096];
    ssize_t n;
    while ((n = read(p[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0 && out.len < 65536)
            kr_buf_add(&out, buf, (size_t)n);
    close(p[0]);
    int status = 0, rc = -1;
    if (pid > 0) {
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    struct kr_buf clean = {0};
    kr_utf8_clean(&clean, out.p ? out.p : "", out.len, 0);
    kr->bootstrap = json_pack("{s:i,s:s#}", "exitCode", rc, "output", clean.p ? clean.p : "",
                              clean.len);
    fprintf(stderr, "kernel-runner: event=bootstrap exit_code=%d\n", rc);
    kr_buf_free(&out);
    kr_buf_free(&clean);
}

static void usage(void)
{
    fprintf(stderr, "usage: baic-kernel-runner [--socket PATH] [--home DIR] [--version]\n"
                    "  (environment: BACKENDAI_RUNNER_SOCKET, BAIC_RUNNER_HOME, see "
                    "docs/kernel-runner.md)\n");
}

int main(int argc, char **argv)
{
    static struct kr kr_s; /* big; zeroed */
    struct kr *kr = &kr_s;
    kr->conf.socket_path = env_or("BACKENDAI_RUNNER_SOCKET", "/opt/backend.ai/runner.sock");
    kr->conf.home = env_or("BAIC_RUNNER_HOME", "/home/work");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            printf("baic-kernel-runner %s\n", BAIC_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            kr->conf.socket_path = argv[++i];
        } else if (strcmp(argv[i], "--home") == 0 && i + 1 < argc) {
            kr->conf.home = argv[++i];
        } else if (argv[i][0] != '-') {
            kr->conf.socket_path = argv[i];
        } else {
            usage();
            return 2;
        }
    }
    kr->conf.runtime_path = env_or("BACKENDAI_RUNTIME_PATH", "/usr/bin/python3");
    /* Without the label, an image that has the interpreter gets the Python kernel. */
    kr->conf.runtime_type = env_or("BACKENDAI_RUNTIME_TYPE",
                                   access(kr->conf.runtime_path, X_OK) == 0 &&
                                           strstr(kr->conf.runtime_path, "python") != NULL
                                       ? "python"
                                       : "app");
    kr->conf.shell = env_or("BAIC_RUNNER_SHELL", "/bin/sh");
    kr->conf.service_ports = env_or("BACKENDAI_SERVICE_PORTS", "");
    kr->conf.service_defs = env_or("BAIC_RUNNER_SERVICE_DEFS", "/etc/backend.ai/service-defs");
    kr->conf.flush_ms = atoi(env_or("BAIC_RUNNER_FLUSH_MS", "1000"));
    if (kr->conf.flush_ms <= 0)
        kr->conf.flush_ms = 1000;
    kr->conf.max_file = (size_t)strtoull(env_or("BAIC_RUNNER_MAX_FILE", "33554432"), NULL, 10);
    if (kr->conf.max_file == 0)
        kr->conf.max_file = (size_t)32 << 20;
    kr->conf.no_openat2 = atoi(env_or("BAIC_RUNNER_NO_OPENAT2", "0"));

    kr->listen_fd = -1;
    for (int i = 0; i < KR_MAX_CONN; i++)
        kr->conn[i].fd = -1;

    kr->root_fd = open(kr->conf.home, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (kr->root_fd < 0) {
        fprintf(stderr, "kernel-runner: event=start_failed home=%s error=\"%s\"\n", kr->conf.home,
                strerror(errno));
        return 1;
    }
    if (pipe2(kr->sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return 1;
    sig_wfd = kr->sig_pipe[1];
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    run_bootstrap(kr);

    int rc = kr_conn_listen(kr, kr->conf.socket_path);
    if (rc < 0) {
        fprintf(stderr, "kernel-runner: event=start_failed socket=%s error=\"%s\"\n",
                kr->conf.socket_path, strerror(-rc));
        return 1;
    }
    kr_watch_add(kr, kr->sig_pipe[0], POLLIN, signal_cb, NULL);
    fprintf(stderr, "kernel-runner: event=listening socket=%s home=%s runtime=%s version=%s\n",
            kr->conf.socket_path, kr->conf.home, kr->conf.runtime_type, BAIC_VERSION);
    kr_exec_startup(kr);

    while (!kr->stop) {
        struct pollfd pfd[KR_MAX_WATCH];
        struct kr_watch snap[KR_MAX_WATCH];
        size_t n = kr->nwatch;
        for (size_t i = 0; i < n; i++) {
            snap[i] = kr->watch[i];
            pfd[i] = (struct pollfd){.fd = snap[i].fd, .events = snap[i].events};
        }
        int64_t now = kr_now_ms(), next = -1, t;
        if ((t = kr_exec_timeout(kr, now)) >= 0)
            next = t;
        if ((t = kr_service_timeout(kr, now)) >= 0 && (next < 0 || t < next))
            next = t;
        int timeout = next < 0 ? -1 : (int)(next > now ? next - now : 0);
        int r = poll(pfd, (nfds_t)n, timeout);
        if (r < 0 && errno != EINTR)
            break;
        for (size_t i = 0; r > 0 && i < n; i++) {
            if (pfd[i].revents == 0)
                continue;
            /* A callback may have removed or replaced the watch: skip stale entries. */
            int live = 0;
            for (size_t j = 0; j < kr->nwatch; j++)
                if (kr->watch[j].fd == snap[i].fd && kr->watch[j].cb == snap[i].cb &&
                    kr->watch[j].arg == snap[i].arg)
                    live = 1;
            if (live)
                snap[i].cb(kr, snap[i].fd, pfd[i].revents, snap[i].arg);
        }
    }
    fprintf(stderr, "kernel-runner: event=stopping\n");
    kr_exec_shutdown(kr);
    kr_pty_shutdown(kr);
    kr_service_shutdown(kr);
    kr_conn_close_all(kr);
    unlink(kr->conf.socket_path);
    json_decref(kr->bootstrap);
    json_decref(kr->startup);
    close(kr->root_fd);
    return 0;
}
