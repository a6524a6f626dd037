/* SPDX-License-Identifier: Apache-2.0 */
/* PostgreSQL connection pool driven by libuv: libpq in non-blocking mode, one uv_poll per socket. */
#include "db/db.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "log/log.h"

#define DB_BACKOFF_MIN_MS 50u
#define DB_BACKOFF_MAX_MS 5000u
#define DB_CONNECT_TIMEOUT_MS 10000u
#define DB_QUEUE_SWEEP_MS 250u
#define DB_MAX_POOL 64
#define DB_SLOW_US 1000000u /* a statement answered later than this is logged (warn) */

enum conn_state {
    C_DOWN,       /* no PGconn; the timer will start a connect */
    C_CONNECTING, /* PQconnectPoll in progress */
    C_IDLE,       /* free for the pool */
    C_BUSY,       /* a request is in flight */
    C_TX,         /* pinned by a transaction, nothing in flight */
};

enum req_kind { R_QUERY, R_BEGIN, R_COMMIT, R_ROLLBACK };

struct req {
    struct req *next;
    enum req_kind kind;
    char *sql;
    int nparams;
    char **params;       /* points into the same allocation as the req */
    baic_db_cb cb;
    baic_db_tx_cb tx_cb;
    baic_db_done_cb done_cb;
    void *arg;
    baic_db_tx_t *tx;    /* BEGIN: the tx being opened; others: the tx they belong to */
    int in_tx;           /* bound to an already-open transaction's connection */
    int retried;
    int sent;            /* PQsendQueryParams accepted it: the server may have run it */
    uint64_t enq_ms;
};

struct conn;

/*
 * Per-connection prepared statements. A statement text seen a second time on a
 * connection is prepared there (Parse once, then Bind/Execute only): the server skips
 * parsing and, once its generic plan is as good, planning, which for the manager's
 * CTE-heavy statements is half their cost. Texts seen once (dynamic ones) stay unprepared;
 * the table stops taking new texts when full. Cleared with the connection (a new session
 * has no prepared statements).
 */
#define DB_STMT_MAX 512

struct stmt {
    uint64_t hash;
    char *sql;
    int state;           /* 0 seen once, 1 prepared as "b<index>", -1 cannot be prepared */
};

struct baic_db_tx {
    baic_db_pool_t *pool;
    struct conn *conn;   /* NULL before BEGIN completes and after the connection broke */
    struct req *qhead, *qtail;
    int broken;
    int ending;          /* COMMIT or ROLLBACK issued */
    baic_db_tx_t *lnext, *lprev; /* pool's list of live transactions */
};

struct conn {
    baic_db_pool_t *pool;
    int idx;
    PGconn *pg;
    uv_poll_t *poll;     /* heap: replaced when libpq switches sockets while connecting */
    int fd;
    int events;
    uv_timer_t timer;    /* connect timeout and reconnect backoff */
    enum conn_state state;
    struct req *cur;
    baic_db_tx_t *tx;
    PGresult *res;
    uint64_t sent_ns;
    unsigned backoff_ms;
    int was_up;          /* has been connected at least once: a later connect is a reconnect */
    int fail_streak;
    struct stmt *stmts;  /* prepared-statement table (DB_STMT_MAX), NULL until first use */
    int nstmts;
    struct stmt *preparing; /* the Parse in flight before cur is executed */
};

struct baic_db_pool {
    uv_loop_t *loop;
    char *dsn;
    int size;
    struct conn *conns;
    struct req *qhead, *qtail;
    int nwaiting;
    uv_timer_t kick;     /* dispatch on the next loop turn: no callback fires inside an API call */
    uv_timer_t sweep;    /* queue timeout */
    unsigned queue_timeout_ms;
    int closing;
    int handles;         /* open uv handles; the pool is freed when this reaches 0 while closing */
    baic_db_close_cb close_cb;
    void *close_arg;
    baic_db_tx_t *txs;
    baic_db_stats_t st;
    char lasterr[256];
};

struct baic_db_result {
    PGresult *pg;
};

static void dispatch(baic_db_pool_t *pool);
static void conn_schedule(struct conn *c, unsigned delay_ms);

static uint64_t now_ms(const baic_db_pool_t *pool) { return uv_now(pool->loop); }

static void on_handle_closed(uv_handle_t *h) {
    baic_db_pool_t *pool = h->data;
    if (h->type == UV_POLL)
        free(h);
    if (--pool->handles > 0 || !pool->closing)
        return;
    baic_db_close_cb cb = pool->close_cb;
    void *arg = pool->close_arg;
    while (pool->txs) {
        baic_db_tx_t *t = pool->txs;
        pool->txs = t->lnext;
        free(t);
    }
    free(pool->conns);
    free(pool->dsn);
    free(pool);
    if (cb)
        cb(arg);
}

