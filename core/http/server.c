/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP server: listener, connections, request parsing with http-parser, dispatch, timeouts. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "http/internal.h"
#include "log/log.h"

static const char *const empty = "";

/* ---- request objects ---- */

static baic_http_req_t *req_new(http_conn_t *c) {
    baic_http_server_t *srv = c->srv;
    http_block_t *b = http_block_get(&srv->pool);
    if (b == NULL)
        return NULL;
    /* The request lives at the start of its own first arena block: one pooled block
     * per request and no separate allocation. */
    baic_http_req_t *r = (baic_http_req_t *)(void *)b->data;
    memset(r, 0, sizeof(*r));
    b->used = (sizeof(*r) + 15) & ~(size_t)15;
    r->arena.cur = b;
    r->arena.pool = &srv->pool;
    r->conn = c;
    r->srv = srv;
    r->query = empty;
    r->body = (char *)empty;
    if (srv->obs != NULL)
        r->start_ns = uv_hrtime();
    if (c->qtail)
        c->qtail->next = r;
    else
        c->qhead = r;
    c->qtail = r;
    c->nreqs++;
    return r;
}

void http_req_free(baic_http_req_t *r) {
    if (r->srv != NULL && r->srv->obs != NULL && !r->aborted && r->status > 0) {
        uint64_t us = (uv_hrtime() - r->start_ns) / 1000;
        r->srv->obs(r, r->route ? r->route->pattern : NULL, r->status, us, r->srv->obs_arg);
    }
    if (r->sse_timer != NULL) {
        uv_close((uv_handle_t *)r->sse_timer, (uv_close_cb)free);
        r->sse_timer = NULL;
    }
    if (r->late_end != NULL)
        r->late_end->data = NULL;
    http_out_t *o, *next;
    for (o = r->out_head; o != NULL; o = next) {
        next = o->next;
        http_out_cancel(o);
        if (o->heap)
            free(o);
    }
    /* The arena holds r itself: copy the header out before releasing the blocks. */
    http_arena_t a = r->arena;
    http_arena_free(&a);
}

/* ---- timers ---- */

static void conn_timer_cb(uv_timer_t *t) {
    http_conn_t *c = t->data;
    if (c->shutting || c->closing) {
        http_conn_close(c);
        return;
    }
    if (c->cur != NULL) {
        BAIC_LOG_D("http.read_timeout", "remote=%s", c->remote);
        http_req_fail(c->cur, 408, "request-timeout", "Request timeout.",
                      "The request did not arrive in time.");
        return;
    }
    BAIC_LOG_D("http.idle_close", "remote=%s", c->remote);
    http_conn_close(c);
}

void http_conn_arm_read_timeout(http_conn_t *c) {
    uv_timer_start(&c->timer, conn_timer_cb, c->srv->cfg.read_timeout_ms, 0);
}

static void arm_timer(http_conn_t *c) {
    if (c->closing || c->shutting || c->cur != NULL)
        return;
    if (c->qhead == NULL && c->wpending == 0 && c->ws == NULL)
        uv_timer_start(&c->timer, conn_timer_cb, c->srv->cfg.idle_timeout_ms, 0);
    else
        uv_timer_stop(&c->timer);
}

/* ---- connection teardown ---- */

static void server_maybe_done(baic_http_server_t *srv);
static void sink_free(http_conn_t *c);
static void listener_closed(uv_handle_t *h);

void http_conn_handle_closed(uv_handle_t *h) {
    http_conn_t *c = h->data;
    /* Two handles (stream and timer), three with a file sender, close; the memory goes
     * after the last. */
    if (--c->handles_open > 0)
        return;
    baic_http_server_t *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->overloaded)
        srv->noverloaded--;
    else
        srv->nconns--;
    http_tls_free(c);
    free(c->pending);
    free(c);
    srv->pending_closes--;
    server_maybe_done(srv);
}

