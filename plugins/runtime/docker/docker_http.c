/* SPDX-License-Identifier: Apache-2.0 */
/* runtime/docker: a small blocking HTTP/1.1 client for the Engine API's unix socket. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "docker.h"

/*
 * Why blocking: the host hands a plugin no loop handle, only queue_work, so the API
 * calls run on pool threads (and the events stream on a thread of its own), each on
 * a fresh connection with "Connection: close". The daemon then ends every response
 * by closing, which also covers the attach stream of exec start (no length, no
 * chunks: the raw stream runs until the process ends).
 */

#define DK_HEAD_MAX (64 * 1024)
#define DK_BODY_MAX (16 * 1024 * 1024)

enum dk_body_mode { DK_BODY_NONE, DK_BODY_LENGTH, DK_BODY_CHUNKED, DK_BODY_EOF };
enum dk_chunk_state { DK_CH_SIZE, DK_CH_DATA, DK_CH_DATA_END, DK_CH_TRAILER };

typedef struct dk_conn {
    dk_req_t *r;
    int mode;
    uint64_t left;             /* LENGTH: bytes to go; CHUNKED: of the chunk */
    int chunk_state;
    char line[128];            /* a chunk-size or trailer line */
    size_t line_len;
    int done, stopped;
    size_t collected_max;
} dk_conn_t;

int64_t dk_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t dk_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void dk_req_free(dk_req_t *r) {
    free(r->body_out);
    r->body_out = NULL;
    r->body_len = 0;
}

int dk_urlencode(const char *s, char *out, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    size_t k = strlen(out);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        int plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                    ch == '-' || ch == '_' || ch == '.' || ch == '~';
        if (k + (plain ? 1 : 3) >= n)
            return -1;
        if (plain) {
            out[k++] = (char)ch;
        } else {
            out[k++] = '%';
            out[k++] = hex[ch >> 4];
            out[k++] = hex[ch & 15];
        }
    }
    out[k] = '\0';
    return 0;
}

static int dk_deliver(dk_conn_t *c, const char *data, size_t len) {
    dk_req_t *r = c->r;
    if (len == 0)
        return 0;
    if (r->sink != NULL) {
        if (r->sink(r->sink_arg, data, len) != 0)
            c->stopped = 1;
        return 0;
    }
    if (r->body_len + len > c->collected_max)
        return BAIC_EBACKEND;
    char *nb = realloc(r->body_out, r->body_len + len + 1);
    if (nb == NULL)
        return UV_ENOMEM;
    memcpy(nb + r->body_len, data, len);
    r->body_out = nb;
    r->body_len += len;
    nb[r->body_len] = '\0';
    return 0;
}

/* Feeds raw body bytes; undoes the chunked encoding on the way. */
static int dk_body_feed(dk_conn_t *c, const char *p, size_t n) {
    while (n > 0 && !c->done && !c->stopped) {
        if (c->mode == DK_BODY_EOF) {
            return dk_deliver(c, p, n);
        } else if (c->mode == DK_BODY_LENGTH) {
            size_t take = n < c->left ? n : (size_t)c->left;
            int rc = dk_deliver(c, p, take);
            if (rc != 0)
                return rc;
            c->left -= take;
            p += take;
            n -= take;
            if (c->left == 0)
                c->done = 1;
        } else if (c->chunk_state == DK_CH_DATA) {
            size_t take = n < c->left ? n : (size_t)c->left;
            int rc = dk_deliver(c, p, take);
            if (rc != 0)
                return rc;
            c->left -= take;
            p += take;
            n -= take;
            if (c->left == 0)
                c->chunk_state = DK_CH_DATA_END;
        } else {
            /* Line states: the size line, the CRLF after data, the trailer lines. */
            char ch = *p++;
            n--;
            if (ch != '\n') {
                if (ch != '\r' && c->line_len + 1 < sizeof c->line)
                    c->line[c->line_len++] = ch;
                continue;
            }
            c->line[c->line_len] = '\0';
            size_t had = c->line_len;
            c->line_len = 0;
            if (c->chunk_state == DK_CH_DATA_END) {
                c->chunk_state = DK_CH_SIZE;
            } else if (c->chunk_state == DK_CH_SIZE) {
                char *end = NULL;
                errno = 0;
                unsigned long long sz = strtoull(c->line, &end, 16);
                if (had == 0 || end == c->line || errno != 0)
                    return BAIC_EBACKEND;
                if (sz == 0) {
                    c->chunk_state = DK_CH_TRAILER;
                } else {
                    c->left = sz;
                    c->chunk_state = DK_CH_DATA;
                }
            } else if (had == 0) {
                c->done = 1; /* the empty line that ends the trailer */
            }
        }
    }
    return 0;
}

