/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/1.1 server on libuv: routing, request objects with arenas, responses, streaming. */
#ifndef BAIC_CORE_HTTP_H
#define BAIC_CORE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

/*
 * Threading: everything here runs on the thread that runs the server's loop; no
 * function may be called from another thread.
 *
 * Errors: functions return 0 or a negative libuv-style code (UV_EINVAL, UV_ENOMEM, ...).
 *
 * Request lifetime (the rule handlers must follow):
 *   - The server creates a request, calls the middleware (if any) and then the route's
 *     handler. The request stays valid until the handler finishes it with exactly one of
 *     baic_http_respond*(), baic_http_chunk_end(), baic_http_sse_end(),
 *     baic_http_ws_accept() (success or failure), or baic_http_req_release(). After that
 *     call returns, the handler must not touch the request or anything allocated from it.
 *   - The handler may finish the request later, from any callback on the same loop (async).
 *   - If the client goes away (or the server is closed) before the request is finished,
 *     the abort callback registered with baic_http_req_on_abort() runs once. The request
 *     (and its arena) stays valid after that; the handler must still finish it, usually by
 *     baic_http_req_release() (respond* also works and is then a no-op that frees it).
 *     Streaming calls on an aborted request return UV_ECONNRESET and do nothing.
 */

typedef struct baic_http_server baic_http_server_t;
typedef struct baic_http_req baic_http_req_t;
typedef struct baic_http_ws baic_http_ws_t;

/* A header as a name/value pair; arrays of them end with {NULL, NULL}. */
typedef struct {
    const char *name;
    const char *value;
} baic_http_header_t;

typedef struct {
    const char *listen;           /* "host:port", "[::1]:port"; port 0 = ephemeral. NULL: no listener */
    size_t max_header_bytes;      /* request line + headers; 0 = 16 KiB; over -> 431 */
    size_t max_uri_bytes;         /* request target; 0 = 8 KiB; over -> 414 */
    size_t max_body_bytes;        /* default per-route body limit; 0 = 1 MiB; over -> 413 */
    unsigned idle_timeout_ms;     /* keep-alive idle; 0 = 75 s. Closes silently */
    unsigned read_timeout_ms;     /* started request must arrive within; 0 = 30 s; -> 408 */
    unsigned max_connections;     /* 0 = 4096; further connections get 503 and close */
    unsigned max_pipeline;        /* outstanding requests per connection before reading
                                     pauses; 0 = 32 */
    size_t max_ws_message_bytes;  /* 0 = 16 MiB; bigger messages close with 1009 */
    const char *server_name;      /* Server header value; NULL = "BackendAI" */
    const char *tls_cert_file;    /* PEM; both set = TLS on every connection */
    const char *tls_key_file;
} baic_http_config_t;

/* A route handler. Must finish req eventually (see the lifetime rule). */
typedef void (*baic_http_handler_t)(baic_http_req_t *req, void *arg);

/* Pre-dispatch hook, called for every complete request (matched route or not; see
 * baic_http_route_pattern()) before the handler or the 404/405 answer.
 * Return 0: go on with normal dispatch. Return 1: the hook took over the request; it
 * must finish it (e.g. respond 401) or call baic_http_req_continue() later. */
typedef int (*baic_http_middleware_t)(baic_http_req_t *req, void *arg);

/* After-response hook: runs once per request when the write of its last byte has
 * completed (the kernel has it). pattern is the matched route ("/session/{ref}/files") or NULL; duration_us
 * counts from the request's first byte. Not called for aborted requests. */
typedef void (*baic_http_observer_t)(const baic_http_req_t *req, const char *pattern,
                                     int status, uint64_t duration_us, void *arg);

/* Creates a server on loop and starts listening when cfg->listen is set.
 * cfg is copied (strings too); NULL means all defaults with no listener.
 * Returns 0 and *out, or a negative code (UV_EADDRINUSE, UV_EINVAL for a bad listen
 * string, UV_EPROTO when the TLS cert/key cannot be loaded). */
int baic_http_server_new(uv_loop_t *loop, const baic_http_config_t *cfg,
                         baic_http_server_t **out);

/* The bound TCP port (useful with port 0), or a negative code when not listening. */
int baic_http_server_port(const baic_http_server_t *srv);

/* Client connections open now (for metrics). Loop thread. */
unsigned baic_http_server_connections(const baic_http_server_t *srv);

