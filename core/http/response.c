/* SPDX-License-Identifier: Apache-2.0 */
/* Responses: head building, in-order output queue per connection, chunked and SSE streams. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <time.h>

#include "http/internal.h"

const char *baic_http_status_text(int status) {
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

/* ---- writing ---- */

void http_write_cb(uv_write_t *wr, int status) {
    http_out_t *o = wr->data;
    http_conn_t *c = o->conn;
    baic_http_req_t *r = o->req;
    if (o->done != NULL)
        o->done(r, status < 0 ? status : 0, o->done_arg);
    free(o->tls_data);
    if (o->heap)
        free(o);
    c->wpending--;
    if (r != NULL) {
        r->wpending--;
        if (r->finished && (r->detached || r->aborted) && r->wpending == 0)
            http_req_free(r);
    }
    if (status < 0 && !c->closing) {
        http_conn_close(c);
        return;
    }
    if (c->out_blocked && c->wpending == 0 && !c->closing) {
        c->out_blocked = false;
        http_flush(c);
        return;
    }
    http_conn_kick(c);
}

/* ---- file pieces: sendfile(2) when the socket takes more ---- */

static void file_finish(http_conn_t *c, int status) {
    http_out_t *o = c->fout;
    c->fout = NULL;
    uv_poll_stop(c->fpoll);
    http_write_cb(&o->wr, status);
}