void http_conn_close(http_conn_t *c) {
    if (c->closing)
        return;
    c->closing = true;
    uv_timer_stop(&c->timer);
    sink_free(c);
    baic_http_req_t *r = c->qhead, *aborted = NULL, *atail = NULL, *next;
    http_out_t *orphans = NULL;
    c->qhead = c->qtail = c->cur = NULL;
    c->nreqs = 0;
    for (; r != NULL; r = next) {
        next = r->next;
        r->next = NULL;
        if (r->dispatched && !r->finished) {
            /* Streamed pieces never handed to the socket will never be written: their
             * callbacks run below, after the abort callbacks, when the handler may already
             * have let the request go (so the pieces must not stay in its list). */
            http_out_t *o = r->out_head, *onext;
            r->out_head = r->out_tail = NULL;
            for (; o != NULL; o = onext) {
                onext = o->next;
                if (o->heap) {
                    o->next = orphans;
                    orphans = o;
                }
            }
            r->aborted = true;
            r->conn = NULL;
            r->srv = NULL;
            r->arena.pool = NULL; /* the server may go before the handler lets go */
            if (atail)
                atail->next = r;
            else
                aborted = r;
            atail = r;
        } else {
            r->aborted = true; /* no observer: it was never fully sent */
            r->detached = true;
            r->finished = true;
            if (r->wpending == 0)
                http_req_free(r);
        }
    }
    for (r = aborted; r != NULL; r = next) {
        next = r->next;
        r->next = NULL;
        if (r->abort_cb != NULL)
            r->abort_cb(r, r->abort_arg);
    }
    for (http_out_t *o = orphans, *onext; o != NULL; o = onext) {
        onext = o->next;
        http_out_cancel(o);
        free(o);
    }
    if (c->ws != NULL)
        http_ws_conn_gone(c->ws);
    c->handles_open = 2;
    http_file_close(c);
    uv_close((uv_handle_t *)&c->timer, http_conn_handle_closed);
    uv_close(&c->h.handle, http_conn_handle_closed);
}

static void linger_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    if (nread < 0)
        http_conn_close(s->data);
}

/* A plain Content-Length body still being read by a handler that wants it. */
static bool body_direct(http_conn_t *c, baic_http_req_t *r) {
    return r != NULL && c->ssl == NULL && c->ws == NULL && !c->stop_parse && !c->bp_paused &&
           !c->closing && !r->finished && !r->aborted && !r->body_done &&
           !(c->parser.flags & F_CHUNKED) && c->parser.content_length > 0 &&
           c->parser.content_length != ULLONG_MAX;
}

/* ---- bodies moved by the handler's sink ---- */

/* The sink reads a dup of the socket, watched by its own poll handle (http_conn_dup_poll):
 * the stream's watcher stays as it is for when reading comes back. */
static void sink_free(http_conn_t *c) {
    if (c->sink != NULL) {
        uv_close((uv_handle_t *)c->sink, http_dup_poll_release);
        c->sink = NULL;
    }
}

/* The server reads what the sink leaves: the last byte, which ends the message in the
 * parser, or all of it after the sink gave up. */
static void sink_done(http_conn_t *c) {
    sink_free(c);
    if (!c->closing && !c->body_hold)
        http_conn_start_read(c);
}

static void sink_cb(uv_poll_t *p, int status, int events) {
    http_conn_t *c = p->data;
    (void)events;
    if (status < 0) {
        http_conn_close(c);
        return;
    }
    baic_http_req_t *r = c->cur;
    int fd;
    uv_fileno((uv_handle_t *)p, &fd);
    /* A few moves per wake-up, then other connections get their turn. */
    for (int i = 0; i < 8; i++) {
        if (c->body_hold)
            return; /* paused from inside the sink */
        if (!body_direct(c, r) || r->body_sink_cb == NULL || c->parser.content_length <= 1) {
            sink_done(c);
            return;
        }
        ssize_t n = r->body_sink_cb(r, fd, (size_t)(c->parser.content_length - 1),
                                    r->body_sink_arg);
        if (c->closing)
            return;
        if (n == UV_EAGAIN)
            return;
        if (n == UV_ENOTSUP) {
            r->body_sink_cb = NULL;
            sink_done(c);
            return;
        }
        if (n <= 0) {
            http_conn_close(c); /* the client went away, or the socket failed */
            return;
        }
        /* The parser counts the body down; it never sees these bytes. */
        c->parser.content_length -= (uint64_t)n;
        if (!c->body_hold)
            http_conn_arm_read_timeout(c);
    }
}