/* Stops listening, closes every connection (running abort callbacks of unfinished
 * requests) and frees srv once all handles are closed; cb (nullable) runs then.
 * Requests still held by handlers stay valid until released, as above. */
void baic_http_server_close(baic_http_server_t *srv, void (*cb)(void *arg), void *arg);

/* Adds a route. method: "GET", "POST", ... ("*" = any). pattern: "/a/{name}/b"; a
 * {name} segment matches one non-empty segment. Trailing slashes are ignored, "" and
 * "/" are the root. max_body: body limit for this route, 0 = the server default.
 * Routes are tried in the order added. Strings are copied. Returns 0 or UV_EINVAL/UV_ENOMEM. */
int baic_http_route(baic_http_server_t *srv, const char *method, const char *pattern,
                    baic_http_handler_t handler, void *arg, size_t max_body);

void baic_http_set_middleware(baic_http_server_t *srv, baic_http_middleware_t fn, void *arg);
void baic_http_set_observer(baic_http_server_t *srv, baic_http_observer_t fn, void *arg);

/* ---- request accessors (valid while the request is) ---- */

const char *baic_http_method(const baic_http_req_t *req);       /* "GET" */
/* The request target exactly as on the request line ("/a%20b?x=1"): sign this. */
const char *baic_http_raw_path(const baic_http_req_t *req);
/* Percent-decoded path without the query ("/a b"). */
const char *baic_http_path(const baic_http_req_t *req);
/* The raw query string without '?', "" when none. */
const char *baic_http_query_string(const baic_http_req_t *req);
/* First value of query parameter name, percent-decoded with '+' as space; NULL if absent. */
const char *baic_http_query(baic_http_req_t *req, const char *name);
/* First header value by case-insensitive name; NULL if absent. */
const char *baic_http_header(const baic_http_req_t *req, const char *name);
/* Header by index (0..n-1); returns 0, or UV_ENOENT past the end. */
int baic_http_header_at(const baic_http_req_t *req, size_t i, const char **name,
                        const char **value);
/* Path parameter of the matched route ("ref" for "{ref}"), decoded; NULL if none. */
const char *baic_http_param(const baic_http_req_t *req, const char *name);
/* Fully buffered body (NUL-terminated for convenience; len excludes the NUL). */
const char *baic_http_body(const baic_http_req_t *req, size_t *len);
/* "127.0.0.1" or "::1"; "" when unknown. */
const char *baic_http_remote_addr(const baic_http_req_t *req);
/* The matched route pattern or NULL. */
const char *baic_http_route_pattern(const baic_http_req_t *req);
int baic_http_version_minor(const baic_http_req_t *req);   /* 0 for HTTP/1.0, 1 for 1.1 */
/* Per-request user pointer (e.g. the authenticated key set by the middleware). */
void baic_http_set_user(baic_http_req_t *req, void *p);
void *baic_http_user(const baic_http_req_t *req);

/* Request-scoped memory, freed when the request is finished and written. 16-byte
 * aligned; NULL on OOM. Valid while the request is. */
void *baic_http_alloc(baic_http_req_t *req, size_t n);
char *baic_http_strdup(baic_http_req_t *req, const char *s);

/* Registers the abort callback (see the lifetime rule); replaces an earlier one. */
void baic_http_req_on_abort(baic_http_req_t *req, void (*cb)(baic_http_req_t *req, void *arg),
                            void *arg);
/* Finishes a request without answering: after an abort, or to drop the connection
 * (the connection is then closed). */
void baic_http_req_release(baic_http_req_t *req);
/* Resumes dispatch after a middleware returned 1: runs the handler, 404 or 405. */
void baic_http_req_continue(baic_http_req_t *req);

/* ---- responses ---- */

/* Adds a response header (copied). Server, Date, Content-Length, Content-Type,
 * Connection and Transfer-Encoding are set by the server. Returns 0, UV_EINVAL when
 * the name/value contain CR/LF, UV_EALREADY once the head was produced. */
int baic_http_add_header(baic_http_req_t *req, const char *name, const char *value);

/* Complete response. body (nullable when len is 0) is copied. content_type nullable.
 * Finishes the request. Returns 0 or a negative code (the request is finished anyway). */
int baic_http_respond(baic_http_req_t *req, int status, const char *content_type,
                      const void *body, size_t len);
