/* SPDX-License-Identifier: Apache-2.0 */
/* Streaming bodies: request bodies handed to the handler as they arrive, responses written without copies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"

int baic_http_route_stream(baic_http_server_t *srv, const char *method, const char *pattern,
                           baic_http_handler_t handler, void *arg) {
    int rc = baic_http_route(srv, method, pattern, handler, arg, 0);
    if (rc == 0)
        srv->routes_tail->stream = true;
    return rc;
}

void http_out_cancel(http_out_t *o) {
    if (o->done != NULL) {
        baic_http_write_cb cb = o->done;
        o->done = NULL;
        cb(o->req, UV_ECANCELED, o->done_arg);
    }
}

/* ---- request bodies ---- */

static void late_end_fire(uv_timer_t *t) {
    baic_http_req_t *r = t->data;
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
    if (r == NULL)
        return; /* the request went first (http_req_free cleared data) */
    r->late_end = NULL;
    if (!r->finished && !r->aborted && r->body_end_cb != NULL)
        r->body_end_cb(r, r->body_arg);
}

int baic_http_body_read(baic_http_req_t *r, baic_http_body_cb on_data,
                        baic_http_body_end_cb on_end, void *arg) {
    if (r == NULL || !r->body_stream || r->body_cb != NULL || r->body_end_cb != NULL ||
        r->finished)
        return UV_EINVAL;
    r->body_cb = on_data;
    r->body_end_cb = on_end;
    r->body_arg = arg;
    if (r->body_done && !r->aborted) {
        /* The body ended before the reader came: report it later, never from here. */
        uv_timer_t *t = malloc(sizeof(*t));
        if (t == NULL)
            return UV_ENOMEM;
        uv_timer_init(r->srv->loop, t);
        t->data = r;
        r->late_end = t;
        uv_timer_start(t, late_end_fire, 0, 0);
    }
    return 0;
}

int baic_http_body_buffers(baic_http_req_t *r, baic_http_body_buf_cb get_buf, void *arg) {
    if (r == NULL || !r->body_stream || r->body_cb == NULL)
        return UV_EINVAL;
    r->body_buf_cb = get_buf;
    r->body_buf_arg = get_buf != NULL ? arg : NULL;
    return 0;
}

int baic_http_body_sink(baic_http_req_t *r, baic_http_body_sink_cb sink, void *arg) {
    if (r == NULL || !r->body_stream || r->body_cb == NULL)
        return UV_EINVAL;
    r->body_sink_cb = sink;
    r->body_sink_arg = sink != NULL ? arg : NULL;
    return 0;
}

void baic_http_body_pause(baic_http_req_t *r) {
    if (r == NULL || r->aborted || r->body_done || r->conn == NULL)
        return;
    http_conn_t *c = r->conn;
    if (c->closing || c->body_hold)
        return;
    c->body_hold = true;
    http_conn_stop_read(c);
    /* Our own disk is slow, not the client: no read timeout while held. */
    if (c->cur == r)
        uv_timer_stop(&c->timer);
}

void baic_http_body_resume(baic_http_req_t *r) {
    if (r == NULL || r->aborted || r->conn == NULL)
        return;
    http_conn_t *c = r->conn;
    if (!c->body_hold)
        return;
    c->body_hold = false;
    if (c->closing || c->shutting || c->stop_parse || c->bp_paused)
        return;
    if (c->cur == r)
        http_conn_arm_read_timeout(c);
    http_conn_start_read(c);
}

void http_stream_body_detach(baic_http_req_t *r) {
    http_conn_t *c = r->conn;
    r->close_after = true;
    if (c == NULL)
        return;
    c->stop_parse = true;
    c->body_hold = false;
    if (c->cur == r) {
        c->cur = NULL;
        uv_timer_stop(&c->timer);
    }
    if (HTTP_PARSER_ERRNO(&c->parser) == HPE_OK)
        http_parser_pause(&c->parser, 1);
}

/* ---- responses ---- */

