/* SPDX-License-Identifier: Apache-2.0 */
/* Private structures shared by the core/http sources; not part of the public API. */
#ifndef BAIC_CORE_HTTP_INTERNAL_H
#define BAIC_CORE_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>
#include <openssl/ssl.h>
#include <uv.h>
#include <wslay/wslay.h>

#include "http/http.h"

/* ---- arena (h2o-style pool: bump allocation in chained blocks) ---- */

#define BAIC_HTTP_BLOCK_SIZE 8192
#define BAIC_HTTP_POOL_MAX 256

typedef struct http_block {
    struct http_block *next;
    size_t size, used;
    _Alignas(16) char data[];
} http_block_t;

typedef struct http_blockpool {
    http_block_t *free;
    unsigned nfree;
} http_blockpool_t;

typedef struct {
    http_block_t *cur;       /* blocks in use, newest first */
    http_block_t *big;       /* oversized allocations, malloc'd one each */
    http_blockpool_t *pool;  /* where standard blocks go back; NULL = free() */
} http_arena_t;

/* A standard block (BAIC_HTTP_BLOCK_SIZE of data) from the pool or malloc; used = 0. */
http_block_t *http_block_get(http_blockpool_t *p);
void *http_arena_alloc(http_arena_t *a, size_t n);
/* Appends n bytes to the growing string *buf (len/cap kept by the caller), NUL-terminated. */
int http_arena_append(http_arena_t *a, char **buf, size_t *len, size_t *cap, const char *data,
                      size_t n);
void http_arena_free(http_arena_t *a);
void http_blockpool_drain(http_blockpool_t *p);

/* ---- routes ---- */

typedef struct http_route {
    struct http_route *next;
    char *method;            /* "*" = any */
    char *pattern;
    char **segs;             /* literal segment, or "{name}" */
    unsigned nsegs, nparams;
    baic_http_handler_t handler;
    void *arg;
    size_t max_body;
    bool stream;             /* body handed over as it arrives (baic_http_route_stream) */
} http_route_t;

/* ---- output pieces ---- */

typedef struct http_out {
    struct http_out *next;
    uv_write_t wr;
    struct baic_http_req *req;   /* NULL for connection-level output (TLS, ws) */
    struct http_conn *conn;
    uv_buf_t bufs[3];
    unsigned nbufs;
    bool heap;                   /* the piece (and its data) was malloc'd */
    char *tls_data;              /* ciphertext being written, malloc'd */
    baic_http_write_cb done;     /* baic_http_stream_write: runs once the piece is written */
    void *done_arg;
    bool file;                   /* baic_http_stream_sendfile: bytes of file_fd, not bufs */
    int file_fd;
    int64_t file_off;
    size_t file_left;
} http_out_t;

typedef struct {
    char *name, *value;
    size_t nlen, vlen;
} http_hdr_t;

struct baic_http_req {
    struct http_conn *conn;        /* NULL once aborted */
    baic_http_server_t *srv;       /* NULL once aborted */
    struct baic_http_req *next;    /* connection queue */
    http_arena_t arena;

    char *url;                     /* raw target, NUL-terminated */
    size_t url_len, url_cap;
    char *path;                    /* decoded, lazily */
    const char *query;             /* points into url after '?', or "" */
    size_t rawpath_len;            /* url bytes before '?' */
    http_hdr_t *hdrs;
    size_t nhdrs, hcap, cur_cap;
    char *body;
    size_t body_len, body_cap, max_body;
    http_route_t *route;
    char **params;                 /* values for route->segs' {names}, by segment index */
    uint64_t start_ns;
    uint8_t method, http_major, http_minor;
    bool keep_alive, upgrade, expect_continue, is_head;