/* Copies libpq's multi-line message into buf as one line (logs and callbacks want one). */
static const char *one_line(char *buf, size_t n, const char *msg) {
    size_t i = 0;
    if (!msg)
        msg = "unknown error";
    for (; *msg && i + 1 < n; msg++) {
        char ch = *msg == '"' ? '\'' : (*msg == '\n' || *msg == '\r' || *msg == '\t') ? ' ' : *msg;
        if (ch == ' ' && i > 0 && buf[i - 1] == ' ')
            continue;
        buf[i++] = ch;
    }
    while (i > 0 && buf[i - 1] == ' ')
        i--;
    buf[i] = '\0';
    return buf;
}

/* ---- requests and lists ---- */

static struct req *req_new(enum req_kind kind, const char *sql, int nparams,
                           const char *const *params) {
    size_t sz = sizeof(struct req) + (size_t)nparams * sizeof(char *) + strlen(sql) + 1;
    for (int i = 0; i < nparams; i++)
        if (params[i])
            sz += strlen(params[i]) + 1;
    struct req *r = calloc(1, sz);
    if (!r)
        return NULL;
    r->kind = kind;
    r->nparams = nparams;
    r->params = (char **)(r + 1);
    char *p = (char *)(r->params + nparams);
    for (int i = 0; i < nparams; i++) {
        if (!params[i]) {
            r->params[i] = NULL;
            continue;
        }
        size_t l = strlen(params[i]) + 1;
        memcpy(p, params[i], l);
        r->params[i] = p;
        p += l;
    }
    r->sql = p;
    memcpy(p, sql, strlen(sql) + 1);
    return r;
}

static void list_push(struct req **head, struct req **tail, struct req *r) {
    r->next = NULL;
    if (*tail)
        (*tail)->next = r;
    else
        *head = r;
    *tail = r;
}

static struct req *list_pop(struct req **head, struct req **tail) {
    struct req *r = *head;
    if (r) {
        *head = r->next;
        if (!*head)
            *tail = NULL;
        r->next = NULL;
    }
    return r;
}

static void tx_unlink_free(baic_db_tx_t *tx) {
    baic_db_pool_t *pool = tx->pool;
    if (tx->lprev)
        tx->lprev->lnext = tx->lnext;
    else
        pool->txs = tx->lnext;
    if (tx->lnext)
        tx->lnext->lprev = tx->lprev;
    free(tx);
}

/* Delivers a failure to the request's callback and frees it (and its tx, when the
 * request was the one that would have ended or opened it). */
static void req_fail(struct req *r, int err, const char *msg) {
    switch (r->kind) {
    case R_QUERY:
        if (r->cb)
            r->cb(NULL, err, msg, r->arg);
        break;
    case R_BEGIN:
        tx_unlink_free(r->tx);
        if (r->tx_cb)
            r->tx_cb(NULL, err, msg, r->arg);
        break;
    case R_COMMIT:
    case R_ROLLBACK:
        tx_unlink_free(r->tx);
        if (r->done_cb)
            r->done_cb(err, msg, r->arg);
        break;
    }
    free(r);
}

static void fail_all(struct req *list, int err, const char *msg) {
    while (list) {
        struct req *n = list->next;
        req_fail(list, err, msg);
        list = n;
    }
}

static void on_kick(uv_timer_t *t) { dispatch(t->data); }

static void kick(baic_db_pool_t *pool) {
    if (!pool->closing)
        uv_timer_start(&pool->kick, on_kick, 0, 0);
}

/* ---- connection lifecycle ---- */

static void poll_close(struct conn *c) {
    if (c->poll) {
        uv_close((uv_handle_t *)c->poll, on_handle_closed);
        c->poll = NULL;
    }
    c->fd = -1;
    c->events = 0;
}

static void on_poll(uv_poll_t *h, int status, int events);

static int poll_want(struct conn *c, int events) {
    int fd = PQsocket(c->pg);
    if (fd < 0)
        return -EBADF;
    if (c->poll && c->fd != fd)
        poll_close(c);
    if (!c->poll) {
        c->poll = malloc(sizeof *c->poll);
        if (!c->poll)
            return -ENOMEM;
        int rc = uv_poll_init(c->pool->loop, c->poll, fd);
        if (rc < 0) {
            free(c->poll);
            c->poll = NULL;
            return rc;
        }
        c->poll->data = c->pool;
        c->pool->handles++;
        c->fd = fd;
        c->events = 0;
    }
    if (c->events == events)
        return 0;
    c->events = events;
    /* handle->data is the pool (the close callback needs it); on_poll finds the conn. */
    return uv_poll_start(c->poll, events, on_poll);
}

