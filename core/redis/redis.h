/* SPDX-License-Identifier: Apache-2.0 */
/* Asynchronous Redis client on the libuv loop (hiredis + its libuv adapter) that reconnects by itself. */
#ifndef BAIC_CORE_REDIS_H
#define BAIC_CORE_REDIS_H

#include <stddef.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include <baic/errors.h>

/*
 * One baic_redis_t is one TCP connection. Everything runs on the loop thread that
 * created it; nothing is thread-safe. Blocking commands (XREADGROUP BLOCK, BLPOP,
 * SUBSCRIBE) hold the connection: give them a connection of their own.
 *
 * Reconnect: when the connection drops (server restart, network) in-flight commands
 * fail with -ECONNRESET and the client reconnects with backoff (50 ms doubling to
 * 2 s), re-sending AUTH when a password is set. While no connection exists, commands
 * fail at once with -ENOTCONN rather than waiting: callers decide whether to retry.
 * Commands issued while a connect is in progress are queued behind it.
 */

typedef struct baic_redis baic_redis_t;

/* Reply callback. err: 0 (reply is the server's answer), BAIC_EBACKEND (the server
 * answered with an error reply; reply is that reply and errmsg its text),
 * -ECONNRESET (connection lost before the answer; reply NULL), BAIC_ECANCELLED
 * (client closed; reply NULL). reply belongs to hiredis and is valid only during the
 * callback. For SUBSCRIBE the callback fires once per message until the connection
 * drops. */
typedef void (*baic_redis_cb)(redisReply *reply, int err, const char *errmsg, void *arg);
/* Called each time the connection is (re)established, after AUTH was queued. */
typedef void (*baic_redis_connect_cb)(baic_redis_t *r, void *arg);
typedef void (*baic_redis_close_cb)(void *arg);

/* Starts connecting to host:port (password may be NULL; it is never logged).
 * Returns 0 with *out set (owned by the caller until baic_redis_close), -EINVAL,
 * -ENOMEM. An unreachable server is not an error here: the client keeps retrying. */
int baic_redis_new(uv_loop_t *loop, const char *host, int port, const char *password,
                   baic_redis_t **out);

/* Hook run after every successful (re)connect, e.g. to re-subscribe. cb may be NULL.
 * If the client is already connected, cb is not called for the current connection. */
void baic_redis_set_connect_cb(baic_redis_t *r, baic_redis_connect_cb cb, void *arg);

/* 1 when connected (commands will be sent now), 0 otherwise. */
int baic_redis_connected(const baic_redis_t *r);

/* Sends one command given as argc binary-safe arguments (lens may be NULL for
 * NUL-terminated strings). Arguments are copied before return.
 * Returns 0 (cb fires once later; cb may be NULL), -ENOTCONN when there is no
 * connection, BAIC_ECANCELLED when closing, -EINVAL, -ENOMEM. */
int baic_redis_cmd_argv(baic_redis_t *r, int argc, const char **argv, const size_t *lens,
                        baic_redis_cb cb, void *arg);

/* Convenience for NUL-terminated arguments ending with NULL: baic_redis_cmd(r, cb, arg,
 * "SET", "k", "v", NULL). Same returns as baic_redis_cmd_argv(). */
int baic_redis_cmd(baic_redis_t *r, baic_redis_cb cb, void *arg, ...);

/* Closes the connection: pending commands fail with BAIC_ECANCELLED, then r is freed
 * and cb (may be NULL) runs from the loop. Safe inside a reply callback. */
void baic_redis_close(baic_redis_t *r, baic_redis_close_cb cb, void *arg);

#endif