    /* state */
    bool dispatched;               /* handed to middleware/handler */
    bool finished;                 /* handler is done with it */
    bool final_queued;             /* all output produced */
    bool detached;                 /* left the queue; freed when wpending hits 0 */
    bool aborted;
    bool head_sent;                /* status line produced */
    bool chunked;                  /* body framing uses chunked encoding */
    bool close_after;              /* connection closes after this response */
    bool sse;
    int status;
    size_t resp_len;               /* for the observer, body bytes */

    char *xhdrs;                   /* extra response headers, "N: v\r\n"... */
    size_t xhdrs_len, xhdrs_cap;

    http_out_t *out_head, *out_tail;
    int wpending;

    void (*abort_cb)(baic_http_req_t *, void *);
    void *abort_arg;
    void *user;
    char *allow;                   /* Allow list when the path matched another method */
    uv_timer_t *sse_timer;         /* malloc'd; closed asynchronously */
    unsigned sse_keepalive_ms;

    /* streaming request body (routes added with baic_http_route_stream) */
    bool body_stream;              /* dispatched at the end of the headers */
    bool body_done;                /* the whole body was delivered */
    baic_http_body_cb body_cb;
    baic_http_body_end_cb body_end_cb;
    void *body_arg;
    baic_http_body_buf_cb body_buf_cb; /* read buffers from the handler (plain only) */
    void *body_buf_arg;
    baic_http_body_sink_cb body_sink_cb; /* the body moved by the handler (plain only) */
    void *body_sink_arg;
    int64_t stream_left;           /* fixed-length response bytes still to write; -1 = chunked */
    uv_timer_t *late_end;          /* reports a body that ended before baic_http_body_read */
};

typedef struct http_conn {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    baic_http_server_t *srv;
    struct http_conn *prev, *next;
    http_parser parser;
    uv_timer_t timer;
    uv_shutdown_t shutdown_req;
    baic_http_req_t *cur;          /* request being parsed */
    baic_http_req_t *qhead, *qtail;
    unsigned nreqs;
    size_t hdr_bytes;
    bool last_was_value;
    char *pending;                 /* input not yet parsed (paused / upgrade) */
    size_t pending_len;
    bool stop_parse;               /* no more HTTP requests will be read */
    bool bp_paused;                /* reading paused for pipelining backpressure */
    bool closing;                  /* uv_close issued */
    bool shutting;                 /* graceful close in progress (write side shut) */
    bool overloaded;               /* over max_connections: answer 503 and close */
    bool in_flush, flush_again;
    bool in_feed;
    bool body_hold;                /* a streaming body's reader paused the socket */
    uv_poll_t *sink;               /* readiness of a dup of the socket while a sink reads */
    uv_poll_t *fpoll;              /* writability of a dup of the socket for file pieces */
    http_out_t *fout;              /* the file piece being sent; later pieces wait */
    bool out_blocked;              /* output waits for fout, or for writes before a file piece */
    int wpending;
    int handles_open;
    struct baic_http_req *upgrade_req; /* parsed upgrade waiting for dispatch */
    char remote[48];
    SSL *ssl;
    BIO *rbio, *wbio;
    bool tls_ready;
    struct baic_http_ws *ws;
} http_conn_t;

struct baic_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    bool listening, closing;
    int port;
    baic_http_config_t cfg;
    char *server_name;
    size_t server_name_len;
    http_route_t *routes, *routes_tail;
    baic_http_middleware_t mw;
    void *mw_arg;
    baic_http_observer_t obs;
    void *obs_arg;
    http_conn_t *conns;
    unsigned nconns, noverloaded;
    http_blockpool_t pool;
    SSL_CTX *ssl_ctx;
    void (*close_cb)(void *);
    void *close_arg;
    unsigned pending_closes;       /* handles whose close callback has not run */
    char rbuf[65536];              /* shared read buffer: data is consumed in read_cb */
    char date[64];                 /* cached "Date: ...\r\n" */
    size_t date_len;
    uint64_t date_sec;
};

/* server.c */
void http_conn_close(http_conn_t *c);
/* Close callback of the connection's handles (h->data is the connection): the memory goes
 * with the last one (handles_open). */