static struct conn *conn_of_poll(uv_poll_t *h) {
    baic_db_pool_t *pool = h->data;
    for (int i = 0; i < pool->size; i++)
        if (pool->conns[i].poll == h)
            return &pool->conns[i];
    return NULL;
}

static void stmts_clear(struct conn *c) {
    for (int i = 0; i < c->nstmts; i++)
        free(c->stmts[i].sql);
    free(c->stmts);
    c->stmts = NULL;
    c->nstmts = 0;
    c->preparing = NULL;
}

static uint64_t sql_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The table entry for sql on c, added (state 0) when new and there is room; NULL else. */
static struct stmt *stmt_find(struct conn *c, const char *sql) {
    uint64_t h = sql_hash(sql);
    for (int i = 0; i < c->nstmts; i++)
        if (c->stmts[i].hash == h && strcmp(c->stmts[i].sql, sql) == 0)
            return &c->stmts[i];
    if (c->nstmts >= DB_STMT_MAX)
        return NULL;
    if (c->stmts == NULL && (c->stmts = calloc(DB_STMT_MAX, sizeof *c->stmts)) == NULL)
        return NULL;
    struct stmt *s = &c->stmts[c->nstmts];
    if ((s->sql = strdup(sql)) == NULL)
        return NULL;
    s->hash = h;
    s->state = 0;
    c->nstmts++;
    return NULL; /* first sighting: run it unprepared */
}

static void stmt_name(const struct conn *c, const struct stmt *s, char out[16]) {
    snprintf(out, 16, "b%d", (int)(s - c->stmts));
}

/* Closes the connection and returns, in *failed, the requests that must now fail;
 * a request that never reached the server goes back to the head of the pool queue. */
static void conn_teardown(struct conn *c, struct req **failed_head, struct req **failed_tail) {
    baic_db_pool_t *pool = c->pool;
    poll_close(c);
    if (c->res) {
        PQclear(c->res);
        c->res = NULL;
    }
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    stmts_clear(c);
    struct req *r = c->cur;
    c->cur = NULL;
    if (r) {
        if (!r->sent && !r->in_tx && !pool->closing) {
            /* Never reached the server: safe to run elsewhere. */
            r->next = pool->qhead;
            pool->qhead = r;
            if (!pool->qtail)
                pool->qtail = r;
            pool->nwaiting++;
        } else {
            list_push(failed_head, failed_tail, r);
        }
    }
    baic_db_tx_t *tx = c->tx;
    c->tx = NULL;
    if (tx) {
        tx->conn = NULL;
        tx->broken = 1;
        struct req *q;
        while ((q = list_pop(&tx->qhead, &tx->qtail)))
            list_push(failed_head, failed_tail, q);
    }
    c->state = C_DOWN;
}

static int pool_usable(const baic_db_pool_t *pool) {
    for (int i = 0; i < pool->size; i++)
        if (pool->conns[i].state != C_DOWN)
            return 1;
    return 0;
}

/* A connection that was up broke: fail what it carried, reconnect at once (then back off). */
static void conn_broken(struct conn *c, const char *why) {
    baic_db_pool_t *pool = c->pool;
    char msg[300];
    char line[256];
    snprintf(msg, sizeof msg, "database connection lost: %s",
             one_line(line, sizeof line, why ? why : (c->pg ? PQerrorMessage(c->pg) : NULL)));
    baic_log(BAIC_LOG_WARN, "db_connection_lost", "conn=%d error=\"%s\"", c->idx, line);
    struct req *fh = NULL, *ft = NULL;
    conn_teardown(c, &fh, &ft);
    c->backoff_ms = 0;
    if (!pool->closing)
        conn_schedule(c, 0);
    fail_all(fh, -ECONNRESET, msg);
    kick(pool);
}

