/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP server tests over real sockets on 127.0.0.1: framing, limits, timeouts, streams. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "baic_check.h"
#include "http/client.h"
#include "http/http.h"
#include "http/websocket.h"

/* ---- server running on its own loop thread; the test talks to it with plain sockets ---- */

static uv_loop_t g_loop;
static baic_http_server_t *g_srv;
static uv_async_t g_stop;
static pthread_t g_thread;
static int g_port;
static int g_aborts;
static int g_observed_status;
static char g_observed_pattern[64];
static int g_ws_close_code;

static void stop_closed(void *arg) {
    (void)arg;
    uv_close((uv_handle_t *)&g_stop, NULL);
}

static void on_stop(uv_async_t *a) {
    (void)a;
    baic_http_server_close(g_srv, stop_closed, NULL);
}

static void *loop_main(void *arg) {
    (void)arg;
    uv_run(&g_loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- handlers ---- */

static void h_hello(baic_http_req_t *req, void *arg) {
    (void)arg;
    baic_http_respond(req, 200, "text/plain", "hello", 5);
}

static void h_echo(baic_http_req_t *req, void *arg) {
    (void)arg;
    size_t n;
    const char *b = baic_http_body(req, &n);
    baic_http_respond(req, 200, "application/octet-stream", b, n);
}

static void h_info(baic_http_req_t *req, void *arg) {
    (void)arg;
    const char *q = baic_http_query(req, "q");
    json_t *o = json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s}", "raw", baic_http_raw_path(req),
                          "path", baic_http_path(req), "ref", baic_http_param(req, "ref"), "q", q,
                          "hdr", baic_http_header(req, "x-test"), "remote",
                          baic_http_remote_addr(req));
    char *scratch = baic_http_alloc(req, 100000); /* arena: large allocation path */
    memset(scratch, 'x', 100000);
    baic_http_add_header(req, "X-Dup", baic_http_strdup(req, "yes"));
    baic_http_respond_json(req, 200, o);
}

typedef struct {
    uv_timer_t t;
    baic_http_req_t *req;
    char body[8];
    int step;
} later_t;

