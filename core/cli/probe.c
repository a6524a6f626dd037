/* SPDX-License-Identifier: Apache-2.0 */
/* Loopback probes used to pick ports and to see whether a daemon really answers. */
#define _GNU_SOURCE /* strcasestr */
#include "cli/probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli/proc.h"

static int loopback_addr(const char *host, int port, struct sockaddr_in *sa) {
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((unsigned short)port);
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return -EINVAL;
    return 0;
}

static int bind_port(int port, int *bound) {
    struct sockaddr_in sa;
    int rc = loopback_addr("127.0.0.1", port, &sa);
    if (port == 0)
        rc = 0;
    if (rc < 0)
        return rc;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* As servers do: connections of a daemon that just died (TIME_WAIT) must not make its
     * port look taken; a live listener still does. */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        rc = -errno;
    } else {
        socklen_t len = sizeof sa;
        if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
            rc = -errno;
        else
            *bound = ntohs(sa.sin_port);
    }
    close(fd);
    return rc;
}

int cli_port_pick(int *port) {
    return bind_port(0, port);
}

int cli_port_free(int port) {
    int bound;
    /* A listener that set SO_REUSEADDR itself can let our test bind through; one that
     * accepts a connection is there for sure. */
    return bind_port(port, &bound) == 0 && cli_tcp_probe("127.0.0.1", port, 500) < 0;
}

/* Connected socket or negative errno, within timeout_ms. */
static int dial(const char *host, int port, int timeout_ms) {
    struct sockaddr_in sa;
    int rc = loopback_addr(host, port, &sa);
    if (rc < 0)
        return rc;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (errno != EINPROGRESS) {
            rc = -errno;
            close(fd);
            return rc;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int soerr = 0;
        socklen_t len = sizeof soerr;
        int n = poll(&pfd, 1, timeout_ms);
        if (n <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr != 0) {
            close(fd);
            return n == 0 ? -ETIMEDOUT : soerr ? -soerr : -ECONNREFUSED;
        }
    }
    return fd;
}

int cli_tcp_probe(const char *host, int port, int timeout_ms) {
    int fd = dial(host, port, timeout_ms);
    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}

/* Sends req, then reads until the peer closes, the buffer fills or the deadline passes. */
static int exchange(const char *host, int port, int timeout_ms, const char *req, char *buf,
                    size_t buflen, size_t *got) {
    long long deadline = cli_now_ms() + timeout_ms;
    int fd = dial(host, port, timeout_ms);
    if (fd < 0)
        return fd;
    size_t len = strlen(req), off = 0;
    int rc = 0;
    while (off < len && rc == 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int left = (int)(deadline - cli_now_ms());
        if (left <= 0 || poll(&pfd, 1, left) <= 0) {
            rc = -ETIMEDOUT;
            break;
        }
        ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            rc = -errno;
        else if (w > 0)
            off += (size_t)w;
    }
    *got = 0;
    while (rc == 0 && *got + 1 < buflen) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int left = (int)(deadline - cli_now_ms());
        if (left <= 0 || poll(&pfd, 1, left) <= 0) {
            rc = -ETIMEDOUT;
            break;
        }
        ssize_t r = recv(fd, buf + *got, buflen - 1 - *got, 0);
        if (r == 0)
            break;
        if (r < 0) {
            if (errno != EAGAIN && errno != EINTR)
                rc = -errno;
            continue;
        }
        *got += (size_t)r;
        /* Redis keeps the connection open: one complete reply line is enough. */
        if (strncmp(req, "PING", 4) == 0 && memchr(buf, '\n', *got) != NULL)
            break;
    }
    if (buflen > 0)
        buf[*got] = '\0';
    close(fd);
    return rc;
}

int cli_http_get(const char *host, int port, const char *path, int timeout_ms, int *status,
                 char *body, size_t bodylen) {
    char req[512], resp[16384] = "";
    snprintf(req, sizeof req,
             "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: application/json\r\n"
             "Connection: close\r\n\r\n",
             path, host, port);
    size_t got;
    int rc = exchange(host, port, timeout_ms, req, resp, sizeof resp, &got);
    /* A server that answered and then kept the socket open still answered. */
    if (rc < 0 && !(rc == -ETIMEDOUT && strstr(resp, "\r\n\r\n") != NULL))
        return rc;
    int code;
    if (sscanf(resp, "HTTP/1.%*d %d", &code) != 1)
        return -EPROTO;
    const char *sep = strstr(resp, "\r\n\r\n");
    *status = code;
    if (bodylen > 0)
        snprintf(body, bodylen, "%s", sep ? sep + 4 : "");
    return 0;
}

/* Undoes chunked transfer coding in place; a truncated body keeps what arrived. */
static void dechunk(char *body) {
    char *in = body, *out = body;
    for (;;) {
        char *end;
        unsigned long n = strtoul(in, &end, 16);
        char *eol = strstr(end, "\r\n");
        if (eol == NULL || n == 0)
            break;
        in = eol + 2;
        size_t have = strlen(in);
        if (n > have)
            n = have;
        memmove(out, in, n);
        out += n;
        in += n;
        if (strncmp(in, "\r\n", 2) != 0)
            break;
        in += 2;
    }
    *out = '\0';
}

int cli_http_request(const char *host, int port, const char *method, const char *path,
                     const char *headers, const char *body, int timeout_ms, int *status,
                     char *out, size_t outlen) {
    size_t blen = body ? strlen(body) : 0;
    size_t reqlen = strlen(method) + strlen(path) + strlen(headers ? headers : "") + blen + 256;
    char *req = malloc(reqlen), *resp = malloc(65536);
    if (req == NULL || resp == NULL) {
        free(req);
        free(resp);
        return -ENOMEM;
    }
    snprintf(req, reqlen,
             "%s %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: application/json\r\n%s"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
             method, path, host, port, headers ? headers : "", blen, body ? body : "");
    size_t got;
    resp[0] = '\0';
    int rc = exchange(host, port, timeout_ms, req, resp, 65536, &got);
    free(req);
    int code;
    if (rc < 0 && !(rc == -ETIMEDOUT && strstr(resp, "\r\n\r\n") != NULL)) {
        free(resp);
        return rc;
    }
    char *sep = strstr(resp, "\r\n\r\n");
    if (sscanf(resp, "HTTP/1.%*d %d", &code) != 1 || sep == NULL) {
        free(resp);
        return -EPROTO;
    }
    *sep = '\0';
    int chunked = strcasestr(resp, "\r\nTransfer-Encoding: chunked") != NULL;
    if (chunked)
        dechunk(sep + 4);
    *status = code;
    if (outlen > 0)
        snprintf(out, outlen, "%s", sep + 4);
    free(resp);
    return 0;
}

int cli_redis_ping(const char *host, int port, int timeout_ms) {
    char resp[256] = "";
    size_t got;
    int rc = exchange(host, port, timeout_ms, "PING\r\n", resp, sizeof resp, &got);
    if (rc < 0)
        return rc;
    /* "-LOADING" while the append-only file is replayed: up, but not ready yet. */
    return strncmp(resp, "+PONG", 5) == 0 ? 0 : -EAGAIN;
}