/* Status line and the two headers that decide how the body ends. */
static int dk_parse_head(dk_conn_t *c, char *head, char *err, size_t errlen) {
    dk_req_t *r = c->r;
    int major = 0, minor = 0, status = 0;
    if (sscanf(head, "HTTP/%d.%d %d", &major, &minor, &status) != 3 || status < 100 || status > 999) {
        snprintf(err, errlen, "not an HTTP response");
        return BAIC_EBACKEND;
    }
    r->status = status;
    c->mode = DK_BODY_EOF;
    int have_length = 0;
    for (char *save = NULL, *line = strtok_r(head, "\r\n", &save); line != NULL;
         line = strtok_r(NULL, "\r\n", &save)) {
        char *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        if (strcasecmp(line, "Content-Length") == 0) {
            char *end = NULL;
            errno = 0;
            unsigned long long n = strtoull(v, &end, 10);
            if (end == v || errno != 0) {
                snprintf(err, errlen, "bad Content-Length");
                return BAIC_EBACKEND;
            }
            c->left = n;
            have_length = 1;
        } else if (strcasecmp(line, "Transfer-Encoding") == 0 && strcasestr(v, "chunked") != NULL) {
            c->mode = DK_BODY_CHUNKED;
            c->chunk_state = DK_CH_SIZE;
        }
    }
    if (c->mode != DK_BODY_CHUNKED && have_length)
        c->mode = c->left > 0 ? DK_BODY_LENGTH : DK_BODY_NONE;
    if (status == 204 || status == 304 || status < 200 || strcmp(r->method, "HEAD") == 0)
        c->mode = DK_BODY_NONE;
    if (c->mode == DK_BODY_NONE)
        c->done = 1;
    return 0;
}

static int dk_connect(const dk_conf_t *conf, char *err, size_t errlen) {
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, conf->socket, strlen(conf->socket) + 1); /* length checked at init */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = -errno;
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return e;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = -errno;
        snprintf(err, errlen, "connect %s: %s", conf->socket, strerror(errno));
        close(fd);
        return e;
    }
    return fd;
}

/* Waits until fd is ready for ev, the deadline passes or abort_fd fires. */
static int dk_wait(int fd, short ev, int abort_fd, uint64_t deadline) {
    for (;;) {
        int ms = -1;
        if (deadline != 0) {
            uint64_t now = dk_mono_ms();
            if (now >= deadline)
                return BAIC_ETIMEOUT;
            ms = (int)(deadline - now > 60000 ? 60000 : deadline - now);
        }
        struct pollfd p[2] = {{.fd = fd, .events = ev}, {.fd = abort_fd, .events = POLLIN}};
        int rc = poll(p, abort_fd >= 0 ? 2 : 1, ms);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -errno;
        if (abort_fd >= 0 && (p[1].revents & POLLIN))
            return BAIC_ECANCELLED;
        if (rc > 0 && p[0].revents != 0)
            return 0;
    }
}