uv_poll_t *http_conn_dup_poll(http_conn_t *c) {
    int fd, dfd;
    if (uv_fileno(&c->h.handle, &fd) != 0 || (dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
        return NULL;
    uv_poll_t *p = malloc(sizeof *p);
    if (p == NULL || uv_poll_init(c->srv->loop, p, dfd) != 0) {
        free(p);
        close(dfd);
        return NULL;
    }
    p->data = c;
    return p;
}

void http_dup_poll_release(uv_handle_t *h) {
    int fd;
    if (uv_fileno(h, &fd) == 0)
        close(fd);
    free(h);
}

static int sink_start(http_conn_t *c) {
    if (c->sink == NULL && (c->sink = http_conn_dup_poll(c)) == NULL)
        return UV_ENOTSUP;
    return uv_poll_start(c->sink, UV_READABLE, sink_cb);
}

void http_conn_stop_read(http_conn_t *c) {
    uv_read_stop(&c->h.stream);
    if (c->sink != NULL)
        uv_poll_stop(c->sink);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    http_conn_t *c = h->data;
    (void)suggested;
    baic_http_req_t *r = c->cur;
    if (r != NULL && r->body_sink_cb != NULL && c->parser.content_length > 1 && body_direct(c, r)) {
        /* No buffer (the only case): read_cb gets UV_ENOBUFS and hands the socket to the
         * sink. */
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    if (r != NULL && r->body_buf_cb != NULL && body_direct(c, r)) {
        /* A streamed body of known length read straight into the handler's memory, never
         * past the body's end: the handler may free that memory once the body ended, and
         * bytes of a pipelined next request must not be parsed from it. Chunked bodies
         * (framing mixed in, end unknown) use the server's buffer. */
        uint64_t left = c->parser.content_length;
        *buf = uv_buf_init(NULL, 0);
        r->body_buf_cb(r, buf, r->body_buf_arg);
        if (buf->base != NULL && buf->len > 0) {
            if ((uint64_t)buf->len > left)
                buf->len = (size_t)left;
            return;
        }
    }
    *buf = uv_buf_init(c->srv->rbuf, sizeof(c->srv->rbuf));
}

static void shutdown_cb(uv_shutdown_t *sr, int status) {
    http_conn_t *c = sr->data;
    if (status < 0 || c->closing) {
        http_conn_close(c);
        return;
    }
    /* Keep reading (and dropping) what the client still sends, so the kernel does not
     * answer unread data with a reset that could destroy our response in flight. */
    uv_read_stop(&c->h.stream);
    if (uv_read_start(&c->h.stream, alloc_cb, linger_read_cb) < 0) {
        http_conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, conn_timer_cb, 2000, 0);
}

static void start_graceful_close(http_conn_t *c) {
    c->shutting = true;
    uv_timer_stop(&c->timer);
    sink_free(c);
    if (c->ssl != NULL)
        http_tls_shutdown(c);
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, &c->h.stream, shutdown_cb) < 0)
        http_conn_close(c);
}

/* Runs after I/O at the top of the stack: resumes paused reading, closes when due,
 * arms the timer. */
void http_conn_kick(http_conn_t *c) {
    if (c->closing || c->in_flush || c->in_feed || c->shutting)
        return;
    if (c->ws != NULL && http_ws_done(c->ws)) {
        if (c->wpending == 0)
            http_conn_close(c);
        return;
    }
    bool want_close = c->stop_parse && c->qhead == NULL && c->ws == NULL && c->pending == NULL;
    if (c->stop_parse && c->qhead == NULL && c->ws == NULL && c->pending != NULL &&
        c->cur == NULL) {
        /* Upgrade request answered without switching protocols: nothing more to read. */
        want_close = true;
    }
    if (want_close) {
        if (c->wpending == 0)
            start_graceful_close(c);
        return;
    }
    if (c->bp_paused && c->nreqs < c->srv->cfg.max_pipeline && !c->body_hold)
        http_conn_resume_reading(c);
    if (!c->closing)
        arm_timer(c);
}

/* ---- parser callbacks ---- */

static int too_big(http_conn_t *c, size_t add) {
    c->hdr_bytes += add;
    return c->hdr_bytes > c->srv->cfg.max_header_bytes;
}

static int on_message_begin(http_parser *p) {
    http_conn_t *c = p->data;
    if (c->stop_parse) {
        http_parser_pause(p, 1);
        return 0;
    }
    baic_http_req_t *r = req_new(c);
    if (r == NULL)
        return -1;
    c->cur = r;
    c->hdr_bytes = 0;
    c->last_was_value = false;
    uv_timer_start(&c->timer, conn_timer_cb, c->srv->cfg.read_timeout_ms, 0);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
    http_conn_t *c = p->data;
    baic_http_req_t *r = c->cur;
    if (r->url_len + n > c->srv->cfg.max_uri_bytes) {
        http_req_fail(r, 414, "uri-too-long", "Request URI too long.", NULL);
        return 0;
    }
    if (too_big(c, n)) {
        http_req_fail(r, 431, "request-header-fields-too-large",
                      "Request header fields too large.", NULL);
        return 0;
    }
    if (http_arena_append(&r->arena, &r->url, &r->url_len, &r->url_cap, at, n) < 0)
        return -1;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n) {
    http_conn_t *c = p->data;
    baic_http_req_t *r = c->cur;
    if (too_big(c, n + 4)) {
        http_req_fail(r, 431, "request-header-fields-too-large",
                      "Request header fields too large.", NULL);
        return 0;
    }
    if (r->nhdrs == 0 || c->last_was_value) {
        if (r->nhdrs == r->hcap) {
            size_t ncap = r->hcap ? r->hcap * 2 : 16;
            http_hdr_t *nh = http_arena_alloc(&r->arena, ncap * sizeof(*nh));
            if (nh == NULL)
                return -1;
            if (r->nhdrs)
                memcpy(nh, r->hdrs, r->nhdrs * sizeof(*nh));
            r->hdrs = nh;
            r->hcap = ncap;
        }
        http_hdr_t *h = &r->hdrs[r->nhdrs++];
        memset(h, 0, sizeof(*h));
        h->value = (char *)empty;
        r->cur_cap = 0;
        c->last_was_value = false;
    }
    http_hdr_t *h = &r->hdrs[r->nhdrs - 1];
    return http_arena_append(&r->arena, &h->name, &h->nlen, &r->cur_cap, at, n) < 0 ? -1 : 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n) {
    http_conn_t *c = p->data;
    baic_http_req_t *r = c->cur;
    if (too_big(c, n)) {
        http_req_fail(r, 431, "request-header-fields-too-large",
                      "Request header fields too large.", NULL);
        return 0;
    }
    http_hdr_t *h = &r->hdrs[r->nhdrs - 1];
    if (!c->last_was_value) {
        h->value = NULL;
        h->vlen = 0;
        r->cur_cap = 0;
        c->last_was_value = true;
    }
    return http_arena_append(&r->arena, &h->value, &h->vlen, &r->cur_cap, at, n) < 0 ? -1 : 0;
}

static const char *find_header(const baic_http_req_t *r, const char *name) {
    for (size_t i = 0; i < r->nhdrs; i++)
        if (strcasecmp(r->hdrs[i].name, name) == 0)
            return r->hdrs[i].value;
    return NULL;
}

static int on_headers_complete(http_parser *p) {
    http_conn_t *c = p->data;
    baic_http_req_t *r = c->cur;
    baic_http_server_t *srv = c->srv;
    r->method = (uint8_t)p->method;
    r->http_major = (uint8_t)p->http_major;
    r->http_minor = (uint8_t)p->http_minor;
    r->keep_alive = http_should_keep_alive(p) != 0;
    r->upgrade = p->upgrade != 0;
    r->is_head = p->method == HTTP_HEAD;
    if (r->url == NULL)
        r->url = (char *)empty;
    char *q = memchr(r->url, '?', r->url_len);
    r->rawpath_len = q ? (size_t)(q - r->url) : r->url_len;
    r->query = q ? q + 1 : empty;
    if (c->overloaded) {
        http_req_fail(r, 503, "service-unavailable", "Service unavailable.",
                      "Too many connections.");
        return 0;
    }
    char allow[256];
    bool known;
    r->route = http_route_match(srv, r, allow, sizeof(allow), &known);
    if (r->route == NULL && known) {
        /* Remember the Allow list for the 405 answered at dispatch. */
        r->allow = baic_http_strdup(r, allow);
    }
    r->max_body = r->route && r->route->max_body ? r->route->max_body : srv->cfg.max_body_bytes;
    bool has_cl = (p->flags & F_CONTENTLENGTH) && p->content_length != ULLONG_MAX;
    r->body_stream = r->route != NULL && r->route->stream && !p->upgrade;
    if (r->body_stream)
        r->max_body = SIZE_MAX; /* the handler takes the body and sets its own limit */
    if (has_cl && p->content_length > r->max_body) {
        http_req_fail(r, 413, "request-too-large", "Request entity too large.", NULL);
        return 0;
    }
    if (has_cl && p->content_length > 0 && !r->body_stream) {
        r->body_cap = (size_t)p->content_length + 1;
        r->body = http_arena_alloc(&r->arena, r->body_cap);
        if (r->body == NULL)
            return -1;
        r->body[0] = '\0';
    }
    const char *expect = find_header(r, "Expect");
    if (expect != NULL && r->http_minor >= 1 && strcasecmp(expect, "100-continue") == 0 &&
        ((has_cl && p->content_length > 0) || (p->flags & F_CHUNKED))) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        http_out_t *o = http_arena_alloc(&r->arena, sizeof(*o));
        if (o == NULL)
            return -1;
        memset(o, 0, sizeof(*o));
        o->bufs[0] = uv_buf_init((char *)cont, sizeof(cont) - 1);
        o->nbufs = 1;
        http_req_push(r, o);
        http_flush(c);
    }
    if (r->upgrade)
        r->close_after = true; /* unless a WebSocket accept takes the connection over */
    if (r->body_stream) {
        if (!r->keep_alive)
            r->close_after = true;
        http_dispatch(r);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
    http_conn_t *c = p->data;
    baic_http_req_t *r = c->cur;
    if (r->body_stream) {
        /* The read timeout becomes an inactivity timeout: a big upload may take long. */
        if (!c->body_hold)
            http_conn_arm_read_timeout(c);
        if (r->body_cb != NULL && !r->finished)
            r->body_cb(r, at, n, r->body_arg);
        return 0;
    }
    if (r->body_len + n > r->max_body) {
        http_req_fail(r, 413, "request-too-large", "Request entity too large.", NULL);
        return 0;
    }
    if (r->body_len + n + 1 > r->body_cap || r->body == empty) {
        size_t ncap = r->body_cap ? r->body_cap * 2 : 1024;
        while (ncap < r->body_len + n + 1)
            ncap *= 2;
        if (ncap > r->max_body + 1)
            ncap = r->max_body + 1;
        char *nb = http_arena_alloc(&r->arena, ncap);
        if (nb == NULL)
            return -1;
        if (r->body_len)
            memcpy(nb, r->body, r->body_len);
        r->body = nb;
        r->body_cap = ncap;
    }
    memcpy(r->body + r->body_len, at, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return 0;
}

static int on_message_complete(http_parser *p) {
    http_conn_t *c = p->data;
    baic_http_req_t *r = c->cur;
    c->cur = NULL;
    uv_timer_stop(&c->timer);
    if (!r->keep_alive)
        r->close_after = true;
    if (r->close_after) {
        /* Nothing after this request is read as HTTP: Connection: close, HTTP/1.0
         * without keep-alive, or an upgrade whose bytes belong to the new protocol. */
        c->stop_parse = true;
        http_parser_pause(p, 1);
        if (r->upgrade) {
            c->upgrade_req = r;
            return 0;
        }
    }
    if (r->body_stream) {
        /* Dispatched at the end of the headers; this is the end of its body. */
        r->body_done = true;
        if (r->body_end_cb != NULL && !r->finished)
            r->body_end_cb(r, r->body_arg);
    } else {
        http_dispatch(r);
    }
    if (!c->closing && c->nreqs >= c->srv->cfg.max_pipeline)
        http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- dispatch ---- */


void http_dispatch(baic_http_req_t *r) {
    baic_http_server_t *srv = r->srv;
    r->dispatched = true;
    if (srv->mw != NULL && srv->mw(r, srv->mw_arg) != 0)
        return;
    baic_http_req_continue(r);
}

void baic_http_req_continue(baic_http_req_t *r) {
    if (r == NULL || r->finished || r->aborted)
        return;
    if (r->route != NULL) {
        r->route->handler(r, r->route->arg);
    } else if (r->allow != NULL) {
        baic_http_add_header(r, "Allow", r->allow);
        baic_http_respond_problem(r, 405, "method-not-allowed", "Unsupported HTTP method.", NULL,
                                  NULL);
    } else {
        baic_http_respond_problem(r, 404, "url-not-found", "Unknown URL path.", NULL, NULL);
    }
}

/* ---- input ---- */

static int stash(http_conn_t *c, const char *data, size_t len) {
    if (len == 0)
        return 0;
    char *np = realloc(c->pending, c->pending_len + len);
    if (np == NULL)
        return UV_ENOMEM;
    memcpy(np + c->pending_len, data, len);
    c->pending = np;
    c->pending_len += len;
    return 0;
}

static void parse_error(http_conn_t *c, enum http_errno e) {
    baic_http_req_t *r = c->cur;
    if (r == NULL) {
        r = req_new(c);
        if (r == NULL) {
            http_conn_close(c);
            return;
        }
        r->url = (char *)empty;
    }
    BAIC_LOG_D("http.parse_error", "remote=%s err=%s", c->remote, http_errno_name(e));
    if (e == HPE_HEADER_OVERFLOW)
        http_req_fail(r, 431, "request-header-fields-too-large",
                      "Request header fields too large.", NULL);
    else
        http_req_fail(r, 400, "generic-bad-request", "Malformed request.",
                      http_errno_description(e));
}

void http_conn_feed(http_conn_t *c, const char *data, size_t len) {
    if (c->closing || len == 0)
        return;
    if (c->ws != NULL) {
        http_ws_on_data(c->ws, data, len);
        return;
    }
    if (c->stop_parse || c->bp_paused) {
        /* Bytes after an upgrade request belong to the new protocol; bytes after a
         * backpressure pause are parsed on resume. Others are dropped. */
        if (c->upgrade_req != NULL || c->bp_paused || (c->qtail && c->qtail->upgrade))
            stash(c, data, len);
        return;
    }
    c->in_feed = true;
    size_t n = http_parser_execute(&c->parser, &parser_settings, data, len);
    c->in_feed = false;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (c->closing)
        return;
    if (e == HPE_PAUSED) {
        if (c->upgrade_req != NULL) {
            baic_http_req_t *r = c->upgrade_req;
            c->upgrade_req = NULL;
            stash(c, data + n, len - n);
            uv_read_stop(&c->h.stream);
            http_dispatch(r);
        } else if (!c->stop_parse) {
            c->bp_paused = true;
            stash(c, data + n, len - n);
            if (c->ssl == NULL)
                uv_read_stop(&c->h.stream);
        }
    } else if (e != HPE_OK) {
        if (!c->stop_parse)
            parse_error(c, e);
    }
    http_conn_kick(c);
}

void http_conn_resume_reading(http_conn_t *c) {
    c->bp_paused = false;
    http_parser_pause(&c->parser, 0);
    char *p = c->pending;
    size_t n = c->pending_len;
    c->pending = NULL;
    c->pending_len = 0;
    if (n)
        http_conn_feed(c, p, n);
    free(p);
    if (!c->bp_paused && !c->stop_parse && !c->closing && c->ssl == NULL && !c->body_hold)
        http_conn_start_read(c);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    http_conn_t *c = s->data;
    if (nread == 0)
        return;
    if (nread == UV_ENOBUFS) { /* alloc_cb's way of handing the body to the sink */
        uv_read_stop(&c->h.stream);
        if (sink_start(c) != 0) {
            if (c->cur != NULL)
                c->cur->body_sink_cb = NULL;
            sink_done(c);
        }
        return;
    }
    if (nread < 0) {
        /* EOF counts as the client going away: a half-closed HTTP client is rare, and
         * treating EOF as an abort is what lets long-polls and streams stop early. */
        http_conn_close(c);
        return;
    }
    if (c->ssl != NULL)
        http_tls_on_read(c, buf->base, (size_t)nread);
    else
        http_conn_feed(c, buf->base, (size_t)nread);
}

int http_conn_start_read(http_conn_t *c) {
    if (c->sink != NULL)
        return sink_start(c);
    return uv_read_start(&c->h.stream, alloc_cb, read_cb);
}

/* ---- connections ---- */

static http_conn_t *conn_new(baic_http_server_t *srv, bool is_pipe) {
    http_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    int rc = is_pipe ? uv_pipe_init(srv->loop, &c->h.pipe, 0) : uv_tcp_init(srv->loop, &c->h.tcp);
    if (rc < 0) {
        free(c);
        return NULL;
    }
    uv_timer_init(srv->loop, &c->timer);
    c->h.handle.data = c;
    c->timer.data = c;
    c->srv = srv;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->pending_closes++;
    if (srv->nconns >= srv->cfg.max_connections) {
        c->overloaded = true;
        srv->noverloaded++;
    } else {
        srv->nconns++;
    }
    return c;
}

static int conn_start(http_conn_t *c) {
    if (c->srv->ssl_ctx != NULL && http_tls_conn_init(c) < 0)
        return UV_ENOMEM;
    uv_timer_start(&c->timer, conn_timer_cb,
                   c->overloaded ? 2000 : c->srv->cfg.read_timeout_ms, 0);
    return http_conn_start_read(c);
}

static void on_connection(uv_stream_t *ls, int status) {
    baic_http_server_t *srv = ls->data;
    if (status < 0) {
        BAIC_LOG_W("http.accept_failed", "err=%s", uv_err_name(status));
        return;
    }
    http_conn_t *c = conn_new(srv, false);
    if (c == NULL) {
        /* Out of memory: take the connection off the backlog and drop it. */
        uv_tcp_t *tmp = malloc(sizeof(*tmp));
        if (tmp != NULL && uv_tcp_init(srv->loop, tmp) == 0) {
            uv_accept(ls, (uv_stream_t *)tmp);
            uv_close((uv_handle_t *)tmp, (uv_close_cb)free);
        } else {
            free(tmp);
        }
        return;
    }
    if (uv_accept(ls, &c->h.stream) < 0) {
        http_conn_close(c);
        return;
    }
    if (c->overloaded && srv->noverloaded > 64) {
        /* Beyond the slack kept for polite 503 answers: drop outright. */
        http_conn_close(c);
        return;
    }
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->remote, sizeof(c->remote));
        else
            uv_ip4_name((struct sockaddr_in *)&ss, c->remote, sizeof(c->remote));
    }
    uv_tcp_nodelay(&c->h.tcp, 1);
    if (conn_start(c) < 0)
        http_conn_close(c);
}

int baic_http__adopt_fd(baic_http_server_t *srv, uv_os_fd_t fd) {
    http_conn_t *c = conn_new(srv, true);
    if (c == NULL)
        return UV_ENOMEM;
    int rc = uv_pipe_open(&c->h.pipe, fd);
    if (rc == 0)
        rc = conn_start(c);
    if (rc < 0)
        http_conn_close(c);
    return rc;
}

/* ---- server ---- */

static int parse_listen(const char *s, struct sockaddr_storage *ss) {
    char host[128];
    const char *colon;
    if (s[0] == '[') {
        const char *e = strchr(s, ']');
        if (e == NULL || e[1] != ':' || (size_t)(e - s - 1) >= sizeof(host))
            return UV_EINVAL;
        memcpy(host, s + 1, (size_t)(e - s - 1));
        host[e - s - 1] = '\0';
        colon = e + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
            return UV_EINVAL;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || colon[1] == '\0' || port < 0 || port > 65535)
        return UV_EINVAL;
    if (host[0] == '\0' || strcmp(host, "*") == 0)
        strcpy(host, "0.0.0.0");
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (strchr(host, ':') != NULL)
        return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss);
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss);
}