/* JSON response (application/json); body is stolen (decref'd) even on error. */
int baic_http_respond_json(baic_http_req_t *req, int status, json_t *body);
/* Backend.AI problem JSON (application/problem+json):
 * {"type":"https://api.backend.ai/probs/<slug>","title":title,"msg":msg,"data":data}.
 * msg and data nullable (omitted when NULL); data is stolen. */
int baic_http_respond_problem(baic_http_req_t *req, int status, const char *slug,
                              const char *title, const char *msg, json_t *data);

/* Chunked streaming: begin sends the head (close-delimited for HTTP/1.0 clients),
 * write sends one chunk (copied; len 0 is a no-op), end sends the last chunk and
 * finishes the request. Return 0, UV_ECONNRESET after an abort, UV_EINVAL out of order. */
int baic_http_chunk_begin(baic_http_req_t *req, int status, const char *content_type);
int baic_http_chunk_write(baic_http_req_t *req, const void *data, size_t len);
int baic_http_chunk_end(baic_http_req_t *req);

/* Server-Sent Events over a chunked 200 text/event-stream. keepalive_s > 0 sends a
 * comment line ":keep-alive" after that many idle seconds. send: event and id nullable;
 * data may hold newlines (each line becomes its own "data:" field). end finishes. */
int baic_http_sse_begin(baic_http_req_t *req, unsigned keepalive_s);
int baic_http_sse_send(baic_http_req_t *req, const char *event, const char *id,
                       const char *data);
int baic_http_sse_end(baic_http_req_t *req);

/* ---- streaming bodies (request and response) ---- */

/*
 * A route whose request body is not buffered: the handler runs as soon as the headers
 * are in (before the body), and receives the body through baic_http_body_read().
 * There is no body limit (the handler enforces its own). The middleware, if any, runs
 * first as for other routes, also at the end of the headers; it must not keep the
 * request past its return (respond or return 0) on such a route.
 */
typedef int (*baic_http_body_cb)(baic_http_req_t *req, const void *data, size_t len, void *arg);
typedef void (*baic_http_body_end_cb)(baic_http_req_t *req, void *arg);
int baic_http_route_stream(baic_http_server_t *srv, const char *method, const char *pattern,
                           baic_http_handler_t handler, void *arg);

/*
 * Starts delivering the body of a streaming-route request: on_data(req, data, len, arg)
 * for every piece as it is parsed (data valid during the call only; its return value
 * is ignored, use pause), then on_end(req, arg) once the body is complete (also for an
 * empty body, then on the next loop turn at the latest). The handler must call this
 * (or finish the request) before it returns, or bytes that arrive are dropped.
 * If the client goes away mid-body, the abort callback runs and on_end never does.
 * Finishing the request before on_end closes the connection after the answer.
 * Returns 0, or UV_EINVAL when req is not on a streaming route or already reading.
 */
int baic_http_body_read(baic_http_req_t *req, baic_http_body_cb on_data,
                        baic_http_body_end_cb on_end, void *arg);
/* Backpressure: pause stops reading the socket (bytes already read, at most one read
 * buffer of 64 KiB, may still be delivered); resume starts it again. Loop thread. */
void baic_http_body_pause(baic_http_req_t *req);
void baic_http_body_resume(baic_http_req_t *req);
/*
 * Read buffers from the handler (plain connections with a Content-Length body; TLS and
 * chunked bodies ignore it): while the body is being read, each socket read asks
 * get_buf(req, &buf, arg) for where to put the bytes (buf->len 0 = use the server's own
 * buffer); a read never goes past the body's end, so the memory holds body bytes only and
 * may be freed from the end callback. The body's pieces then usually arrive at on_data
 * pointing into that memory, at its start, so a handler that gathers the body can check
 * for that and skip copying it. The memory must stay valid until the read it served was
 * delivered (the same loop turn). NULL get_buf stops it. Returns 0, or UV_EINVAL when req
 * is not reading its body.
 */
typedef void (*baic_http_body_buf_cb)(baic_http_req_t *req, uv_buf_t *buf, void *arg);
int baic_http_body_buffers(baic_http_req_t *req, baic_http_body_buf_cb get_buf, void *arg);

