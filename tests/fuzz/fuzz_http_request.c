/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: arbitrary bytes into a live server connection over a socketpair. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http.h"
#include "http/internal.h"
#include "http/websocket.h"
#include "log/log.h"

static void h_text(baic_http_req_t *req, void *arg) {
    (void)arg;
    size_t n;
    const char *b = baic_http_body(req, &n);
    baic_http_query(req, "q");
    baic_http_param(req, "ref");
    baic_http_path(req);
    baic_http_header(req, "content-type");
    baic_http_respond(req, 200, "text/plain", b, n);
}

static void h_chunk(baic_http_req_t *req, void *arg) {
    (void)arg;
    baic_http_chunk_begin(req, 200, "text/plain");
    baic_http_chunk_write(req, "abc", 3);
    baic_http_chunk_end(req);
}

static void h_sse(baic_http_req_t *req, void *arg) {
    (void)arg;
    baic_http_sse_begin(req, 0);
    baic_http_sse_send(req, "e", "1", baic_http_query_string(req));
    baic_http_sse_end(req);
}

static void ws_msg(baic_http_ws_t *ws, int is_text, const void *d, size_t n, void *arg) {
    (void)arg;
    if (is_text)
        baic_http_ws_send_text(ws, d, n);
    else
        baic_http_ws_send_binary(ws, d, n);
}

static void h_ws(baic_http_req_t *req, void *arg) {
    (void)arg;
    baic_http_ws_accept(req, ws_msg, NULL, NULL, NULL);
}

static void drain_cb(uv_poll_t *p, int status, int events) {
    (void)status;
    (void)events;
    char buf[65536];
    int fd = *(int *)p->data;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0)
        uv_poll_stop(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int init;
    if (!init) {
        baic_log_set_level(BAIC_LOG_ERROR);
        init = 1;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    baic_http_config_t cfg = {.max_body_bytes = 4096, .max_header_bytes = 2048,
                              .max_uri_bytes = 512, .read_timeout_ms = 1000,
                              .max_pipeline = 4};
    baic_http_server_t *srv;
    if (baic_http_server_new(&loop, &cfg, &srv) != 0)
        abort();
    baic_http_route(srv, "*", "/", h_text, NULL, 0);
    baic_http_route(srv, "POST", "/s/{ref}/x", h_text, NULL, 100);
    baic_http_route(srv, "GET", "/c", h_chunk, NULL, 0);
    baic_http_route(srv, "GET", "/e", h_sse, NULL, 0);
    baic_http_route(srv, "GET", "/w", h_ws, NULL, 0);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        abort();
    int big = 1 << 20;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    if (baic_http__adopt_fd(srv, sv[0]) != 0)
        abort();
    /* Inputs are at most -max_len (8 KiB) and fit the socket buffer: write, then shut the
     * write side so the server sees EOF after the bytes. */
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(sv[1], data + off, size - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    shutdown(sv[1], SHUT_WR);
    uv_poll_t poll;
    uv_poll_init(&loop, &poll, sv[1]);
    poll.data = &sv[1];
    uv_poll_start(&poll, UV_READABLE, drain_cb);
    /* Run until the connection is done (EOF closes it), then tear everything down. */
    for (int i = 0; i < 1000 && srv->conns != NULL; i++)
        uv_run(&loop, UV_RUN_ONCE);
    baic_http_server_close(srv, NULL, NULL);
    uv_close((uv_handle_t *)&poll, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    close(sv[1]);
    if (uv_loop_close(&loop) != 0)
        abort();
    return 0;
}