static void conn_connect_failed(struct conn *c, const char *why) {
    baic_db_pool_t *pool = c->pool;
    char line[256];
    one_line(line, sizeof line, why ? why : c->pg ? PQerrorMessage(c->pg) : "out of memory");
    snprintf(pool->lasterr, sizeof pool->lasterr, "%s", line);
    /* The first failure of a streak is worth a warning; the retries are noise. */
    baic_log(c->fail_streak++ ? BAIC_LOG_DEBUG : BAIC_LOG_WARN, "db_connect_failed",
             "conn=%d error=\"%s\"", c->idx, line);
    struct req *fh = NULL, *ft = NULL;
    conn_teardown(c, &fh, &ft);
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : DB_BACKOFF_MIN_MS;
    if (c->backoff_ms > DB_BACKOFF_MAX_MS)
        c->backoff_ms = DB_BACKOFF_MAX_MS;
    conn_schedule(c, c->backoff_ms);
    if (!pool_usable(pool)) {
        /* Nothing can serve the queue soon: fail fast instead of hanging callers. */
        char msg[300];
        snprintf(msg, sizeof msg, "database unavailable: %s", pool->lasterr);
        struct req *q = pool->qhead;
        pool->qhead = pool->qtail = NULL;
        pool->nwaiting = 0;
        fail_all(q, -ENOTCONN, msg);
    }
    fail_all(fh, -ECONNRESET, "database connection lost");
}

static void on_notice(void *arg, const char *message) {
    struct conn *c = arg;
    char line[256];
    baic_log(BAIC_LOG_DEBUG, "db_notice", "conn=%d message=\"%s\"", c->idx,
             one_line(line, sizeof line, message));
}

static void conn_up(struct conn *c) {
    uv_timer_stop(&c->timer);
    PQsetnonblocking(c->pg, 1);
    PQsetNoticeProcessor(c->pg, on_notice, c);
    c->state = C_IDLE;
    c->backoff_ms = 0;
    if (c->was_up)
        c->pool->st.reconnects++;
    if (c->fail_streak)
        baic_log(BAIC_LOG_INFO, "db_reconnected", "conn=%d attempts=%d", c->idx, c->fail_streak);
    c->was_up = 1;
    c->fail_streak = 0;
    /* Idle connections are watched too, so a server restart is noticed before use. */
    if (poll_want(c, UV_READABLE) < 0) {
        conn_broken(c, "cannot watch socket");
        return;
    }
    dispatch(c->pool);
}

static void conn_poll_connect(struct conn *c) {
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        if (poll_want(c, UV_READABLE) < 0)
            conn_connect_failed(c, NULL);
        break;
    case PGRES_POLLING_WRITING:
        if (poll_want(c, UV_WRITABLE) < 0)
            conn_connect_failed(c, NULL);
        break;
    case PGRES_POLLING_OK:
        conn_up(c);
        break;
    default:
        conn_connect_failed(c, NULL);
        break;
    }
}

static void on_conn_timer(uv_timer_t *t) {
    struct conn *c = t->data;
    if (c->pool->closing)
        return;
    if (c->state == C_CONNECTING) {
        /* libpq ignores connect_timeout in async mode; this is ours. */
        conn_connect_failed(c, "connect timed out");
        return;
    }
    if (c->state != C_DOWN)
        return;
    /* Text comes back as UTF-8 whatever the database's encoding: callers put it into
     * JSON (jansson's strings are UTF-8) without checking each value again.
     * JIT off: our statements are short, and compiling one with LLVM (PostgreSQL does once
     * the planner's estimate passes jit_above_cost, as a long pending queue makes the
     * scheduler's) cost more CPU than it saved. Before the DSN: its own "options" win. */
    static const char *const keys[] = {"options", "dbname", "client_encoding", NULL};
    const char *const vals[] = {"-c jit=off", c->pool->dsn, "UTF8", NULL};
    c->pg = PQconnectStartParams(keys, vals, 1);
    if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
        conn_connect_failed(c, NULL);
        return;
    }
    c->state = C_CONNECTING;
    uv_timer_start(&c->timer, on_conn_timer, DB_CONNECT_TIMEOUT_MS, 0);
    /* libpq's contract: start as if PQconnectPoll had asked for writability. */
    if (poll_want(c, UV_WRITABLE) < 0)
        conn_connect_failed(c, NULL);
}

static void conn_schedule(struct conn *c, unsigned delay_ms) {
    uv_timer_start(&c->timer, on_conn_timer, delay_ms, 0);
}

/* ---- queries ---- */

static void conn_exec(struct conn *c, struct req *r, struct stmt *s);
static void conn_flush_watch(struct conn *c);

static void conn_send(struct conn *c, struct req *r) {
    c->cur = r;
    c->state = C_BUSY;
    /* A dead idle socket (server restarted while we were not reading) shows up here,
     * before anything is sent, so the request can go to another connection unharmed. */
    if (!PQconsumeInput(c->pg) || PQstatus(c->pg) != CONNECTION_OK) {
        conn_broken(c, NULL);
        return;
    }
    PGnotify *n;
    while ((n = PQnotifies(c->pg)))
        PQfreemem(n);
    struct stmt *s = r->kind == R_QUERY ? stmt_find(c, r->sql) : NULL;
    if (s != NULL && s->state == 0) {
        /* Second sighting: Parse it first (conn_on_io executes it when that is done). */
        char name[16];
        stmt_name(c, s, name);
        if (PQsendPrepare(c->pg, name, r->sql, r->nparams, NULL)) {
            c->preparing = s;
            c->sent_ns = uv_hrtime();
            conn_flush_watch(c);
            return;
        }
        s->state = -1;
    }
    conn_exec(c, r, s != NULL && s->state == 1 ? s : NULL);
}

