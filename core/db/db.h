/* SPDX-License-Identifier: Apache-2.0 */
/* Asynchronous PostgreSQL on the libuv loop: a connection pool, parameterised queries, transactions, reconnect. */
#ifndef BAIC_CORE_DB_H
#define BAIC_CORE_DB_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include <baic/errors.h>

/*
 * Threading: every function here, and every callback, runs on the loop thread that
 * owns the pool. Nothing is thread-safe.
 *
 * Callback rule (as libuv): when a call returns a negative code its callback never
 * fires; when it returns 0 the callback fires exactly once, later, from the loop
 * (never from inside the call itself).
 *
 * Error codes given to callbacks:
 *   0                  success
 *   BAIC_EEXISTS       the server said unique_violation (SQLSTATE 23505)
 *   BAIC_EBACKEND      any other error reported by the server; see
 *                      baic_db_result_sqlstate() for the SQLSTATE
 *   -ECONNRESET        the connection broke while the query was in flight; the
 *                      query may or may not have been executed
 *   -ENOTCONN          no connection could be made to the server
 *   BAIC_ETIMEOUT      the request waited for a connection longer than the
 *                      queue timeout (baic_db_pool_set_queue_timeout)
 *   BAIC_ECANCELLED    the pool was closed before the query ran
 *
 * Reconnect: a connection that breaks (server restart, network) is detected on the
 * loop (idle connections are watched too), closed, and reopened with exponential
 * backoff (50 ms doubling to 5 s). A query outside a transaction whose send failed
 * because the connection was already known to be broken is retried once on
 * another connection: it cannot have reached the server. A query that was sent and
 * then lost its connection fails with -ECONNRESET and is never retried, because the
 * server may have executed it. Inside a transaction nothing is retried: the
 * transaction is gone with its connection.
 */

typedef struct baic_db_pool baic_db_pool_t;
typedef struct baic_db_tx baic_db_tx_t;
typedef struct baic_db_result baic_db_result_t;

/* Query completion. res: rows of a successful query, or the server's error (so its
 * SQLSTATE can be read) when err is BAIC_EEXISTS/BAIC_EBACKEND; NULL otherwise.
 * res is valid only during the callback. errmsg: NULL on success, else a one-line
 * message also valid only during the callback. */
typedef void (*baic_db_cb)(const baic_db_result_t *res, int err, const char *errmsg, void *arg);
/* Transaction started (tx != NULL, err 0) or could not be (tx NULL, err < 0). */
typedef void (*baic_db_tx_cb)(baic_db_tx_t *tx, int err, const char *errmsg, void *arg);
/* Commit/rollback finished; the tx handle is already gone. */
typedef void (*baic_db_done_cb)(int err, const char *errmsg, void *arg);
/* The pool is closed and freed. */
typedef void (*baic_db_close_cb)(void *arg);

typedef struct baic_db_stats {
    int size;               /* connections configured */
    int connected;          /* connections open (idle + in use) */
    int in_use;             /* running a query or pinned by a transaction */
    int idle;               /* open and free */
    int waiting;            /* requests queued for a connection */
    uint64_t queries;       /* queries completed (ok or error) */
    uint64_t errors;        /* of which failed */
    uint64_t latency_us_sum;/* send-to-result time of completed queries, microseconds */
    uint64_t reconnects;    /* successful connects after a connection broke */
} baic_db_stats_t;

/* Creates a pool of `size` (1..64) connections to `dsn` (a libpq conninfo string or
 * URI; it may hold a password and is never logged) and starts connecting them in the
 * background. Returns 0 with *out set, -EINVAL for a bad size or DSN syntax, -ENOMEM.
 * The pool is owned by the caller until baic_db_pool_close(). Unreachable servers are
 * not an error here: queries fail with -ENOTCONN until a connection succeeds. */
int baic_db_pool_new(uv_loop_t *loop, const char *dsn, int size, baic_db_pool_t **out);

/* Fails queued requests with BAIC_ECANCELLED, in-flight ones too (their connections
 * are closed), then frees the pool once every handle is closed and calls cb (may be
 * NULL). Open transaction handles become invalid (the server rolls them back). */
void baic_db_pool_close(baic_db_pool_t *pool, baic_db_close_cb cb, void *arg);

/* How long a request may wait for a free connection before failing with
 * BAIC_ETIMEOUT (default 30000 ms; 0 = forever). */
void baic_db_pool_set_queue_timeout(baic_db_pool_t *pool, unsigned ms);

void baic_db_pool_stats(const baic_db_pool_t *pool, baic_db_stats_t *out);

/* Runs one SQL statement with text parameters $1..$n. params[i] == NULL is SQL NULL.
 * sql and params are copied: the caller's memory may go away after the call. The
 * request waits in a FIFO queue when every connection is busy.
 * Returns 0 (cb will fire), -EINVAL (sql NULL, nparams < 0 or params NULL with
 * nparams > 0), -ENOMEM, BAIC_ECANCELLED when the pool is closing. */
int baic_db_query(baic_db_pool_t *pool, const char *sql, int nparams,
                  const char *const *params, baic_db_cb cb, void *arg);

/* Takes a connection from the pool, runs BEGIN on it and hands the transaction to cb.
 * The connection stays pinned until commit or rollback. Same return codes as
 * baic_db_query(). */
int baic_db_tx_begin(baic_db_pool_t *pool, baic_db_tx_cb cb, void *arg);
/* Like baic_db_query() on the transaction's connection; queries on one transaction
 * run one after the other in call order. A server error aborts the transaction
 * (PostgreSQL semantics): roll it back. Returns -ECONNRESET when the transaction's
 * connection has already broken. */
int baic_db_tx_query(baic_db_tx_t *tx, const char *sql, int nparams,
                     const char *const *params, baic_db_cb cb, void *arg);
/* COMMIT / ROLLBACK after the queries already issued. Both always consume tx: the
 * handle is invalid after the call. Return 0 (cb fires; cb may be NULL) or
 * -ECONNRESET when the connection had broken (the server has rolled back; no cb). */
int baic_db_tx_commit(baic_db_tx_t *tx, baic_db_done_cb cb, void *arg);
int baic_db_tx_rollback(baic_db_tx_t *tx, baic_db_done_cb cb, void *arg);

/* Result accessors; row and col are 0-based. Out-of-range indices give NULL / -1. */
int baic_db_result_rows(const baic_db_result_t *res);
int baic_db_result_cols(const baic_db_result_t *res);
/* Rows changed by INSERT/UPDATE/DELETE (or returned by SELECT); 0 if unknown. */
long baic_db_result_affected(const baic_db_result_t *res);
/* Column index of `name`, or -1. */
int baic_db_result_col(const baic_db_result_t *res, const char *name);
const char *baic_db_result_col_name(const baic_db_result_t *res, int col);
/* Text value, NULL for SQL NULL; the string lives as long as res. */
const char *baic_db_result_get(const baic_db_result_t *res, int row, int col);
const char *baic_db_result_get_by_name(const baic_db_result_t *res, int row, const char *name);
int baic_db_result_is_null(const baic_db_result_t *res, int row, int col);
/* Five-character SQLSTATE of a server error ("23505"), or NULL. */
const char *baic_db_result_sqlstate(const baic_db_result_t *res);

#endif