int baic_http_stream_begin(baic_http_req_t *r, int status, const char *ctype,
                           int64_t content_length) {
    if (r == NULL || r->finished || r->head_sent)
        return UV_EINVAL;
    if (r->aborted)
        return UV_ECONNRESET;
    if (content_length < 0) {
        if (r->http_minor == 0)
            r->close_after = true; /* HTTP/1.0: the body ends when the connection does */
        else
            r->chunked = true;
    }
    r->stream_left = content_length < 0 ? -1 : content_length;
    http_out_t *o = http_arena_alloc(&r->arena, sizeof(*o));
    char *head = NULL;
    size_t hl = o ? http_build_head(r, status, ctype, content_length, &head) : 0;
    if (hl == 0)
        return UV_ENOMEM;
    memset(o, 0, sizeof(*o));
    o->bufs[0] = uv_buf_init(head, (unsigned)hl);
    o->nbufs = 1;
    http_req_push(r, o);
    http_flush(r->conn);
    return 0;
}

int baic_http_stream_write(baic_http_req_t *r, const void *data, size_t len,
                           baic_http_write_cb cb, void *arg) {
    if (r == NULL || r->finished || !r->head_sent || r->is_head || len == 0 ||
        len > UINT32_MAX)
        return UV_EINVAL;
    if (r->aborted)
        return UV_ECONNRESET;
    if (r->stream_left >= 0 && (uint64_t)len > (uint64_t)r->stream_left)
        return UV_EINVAL;
    char *hdr;
    http_out_t *o = http_out_heap(r, 24, &hdr);
    if (o == NULL)
        return UV_ENOMEM;
    unsigned n = 0;
    if (r->chunked) {
        int hl = snprintf(hdr, 24, "%zx\r\n", len);
        if (hl < 0 || hl >= 24) {
            free(o);
            return UV_EINVAL;
        }
        o->bufs[n++] = uv_buf_init(hdr, (unsigned)hl);
    }
    o->bufs[n++] = uv_buf_init((char *)data, (unsigned)len);
    if (r->chunked)
        o->bufs[n++] = uv_buf_init((char *)"\r\n", 2);
    o->nbufs = n;
    o->done = cb;
    o->done_arg = arg;
    if (r->stream_left > 0)
        r->stream_left -= (int64_t)len;
    r->resp_len += len;
    http_req_push(r, o);
    http_flush(r->conn);
    return 0;
}

bool baic_http_sendfile_ok(const baic_http_req_t *r) {
    return r != NULL && r->conn != NULL && r->conn->ssl == NULL && r->conn->ws == NULL &&
           r->head_sent && !r->finished && !r->is_head && !r->chunked && r->stream_left >= 0;
}

int baic_http_stream_sendfile(baic_http_req_t *r, int fd, int64_t off, size_t len,
                              baic_http_write_cb cb, void *arg) {
    if (r == NULL || r->finished || !r->head_sent || r->is_head || len == 0 || fd < 0 || off < 0)
        return UV_EINVAL;
    if (r->aborted)
        return UV_ECONNRESET;
    if (!baic_http_sendfile_ok(r))
        return UV_ENOTSUP;
    if ((uint64_t)len > (uint64_t)r->stream_left)
        return UV_EINVAL;
    char *unused;
    http_out_t *o = http_out_heap(r, 0, &unused);
    if (o == NULL)
        return UV_ENOMEM;
    o->file = true;
    o->file_fd = fd;
    o->file_off = off;
    o->file_left = len;
    o->done = cb;
    o->done_arg = arg;
    r->stream_left -= (int64_t)len;
    r->resp_len += len;
    http_req_push(r, o);
    http_flush(r->conn);
    return 0;
}

int baic_http_stream_end(baic_http_req_t *r) {
    if (r == NULL || r->finished || !r->head_sent)
        return UV_EINVAL;
    if (r->aborted) {
        r->finished = true;
        if (r->wpending == 0)
            http_req_free(r);
        return UV_ECONNRESET;
    }
    if (r->stream_left > 0 && !r->is_head)
        r->close_after = true; /* short body: only closing tells the client */
    http_req_end_body(r);
    return 0;
}
