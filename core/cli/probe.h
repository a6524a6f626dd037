/* SPDX-License-Identifier: Apache-2.0 */
/* Loopback probes: free ports, TCP, a plain HTTP GET and a Redis PING, each with a deadline. */
#ifndef BAIC_CLI_PROBE_H
#define BAIC_CLI_PROBE_H

#include <stddef.h>

/* A port on 127.0.0.1 the kernel considers free right now (racy; callers check the start). */
int cli_port_pick(int *port);
/* 1 when the port can be bound on 127.0.0.1 now, 0 when it cannot. */
int cli_port_free(int port);
/* 0 when something accepts a TCP connection on host:port, else a negative errno. */
int cli_tcp_probe(const char *host, int port, int timeout_ms);
/* GET path over plain HTTP/1.1. Returns 0 with the status code and the body (NUL-terminated,
 * truncated to bodylen - 1), or a negative errno. */
int cli_http_get(const char *host, int port, const char *path, int timeout_ms, int *status,
                  char *body, size_t bodylen);
/* One HTTP/1.1 request with a body (NULL: none). headers: extra "Name: value\r\n" lines or
 * NULL. Returns 0 with the status and the de-chunked body (NUL-terminated, truncated to
 * outlen - 1; replies up to 64 KiB), or a negative errno. */
int cli_http_request(const char *host, int port, const char *method, const char *path,
                     const char *headers, const char *body, int timeout_ms, int *status,
                     char *out, size_t outlen);
/* 0 when a Redis server at host:port answers PING with PONG, else a negative errno. */
int cli_redis_ping(const char *host, int port, int timeout_ms);

#endif