/* Sends r's statement (prepared as s, or as text when s is NULL). */
static void conn_exec(struct conn *c, struct req *r, struct stmt *s) {
    char name[16];
    if (s != NULL)
        stmt_name(c, s, name);
    if (!(s != NULL ? PQsendQueryPrepared(c->pg, name, r->nparams,
                                          (const char *const *)r->params, NULL, NULL, 0)
                    : PQsendQueryParams(c->pg, r->sql, r->nparams, NULL,
                                        (const char *const *)r->params, NULL, NULL, 0))) {
        /* Not sent. Retry once outside transactions; a second failure is reported. */
        if (r->retried || r->in_tx)
            r->sent = 1;
        r->retried = 1;
        conn_broken(c, NULL);
        return;
    }
    r->sent = 1;
    c->sent_ns = uv_hrtime();
    conn_flush_watch(c);
}

/* Flushes what was queued and watches for the answer (and for writability while
 * something is left to send). */
static void conn_flush_watch(struct conn *c) {
    int f = PQflush(c->pg);
    if (f < 0) {
        conn_broken(c, NULL);
        return;
    }
    if (poll_want(c, f ? (UV_READABLE | UV_WRITABLE) : UV_READABLE) < 0)
        conn_broken(c, "cannot watch socket");
}

static void conn_complete(struct conn *c) {
    baic_db_pool_t *pool = c->pool;
    struct req *r = c->cur;
    PGresult *res = c->res;
    c->cur = NULL;
    c->res = NULL;

    uint64_t us = (uv_hrtime() - c->sent_ns) / 1000;
    pool->st.queries++;
    pool->st.latency_us_sum += us;
    if (us >= DB_SLOW_US && r->sql != NULL) { /* what to look for with EXPLAIN */
        char text[161];
        baic_log(BAIC_LOG_WARN, "db_slow_statement", "conn=%d ms=%llu rows=%d sql=\"%s\"",
                 c->idx, (unsigned long long)(us / 1000), res ? PQntuples(res) : -1,
                 one_line(text, sizeof text, r->sql));
    }

    ExecStatusType es = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    int err = 0;
    char msg[512];
    const char *m = NULL;
    if (es != PGRES_COMMAND_OK && es != PGRES_TUPLES_OK && es != PGRES_EMPTY_QUERY) {
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        err = (state && strcmp(state, "23505") == 0) ? BAIC_EEXISTS : BAIC_EBACKEND;
        m = one_line(msg, sizeof msg, res ? PQresultErrorMessage(res) : PQerrorMessage(c->pg));
        pool->st.errors++;
    }
    if (PQstatus(c->pg) != CONNECTION_OK) {
        /* The error came from the connection dying, not from the statement. */
        c->cur = r;
        if (res)
            PQclear(res);
        conn_broken(c, m);
        return;
    }

    baic_db_result_t out = {.pg = res};
    baic_db_tx_t *tx = r->tx;
    switch (r->kind) {
    case R_QUERY:
        c->state = c->tx ? C_TX : C_IDLE;
        if (r->cb)
            r->cb(res ? &out : NULL, err, m, r->arg);
        break;
    case R_BEGIN:
        if (err) {
            c->state = C_IDLE;
            tx_unlink_free(tx);
            if (r->tx_cb)
                r->tx_cb(NULL, err, m, r->arg);
        } else {
            c->state = C_TX;
            c->tx = tx;
            tx->conn = c;
            if (r->tx_cb)
                r->tx_cb(tx, 0, NULL, r->arg);
        }
        break;
    case R_COMMIT:
    case R_ROLLBACK:
        c->state = C_IDLE;
        c->tx = NULL;
        tx_unlink_free(tx);
        if (r->done_cb)
            r->done_cb(err, m, r->arg);
        break;
    }
    if (res)
        PQclear(res);
    free(r);
    dispatch(pool);
}