void http_conn_handle_closed(uv_handle_t *h);
/* A poll handle (malloc'd, data = c) on a duplicate of the connection's socket, so that
 * readiness can be watched beside libuv's own watcher of the descriptor (libuv allows
 * one per descriptor); NULL on failure. */
uv_poll_t *http_conn_dup_poll(http_conn_t *c);
/* Closes such a handle's duplicate and frees it: its close callback, or the end of one. */
void http_dup_poll_release(uv_handle_t *h);
void http_conn_kick(http_conn_t *c);
void http_conn_feed(http_conn_t *c, const char *data, size_t len);
void http_conn_resume_reading(http_conn_t *c);
/* Starts reading: through the body's sink while one is reading, else into buffers. */
int http_conn_start_read(http_conn_t *c);
/* Stops reading, also a sink's. */
void http_conn_stop_read(http_conn_t *c);
/* (Re)starts the timer that bounds the arrival of the request being parsed. */
void http_conn_arm_read_timeout(http_conn_t *c);
void http_req_free(baic_http_req_t *req);
void http_dispatch(baic_http_req_t *req);
int http_server_adopt(baic_http_server_t *srv, uv_stream_t *stream, bool is_pipe);

/* response.c */
void http_flush(http_conn_t *c);
/* On close: the file piece in flight ends with UV_ECANCELED once its poll handle closed
 * (counted in handles_open). */
void http_file_close(http_conn_t *c);
void http_req_push(baic_http_req_t *req, http_out_t *o);
http_out_t *http_out_heap(baic_http_req_t *req, size_t datalen, char **data);
int http_req_fail(baic_http_req_t *req, int status, const char *slug, const char *title,
                  const char *msg);
/* Ends a streamed or chunked body (the zero-length chunk when chunked), then finishes r. */
void http_req_end_body(baic_http_req_t *r);
void http_req_finish(baic_http_req_t *req);
void http_write_cb(uv_write_t *wr, int status);
/* Status line and headers; content_length < 0: none (chunked or close-delimited per
 * req->chunked). Returns the length (the head is in the arena at *out), 0 on OOM. */
size_t http_build_head(baic_http_req_t *req, int status, const char *ctype,
                       int64_t content_length, char **out);

/* stream.c */
/* A streaming request ended early (finished before its body did): stop parsing it. */
void http_stream_body_detach(baic_http_req_t *req);
/* Calls the done callbacks of pieces that will never be written. */
void http_out_cancel(http_out_t *o);

/* router.c */
http_route_t *http_route_match(baic_http_server_t *srv, baic_http_req_t *req, char *allow,
                               size_t allow_size, bool *path_known);
void http_routes_free(baic_http_server_t *srv);
size_t http_pct_decode(char *dst, const char *src, size_t n, bool plus_space);

/* tls.c */
int http_tls_ctx_new(const char *cert, const char *key, SSL_CTX **out);
int http_tls_conn_init(http_conn_t *c);
/* Feeds ciphertext; plaintext goes to http_conn_feed / the websocket. */
void http_tls_on_read(http_conn_t *c, const char *data, size_t len);
/* Encrypts bufs and writes them with o->wr; returns 0 or a negative code. */
int http_tls_write(http_conn_t *c, http_out_t *o);
void http_tls_shutdown(http_conn_t *c);
void http_tls_free(http_conn_t *c);

/* websocket.c */
void http_ws_on_data(struct baic_http_ws *ws, const char *data, size_t len);
void http_ws_conn_gone(struct baic_http_ws *ws);
bool http_ws_done(const struct baic_http_ws *ws);

/* Writes o on c (plain or TLS); the callback is http_write_cb. */
int http_conn_write(http_conn_t *c, http_out_t *o);

/* Fuzz/test entry: runs a connection over an already-connected stream fd (socketpair). */
int baic_http__adopt_fd(baic_http_server_t *srv, uv_os_fd_t fd);

#endif