static int dk_send_all(int fd, const char *p, size_t n, int abort_fd, uint64_t deadline) {
    while (n > 0) {
        int rc = dk_wait(fd, POLLOUT, abort_fd, deadline);
        if (rc != 0)
            return rc;
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int dk_http(const dk_conf_t *conf, dk_req_t *r, char *err, size_t errlen) {
    char reqhead[4096];
    size_t blen = r->body != NULL ? strlen(r->body) : 0;
    r->status = 0;
    r->body_out = NULL;
    r->body_len = 0;
    int k = snprintf(reqhead, sizeof reqhead,
                     "%s /%s%s HTTP/1.1\r\nHost: docker\r\nUser-Agent: baic-runtime-docker\r\n"
                     "Connection: close\r\n%s",
                     r->method, conf->api_version, r->path,
                     r->body != NULL ? "Content-Type: application/json\r\n" : "");
    if (k < 0 || (size_t)k >= sizeof reqhead - 64) {
        snprintf(err, errlen, "request line too long");
        return BAIC_EBAD_INPUT;
    }
    int k2 = snprintf(reqhead + k, sizeof reqhead - (size_t)k, "Content-Length: %zu\r\n\r\n", blen);
    if (k2 < 0 || (size_t)k2 >= sizeof reqhead - (size_t)k) {
        snprintf(err, errlen, "request line too long");
        return BAIC_EBAD_INPUT;
    }
    uint64_t deadline = r->timeout_ms > 0 ? dk_mono_ms() + r->timeout_ms : 0;
    int fd = dk_connect(conf, err, errlen);
    if (fd < 0)
        return fd;
    int rc = dk_send_all(fd, reqhead, (size_t)k + (size_t)k2, r->abort_fd, deadline);
    if (rc == 0 && blen > 0)
        rc = dk_send_all(fd, r->body, blen, r->abort_fd, deadline);
    if (rc != 0) {
        snprintf(err, errlen, "send: %s", rc == BAIC_ETIMEOUT ? "timed out" : strerror(-rc));
        close(fd);
        return rc;
    }

    dk_conn_t c = {.r = r, .collected_max = DK_BODY_MAX};
    char *head = malloc(DK_HEAD_MAX + 1);
    size_t head_len = 0;
    int in_body = 0;
    char buf[16384];
    if (head == NULL) {
        close(fd);
        return UV_ENOMEM;
    }
    while (!c.done && !c.stopped) {
        rc = dk_wait(fd, POLLIN, r->abort_fd, deadline);
        if (rc != 0) {
            snprintf(err, errlen, "%s", rc == BAIC_ETIMEOUT     ? "timed out"
                                        : rc == BAIC_ECANCELLED ? "cancelled"
                                                                : strerror(-rc));
            break;
        }
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n < 0) {
            rc = -errno;
            snprintf(err, errlen, "recv: %s", strerror(errno));
            break;
        }
        if (n == 0) {
            if (in_body && c.mode == DK_BODY_EOF) {
                c.done = 1;
            } else {
                rc = UV_ECONNRESET;
                snprintf(err, errlen, "connection closed mid-response");
            }
            break;
        }
        if (in_body) {
            if ((rc = dk_body_feed(&c, buf, (size_t)n)) != 0)
                break;
            continue;
        }
        if (head_len + (size_t)n > DK_HEAD_MAX) {
            rc = BAIC_EBACKEND;
            snprintf(err, errlen, "response head too large");
            break;
        }
        memcpy(head + head_len, buf, (size_t)n);
        head_len += (size_t)n;
        head[head_len] = '\0';
        char *end = strstr(head, "\r\n\r\n");
        if (end == NULL)
            continue;
        size_t body_at = (size_t)(end - head) + 4;
        size_t extra = head_len - body_at;
        char *rest = NULL;
        if (extra > 0 && (rest = malloc(extra)) == NULL) {
            rc = UV_ENOMEM;
            break;
        }
        if (extra > 0)
            memcpy(rest, head + body_at, extra);
        end[2] = '\0';
        rc = dk_parse_head(&c, head, err, errlen);
        in_body = 1;
        if (rc == 0 && r->on_head != NULL)
            r->on_head(r->sink_arg, r->status);
        if (rc == 0 && extra > 0)
            rc = dk_body_feed(&c, rest, extra);
        free(rest);
        if (rc != 0)
            break;
    }
    free(head);
    close(fd);
    if (rc != 0) {
        if (rc == BAIC_EBACKEND && err[0] == '\0')
            snprintf(err, errlen, "malformed or oversized response");
        dk_req_free(r);
        return rc;
    }
    return 0;
}

int dk_http_error(const dk_req_t *r, char *err, size_t errlen) {
    if ((r->status >= 200 && r->status < 300) || r->status == 304)
        return 0;
    json_t *j = r->body_out != NULL ? json_loads(r->body_out, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(j, "message"));
    snprintf(err, errlen, "HTTP %d: %s", r->status, msg != NULL ? msg : "(no message)");
    json_decref(j);
    switch (r->status) {
    case 400:
        return BAIC_EBAD_INPUT;
    case 401:
    case 403:
        return BAIC_EPERMISSION;
    case 404:
        return BAIC_ENOT_FOUND;
    case 409:
        return BAIC_EEXISTS;
    default:
        return BAIC_EBACKEND;
    }
}

int dk_demux_feed(void *arg, const char *data, size_t len) {
    dk_demux_t *d = arg;
    while (len > 0) {
        if (d->left == 0) {
            size_t take = 8 - d->hdr_have < len ? 8 - d->hdr_have : len;
            memcpy(d->hdr + d->hdr_have, data, take);
            d->hdr_have += take;
            data += take;
            len -= take;
            if (d->hdr_have < 8)
                break;
            d->hdr_have = 0;
            d->stream = d->hdr[0] == 2 ? 2 : 1; /* stdin echo (0) never comes: no stdin */
            d->left = ((size_t)d->hdr[4] << 24) | ((size_t)d->hdr[5] << 16) |
                      ((size_t)d->hdr[6] << 8) | (size_t)d->hdr[7];
            continue;
        }
        size_t take = len < d->left ? len : d->left;
        int s = d->stream - 1;
        size_t room = d->max > d->len[s] ? d->max - d->len[s] : 0;
        size_t keep = take < room ? take : room;
        if (keep > 0 && d->buf[s] != NULL) {
            memcpy(d->buf[s] + d->len[s], data, keep);
            d->len[s] += keep;
        }
        d->left -= take;
        data += take;
        len -= take;
    }
    return 0;
}