static void conn_on_io(struct conn *c, int events) {
    if (events & UV_READABLE) {
        if (!PQconsumeInput(c->pg)) {
            conn_broken(c, NULL);
            return;
        }
    }
    if (c->state == C_BUSY && (c->events & UV_WRITABLE)) {
        int f = PQflush(c->pg);
        if (f < 0) {
            conn_broken(c, NULL);
            return;
        }
        if (!f && poll_want(c, UV_READABLE) < 0) {
            conn_broken(c, "cannot watch socket");
            return;
        }
    }
    PGnotify *n;
    while ((n = PQnotifies(c->pg)))
        PQfreemem(n);
    if (c->state != C_BUSY) {
        /* Idle or pinned: input here means the server is closing on us. */
        if (PQstatus(c->pg) != CONNECTION_OK) {
            conn_broken(c, NULL);
            return;
        }
        while (!PQisBusy(c->pg)) {
            PGresult *x = PQgetResult(c->pg);
            if (!x)
                break;
            PQclear(x);
        }
        return;
    }
    while (!PQisBusy(c->pg)) {
        PGresult *x = PQgetResult(c->pg);
        if (!x && c->preparing != NULL) {
            /* The Parse is done: now the statement itself, prepared or (when the server
             * refused to prepare it) as text, which reports the same error if any. */
            struct stmt *s = c->preparing;
            c->preparing = NULL;
            s->state = c->res && PQresultStatus(c->res) == PGRES_COMMAND_OK ? 1 : -1;
            if (c->res) {
                PQclear(c->res);
                c->res = NULL;
            }
            conn_exec(c, c->cur, s->state == 1 ? s : NULL);
            return;
        }
        if (!x) {
            conn_complete(c);
            return;
        }
        /* Keep the first error, else the last result. */
        int have_err = c->res && (PQresultStatus(c->res) == PGRES_FATAL_ERROR ||
                                  PQresultStatus(c->res) == PGRES_BAD_RESPONSE);
        if (!c->res || (!have_err)) {
            if (c->res)
                PQclear(c->res);
            c->res = x;
        } else {
            PQclear(x);
        }
    }
    if (PQstatus(c->pg) != CONNECTION_OK)
        conn_broken(c, NULL);
}

static void on_poll(uv_poll_t *h, int status, int events) {
    struct conn *c = conn_of_poll(h);
    if (!c || c->pool->closing)
        return;
    if (c->state == C_CONNECTING) {
        conn_poll_connect(c);
        return;
    }
    if (status < 0) {
        conn_broken(c, uv_strerror(status));
        return;
    }
    conn_on_io(c, events);
}

static void sweep_queue(uv_timer_t *t) {
    baic_db_pool_t *pool = t->data;
    if (!pool->queue_timeout_ms || !pool->qhead)
        return;
    uint64_t now = now_ms(pool);
    struct req *keep_h = NULL, *keep_t = NULL, *late_h = NULL, *late_t = NULL, *r;
    while ((r = list_pop(&pool->qhead, &pool->qtail))) {
        if (now - r->enq_ms >= pool->queue_timeout_ms) {
            list_push(&late_h, &late_t, r);
            pool->nwaiting--;
        } else {
            list_push(&keep_h, &keep_t, r);
        }
    }
    pool->qhead = keep_h;
    pool->qtail = keep_t;
    fail_all(late_h, BAIC_ETIMEOUT, "timed out waiting for a database connection");
}

static void dispatch(baic_db_pool_t *pool) {
    if (pool->closing)
        return;
    /* Transactions first: their connections are already theirs. */
    for (int i = 0; i < pool->size && !pool->closing; i++) {
        struct conn *c = &pool->conns[i];
        if (c->state == C_TX && c->tx && c->tx->qhead)
            conn_send(c, list_pop(&c->tx->qhead, &c->tx->qtail));
    }
    int connecting = 0;
    for (int i = 0; i < pool->size && !pool->closing && pool->qhead; i++) {
        struct conn *c = &pool->conns[i];
        if (c->state == C_CONNECTING)
            connecting = 1;
        if (c->state != C_IDLE)
            continue;
        struct req *r = list_pop(&pool->qhead, &pool->qtail);
        pool->nwaiting--;
        conn_send(c, r);
        /* conn_send may have requeued r after noticing a dead socket: rescan. */
        if (c->state == C_DOWN)
            i = -1;
    }
    if (pool->closing || !pool->qhead || connecting || pool_usable(pool))
        return;
    /* Everything is down and waiting out its backoff: try one now, so a caller learns
     * quickly either that the server is back or that it is not. */
    for (int i = 0; i < pool->size; i++) {
        if (pool->conns[i].state == C_DOWN) {
            conn_schedule(&pool->conns[i], 0);
            break;
        }
    }
}

/* ---- public API ---- */