static void free_server(baic_http_server_t *srv) {
    http_routes_free(srv);
    http_blockpool_drain(&srv->pool);
    if (srv->ssl_ctx)
        SSL_CTX_free(srv->ssl_ctx);
    free(srv->server_name);
    free((char *)srv->cfg.listen);
    free(srv);
}

int baic_http_server_new(uv_loop_t *loop, const baic_http_config_t *cfg,
                         baic_http_server_t **out) {
    if (loop == NULL || out == NULL)
        return UV_EINVAL;
    baic_http_server_t *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return UV_ENOMEM;
    srv->loop = loop;
    if (cfg != NULL)
        srv->cfg = *cfg;
    baic_http_config_t *c = &srv->cfg;
    if (!c->max_header_bytes)
        c->max_header_bytes = 16 * 1024;
    if (!c->max_uri_bytes)
        c->max_uri_bytes = 8 * 1024;
    if (!c->max_body_bytes)
        c->max_body_bytes = 1024 * 1024;
    if (!c->idle_timeout_ms)
        c->idle_timeout_ms = 75000;
    if (!c->read_timeout_ms)
        c->read_timeout_ms = 30000;
    if (!c->max_connections)
        c->max_connections = 4096;
    if (!c->max_pipeline)
        c->max_pipeline = 32;
    if (!c->max_ws_message_bytes)
        c->max_ws_message_bytes = 16 * 1024 * 1024;
    c->tls_cert_file = c->tls_key_file = NULL; /* only used below */
    c->server_name = NULL;
    srv->server_name = strdup(cfg && cfg->server_name ? cfg->server_name : "BackendAI");
    c->listen = cfg && cfg->listen ? strdup(cfg->listen) : NULL;
    srv->port = UV_ENOTCONN;
    if (srv->server_name == NULL || (cfg && cfg->listen && c->listen == NULL)) {
        free_server(srv);
        return UV_ENOMEM;
    }
    srv->server_name_len = strlen(srv->server_name);
    int rc;
    if (cfg && cfg->tls_cert_file && cfg->tls_key_file) {
        rc = http_tls_ctx_new(cfg->tls_cert_file, cfg->tls_key_file, &srv->ssl_ctx);
        if (rc < 0) {
            free_server(srv);
            return rc;
        }
    }
    if (c->listen != NULL) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        rc = parse_listen(c->listen, &ss);
        if (rc < 0) {
            free_server(srv);
            return UV_EINVAL;
        }
        uv_tcp_init(loop, &srv->listener);
        srv->listener.data = srv;
        srv->listening = true;
        rc = uv_tcp_bind(&srv->listener, (struct sockaddr *)&ss, 0);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&srv->listener, 511, on_connection);
        if (rc < 0) {
            /* The handle must close before the memory goes: the close callback frees
             * the server on the loop's next turn. */
            srv->closing = true;
            srv->pending_closes = 1;
            uv_close((uv_handle_t *)&srv->listener, listener_closed);
            return rc;
        }
        struct sockaddr_storage bound;
        int bl = sizeof(bound);
        if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &bl) == 0)
            srv->port = ntohs(bound.ss_family == AF_INET6
                                  ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                  : ((struct sockaddr_in *)&bound)->sin_port);
        BAIC_LOG_I("http.listen", "addr=%s port=%d tls=%d", c->listen, srv->port,
                   srv->ssl_ctx != NULL);
    }
    *out = srv;
    return 0;
}