/*
 * The body moved by the handler itself, without passing through user space (plain
 * connections with a Content-Length body; TLS and chunked bodies ignore it): while set,
 * each time the socket is readable the server calls sink(req, fd, max, arg) instead of
 * reading, and the sink moves at most max bytes from fd (a non-blocking socket; splice(2)
 * into a pipe) and returns how many it took. It returns UV_EAGAIN when it took none for
 * now (the socket is empty; or the handler has no room, and then it pauses the body with
 * baic_http_body_pause first and resumes it later), 0 when fd reached its end (the client
 * went away: the request is aborted), UV_ENOTSUP to have the server read the rest itself,
 * or another negative error, which aborts the request. Bytes read before the sink took
 * over, and the body's last byte (the server reads it to end the message), still arrive
 * through on_data, in order: a sink's bytes come after every on_data piece delivered
 * before it ran and before every one delivered after. NULL sink stops it. Returns 0, or
 * UV_EINVAL when req is not reading its body.
 */
typedef ssize_t (*baic_http_body_sink_cb)(baic_http_req_t *req, int fd, size_t max, void *arg);
int baic_http_body_sink(baic_http_req_t *req, baic_http_body_sink_cb sink, void *arg);

/*
 * Response streaming without copies and with completion: begin sends the head, with
 * Content-Length: content_length when >= 0, else chunked (close-delimited for
 * HTTP/1.0). write queues len bytes that are NOT copied: data must stay valid until
 * cb(req, status, arg) runs, once, when the kernel took them (status 0) or they will
 * never be written (negative: connection gone). cb runs even after an abort, and always
 * later, never inside write; with a negative status the request may already be finished
 * and freed, so cb must not use req then. end finishes the request; with a Content-Length it must
 * come after exactly that many bytes (fewer: the connection is closed). Not for HEAD
 * requests (write returns UV_EINVAL; send only the head with respond). Return 0,
 * UV_ECONNRESET after an abort (cb will not run), UV_EINVAL out of order or when write
 * would pass the Content-Length.
 */
typedef void (*baic_http_write_cb)(baic_http_req_t *req, int status, void *arg);
int baic_http_stream_begin(baic_http_req_t *req, int status, const char *content_type,
                           int64_t content_length);
int baic_http_stream_write(baic_http_req_t *req, const void *data, size_t len,
                           baic_http_write_cb cb, void *arg);
int baic_http_stream_end(baic_http_req_t *req);
/*
 * The next len bytes of a Content-Length response taken from a file: bytes [off, off+len)
 * of fd go out with sendfile(2) from the loop thread whenever the socket takes more, after
 * every piece queued before them and before every piece queued after; cb as for
 * baic_http_stream_write, and fd must stay open until it ran. The loop thread reads the
 * file: pages not in the page cache block it, so a caller that cannot promise cached pages
 * brings them in on a pool thread first (readahead(2)). A file shorter than off+len ends
 * the piece with UV_EIO and closes the connection. Returns 0, UV_ENOTSUP where sendfile
 * cannot serve (TLS, chunked or close-delimited responses: write the bytes instead; see
 * baic_http_sendfile_ok), else as baic_http_stream_write.
 */
int baic_http_stream_sendfile(baic_http_req_t *req, int fd, int64_t off, size_t len,
                              baic_http_write_cb cb, void *arg);
bool baic_http_sendfile_ok(const baic_http_req_t *req);

/* ---- WebSocket (see websocket.h for the handle's functions) ---- */

/* Called for every complete (reassembled) text or binary message; data valid during
 * the call only. */
typedef void (*baic_http_ws_message_cb)(baic_http_ws_t *ws, int is_text, const void *data,
                                        size_t len, void *arg);
/* Called exactly once when the socket is gone; code = peer's close code or 1006.
 * The handle is freed after it returns. */
typedef void (*baic_http_ws_close_cb)(baic_http_ws_t *ws, int code, void *arg);

/* Answers the upgrade request with 101 and switches the connection to WebSocket.
 * Finishes req in every case (on failure with a 400 problem answer).
 * Returns 0 and *out (owned by the server until on_close), or UV_EINVAL when req is not
 * a valid WebSocket upgrade, UV_ECONNRESET after an abort. */
int baic_http_ws_accept(baic_http_req_t *req, baic_http_ws_message_cb on_message,
                        baic_http_ws_close_cb on_close, void *arg, baic_http_ws_t **out);

/* Reason phrase for a status code ("Not Found"); "Unknown" for others. */
const char *baic_http_status_text(int status);

#endif
