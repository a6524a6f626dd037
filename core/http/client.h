/* SPDX-License-Identifier: Apache-2.0 */
/* Async HTTP/1.1 client on a libuv loop, for daemon-to-daemon calls (plain http://). */
#ifndef BAIC_CORE_HTTP_CLIENT_H
#define BAIC_CORE_HTTP_CLIENT_H

#include <stddef.h>

#include <uv.h>

#include "http/http.h"

typedef struct {
    const char *method;                 /* NULL = "GET" */
    const char *url;                    /* "http://host:port/path?query" (port default 80) */
    const baic_http_header_t *headers;  /* nullable, ends with {NULL, NULL} */
    const void *body;                   /* nullable */
    size_t body_len;
    unsigned timeout_ms;                /* whole exchange; 0 = 30 s */
} baic_http_client_req_t;

/* Called exactly once. On success err is 0, status the HTTP status, headers an array
 * ending with {NULL, NULL}, body the de-chunked body (NUL-terminated, len excludes it).
 * On failure err is a negative code (UV_ETIMEDOUT, UV_ECONNREFUSED, UV_EPROTO for a bad
 * response, ...), status 0, headers and body NULL. Everything passed is valid only during
 * the call. Runs on the loop's thread. */
typedef void (*baic_http_client_cb)(int status, const baic_http_header_t *headers,
                                    const char *body, size_t len, int err, void *arg);

/* Starts a request on loop (each uses its own connection, closed afterwards). r and
 * everything it points to are copied. Returns 0 (cb will run) or UV_EINVAL for a bad
 * URL / UV_ENOMEM, in which case cb never runs. Loop thread only. */
int baic_http_client_request(uv_loop_t *loop, const baic_http_client_req_t *r,
                             baic_http_client_cb cb, void *arg);

/* Case-insensitive lookup in a {NULL, NULL}-terminated array; NULL when absent. */
const char *baic_http_header_find(const baic_http_header_t *headers, const char *name);

#endif