static void later_cb(uv_timer_t *t) {
    later_t *l = t->data;
    if (l->req != NULL)
        baic_http_respond(l->req, 200, "text/plain", l->body, strlen(l->body));
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

static void later_abort(baic_http_req_t *req, void *arg) {
    later_t *l = arg;
    g_aborts++;
    l->req = NULL;
    baic_http_req_release(req);
}

/* /slow/{ms}: answers after ms milliseconds (0 = at once). */
static void h_slow(baic_http_req_t *req, void *arg) {
    (void)arg;
    int ms = atoi(baic_http_param(req, "ms"));
    if (ms == 0) {
        baic_http_respond(req, 200, "text/plain", baic_http_param(req, "ms"),
                          strlen(baic_http_param(req, "ms")));
        return;
    }
    later_t *l = calloc(1, sizeof(*l));
    l->req = req;
    snprintf(l->body, sizeof(l->body), "%d", ms);
    uv_timer_init(&g_loop, &l->t);
    l->t.data = l;
    uv_timer_start(&l->t, later_cb, (uint64_t)ms, 0);
    baic_http_req_on_abort(req, later_abort, l);
}

static void chunk_timer(uv_timer_t *t) {
    later_t *l = t->data;
    baic_http_chunk_write(l->req, "world", 5);
    baic_http_chunk_end(l->req);
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

static void h_chunked(baic_http_req_t *req, void *arg) {
    (void)arg;
    baic_http_chunk_begin(req, 200, "text/plain");
    baic_http_chunk_write(req, "hello ", 6);
    later_t *l = calloc(1, sizeof(*l));
    l->req = req;
    uv_timer_init(&g_loop, &l->t);
    l->t.data = l;
    uv_timer_start(&l->t, chunk_timer, 50, 0);
}

static void sse_timer(uv_timer_t *t) {
    later_t *l = t->data;
    baic_http_sse_send(l->req, "done", "2", "bye");
    baic_http_sse_end(l->req);
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

static void h_sse(baic_http_req_t *req, void *arg) {
    (void)arg;
    baic_http_sse_begin(req, 1);
    baic_http_sse_send(req, "update", "1", "a\nb");
    later_t *l = calloc(1, sizeof(*l));
    l->req = req;
    uv_timer_init(&g_loop, &l->t);
    l->t.data = l;
    uv_timer_start(&l->t, sse_timer, 1500, 0);
}

static void ws_msg(baic_http_ws_t *ws, int is_text, const void *data, size_t len, void *arg) {
    (void)arg;
    if (is_text)
        baic_http_ws_send_text(ws, data, len);
    else
        baic_http_ws_send_binary(ws, data, len);
}

static void ws_closed(baic_http_ws_t *ws, int code, void *arg) {
    (void)ws;
    (void)arg;
    g_ws_close_code = code;
}

static void h_ws(baic_http_req_t *req, void *arg) {
    (void)arg;
    baic_http_ws_accept(req, ws_msg, ws_closed, NULL, NULL);
}

static int mw(baic_http_req_t *req, void *arg) {
    (void)arg;
    const char *a = baic_http_header(req, "X-Deny");
    if (a != NULL) {
        baic_http_respond_problem(req, 401, "auth-failed", "Authorization failed.", a,
                                  json_pack("{s:i}", "n", 1));
        return 1;
    }
    return 0;
}

static void observer(const baic_http_req_t *req, const char *pattern, int status, uint64_t us,
                     void *arg) {
    (void)req;
    (void)us;
    (void)arg;
    g_observed_status = status;
    snprintf(g_observed_pattern, sizeof(g_observed_pattern), "%s", pattern ? pattern : "-");
}

/* PUT /sum (streamed): the body is read into the handler's own buffer
 * (baic_http_body_buffers); answers "<bytes> <sum> <pieces at the buffer's start>
 * <pieces inside it> <pieces elsewhere>". */
typedef struct {
    char buf[256 * 1024];
    size_t total;
    unsigned long long sum;
    int at_start, inside, elsewhere;
} sum_t;

static void sum_getbuf(baic_http_req_t *req, uv_buf_t *b, void *arg) {
    sum_t *s = arg;
    (void)req;
    *b = uv_buf_init(s->buf, sizeof(s->buf));
}

static int sum_data(baic_http_req_t *req, const void *data, size_t len, void *arg) {
    sum_t *s = arg;
    (void)req;
    const char *d = data;
    if (d == s->buf)
        s->at_start++;
    else if (d > s->buf && d + len <= s->buf + sizeof(s->buf))
        s->inside++;
    else
        s->elsewhere++;
    for (size_t i = 0; i < len; i++)
        s->sum += (unsigned char)d[i];
    s->total += len;
    return 0;
}

static void sum_end(baic_http_req_t *req, void *arg) {
    sum_t *s = arg;
    char out[128];
    int n = snprintf(out, sizeof(out), "%zu %llu %d %d %d", s->total, s->sum, s->at_start,
                     s->inside, s->elsewhere);
    free(s);
    baic_http_respond(req, 200, "text/plain", out, n > 0 ? (size_t)n : 0);
}

static void h_sum(baic_http_req_t *req, void *arg) {
    (void)arg;
    sum_t *s = calloc(1, sizeof(*s));
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(baic_http_body_buffers(req, sum_getbuf, s), UV_EINVAL); /* not reading yet */
    ck_assert_int_eq(baic_http_body_read(req, sum_data, sum_end, s), 0);
    ck_assert_int_eq(baic_http_body_buffers(req, sum_getbuf, s), 0);
}

/* PUT /sink (streamed): the body moved by a sink that splices the socket into a pipe
 * (baic_http_body_sink) and reads the pipe back; every third move pauses the body and a
 * timer resumes it; with X-Give-Up: N the sink hands the rest back to the server after N
 * bytes. Answers "<bytes> <order-sensitive hash> <bytes through the sink>". */
typedef struct {
    baic_http_req_t *req;
    int pipe[2];
    size_t total, sunk, give_up;
    unsigned long long hash;
    unsigned calls;
    uv_timer_t resume;
} sink_t;

static void sink_add(sink_t *s, const unsigned char *d, size_t len) {
    for (size_t i = 0; i < len; i++)
        s->hash = s->hash * 1099511628211ull + d[i] + 1;
    s->total += len;
}

static void sink_resume(uv_timer_t *t) {
    sink_t *s = t->data;
    baic_http_body_resume(s->req);
}

static ssize_t sink_move(baic_http_req_t *req, int fd, size_t max, void *arg) {
    sink_t *s = arg;
    if (s->give_up > 0 && s->sunk >= s->give_up)
        return UV_ENOTSUP;
    if (max > 65536)
        max = 65536;
    ssize_t n = splice(fd, NULL, s->pipe[1], NULL, max, SPLICE_F_NONBLOCK);
    if (n < 0)
        return errno == EAGAIN ? UV_EAGAIN : -errno;
    static unsigned char b[65536];
    for (ssize_t got = 0; got < n;) {
        ssize_t k = read(s->pipe[0], b, (size_t)(n - got));
        ck_assert_int_gt(k, 0);
        sink_add(s, b, (size_t)k);
        got += k;
    }
    s->sunk += (size_t)n;
    if (n > 0 && ++s->calls % 3 == 0) {
        baic_http_body_pause(req);
        uv_timer_start(&s->resume, sink_resume, 0, 0);
    }
    return n;
}

static int sink_data(baic_http_req_t *req, const void *data, size_t len, void *arg) {
    (void)req;
    sink_add(arg, data, len);
    return 0;
}

static void sink_freed(uv_handle_t *h) { free(h->data); }

static void sink_end(baic_http_req_t *req, void *arg) {
    sink_t *s = arg;
    char out[128];
    int n = snprintf(out, sizeof(out), "%zu %llu %zu", s->total, s->hash, s->sunk);
    close(s->pipe[0]);
    close(s->pipe[1]);
    uv_close((uv_handle_t *)&s->resume, sink_freed);
    baic_http_respond(req, 200, "text/plain", out, n > 0 ? (size_t)n : 0);
}

static void h_sink(baic_http_req_t *req, void *arg) {
    (void)arg;
    sink_t *s = calloc(1, sizeof(*s));
    ck_assert_ptr_nonnull(s);
    s->req = req;
    ck_assert_int_eq(pipe(s->pipe), 0);
    uv_timer_init(&g_loop, &s->resume);
    s->resume.data = s;
    const char *g = baic_http_header(req, "X-Give-Up");
    s->give_up = g ? (size_t)atol(g) : 0;
    ck_assert_int_eq(baic_http_body_sink(req, sink_move, s), UV_EINVAL); /* not reading yet */
    ck_assert_int_eq(baic_http_body_read(req, sink_data, sink_end, s), 0);
    ck_assert_int_eq(baic_http_body_sink(req, sink_move, s), 0);
}

/* GET /file/{n}: a Content-Length response of buffer and file pieces in turn ("head-",
 * bytes [0, 20000) of the file, "-mid-", bytes [5000, 15000)), the file pieces sent with
 * sendfile; n = 1 asks for 10 bytes past the file's end (the piece fails). */
static char g_file_path[64];
static unsigned char g_file_data[20000];

static void file_piece_done(baic_http_req_t *req, int status, void *arg) {
    (void)req;
    (void)status;
    int *fd = arg;
    if (--fd[1] == 0) {
        close(fd[0]);
        free(fd);
    }
}

static void h_file(baic_http_req_t *req, void *arg) {
    (void)arg;
    int past = atoi(baic_http_param(req, "n"));
    int *fd = malloc(2 * sizeof(int));
    ck_assert_ptr_nonnull(fd);
    fd[0] = open(g_file_path, O_RDONLY);
    fd[1] = 2;
    ck_assert_int_ge(fd[0], 0);
    ck_assert(!baic_http_sendfile_ok(req)); /* no head yet */
    ck_assert_int_eq(baic_http_stream_begin(req, 200, "application/octet-stream",
                                            5 + 20000 + 5 + 10000 + past * 10), 0);
    ck_assert(baic_http_sendfile_ok(req));
    ck_assert_int_eq(baic_http_stream_write(req, "head-", 5, NULL, NULL), 0);
    ck_assert_int_eq(baic_http_stream_sendfile(req, fd[0], 0, 20000, file_piece_done, fd), 0);
    ck_assert_int_eq(baic_http_stream_write(req, "-mid-", 5, NULL, NULL), 0);
    ck_assert_int_eq(baic_http_stream_sendfile(req, fd[0], past ? 15000 : 5000,
                                               10000 + (size_t)past * 10, file_piece_done, fd), 0);
    ck_assert_int_eq(baic_http_stream_sendfile(req, fd[0], 0, 1, NULL, NULL), UV_EINVAL); /* past the length */
    baic_http_stream_end(req);
}

static void add_routes(baic_http_server_t *srv) {
    ck_assert_int_eq(baic_http_route(srv, "GET", "/", h_hello, NULL, 0), 0);
    ck_assert_int_eq(baic_http_route(srv, "GET", "/hello", h_hello, NULL, 0), 0);
    ck_assert_int_eq(baic_http_route_stream(srv, "PUT", "/sum", h_sum, NULL), 0);
    ck_assert_int_eq(baic_http_route_stream(srv, "PUT", "/sink", h_sink, NULL), 0);
    ck_assert_int_eq(baic_http_route(srv, "GET", "/file/{n}", h_file, NULL, 0), 0);
    ck_assert_int_eq(baic_http_route(srv, "POST", "/echo", h_echo, NULL, 1000), 0);
    ck_assert_int_eq(baic_http_route(srv, "PUT", "/big", h_echo, NULL, 0), 0);
    ck_assert_int_eq(baic_http_route(srv, "GET", "/session/{ref}/files", h_info, NULL, 0), 0);
    ck_assert_int_eq(baic_http_route(srv, "DELETE", "/session/{ref}/files", h_info, NULL, 0), 0);
    ck_assert_int_eq(baic_http_route(srv, "GET", "/slow/{ms}", h_slow, NULL, 0), 0);
    ck_assert_int_eq(baic_http_route(srv, "GET", "/chunked", h_chunked, NULL, 0), 0);
    ck_assert_int_eq(baic_http_route(srv, "GET", "/sse", h_sse, NULL, 0), 0);
    ck_assert_int_eq(baic_http_route(srv, "GET", "/ws", h_ws, NULL, 0), 0);
    baic_http_set_middleware(srv, mw, NULL);
    baic_http_set_observer(srv, observer, NULL);
}

static void start_with(baic_http_config_t *cfg) {
    ck_assert_int_eq(uv_loop_init(&g_loop), 0);
    cfg->listen = "127.0.0.1:0";
    ck_assert_int_eq(baic_http_server_new(&g_loop, cfg, &g_srv), 0);
    g_port = baic_http_server_port(g_srv);
    ck_assert_int_gt(g_port, 0);
    add_routes(g_srv);
    uv_async_init(&g_loop, &g_stop, on_stop);
    pthread_create(&g_thread, NULL, loop_main, NULL);
}

static void start(void) {
    baic_http_config_t cfg = {0};
    start_with(&cfg);
}

static void stop(void) {
    uv_async_send(&g_stop);
    pthread_join(g_thread, NULL);
    ck_assert_int_eq(uv_loop_close(&g_loop), 0);
}

/* ---- a small blocking client ---- */

typedef struct {
    int fd;
    char buf[1 << 17];
    size_t len;
} cli_t;

static cli_t *cli_connect(void) {
    cli_t *c = calloc(1, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return c;
}

static void cli_close(cli_t *c) {
    close(c->fd);
    free(c);
}

static void cli_send(cli_t *c, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        ck_assert_int_gt(w, 0);
        s += w;
        n -= (size_t)w;
    }
}

#define SEND(c, lit) cli_send(c, lit, strlen(lit))

/* Reads more; returns bytes read, 0 at EOF, -1 on timeout/error. */
static ssize_t cli_fill(cli_t *c) {
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
    if (n > 0) {
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
    }
    return n;
}

typedef struct {
    int status;
    char head[8192];
    char body[1 << 16];
    size_t body_len;
} resp_t;

static const char *hdr(const resp_t *r, const char *name) {
    static char val[1024];
    char pat[128];
    snprintf(pat, sizeof(pat), "\r\n%s: ", name);
    const char *p = strcasestr(r->head, pat);
    if (p == NULL)
        return NULL;
    p += strlen(pat);
    size_t l = strcspn(p, "\r");
    snprintf(val, sizeof(val), "%.*s", (int)l, p);
    return val;
}

static void consume(cli_t *c, size_t n) {
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
    c->buf[c->len] = '\0';
}

/* Reads one full response (Content-Length, chunked or close-delimited). 0 or -1. */
static int cli_response(cli_t *c, resp_t *r) {
    memset(r, 0, sizeof(*r));
    char *e;
    while ((e = strstr(c->buf, "\r\n\r\n")) == NULL)
        if (cli_fill(c) <= 0)
            return -1;
    size_t hl = (size_t)(e - c->buf) + 4;
    ck_assert_uint_lt(hl, sizeof(r->head));
    memcpy(r->head, c->buf, hl);
    r->status = atoi(r->head + 9);
    consume(c, hl);
    const char *cl = hdr(r, "Content-Length");
    const char *te = hdr(r, "Transfer-Encoding");
    if (r->status == 101 || r->status == 100 || r->status == 204) {
        return 0;
    } else if (cl != NULL) {
        size_t n = (size_t)atol(cl);
        while (c->len < n)
            if (cli_fill(c) <= 0)
                return -1;
        memcpy(r->body, c->buf, n);
        r->body_len = n;
        consume(c, n);
    } else if (te != NULL && strcmp(te, "chunked") == 0) {
        for (;;) {
            while (strstr(c->buf, "\r\n") == NULL)
                if (cli_fill(c) <= 0)
                    return -1;
            size_t n = strtoul(c->buf, NULL, 16);
            size_t ll = (size_t)(strstr(c->buf, "\r\n") - c->buf) + 2;
            while (c->len < ll + n + 2)
                if (cli_fill(c) <= 0)
                    return -1;
            memcpy(r->body + r->body_len, c->buf + ll, n);
            r->body_len += n;
            consume(c, ll + n + 2);
            if (n == 0)
                break;
        }
    } else {
        while (cli_fill(c) > 0)
            ;
        memcpy(r->body, c->buf, c->len);
        r->body_len = c->len;
        consume(c, c->len);
    }
    r->body[r->body_len] = '\0';
    return 0;
}

/* True when the server closes the connection within ms. */
static int closed_within(cli_t *c, int ms) {
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (poll(&p, 1, ms) <= 0)
        return 0;
    char b[256];
    ssize_t n = recv(c->fd, b, sizeof(b), 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

static void assert_problem(const resp_t *r, int status, const char *slug) {
    ck_assert_int_eq(r->status, status);
    ck_assert_str_eq(hdr(r, "Server"), "BackendAI");
    ck_assert_str_eq(hdr(r, "Content-Type"), "application/problem+json");
    json_error_t err;
    json_t *j = json_loads(r->body, 0, &err);
    ck_assert_msg(j != NULL, "body is not JSON: %s", r->body);
    char want[128];
    snprintf(want, sizeof(want), "https://api.backend.ai/probs/%s", slug);
    ck_assert_str_eq(json_string_value(json_object_get(j, "type")), want);
    ck_assert_ptr_nonnull(json_string_value(json_object_get(j, "title")));
    json_decref(j);
}

/* ---- tests ---- */

/* A streamed body read into the handler's buffer: every byte once, in order, most pieces
 * in place; a chunked one too; and the request after it on the connection still parses. */
START_TEST(body_into_handler_buffers) {
    start();
    cli_t *c = cli_connect();
    resp_t r;
    size_t n = 3 * 1024 * 1024 + 17;
    char *body = malloc(n);
    ck_assert_ptr_nonnull(body);
    unsigned long long sum = 0;
    for (size_t i = 0; i < n; i++) {
        body[i] = (char)(i * 7 + i / 1000);
        sum += (unsigned char)body[i];
    }
    char head[128], want[64];
    snprintf(head, sizeof(head), "PUT /sum HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", n);
    cli_send(c, head, strlen(head));
    cli_send(c, body, n);
    SEND(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert_int_eq(r.status, 200);
    unsigned long long got_sum = 0;
    size_t got = 0;
    int at_start = 0, inside = 0, elsewhere = 0;
    ck_assert_int_eq(sscanf(r.body, "%zu %llu %d %d %d", &got, &got_sum, &at_start, &inside,
                            &elsewhere), 5);
    ck_assert_uint_eq(got, n);
    ck_assert_uint_eq(got_sum, sum);
    ck_assert_int_ge(at_start, 12); /* 3 MiB in reads of at most 256 KiB, in place */
    ck_assert_int_le(elsewhere, 1); /* the first piece may share the headers' read */
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert_str_eq(r.body, "hello");
    /* chunked: pieces sit after their chunk headers, inside the buffer */
    SEND(c, "PUT /sum HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    unsigned long long csum = 0;
    for (int k = 0; k < 40; k++) {
        char ch[32];
        snprintf(ch, sizeof(ch), "%x\r\n", 30000);
        cli_send(c, ch, strlen(ch));
        cli_send(c, body + (size_t)k * 30000, 30000);
        SEND(c, "\r\n");
        for (size_t i = 0; i < 30000; i++)
            csum += (unsigned char)body[(size_t)k * 30000 + i];
    }
    SEND(c, "0\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert_int_eq(sscanf(r.body, "%zu %llu", &got, &got_sum), 2);
    ck_assert_uint_eq(got, 40 * 30000);
    ck_assert_uint_eq(got_sum, csum);
    snprintf(want, sizeof(want), "%zu", (size_t)40 * 30000);
    ck_assert_int_eq(strncmp(r.body, want, strlen(want)), 0);
    free(body);
    cli_close(c);
    stop();
}
END_TEST

/* A body moved by the handler's sink: every byte once and in order (pieces the server read
 * itself before and after included), with pauses from inside the sink, a sink that gives
 * the rest back, and the next request on the connection still parsed. */
START_TEST(body_through_sink) {
    start();
    cli_t *c = cli_connect();
    resp_t r;
    size_t n = 4 * 1024 * 1024 + 5;
    unsigned char *body = malloc(n);
    ck_assert_ptr_nonnull(body);
    unsigned long long hash = 0;
    for (size_t i = 0; i < n; i++) {
        body[i] = (unsigned char)(i * 13 + i / 777);
        hash = hash * 1099511628211ull + body[i] + 1;
    }
    for (int give_up = 0; give_up < 2; give_up++) {
        char head[160], want[64];
        snprintf(head, sizeof(head), "PUT /sink HTTP/1.1\r\nHost: x\r\nX-Give-Up: %d\r\n"
                 "Content-Length: %zu\r\n\r\n", give_up ? 1 << 20 : 0, n);
        cli_send(c, head, strlen(head));
        cli_send(c, (const char *)body, n);
        SEND(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        ck_assert_int_eq(cli_response(c, &r), 0);
        ck_assert_int_eq(r.status, 200);
        size_t got = 0, sunk = 0;
        unsigned long long got_hash = 0;
        ck_assert_int_eq(sscanf(r.body, "%zu %llu %zu", &got, &got_hash, &sunk), 3);
        ck_assert_uint_eq(got, n);
        ck_assert_uint_eq(got_hash, hash);
        if (give_up) {
            ck_assert_uint_ge(sunk, 1 << 20);
            ck_assert_uint_lt(sunk, (1 << 20) + 65536);
        } else {
            ck_assert_uint_gt(sunk, n / 2); /* most of it; the rest shared the headers' read */
            ck_assert_uint_lt(sunk, n);     /* the last byte ends the message in the parser */
        }
        snprintf(want, sizeof(want), "%zu ", n);
        ck_assert_int_eq(strncmp(r.body, want, strlen(want)), 0);
        ck_assert_int_eq(cli_response(c, &r), 0);
        ck_assert_str_eq(r.body, "hello");
    }
    free(body);
    cli_close(c);
    stop();
}
END_TEST

/* File pieces (sendfile) between buffer pieces: the bytes in order, the connection kept
 * for the next request; a piece past the file's end closes the connection. */
START_TEST(response_file_pieces) {
    snprintf(g_file_path, sizeof(g_file_path), "/tmp/baic-test-http-XXXXXX");
    int tfd = mkstemp(g_file_path);
    ck_assert_int_ge(tfd, 0);
    for (size_t i = 0; i < sizeof(g_file_data); i++)
        g_file_data[i] = (unsigned char)(i * 31 + i / 251);
    ck_assert_int_eq(write(tfd, g_file_data, sizeof(g_file_data)), (ssize_t)sizeof(g_file_data));
    close(tfd);
    start();
    cli_t *c = cli_connect();
    resp_t r;
    for (int k = 0; k < 2; k++) {
        SEND(c, "GET /file/0 HTTP/1.1\r\nHost: x\r\n\r\n");
        ck_assert_int_eq(cli_response(c, &r), 0);
        ck_assert_int_eq(r.status, 200);
        ck_assert_uint_eq(r.body_len, 30010);
        ck_assert_int_eq(memcmp(r.body, "head-", 5), 0);
        ck_assert_int_eq(memcmp(r.body + 5, g_file_data, 20000), 0);
        ck_assert_int_eq(memcmp(r.body + 20005, "-mid-", 5), 0);
        ck_assert_int_eq(memcmp(r.body + 20010, g_file_data + 5000, 10000), 0);
    }
    SEND(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert_str_eq(r.body, "hello");
    /* the file ends 10 bytes early: the answer is cut and the connection closed */
    SEND(c, "GET /file/1 HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), -1);
    cli_close(c);
    stop();
    unlink(g_file_path);
}
END_TEST

START_TEST(keep_alive_two_requests) {
    start();
    cli_t *c = cli_connect();
    resp_t r;
    for (int i = 0; i < 3; i++) {
        SEND(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        ck_assert_int_eq(cli_response(c, &r), 0);
        ck_assert_int_eq(r.status, 200);
        ck_assert_str_eq(r.body, "hello");
        ck_assert_str_eq(hdr(&r, "Server"), "BackendAI");
        ck_assert_ptr_null(hdr(&r, "Connection"));
    }
    /* root: "" is not a valid HTTP target, "/" is; trailing slash tolerated elsewhere */
    SEND(c, "GET /hello/ HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert_int_eq(r.status, 200);
    SEND(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert_str_eq(r.body, "hello");
    cli_close(c);
    stop();
}
END_TEST

START_TEST(request_accessors) {
    start();
    cli_t *c = cli_connect();
    resp_t r;
    SEND(c, "GET /session/my%20sess/files/?q=a+b%26c&x=1 HTTP/1.1\r\nHost: x\r\n"
            "X-TEST: v1\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(hdr(&r, "Content-Type"), "application/json");
    ck_assert_str_eq(hdr(&r, "X-Dup"), "yes");
    json_t *j = json_loads(r.body, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "raw")),
                     "/session/my%20sess/files/?q=a+b%26c&x=1");
    ck_assert_str_eq(json_string_value(json_object_get(j, "path")), "/session/my sess/files/");
    ck_assert_str_eq(json_string_value(json_object_get(j, "ref")), "my sess");
    ck_assert_str_eq(json_string_value(json_object_get(j, "q")), "a b&c");
    ck_assert_str_eq(json_string_value(json_object_get(j, "hdr")), "v1");
    ck_assert_str_eq(json_string_value(json_object_get(j, "remote")), "127.0.0.1");
    json_decref(j);
    /* The observer runs once the write completed on the server thread: wait for it. */
    for (int i = 0; i < 200 && __atomic_load_n(&g_observed_status, __ATOMIC_SEQ_CST) == 0; i++)
        usleep(10000);
    ck_assert_int_eq(__atomic_load_n(&g_observed_status, __ATOMIC_SEQ_CST), 200);
    ck_assert_str_eq(g_observed_pattern, "/session/{ref}/files");
    cli_close(c);
    stop();
}
END_TEST

START_TEST(pipelining_in_order) {
    start();
    cli_t *c = cli_connect();
    /* The first answers last (after 300 ms), the others at once. */
    SEND(c, "GET /slow/300 HTTP/1.1\r\nHost: x\r\n\r\n"
            "GET /slow/0 HTTP/1.1\r\nHost: x\r\n\r\n"
            "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    resp_t r;
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert_str_eq(r.body, "300");
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert_str_eq(r.body, "0");
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert_str_eq(r.body, "hello");
    cli_close(c);
    stop();
}
END_TEST

START_TEST(many_pipelined) {
    start();
    cli_t *c = cli_connect();
    /* More than the pipeline window, so reading pauses and resumes. */
    char *big = malloc(200 * 64);
    size_t n = 0;
    for (int i = 0; i < 200; i++)
        n += (size_t)sprintf(big + n, "GET /slow/%d HTTP/1.1\r\nHost: x\r\n\r\n", i % 2 ? 0 : 5);
    cli_send(c, big, n);
    free(big);
    for (int i = 0; i < 200; i++) {
        resp_t r;
        ck_assert_int_eq(cli_response(c, &r), 0);
        ck_assert_str_eq(r.body, i % 2 ? "0" : "5");
    }
    cli_close(c);
    stop();
}
END_TEST

START_TEST(http10_and_close) {
    start();
    cli_t *c = cli_connect();
    resp_t r;
    SEND(c, "GET /hello HTTP/1.0\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert_str_eq(hdr(&r, "Connection"), "close");
    ck_assert(closed_within(c, 2000));
    cli_close(c);
    c = cli_connect();
    SEND(c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert_str_eq(hdr(&r, "Connection"), "keep-alive");
    SEND(c, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert_str_eq(r.body, "hello");
    ck_assert_str_eq(hdr(&r, "Connection"), "close");
    ck_assert(closed_within(c, 2000));
    cli_close(c);
    stop();
}
END_TEST

START_TEST(expect_continue) {
    start();
    cli_t *c = cli_connect();
    resp_t r;
    SEND(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert_int_eq(r.status, 100);
    SEND(c, "ping");
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "ping");
    /* chunked request body */
    SEND(c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert_str_eq(r.body, "abcde");
    cli_close(c);
    stop();
}
END_TEST

START_TEST(chunked_response) {
    start();
    cli_t *c = cli_connect();
    resp_t r;
    SEND(c, "GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert_str_eq(hdr(&r, "Transfer-Encoding"), "chunked");
    ck_assert_str_eq(r.body, "hello world");
    SEND(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert_str_eq(r.body, "hello");
    cli_close(c);
    stop();
}
END_TEST

START_TEST(sse_stream) {
    start();
    cli_t *c = cli_connect();
    resp_t r;
    SEND(c, "GET /sse HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert_str_eq(hdr(&r, "Content-Type"), "text/event-stream");
    ck_assert_str_eq(hdr(&r, "Cache-Control"), "no-cache");
    ck_assert_ptr_nonnull(strstr(r.body, "event: update\nid: 1\ndata: a\ndata: b\n\n"));
    ck_assert_ptr_nonnull(strstr(r.body, ":keep-alive\n\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "event: done\nid: 2\ndata: bye\n\n"));
    cli_close(c);
    stop();
}
END_TEST

/* Client frames are masked (RFC 6455 §5.3); the mask here is fixed, which is fine for a test. */
static void ws_frame(cli_t *c, int fin, int opcode, const char *data, size_t len) {
    unsigned char f[256 + 14];
    size_t n = 0;
    f[n++] = (unsigned char)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        f[n++] = (unsigned char)(0x80 | len);
    } else {
        f[n++] = 0x80 | 126;
        f[n++] = (unsigned char)(len >> 8);
        f[n++] = (unsigned char)len;
    }
    const unsigned char mask[4] = {1, 2, 3, 4};
    memcpy(f + n, mask, 4);
    n += 4;
    ck_assert_uint_le(len, 256);
    for (size_t i = 0; i < len; i++)
        f[n++] = (unsigned char)data[i] ^ mask[i % 4];
    cli_send(c, (char *)f, n);
}

static void ws_read(cli_t *c, int *opcode, char *out, size_t *len) {
    while (c->len < 2)
        ck_assert_int_gt(cli_fill(c), 0);
    unsigned char *b = (unsigned char *)c->buf;
    size_t l = b[1] & 0x7f, hl = 2;
    ck_assert_int_eq(b[1] & 0x80, 0); /* server frames are not masked */
    if (l == 126) {
        while (c->len < 4)
            ck_assert_int_gt(cli_fill(c), 0);
        l = ((size_t)b[2] << 8) | b[3];
        hl = 4;
    }
    while (c->len < hl + l)
        ck_assert_int_gt(cli_fill(c), 0);
    *opcode = b[0] & 0x0f;
    memcpy(out, c->buf + hl, l);
    *len = l;
    consume(c, hl + l);
}

START_TEST(websocket_echo) {
    start();
    cli_t *c = cli_connect();
    resp_t r;
    SEND(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert_int_eq(r.status, 101);
    ck_assert_str_eq(hdr(&r, "Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    ck_assert_str_eq(hdr(&r, "Server"), "BackendAI");
    char buf[512];
    size_t n;
    int op;
    ws_frame(c, 1, 1, "hi there", 8);
    ws_read(c, &op, buf, &n);
    ck_assert_int_eq(op, 1);
    ck_assert_int_eq((int)n, 8);
    ck_assert(memcmp(buf, "hi there", 8) == 0);
    /* fragmented: text "abc" + continuation "def", with a ping in between */
    ws_frame(c, 0, 1, "abc", 3);
    ws_frame(c, 1, 9, "pp", 2);
    ws_frame(c, 1, 0, "def", 3);
    ws_read(c, &op, buf, &n);
    ck_assert_int_eq(op, 10); /* pong first */
    ck_assert(n == 2 && memcmp(buf, "pp", 2) == 0);
    ws_read(c, &op, buf, &n);
    ck_assert_int_eq(op, 1);
    ck_assert(n == 6 && memcmp(buf, "abcdef", 6) == 0);
    /* binary of 200 bytes (16-bit length) */
    char bin[200];
    for (int i = 0; i < 200; i++)
        bin[i] = (char)i;
    ws_frame(c, 1, 2, bin, 200);
    ws_read(c, &op, buf, &n);
    ck_assert_int_eq(op, 2);
    ck_assert(n == 200 && memcmp(buf, bin, 200) == 0);
    /* close handshake */
    ws_frame(c, 1, 8, "\x03\xe8", 2);
    ws_read(c, &op, buf, &n);
    ck_assert_int_eq(op, 8);
    ck_assert(closed_within(c, 2000));
    cli_close(c);
    stop();
    ck_assert_int_eq(g_ws_close_code, 1000);
}
END_TEST

START_TEST(websocket_too_big) {
    baic_http_config_t cfg = {.max_ws_message_bytes = 100};
    start_with(&cfg);
    cli_t *c = cli_connect();
    resp_t r;
    SEND(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert_int_eq(r.status, 101);
    char big[200] = {0};
    ws_frame(c, 1, 2, big, 200);
    char buf[512];
    size_t n;
    int op;
    ws_read(c, &op, buf, &n);
    ck_assert_int_eq(op, 8);
    ck_assert_int_eq(((unsigned char)buf[0] << 8) | (unsigned char)buf[1], 1009);
    cli_close(c);
    stop();
}
END_TEST

START_TEST(not_websocket_400) {
    start();
    cli_t *c = cli_connect();
    resp_t r;
    SEND(c, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    assert_problem(&r, 400, "generic-bad-request");
    cli_close(c);
    stop();
}
END_TEST

START_TEST(body_limit_413) {
    start();
    cli_t *c = cli_connect();
    resp_t r;
    SEND(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    assert_problem(&r, 413, "request-too-large");
    ck_assert_str_eq(hdr(&r, "Connection"), "close");
    cli_close(c);
    /* chunked body crossing the route's limit */
    c = cli_connect();
    SEND(c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[700];
    memset(chunk, 'a', sizeof(chunk));
    SEND(c, "2bc\r\n");
    cli_send(c, chunk, sizeof(chunk));
    SEND(c, "\r\n2bc\r\n");
    cli_send(c, chunk, sizeof(chunk));
    ck_assert_int_eq(cli_response(c, &r), 0);
    assert_problem(&r, 413, "request-too-large");
    cli_close(c);
    /* default limit (1 MiB) on a route without its own */
    c = cli_connect();
    SEND(c, "PUT /big HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert_int_eq(r.status, 413);
    cli_close(c);
    stop();
}
END_TEST

START_TEST(header_limit_431) {
    start();
    cli_t *c = cli_connect();
    resp_t r;
    SEND(c, "GET /hello HTTP/1.1\r\nHost: x\r\n");
    char line[1100];
    memset(line, 'a', sizeof(line));
    memcpy(line, "X-Pad: ", 7);
    memcpy(line + sizeof(line) - 2, "\r\n", 2);
    for (int i = 0; i < 20; i++)
        cli_send(c, line, sizeof(line));
    ck_assert_int_eq(cli_response(c, &r), 0);
    assert_problem(&r, 431, "request-header-fields-too-large");
    cli_close(c);
    c = cli_connect();
    char *uri = malloc(10000);
    memset(uri, 'a', 10000);
    SEND(c, "GET /");
    cli_send(c, uri, 10000);
    free(uri);
    ck_assert_int_eq(cli_response(c, &r), 0);
    assert_problem(&r, 414, "uri-too-long");
    cli_close(c);
    stop();
}
END_TEST

START_TEST(malformed_400) {
    start();
    cli_t *c = cli_connect();
    resp_t r;
    SEND(c, "GARBAGE\x01 / HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    assert_problem(&r, 400, "generic-bad-request");
    ck_assert(closed_within(c, 2000));
    cli_close(c);
    /* a good request, then a bad one: the good one is still answered first */
    c = cli_connect();
    SEND(c, "GET /slow/100 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/9.x\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert_str_eq(r.body, "100");
    ck_assert_int_eq(cli_response(c, &r), 0);
    assert_problem(&r, 400, "generic-bad-request");
    cli_close(c);
    stop();
}
END_TEST

START_TEST(not_found_and_method) {
    start();
    cli_t *c = cli_connect();
    resp_t r;
    SEND(c, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    assert_problem(&r, 404, "url-not-found");
    SEND(c, "POST /session/abc/files HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    assert_problem(&r, 405, "method-not-allowed");
    ck_assert_str_eq(hdr(&r, "Allow"), "GET, DELETE");
    /* HEAD falls back to GET without a body */
    SEND(c, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    char *e;
    while ((e = strstr(c->buf, "\r\n\r\n")) == NULL)
        ck_assert_int_gt(cli_fill(c), 0);
    ck_assert_ptr_nonnull(strstr(c->buf, "Content-Length: 5\r\n"));
    consume(c, (size_t)(e - c->buf) + 4);
    /* middleware answering itself */
    SEND(c, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Deny: nope\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    assert_problem(&r, 401, "auth-failed");
    ck_assert_ptr_nonnull(strstr(r.body, "\"msg\":\"nope\""));
    ck_assert_ptr_nonnull(strstr(r.body, "\"data\":{\"n\":1}"));
    cli_close(c);
    stop();
}
END_TEST

START_TEST(idle_timeout) {
    baic_http_config_t cfg = {.idle_timeout_ms = 200};
    start_with(&cfg);
    cli_t *c = cli_connect();
    resp_t r;
    SEND(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_response(c, &r), 0);
    ck_assert(closed_within(c, 3000));
    cli_close(c);
    stop();
}
END_TEST

START_TEST(read_timeout_408) {
    baic_http_config_t cfg = {.read_timeout_ms = 300};
    start_with(&cfg);
    cli_t *c = cli_connect();
    resp_t r;
    SEND(c, "GET /hello HTTP/1.1\r\nHost:");
    ck_assert_int_eq(cli_response(c, &r), 0);
    assert_problem(&r, 408, "request-timeout");
    ck_assert(closed_within(c, 3000));
    cli_close(c);
    stop();
}
END_TEST

START_TEST(max_connections_503) {
    baic_http_config_t cfg = {.max_connections = 1};
    start_with(&cfg);
    cli_t *a = cli_connect();
    resp_t r;
    SEND(a, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_response(a, &r), 0);
    cli_t *b = cli_connect();
    SEND(b, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_response(b, &r), 0);
    assert_problem(&r, 503, "service-unavailable");
    ck_assert(closed_within(b, 2000));
    cli_close(b);
    /* the first connection still works; after it goes, a new one is served */
    SEND(a, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(cli_response(a, &r), 0);
    ck_assert_int_eq(r.status, 200);
    cli_close(a);
    usleep(1000); /* not synchronisation: the retry loop below has the deadline */
    for (int i = 0; i < 100; i++) {
        cli_t *d = cli_connect();
        SEND(d, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        ck_assert_int_eq(cli_response(d, &r), 0);
        cli_close(d);
        if (r.status == 200)
            break;
        usleep(20000);
    }
    ck_assert_int_eq(r.status, 200);
    stop();
}
END_TEST

START_TEST(abort_notifies_handler) {
    start();
    cli_t *c = cli_connect();
    SEND(c, "GET /slow/5000 HTTP/1.1\r\nHost: x\r\n\r\n");
    usleep(100000); /* let the request reach the handler; the assertion below waits */
    cli_close(c);
    for (int i = 0; i < 200 && __atomic_load_n(&g_aborts, __ATOMIC_SEQ_CST) == 0; i++)
        usleep(10000);
    ck_assert_int_eq(__atomic_load_n(&g_aborts, __ATOMIC_SEQ_CST), 1);
    stop();
}
END_TEST

/* ---- TLS ---- */

static int make_cert(char *dir, char *cert, char *key) {
    if (system("command -v openssl >/dev/null 2>&1") != 0)
        return -1;
    strcpy(dir, "/tmp/baic-http-tls-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    sprintf(cert, "%s/cert.pem", dir);
    sprintf(key, "%s/key.pem", dir);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 "
             "-keyout %s -out %s >/dev/null 2>&1",
             key, cert);
    ck_assert_int_eq(system(cmd), 0);
    return 0;
}

START_TEST(tls_requests) {
    char dir[64], cert[128], key[128];
    if (make_cert(dir, cert, key) < 0) {
        fprintf(stderr, "tls_requests: skipped, no openssl binary\n");
        return;
    }
    baic_http_config_t cfg = {.tls_cert_file = cert, .tls_key_file = key};
    start_with(&cfg);
    cli_t *c = cli_connect();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, c->fd);
    ck_assert_int_eq(SSL_connect(ssl), 1);
    const char req[] = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\n"
                       "Content-Length: 3\r\nConnection: close\r\n\r\nabc";
    ck_assert_int_eq(SSL_write(ssl, req, sizeof(req) - 1), (int)sizeof(req) - 1);
    char buf[4096];
    size_t n = 0;
    int k;
    while ((k = SSL_read(ssl, buf + n, (int)(sizeof(buf) - 1 - n))) > 0)
        n += (size_t)k;
    buf[n] = '\0';
    ck_assert_ptr_nonnull(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    ck_assert_ptr_nonnull(strstr(buf, "\r\n\r\nhello"));
    ck_assert_ptr_nonnull(strstr(buf, "Server: BackendAI\r\n"));
    ck_assert_ptr_nonnull(strstr(buf, "\r\n\r\nabc"));
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    cli_close(c);
    stop();
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(tls_bad_cert_fails) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    baic_http_config_t cfg = {.listen = "127.0.0.1:0", .tls_cert_file = "/nonexistent",
                              .tls_key_file = "/nonexistent"};
    baic_http_server_t *srv = NULL;
    ck_assert_int_eq(baic_http_server_new(&loop, &cfg, &srv), UV_EPROTO);
    cfg.tls_cert_file = cfg.tls_key_file = NULL;
    cfg.listen = "nonsense";
    ck_assert_int_eq(baic_http_server_new(&loop, &cfg, &srv), UV_EINVAL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* ---- client against the server, both on one loop ---- */

typedef struct {
    int status, err, calls;
    char body[256];
    char ctype[64];
} cres_t;

static void client_cb(int status, const baic_http_header_t *headers, const char *body, size_t len,
                      int err, void *arg) {
    cres_t *r = arg;
    r->calls++;
    r->status = status;
    r->err = err;
    if (err == 0) {
        snprintf(r->body, sizeof(r->body), "%.*s", (int)len, body);
        const char *ct = baic_http_header_find(headers, "content-type");
        snprintf(r->ctype, sizeof(r->ctype), "%s", ct ? ct : "");
    }
}

START_TEST(client_roundtrip) {
    uv_loop_t *loop = &g_loop;
    ck_assert_int_eq(uv_loop_init(loop), 0);
    baic_http_config_t cfg = {.listen = "127.0.0.1:0"};
    ck_assert_int_eq(baic_http_server_new(loop, &cfg, &g_srv), 0);
    add_routes(g_srv);
    char url[128];
    cres_t a = {0}, b = {0}, cc = {0}, d = {0};
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/echo", baic_http_server_port(g_srv));
    baic_http_header_t hs[] = {{"X-A", "1"}, {NULL, NULL}};
    baic_http_client_req_t r1 = {.method = "POST", .url = url, .headers = hs, .body = "data",
                                 .body_len = 4, .timeout_ms = 5000};
    ck_assert_int_eq(baic_http_client_request(loop, &r1, client_cb, &a), 0);
    snprintf(url, sizeof(url), "http://localhost:%d/chunked", baic_http_server_port(g_srv));
    baic_http_client_req_t r2 = {.url = url, .timeout_ms = 5000};
    ck_assert_int_eq(baic_http_client_request(loop, &r2, client_cb, &b), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/nope", baic_http_server_port(g_srv));
    baic_http_client_req_t r3 = {.url = url, .timeout_ms = 5000};
    ck_assert_int_eq(baic_http_client_request(loop, &r3, client_cb, &cc), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/slow/3000", baic_http_server_port(g_srv));
    baic_http_client_req_t r4 = {.url = url, .timeout_ms = 100};
    ck_assert_int_eq(baic_http_client_request(loop, &r4, client_cb, &d), 0);
    baic_http_client_req_t bad = {.url = "ftp://x/"};
    ck_assert_int_eq(baic_http_client_request(loop, &bad, client_cb, &d), UV_EINVAL);
    while (a.calls + b.calls + cc.calls + d.calls < 4)
        uv_run(loop, UV_RUN_ONCE);
    baic_http_server_close(g_srv, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(loop), 0);
    ck_assert_int_eq(a.err, 0);
    ck_assert_int_eq(a.status, 200);
    ck_assert_str_eq(a.body, "data");
    ck_assert_int_eq(b.status, 200);
    ck_assert_str_eq(b.body, "hello world");
    ck_assert_int_eq(cc.status, 404);
    ck_assert_str_eq(cc.ctype, "application/problem+json");
    ck_assert_int_eq(d.err, UV_ETIMEDOUT);
    ck_assert_int_eq(d.calls, 1);
}
END_TEST

static Suite *http_suite(void) {
    Suite *s = suite_create("http");
    BAIC_TCASE(s, tc, "server", 30);
    tcase_add_test(tc, keep_alive_two_requests);
    tcase_add_test(tc, body_into_handler_buffers);
    tcase_add_test(tc, body_through_sink);
    tcase_add_test(tc, response_file_pieces);
    tcase_add_test(tc, request_accessors);
    tcase_add_test(tc, pipelining_in_order);
    tcase_add_test(tc, many_pipelined);
    tcase_add_test(tc, http10_and_close);
    tcase_add_test(tc, expect_continue);
    tcase_add_test(tc, chunked_response);
    tcase_add_test(tc, sse_stream);
    tcase_add_test(tc, websocket_echo);
    tcase_add_test(tc, websocket_too_big);
    tcase_add_test(tc, not_websocket_400);
    tcase_add_test(tc, body_limit_413);
    tcase_add_test(tc, header_limit_431);
    tcase_add_test(tc, malformed_400);
    tcase_add_test(tc, not_found_and_method);
    tcase_add_test(tc, idle_timeout);
    tcase_add_test(tc, read_timeout_408);
    tcase_add_test(tc, max_connections_503);
    tcase_add_test(tc, abort_notifies_handler);
    tcase_add_test(tc, tls_requests);
    tcase_add_test(tc, tls_bad_cert_fails);
    tcase_add_test(tc, client_roundtrip);
    return s;
}

BAIC_CHECK_MAIN(http_suite)
