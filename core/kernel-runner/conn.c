/* SPDX-License-Identifier: Apache-2.0 */
/* The runner's unix socket: accepts the agent, frames newline-delimited JSON both ways. */
#define _GNU_SOURCE
#include "runner.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

void kr_dispatch(struct kr *kr, unsigned conn, json_t *req); /* main.c */
json_t *kr_hello(struct kr *kr);                             /* main.c */

/* A slow reader must not make the runner hold unbounded output. */
#define KR_OUT_LIMIT ((size_t)256 << 20)

static struct kr_conn *conn_find(struct kr *kr, unsigned serial)
{
    for (int i = 0; i < KR_MAX_CONN; i++)
        if (kr->conn[i].fd >= 0 && kr->conn[i].serial == serial)
            return &kr->conn[i];
    return NULL;
}

static void conn_drop(struct kr *kr, struct kr_conn *c)
{
    unsigned serial = c->serial;
    kr_watch_del(kr, c->fd);
    kr_close(&c->fd);
    kr_buf_free(&c->in);
    kr_buf_free(&c->out);
    c->serial = 0;
    kr_pty_conn_closed(kr, serial);
    fprintf(stderr, "kernel-runner: event=conn_closed conn=%u\n", serial);
}

static void conn_flush(struct kr *kr, struct kr_conn *c)
{
    while (c->out.len > 0) {
        ssize_t n = send(c->fd, c->out.p, c->out.len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            conn_drop(kr, c);
            return;
        }
        kr_buf_consume(&c->out, (size_t)n);
    }
    kr_watch_events(kr, c->fd, POLLIN | (c->out.len > 0 ? POLLOUT : 0));
}

static void conn_queue(struct kr *kr, struct kr_conn *c, const char *line, size_t len)
{
    if (c->out.len + len > KR_OUT_LIMIT) {
        fprintf(stderr, "kernel-runner: event=conn_overflow conn=%u\n", c->serial);
        conn_drop(kr, c);
        return;
    }
    kr_buf_add(&c->out, line, len);
    kr_buf_add(&c->out, "\n", 1);
    conn_flush(kr, c);
}

void kr_send(struct kr *kr, unsigned conn, json_t *msg)
{
    char *s = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (s == NULL)
        return;
    size_t len = strlen(s);
    for (int i = 0; i < KR_MAX_CONN; i++) {
        struct kr_conn *c = &kr->conn[i];
        if (c->fd >= 0 && (conn == 0 || c->serial == conn))
            conn_queue(kr, c, s, len);
    }
    free(s);
}

void kr_send_error(struct kr *kr, unsigned conn, json_t *id, const char *slug, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(msg, sizeof msg, fmt, ap) < 0)
        msg[0] = '\0';
    va_end(ap);
    kr_send(kr, conn,
            json_pack("{s:O?,s:b,s:s,s:s}", "id", id, "ok", 0, "error", slug, "msg", msg));
}

size_t kr_conn_backlog(struct kr *kr, unsigned conn)
{
    struct kr_conn *c = conn_find(kr, conn);
    return c != NULL ? c->out.len : 0;
}

static size_t max_line(struct kr *kr)
{
    return kr->conf.max_file / 3 * 4 + ((size_t)1 << 20);
}

static void conn_cb(struct kr *kr, int fd, short revents, void *arg)
{
    struct kr_conn *c = arg;
    unsigned serial = c->serial;
    if (revents & POLLOUT) {
        conn_flush(kr, c);
        if (c->fd < 0)
            return;
    }
    if (!(revents & (POLLIN | POLLHUP | POLLERR)))
        return;
    char buf[65536];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        conn_drop(kr, c);
        return;
    }
    kr_buf_add(&c->in, buf, (size_t)n);
    char *nl;
    while (c->fd >= 0 && c->serial == serial && (nl = memchr(c->in.p, '\n', c->in.len)) != NULL) {
        size_t len = (size_t)(nl - c->in.p);
        json_error_t jerr;
        json_t *req = len > 0 ? json_loadb(c->in.p, len, 0, &jerr) : NULL;
        kr_buf_consume(&c->in, len + 1);
        if (len == 0)
            continue;
        if (req == NULL || !json_is_object(req)) {
            kr_send_error(kr, serial, NULL, "invalid-request", "not a JSON object: %s",
                          req == NULL ? jerr.text : "wrong type");
            json_decref(req);
            continue;
        }
        kr_dispatch(kr, serial, req);
        json_decref(req);
    }
    if (c->fd >= 0 && c->serial == serial && c->in.len > max_line(kr)) {
        kr_send_error(kr, serial, NULL, "too-large", "request line over %zu bytes", max_line(kr));
        conn_drop(kr, c);
    }
}

static void listen_cb(struct kr *kr, int fd, short revents, void *arg)
{
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0)
        return;
    struct kr_conn *c = NULL;
    for (int i = 0; i < KR_MAX_CONN && c == NULL; i++)
        if (kr->conn[i].fd < 0)
            c = &kr->conn[i];
    if (c == NULL) {
        static const char full[] = "{\"op\":\"hello\",\"ok\":false,\"error\":\"too-many-connections\"}\n";
        (void)!send(cfd, full, sizeof full - 1, MSG_NOSIGNAL);
        close(cfd);
        return;
    }
    c->fd = cfd;
    c->serial = ++kr->next_serial;
    if (kr_watch_add(kr, cfd, POLLIN, conn_cb, c) < 0) {
        kr_close(&c->fd);
        return;
    }
    fprintf(stderr, "kernel-runner: event=conn_accepted conn=%u\n", c->serial);
    kr_send(kr, c->serial, kr_hello(kr));
    if (kr->startup != NULL)
        kr_send(kr, c->serial, json_incref(kr->startup));
}

int kr_conn_listen(struct kr *kr, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* A socket file left by an earlier runner in the same container would block bind. */
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 8) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    /* Only root (the agent) and the owner may connect: the socket runs code. */
    chmod(path, 0600);
    kr->listen_fd = fd;
    return kr_watch_add(kr, fd, POLLIN, listen_cb, NULL);
}

void kr_conn_close_all(struct kr *kr)
{
    for (int i = 0; i < KR_MAX_CONN; i++) {
        struct kr_conn *c = &kr->conn[i];
        if (c->fd < 0)
            continue;
        /* Best effort: give queued results one blocking chance to leave. */
        kr_nonblock(c->fd);
        if (c->out.len > 0)
            (void)!send(c->fd, c->out.p, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        conn_drop(kr, c);
    }
    if (kr->listen_fd >= 0) {
        kr_watch_del(kr, kr->listen_fd);
        kr_close(&kr->listen_fd);
    }
}