int baic_db_pool_new(uv_loop_t *loop, const char *dsn, int size, baic_db_pool_t **out) {
    if (!loop || !dsn || !out || size < 1 || size > DB_MAX_POOL)
        return -EINVAL;
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &perr);
    if (!opts) {
        PQfreemem(perr);
        return -EINVAL;
    }
    PQconninfoFree(opts);
    baic_db_pool_t *pool = calloc(1, sizeof *pool);
    if (!pool)
        return -ENOMEM;
    pool->conns = calloc((size_t)size, sizeof *pool->conns);
    pool->dsn = strdup(dsn);
    if (!pool->conns || !pool->dsn) {
        free(pool->conns);
        free(pool->dsn);
        free(pool);
        return -ENOMEM;
    }
    pool->loop = loop;
    pool->size = size;
    pool->queue_timeout_ms = 30000;
    uv_timer_init(loop, &pool->kick);
    pool->kick.data = pool;
    uv_timer_init(loop, &pool->sweep);
    pool->sweep.data = pool;
    pool->handles = 2;
    uv_timer_start(&pool->sweep, sweep_queue, DB_QUEUE_SWEEP_MS, DB_QUEUE_SWEEP_MS);
    /* The sweep alone must not keep a loop alive. */
    uv_unref((uv_handle_t *)&pool->sweep);
    for (int i = 0; i < size; i++) {
        struct conn *c = &pool->conns[i];
        c->pool = pool;
        c->idx = i;
        c->fd = -1;
        c->state = C_DOWN;
        uv_timer_init(loop, &c->timer);
        c->timer.data = c;
        pool->handles++;
        conn_schedule(c, 0);
    }
    *out = pool;
    return 0;
}

void baic_db_pool_set_queue_timeout(baic_db_pool_t *pool, unsigned ms) {
    pool->queue_timeout_ms = ms;
}

void baic_db_pool_stats(const baic_db_pool_t *pool, baic_db_stats_t *out) {
    *out = pool->st;
    out->size = pool->size;
    out->connected = out->in_use = out->idle = 0;
    for (int i = 0; i < pool->size; i++) {
        switch (pool->conns[i].state) {
        case C_IDLE:
            out->idle++;
            out->connected++;
            break;
        case C_BUSY:
        case C_TX:
            out->in_use++;
            out->connected++;
            break;
        default:
            break;
        }
    }
    out->waiting = pool->nwaiting;
}

void baic_db_pool_close(baic_db_pool_t *pool, baic_db_close_cb cb, void *arg) {
    if (pool->closing)
        return;
    pool->closing = 1;
    pool->close_cb = cb;
    pool->close_arg = arg;
    struct req *fh = NULL, *ft = NULL;
    for (int i = 0; i < pool->size; i++) {
        struct conn *c = &pool->conns[i];
        conn_teardown(c, &fh, &ft);
        c->timer.data = pool;
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    }
    struct req *q = pool->qhead;
    pool->qhead = pool->qtail = NULL;
    pool->nwaiting = 0;
    /* Transactions still waiting for BEGIN are in the queue; queued tx requests too. */
    for (baic_db_tx_t *t = pool->txs; t; t = t->lnext) {
        struct req *r;
        while ((r = list_pop(&t->qhead, &t->qtail)))
            list_push(&fh, &ft, r);
        t->broken = 1;
        t->conn = NULL;
    }
    pool->kick.data = pool;
    pool->sweep.data = pool;
    uv_close((uv_handle_t *)&pool->kick, on_handle_closed);
    uv_close((uv_handle_t *)&pool->sweep, on_handle_closed);
    fail_all(fh, BAIC_ECANCELLED, "database pool closed");
    fail_all(q, BAIC_ECANCELLED, "database pool closed");
}

static int enqueue(baic_db_pool_t *pool, struct req *r) {
    r->enq_ms = now_ms(pool);
    list_push(&pool->qhead, &pool->qtail, r);
    pool->nwaiting++;
    kick(pool);
    return 0;
}

static int args_ok(const char *sql, int nparams, const char *const *params) {
    return sql && nparams >= 0 && (nparams == 0 || params);
}

int baic_db_query(baic_db_pool_t *pool, const char *sql, int nparams,
                  const char *const *params, baic_db_cb cb, void *arg) {
    if (!pool || !args_ok(sql, nparams, params))
        return -EINVAL;
    if (pool->closing)
        return BAIC_ECANCELLED;
    struct req *r = req_new(R_QUERY, sql, nparams, params);
    if (!r)
        return -ENOMEM;
    r->cb = cb;
    r->arg = arg;
    return enqueue(pool, r);
}