int baic_http_server_port(const baic_http_server_t *srv) {
    return srv ? srv->port : UV_EINVAL;
}

void baic_http_set_middleware(baic_http_server_t *srv, baic_http_middleware_t fn, void *arg) {
    srv->mw = fn;
    srv->mw_arg = arg;
}

void baic_http_set_observer(baic_http_server_t *srv, baic_http_observer_t fn, void *arg) {
    srv->obs = fn;
    srv->obs_arg = arg;
}

static void server_maybe_done(baic_http_server_t *srv) {
    if (!srv->closing || srv->pending_closes > 0)
        return;
    void (*cb)(void *) = srv->close_cb;
    void *arg = srv->close_arg;
    free_server(srv);
    if (cb)
        cb(arg);
}

static void listener_closed(uv_handle_t *h) {
    baic_http_server_t *srv = h->data;
    srv->pending_closes--;
    server_maybe_done(srv);
}

void baic_http_server_close(baic_http_server_t *srv, void (*cb)(void *arg), void *arg) {
    if (srv == NULL || srv->closing)
        return;
    srv->closing = true;
    srv->close_cb = cb;
    srv->close_arg = arg;
    if (srv->listening) {
        srv->pending_closes++;
        uv_close((uv_handle_t *)&srv->listener, listener_closed);
    }
    http_conn_t *c, *next;
    for (c = srv->conns; c != NULL; c = next) {
        next = c->next;
        http_conn_close(c);
    }
    if (srv->pending_closes == 0) {
        /* Nothing to wait for; still report asynchronously-safe completion now. */
        server_maybe_done(srv);
    }
}

unsigned baic_http_server_connections(const baic_http_server_t *srv) { return srv->nconns; }