static void file_cb(uv_poll_t *p, int status, int events) {
    http_conn_t *c = p->data;
    (void)events;
    http_out_t *o = c->fout; /* set while the poll runs (file_start, file_finish) */
    if (status < 0) {
        file_finish(c, status);
        return;
    }
    int fd;
    uv_fileno((uv_handle_t *)p, &fd);
    /* At most 16 MiB per wake-up: other connections get their turn. */
    for (int i = 0; i < 4 && o->file_left > 0; i++) {
        off_t off = (off_t)o->file_off;
        size_t want = o->file_left < (4u << 20) ? o->file_left : (4u << 20);
        ssize_t n = sendfile(fd, o->file_fd, &off, want);
        if (n > 0) {
            o->file_off += n;
            o->file_left -= (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return; /* the socket is full: wait until it takes more */
        /* 0: the file ends before the piece does (it shrank) */
        file_finish(c, n == 0 ? UV_EIO : uv_translate_sys_error(errno));
        return;
    }
    if (o->file_left == 0)
        file_finish(c, 0);
}

static int file_start(http_conn_t *c, http_out_t *o) {
    if (c->fpoll == NULL && (c->fpoll = http_conn_dup_poll(c)) == NULL)
        return UV_EIO;
    int rc = uv_poll_start(c->fpoll, UV_WRITABLE, file_cb);
    if (rc == 0)
        c->fout = o;
    return rc;
}

static void fpoll_closed(uv_handle_t *h) {
    http_conn_t *c = h->data;
    if (c->fout != NULL) {
        http_out_t *o = c->fout;
        c->fout = NULL;
        http_write_cb(&o->wr, UV_ECANCELED);
    }
    c->fpoll = NULL;
    http_conn_handle_closed(h); /* counts this handle; may free the connection */
    http_dup_poll_release(h);
}

void http_file_close(http_conn_t *c) {
    if (c->fpoll == NULL)
        return;
    c->handles_open++;
    uv_close((uv_handle_t *)c->fpoll, fpoll_closed);
}

int http_conn_write(http_conn_t *c, http_out_t *o) {
    o->wr.data = o;
    o->conn = c;
    int rc;
    if (o->file)
        rc = file_start(c, o);
    else if (c->ssl != NULL)
        rc = http_tls_write(c, o);
    else
        rc = uv_write(&o->wr, &c->h.stream, o->bufs, o->nbufs, http_write_cb);
    if (rc == 0) {
        c->wpending++;
        if (o->req)
            o->req->wpending++;
    }
    return rc;
}

void http_req_push(baic_http_req_t *r, http_out_t *o) {
    o->req = r;
    o->conn = r->conn;
    o->next = NULL;
    if (r->out_tail)
        r->out_tail->next = o;
    else
        r->out_head = o;
    r->out_tail = o;
}

void http_flush(http_conn_t *c) {
    if (c->in_flush) {
        c->flush_again = true;
        return;
    }
    c->in_flush = true;
    do {
        c->flush_again = false;
        baic_http_req_t *r;
        /* Only the oldest request writes: later ones keep their output queued, which
         * is what keeps pipelined responses in request order. */
        while ((r = c->qhead) != NULL && !c->closing) {
            http_out_t *o;
            bool blocked = false;
            while ((o = r->out_head) != NULL) {
                /* Bytes go out in order: nothing passes a file piece being sent, and a
                 * file piece waits for the writes before it. */
                if (c->fout != NULL || (o->file && c->wpending > 0)) {
                    c->out_blocked = blocked = true;
                    break;
                }
                r->out_head = o->next;
                if (r->out_head == NULL)
                    r->out_tail = NULL;
                if (http_conn_write(c, o) < 0) {
                    http_out_cancel(o);
                    if (o->heap)
                        free(o);
                    c->in_flush = false;
                    http_conn_close(c);
                    return;
                }
            }
            if (blocked || !r->final_queued)
                break;
            c->qhead = r->next;
            if (c->qhead == NULL)
                c->qtail = NULL;
            c->nreqs--;
            r->next = NULL;
            r->detached = true;
            bool close_after = r->close_after;
            if (r->finished && r->wpending == 0)
                http_req_free(r);
            if (close_after) {
                c->stop_parse = true;
                break;
            }
        }
    } while (c->flush_again && !c->closing);
    c->in_flush = false;
    http_conn_kick(c);
}

http_out_t *http_out_heap(baic_http_req_t *r, size_t datalen, char **data) {
    http_out_t *o = malloc(sizeof(*o) + datalen);
    if (o == NULL)
        return NULL;
    memset(o, 0, sizeof(*o));
    o->heap = true;
    *data = (char *)(o + 1);
    (void)r;
    return o;
}

/* ---- response head ---- */

static void refresh_date(baic_http_server_t *srv) {
    uint64_t sec = uv_now(srv->loop) / 1000;
    if (srv->date_len && sec == srv->date_sec)
        return;
    srv->date_sec = sec;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    srv->date_len = strftime(srv->date, sizeof(srv->date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
}

static char *put(char *p, const char *s, size_t n) {
    memcpy(p, s, n);
    return p + n;
}

#define PUTS(p, lit) put(p, lit, sizeof(lit) - 1)

static char *put_uint(char *p, uint64_t v) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* Builds the status line and headers. content_length < 0: no Content-Length (chunked
 * or close-delimited per req->chunked). Returns the length, or 0 on OOM. */
size_t http_build_head(baic_http_req_t *r, int status, const char *ctype, int64_t content_length,
                       char **out) {
    baic_http_server_t *srv = r->srv;
    refresh_date(srv);
    const char *reason = baic_http_status_text(status);
    size_t ctlen = ctype ? strlen(ctype) : 0;
    size_t cap = 160 + strlen(reason) + srv->server_name_len + srv->date_len + ctlen +
                 r->xhdrs_len;
    char *buf = http_arena_alloc(&r->arena, cap);
    if (buf == NULL)
        return 0;
    char *p = buf;
    p = PUTS(p, "HTTP/1.1 ");
    p = put_uint(p, (uint64_t)status);
    *p++ = ' ';
    p = put(p, reason, strlen(reason));
    p = PUTS(p, "\r\nServer: ");
    p = put(p, srv->server_name, srv->server_name_len);
    p = PUTS(p, "\r\n");
    p = put(p, srv->date, srv->date_len);
    if (ctype) {
        p = PUTS(p, "Content-Type: ");
        p = put(p, ctype, ctlen);
        p = PUTS(p, "\r\n");
    }
    if (content_length >= 0) {
        p = PUTS(p, "Content-Length: ");
        p = put_uint(p, (uint64_t)content_length);
        p = PUTS(p, "\r\n");
    } else if (r->chunked) {
        p = PUTS(p, "Transfer-Encoding: chunked\r\n");
    }
    if (r->body_stream && !r->body_done)
        r->close_after = true; /* the rest of the body is not read */
    if (status == 101) {
        p = PUTS(p, "Connection: Upgrade\r\n");
    } else if (r->close_after || !r->keep_alive || srv->closing) {
        r->close_after = true;
        p = PUTS(p, "Connection: close\r\n");
    } else if (r->http_minor == 0) {
        p = PUTS(p, "Connection: keep-alive\r\n");
    }
    if (r->xhdrs_len)
        p = put(p, r->xhdrs, r->xhdrs_len);
    p = PUTS(p, "\r\n");
    *out = buf;
    r->head_sent = true;
    r->status = status;
    return (size_t)(p - buf);
}

int baic_http_add_header(baic_http_req_t *r, const char *name, const char *value) {
    if (r == NULL || name == NULL || value == NULL || *name == '\0')
        return UV_EINVAL;
    if (r->head_sent)
        return UV_EALREADY;
    if (strpbrk(name, "\r\n:") != NULL || strpbrk(value, "\r\n") != NULL)
        return UV_EINVAL;
    size_t nl = strlen(name), vl = strlen(value);
    int rc = http_arena_append(&r->arena, &r->xhdrs, &r->xhdrs_len, &r->xhdrs_cap, name, nl);
    if (rc == 0)
        rc = http_arena_append(&r->arena, &r->xhdrs, &r->xhdrs_len, &r->xhdrs_cap, ": ", 2);
    if (rc == 0)
        rc = http_arena_append(&r->arena, &r->xhdrs, &r->xhdrs_len, &r->xhdrs_cap, value, vl);
    if (rc == 0)
        rc = http_arena_append(&r->arena, &r->xhdrs, &r->xhdrs_len, &r->xhdrs_cap, "\r\n", 2);
    return rc;
}

/* ---- finishing ---- */

/* The handler is done; the request is freed once its output is written. */
void http_req_finish(baic_http_req_t *r) {
    if (r->body_stream && !r->body_done && !r->aborted)
        http_stream_body_detach(r);
    r->finished = true;
    r->final_queued = true;
    if (r->sse_timer != NULL) {
        uv_close((uv_handle_t *)r->sse_timer, (uv_close_cb)free);
        r->sse_timer = NULL;
    }
    if (r->aborted) {
        if (r->wpending == 0)
            http_req_free(r);
        return;
    }
    http_flush(r->conn);
}

/* Common entry check: 0 to go on, or a code after finishing an aborted request. */
static int begin_final(baic_http_req_t *r) {
    if (r == NULL || r->finished)
        return UV_EINVAL;
    if (r->aborted) {
        r->finished = true;
        if (r->wpending == 0)
            http_req_free(r);
        return UV_ECONNRESET;
    }
    if (r->head_sent) {
        /* A head already went out: the only sane end is dropping the connection. */
        r->close_after = true;
        http_req_finish(r);
        return UV_EINVAL;
    }
    return 0;
}

int baic_http_respond(baic_http_req_t *r, int status, const char *ctype, const void *body,
                      size_t len) {
    int rc = begin_final(r);
    if (rc < 0)
        return rc;
    bool no_body = status == 204 || status == 304 || (status >= 100 && status < 200);
    http_out_t *o = http_arena_alloc(&r->arena, sizeof(*o));
    char *head = NULL;
    size_t hl = o ? http_build_head(r, status, no_body ? NULL : ctype, no_body ? -1 : (int64_t)len,
                               &head)
                  : 0;
    if (hl == 0) {
        r->close_after = true;
        r->finished = r->final_queued = true;
        http_conn_close(r->conn);
        return UV_ENOMEM;
    }
    memset(o, 0, sizeof(*o));
    o->bufs[0] = uv_buf_init(head, (unsigned)hl);
    o->nbufs = 1;
    if (!no_body && !r->is_head && len > 0) {
        char *copy = http_arena_alloc(&r->arena, len);
        if (copy == NULL) {
            r->finished = r->final_queued = true;
            http_conn_close(r->conn);
            return UV_ENOMEM;
        }
        memcpy(copy, body, len);
        o->bufs[1] = uv_buf_init(copy, (unsigned)len);
        o->nbufs = 2;
    }
    r->resp_len = len;
    http_req_push(r, o);
    http_req_finish(r);
    return 0;
}

static int respond_json_ct(baic_http_req_t *r, int status, json_t *body, const char *ctype) {
    if (body == NULL)
        return baic_http_respond(r, 500, NULL, NULL, 0);
    size_t n = json_dumpb(body, NULL, 0, JSON_COMPACT);
    char *buf = (r != NULL && !r->aborted && !r->finished && n > 0)
                    ? http_arena_alloc(&r->arena, n)
                    : NULL;
    if (buf != NULL)
        json_dumpb(body, buf, n, JSON_COMPACT);
    json_decref(body);
    if (buf == NULL && r != NULL && !r->aborted && !r->finished)
        return baic_http_respond(r, 500, NULL, NULL, 0);
    return baic_http_respond(r, status, ctype, buf, n);
}

int baic_http_respond_json(baic_http_req_t *r, int status, json_t *body) {
    return respond_json_ct(r, status, body, "application/json");
}

int baic_http_respond_problem(baic_http_req_t *r, int status, const char *slug, const char *title,
                              const char *msg, json_t *data) {
    char type[192];
    snprintf(type, sizeof(type), "https://api.backend.ai/probs/%s", slug ? slug : "generic-error");
    json_t *o = json_object();
    if (o != NULL) {
        json_object_set_new(o, "type", json_string(type));
        json_object_set_new(o, "title", json_string(title ? title : baic_http_status_text(status)));
        if (msg != NULL)
            json_object_set_new(o, "msg", json_string(msg));
        if (data != NULL)
            json_object_set(o, "data", data);
    }
    if (data != NULL)
        json_decref(data);
    return respond_json_ct(r, status, o, "application/problem+json");
}

int http_req_fail(baic_http_req_t *r, int status, const char *slug, const char *title,
                  const char *msg) {
    http_conn_t *c = r->conn;
    if (r->body_stream && r->dispatched) {
        /* The handler owns a streaming request from its headers on: a broken or stalled
         * body aborts it (its abort callback runs) instead of answering behind its back. */
        http_conn_close(c);
        return UV_ECONNRESET;
    }
    r->dispatched = true;
    r->close_after = true;
    if (r->url == NULL)
        r->url = (char *)"";
    c->stop_parse = true;
    if (c->cur == r) {
        c->cur = NULL;
        uv_timer_stop(&c->timer);
    }
    if (HTTP_PARSER_ERRNO(&c->parser) == HPE_OK)
        http_parser_pause(&c->parser, 1);
    return baic_http_respond_problem(r, status, slug, title, msg, NULL);
}

void baic_http_req_release(baic_http_req_t *r) {
    if (r == NULL || r->finished)
        return;
    if (r->aborted) {
        r->finished = true;
        if (r->wpending == 0)
            http_req_free(r);
        return;
    }
    /* Dropping a live request: the client would wait forever, so close. */
    r->finished = r->final_queued = true;
    r->close_after = true;
    http_conn_close(r->conn);
}

void baic_http_req_on_abort(baic_http_req_t *r, void (*cb)(baic_http_req_t *, void *), void *arg) {
    r->abort_cb = cb;
    r->abort_arg = arg;
}

/* ---- chunked streaming ---- */

int baic_http_chunk_begin(baic_http_req_t *r, int status, const char *ctype) {
    if (r == NULL || r->finished || r->head_sent)
        return UV_EINVAL;
    if (r->aborted)
        return UV_ECONNRESET;
    if (r->http_minor == 0)
        r->close_after = true; /* HTTP/1.0: the body ends when the connection does */
    else
        r->chunked = true;
    http_out_t *o = http_arena_alloc(&r->arena, sizeof(*o));
    char *head = NULL;
    size_t hl = o ? http_build_head(r, status, ctype, -1, &head) : 0;
    if (hl == 0)
        return UV_ENOMEM;
    memset(o, 0, sizeof(*o));
    o->bufs[0] = uv_buf_init(head, (unsigned)hl);
    o->nbufs = 1;
    http_req_push(r, o);
    http_flush(r->conn);
    return 0;
}

static int stream_check(baic_http_req_t *r) {
    if (r == NULL || r->finished || !r->head_sent)
        return UV_EINVAL;
    if (r->aborted)
        return UV_ECONNRESET;
    return 0;
}

int baic_http_chunk_write(baic_http_req_t *r, const void *data, size_t len) {
    int rc = stream_check(r);
    if (rc < 0 || len == 0 || r->is_head)
        return rc;
    char *p;
    http_out_t *o = http_out_heap(r, len + 24, &p);
    if (o == NULL)
        return UV_ENOMEM;
    size_t n = 0;
    if (r->chunked)
        n = (size_t)snprintf(p, 24, "%zx\r\n", len);
    memcpy(p + n, data, len);
    n += len;
    if (r->chunked) {
        memcpy(p + n, "\r\n", 2);
        n += 2;
    }
    o->bufs[0] = uv_buf_init(p, (unsigned)n);
    o->nbufs = 1;
    r->resp_len += len;
    http_req_push(r, o);
    http_flush(r->conn);
    return 0;
}

int baic_http_chunk_end(baic_http_req_t *r) {
    int rc = stream_check(r);
    if (rc == UV_ECONNRESET) {
        r->finished = true;
        if (r->wpending == 0)
            http_req_free(r);
        return rc;
    }
    if (rc < 0)
        return rc;
    http_req_end_body(r);
    return 0;
}

void http_req_end_body(baic_http_req_t *r) {
    if (r->chunked && !r->is_head) {
        static const char last[] = "0\r\n\r\n";
        http_out_t *o = http_arena_alloc(&r->arena, sizeof(*o));
        if (o != NULL) {
            memset(o, 0, sizeof(*o));
            o->bufs[0] = uv_buf_init((char *)last, sizeof(last) - 1);
            o->nbufs = 1;
            http_req_push(r, o);
        } else {
            r->close_after = true; /* no terminator: only closing ends the body */
        }
    }
    http_req_finish(r);
}

/* ---- Server-Sent Events ---- */

static void sse_keepalive_cb(uv_timer_t *t) {
    baic_http_req_t *r = t->data;
    static const char ka[] = ":keep-alive\n\n";
    if (!r->aborted && !r->finished)
        baic_http_chunk_write(r, ka, sizeof(ka) - 1);
}

int baic_http_sse_begin(baic_http_req_t *r, unsigned keepalive_s) {
    if (r == NULL || r->finished || r->head_sent)
        return UV_EINVAL;
    if (r->aborted)
        return UV_ECONNRESET;
    baic_http_add_header(r, "Cache-Control", "no-cache");
    baic_http_add_header(r, "X-Accel-Buffering", "no");
    int rc = baic_http_chunk_begin(r, 200, "text/event-stream");
    if (rc < 0)
        return rc;
    r->sse = true;
    if (keepalive_s > 0) {
        r->sse_timer = malloc(sizeof(*r->sse_timer));
        if (r->sse_timer == NULL)
            return UV_ENOMEM;
        uv_timer_init(r->srv->loop, r->sse_timer);
        r->sse_timer->data = r;
        r->sse_keepalive_ms = keepalive_s * 1000;
        uv_timer_start(r->sse_timer, sse_keepalive_cb, r->sse_keepalive_ms, r->sse_keepalive_ms);
    }
    return 0;
}

static size_t sse_field(char *p, const char *name, const char *v, size_t vl) {
    size_t nl = strlen(name);
    if (p) {
        memcpy(p, name, nl);
        memcpy(p + nl, ": ", 2);
        memcpy(p + nl + 2, v, vl);
        p[nl + 2 + vl] = '\n';
    }
    return nl + 3 + vl;
}

/* Lays out an event; with p == NULL only measures it. Event and id must not carry
 * newlines (they would start new fields), so they are cut at the first one. */
static size_t sse_format(char *p, const char *event, const char *id, const char *data) {
    size_t n = 0;
    if (event)
        n += sse_field(p ? p + n : NULL, "event", event, strcspn(event, "\r\n"));
    if (id)
        n += sse_field(p ? p + n : NULL, "id", id, strcspn(id, "\r\n"));
    const char *d = data ? data : "";
    for (;;) {
        size_t l = strcspn(d, "\n");
        size_t vl = l && d[l - 1] == '\r' ? l - 1 : l;
        n += sse_field(p ? p + n : NULL, "data", d, vl);
        if (d[l] == '\0')
            break;
        d += l + 1;
    }
    if (p)
        p[n] = '\n';
    return n + 1;
}

int baic_http_sse_send(baic_http_req_t *r, const char *event, const char *id, const char *data) {
    int rc = stream_check(r);
    if (rc < 0)
        return rc;
    if (!r->sse)
        return UV_EINVAL;
    size_t n = sse_format(NULL, event, id, data);
    char *tmp = malloc(n + 1);
    if (tmp == NULL)
        return UV_ENOMEM;
    sse_format(tmp, event, id, data);
    rc = baic_http_chunk_write(r, tmp, n);
    free(tmp);
    if (rc == 0 && r->sse_timer != NULL)
        uv_timer_again(r->sse_timer);
    return rc;
}

int baic_http_sse_end(baic_http_req_t *r) {
    return baic_http_chunk_end(r);
}