int baic_db_tx_begin(baic_db_pool_t *pool, baic_db_tx_cb cb, void *arg) {
    if (!pool)
        return -EINVAL;
    if (pool->closing)
        return BAIC_ECANCELLED;
    baic_db_tx_t *tx = calloc(1, sizeof *tx);
    struct req *r = req_new(R_BEGIN, "BEGIN", 0, NULL);
    if (!tx || !r) {
        free(tx);
        free(r);
        return -ENOMEM;
    }
    tx->pool = pool;
    tx->lnext = pool->txs;
    if (pool->txs)
        pool->txs->lprev = tx;
    pool->txs = tx;
    r->tx = tx;
    r->tx_cb = cb;
    r->arg = arg;
    return enqueue(pool, r);
}

static int tx_add(baic_db_tx_t *tx, struct req *r) {
    r->tx = tx;
    r->in_tx = 1;
    r->enq_ms = now_ms(tx->pool);
    list_push(&tx->qhead, &tx->qtail, r);
    kick(tx->pool);
    return 0;
}

int baic_db_tx_query(baic_db_tx_t *tx, const char *sql, int nparams,
                     const char *const *params, baic_db_cb cb, void *arg) {
    if (!tx || tx->ending || !args_ok(sql, nparams, params))
        return -EINVAL;
    if (tx->pool->closing)
        return BAIC_ECANCELLED;
    if (tx->broken)
        return -ECONNRESET;
    struct req *r = req_new(R_QUERY, sql, nparams, params);
    if (!r)
        return -ENOMEM;
    r->cb = cb;
    r->arg = arg;
    return tx_add(tx, r);
}

static int tx_end(baic_db_tx_t *tx, enum req_kind kind, baic_db_done_cb cb, void *arg) {
    if (!tx || tx->ending)
        return -EINVAL;
    tx->ending = 1;
    if (tx->pool->closing)
        return BAIC_ECANCELLED; /* freed with the pool */
    if (tx->broken) {
        tx_unlink_free(tx);
        return -ECONNRESET;
    }
    struct req *r = req_new(kind, kind == R_COMMIT ? "COMMIT" : "ROLLBACK", 0, NULL);
    if (!r) {
        /* Cannot even queue the end: drop the connection so the server rolls back. */
        struct conn *c = tx->conn;
        if (c)
            conn_broken(c, "out of memory");
        return -ENOMEM;
    }
    r->done_cb = cb;
    r->arg = arg;
    return tx_add(tx, r);
}

int baic_db_tx_commit(baic_db_tx_t *tx, baic_db_done_cb cb, void *arg) {
    return tx_end(tx, R_COMMIT, cb, arg);
}

int baic_db_tx_rollback(baic_db_tx_t *tx, baic_db_done_cb cb, void *arg) {
    return tx_end(tx, R_ROLLBACK, cb, arg);
}

/* ---- results ---- */

int baic_db_result_rows(const baic_db_result_t *res) {
    return res && res->pg ? PQntuples(res->pg) : 0;
}

int baic_db_result_cols(const baic_db_result_t *res) {
    return res && res->pg ? PQnfields(res->pg) : 0;
}

long baic_db_result_affected(const baic_db_result_t *res) {
    if (!res || !res->pg)
        return 0;
    const char *s = PQcmdTuples(res->pg);
    return s && *s ? strtol(s, NULL, 10) : 0;
}

int baic_db_result_col(const baic_db_result_t *res, const char *name) {
    return res && res->pg && name ? PQfnumber(res->pg, name) : -1;
}

const char *baic_db_result_col_name(const baic_db_result_t *res, int col) {
    return res && res->pg ? PQfname(res->pg, col) : NULL;
}

static int in_range(const baic_db_result_t *res, int row, int col) {
    return res && res->pg && row >= 0 && col >= 0 && row < PQntuples(res->pg) &&
           col < PQnfields(res->pg);
}

const char *baic_db_result_get(const baic_db_result_t *res, int row, int col) {
    if (!in_range(res, row, col) || PQgetisnull(res->pg, row, col))
        return NULL;
    return PQgetvalue(res->pg, row, col);
}

const char *baic_db_result_get_by_name(const baic_db_result_t *res, int row, const char *name) {
    return baic_db_result_get(res, row, baic_db_result_col(res, name));
}

int baic_db_result_is_null(const baic_db_result_t *res, int row, int col) {
    return !in_range(res, row, col) || PQgetisnull(res->pg, row, col);
}

const char *baic_db_result_sqlstate(const baic_db_result_t *res) {
    return res && res->pg ? PQresultErrorField(res->pg, PG_DIAG_SQLSTATE) : NULL;
}
