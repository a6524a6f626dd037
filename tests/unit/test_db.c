/* SPDX-License-Identifier: Apache-2.0 */
/* The PostgreSQL pool against a real, private server: queries, errors, queueing, transactions, restarts. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "baic_check.h"
#include "db/batch.h"
#include "db/db.h"
#include "integration/services.h"
#include "log/log.h"

static char *pg_dir;
static char dsn[512];
static int skipped;

static void pg_setup(void) {
    pg_dir = baic_svc_tmpdir("baic-test-pg");
    ck_assert_ptr_nonnull(pg_dir);
    int rc = baic_svc_run("start_pg", pg_dir, dsn, sizeof dsn);
    if (rc == 77) {
        skipped = 1;
        fprintf(stderr, "test_db: PostgreSQL (initdb) not installed, skipping\n");
        return;
    }
    ck_assert_msg(rc == 0, "start_pg failed (%d)", rc);
}

static void pg_teardown(void) {
    if (!skipped)
        baic_svc_run("stop_pg", pg_dir, NULL, 0);
    baic_svc_rmdir(pg_dir);
    free(pg_dir);
}

#define SKIP_IF_NO_PG()                                                                  \
    do {                                                                                 \
        if (skipped)                                                                     \
            return;                                                                      \
    } while (0)

/* ---- a synchronous wrapper: tests read top to bottom, the loop does the work ---- */

typedef struct {
    int done;
    int err;
    char msg[512];
    char sqlstate[8];
    int rows, cols;
    long affected;
    char v[4][64];  /* row 0, first columns; "<null>" for SQL NULL */
} qres_t;

static void on_q(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    qres_t *q = arg;
    q->done = 1;
    q->err = err;
    snprintf(q->msg, sizeof q->msg, "%s", errmsg ? errmsg : "");
    const char *ss = baic_db_result_sqlstate(res);
    snprintf(q->sqlstate, sizeof q->sqlstate, "%s", ss ? ss : "");
    q->rows = baic_db_result_rows(res);
    q->cols = baic_db_result_cols(res);
    q->affected = baic_db_result_affected(res);
    for (int c = 0; c < 4 && c < q->cols && q->rows > 0; c++) {
        const char *s = baic_db_result_get(res, 0, c);
        snprintf(q->v[c], sizeof q->v[c], "%s", s ? s : "<null>");
        ck_assert_int_eq(baic_db_result_is_null(res, 0, c), s == NULL);
    }
}

static void run_until(uv_loop_t *loop, const int *flag) {
    while (!*flag)
        uv_run(loop, UV_RUN_ONCE);
}

static qres_t q_sync(uv_loop_t *loop, baic_db_pool_t *pool, const char *sql, int n,
                     const char *const *p) {
    qres_t q = {0};
    ck_assert_int_eq(baic_db_query(pool, sql, n, p, on_q, &q), 0);
    ck_assert_int_eq(q.done, 0); /* never inside the call */
    run_until(loop, &q.done);
    return q;
}

static void on_closed(void *arg) { *(int *)arg = 1; }

static void close_pool(uv_loop_t *loop, baic_db_pool_t *pool) {
    int closed = 0;
    baic_db_pool_close(pool, on_closed, &closed);
    run_until(loop, &closed);
    ck_assert_int_eq(uv_run(loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(uv_loop_close(loop), 0);
}

START_TEST(test_query_params_and_null) {
    SKIP_IF_NO_PG();
    uv_loop_t loop;
    uv_loop_init(&loop);
    baic_db_pool_t *pool;
    ck_assert_int_eq(baic_db_pool_new(&loop, dsn, 2, &pool), 0);

    const char *p[] = {"41", NULL, "it's; DROP TABLE x"};
    qres_t q = q_sync(&loop, pool,
                      "SELECT $1::int + 1 AS answer, $2::text AS nothing, $3::text AS quoted", 3, p);
    ck_assert_msg(q.err == 0, "%s", q.msg);
    ck_assert_int_eq(q.rows, 1);
    ck_assert_int_eq(q.cols, 3);
    ck_assert_str_eq(q.v[0], "42");
    ck_assert_str_eq(q.v[1], "<null>");
    ck_assert_str_eq(q.v[2], "it's; DROP TABLE x");

    q = q_sync(&loop, pool, "CREATE TABLE t_basic (id int PRIMARY KEY, name text)", 0, NULL);
    ck_assert_msg(q.err == 0, "%s", q.msg);
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        const char *ip[] = {id, i == 1 ? NULL : "n"};
        q = q_sync(&loop, pool, "INSERT INTO t_basic VALUES ($1, $2)", 2, ip);
        ck_assert_msg(q.err == 0, "%s", q.msg);
        ck_assert_int_eq(q.affected, 1);
    }
    q = q_sync(&loop, pool, "UPDATE t_basic SET name = 'm' WHERE name IS NOT NULL", 0, NULL);
    ck_assert_int_eq(q.affected, 2);
    q = q_sync(&loop, pool, "SELECT count(*) AS n FROM t_basic WHERE name IS NULL", 0, NULL);
    ck_assert_str_eq(q.v[0], "1");

    baic_db_stats_t st;
    baic_db_pool_stats(pool, &st);
    ck_assert_int_eq(st.size, 2);
    ck_assert_uint_ge(st.queries, 7);
    ck_assert_uint_gt(st.latency_us_sum, 0);
    close_pool(&loop, pool);
}
END_TEST

struct byname {
    int done;
    char a[16], b[16];
    int missing;
};

static void on_byname(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    struct byname *x = arg;
    x->done = 1;
    ck_assert_msg(err == 0, "%s", errmsg);
    snprintf(x->a, sizeof x->a, "%s", baic_db_result_get_by_name(res, 0, "a"));
    snprintf(x->b, sizeof x->b, "%s", baic_db_result_get_by_name(res, 1, "b"));
    x->missing = baic_db_result_col(res, "nope");
    ck_assert_str_eq(baic_db_result_col_name(res, 1), "b");
    ck_assert_ptr_null(baic_db_result_get(res, 5, 0));
}

START_TEST(test_columns_by_name) {
    SKIP_IF_NO_PG();
    uv_loop_t loop;
    uv_loop_init(&loop);
    baic_db_pool_t *pool;
    ck_assert_int_eq(baic_db_pool_new(&loop, dsn, 1, &pool), 0);
    struct byname x = {0};
    ck_assert_int_eq(baic_db_query(pool, "SELECT * FROM (VALUES ('x', 'y'), ('z', 'w')) v(a, b)",
                                   0, NULL, on_byname, &x), 0);
    run_until(&loop, &x.done);
    ck_assert_str_eq(x.a, "x");
    ck_assert_str_eq(x.b, "w");
    ck_assert_int_eq(x.missing, -1);
    close_pool(&loop, pool);
}
END_TEST

START_TEST(test_errors_carry_sqlstate) {
    SKIP_IF_NO_PG();
    uv_loop_t loop;
    uv_loop_init(&loop);
    baic_db_pool_t *pool;
    ck_assert_int_eq(baic_db_pool_new(&loop, dsn, 1, &pool), 0);

    qres_t q = q_sync(&loop, pool, "SELEC 1", 0, NULL);
    ck_assert_int_eq(q.err, BAIC_EBACKEND);
    ck_assert_str_eq(q.sqlstate, "42601");
    ck_assert_msg(strstr(q.msg, "syntax error") != NULL, "%s", q.msg);

    q = q_sync(&loop, pool, "CREATE TABLE t_uniq (name text UNIQUE)", 0, NULL);
    ck_assert_int_eq(q.err, 0);
    const char *p[] = {"alice"};
    q = q_sync(&loop, pool, "INSERT INTO t_uniq VALUES ($1)", 1, p);
    ck_assert_int_eq(q.err, 0);
    q = q_sync(&loop, pool, "INSERT INTO t_uniq VALUES ($1)", 1, p);
    ck_assert_int_eq(q.err, BAIC_EEXISTS);
    ck_assert_str_eq(q.sqlstate, "23505");

    /* The connection is still good after errors. */
    q = q_sync(&loop, pool, "SELECT 1", 0, NULL);
    ck_assert_int_eq(q.err, 0);

    /* Bad arguments: no callback, an immediate code. */
    ck_assert_int_eq(baic_db_query(pool, NULL, 0, NULL, on_q, &q), -EINVAL);
    ck_assert_int_eq(baic_db_query(pool, "SELECT $1", 1, NULL, on_q, &q), -EINVAL);
    close_pool(&loop, pool);
}
END_TEST

#define NQ 24

struct fanout {
    int done;
    int ok;
    int max_in_use;
    int order[NQ];
    baic_db_pool_t *pool;
};

struct one {
    struct fanout *f;
    int i;
};

static void on_fan(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    struct one *o = arg;
    ck_assert_msg(err == 0, "%s", errmsg);
    char want[16];
    snprintf(want, sizeof want, "%d", o->i);
    ck_assert_str_eq(baic_db_result_get(res, 0, 0), want);
    o->f->order[o->f->done++] = o->i;
    o->f->ok++;
    baic_db_stats_t st;
    baic_db_pool_stats(o->f->pool, &st);
    if (st.in_use > o->f->max_in_use)
        o->f->max_in_use = st.in_use;
}

static void wait_n(uv_loop_t *loop, const int *n, int want) {
    while (*n < want)
        uv_run(loop, UV_RUN_ONCE);
}

/* A statement answered after more than a second is logged with its text; a fast one is not. */
START_TEST(test_slow_statement_logged) {
    SKIP_IF_NO_PG();
    uv_loop_t loop;
    uv_loop_init(&loop);
    baic_db_pool_t *pool;
    ck_assert_int_eq(baic_db_pool_new(&loop, dsn, 1, &pool), 0);
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    baic_log_set_stream(f);
    ck_assert_int_eq(q_sync(&loop, pool, "SELECT 1 AS quick", 0, NULL).err, 0);
    ck_assert_int_eq(q_sync(&loop, pool, "SELECT pg_sleep(1.1) AS\n  slow_one", 0, NULL).err, 0);
    baic_log_set_stream(NULL);
    char buf[4096] = "";
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    ck_assert_msg(strstr(buf, "event=db_slow_statement") != NULL, "%s", buf);
    ck_assert_msg(strstr(buf, "sql=\"SELECT pg_sleep(1.1) AS slow_one\"") != NULL, "%s", buf);
    ck_assert_msg(strstr(buf, "quick") == NULL, "%s", buf);
    close_pool(&loop, pool);
}
END_TEST

START_TEST(test_pool_queues_excess_queries) {
    SKIP_IF_NO_PG();
    uv_loop_t loop;
    uv_loop_init(&loop);
    baic_db_pool_t *pool;
    ck_assert_int_eq(baic_db_pool_new(&loop, dsn, 3, &pool), 0);
    struct fanout f = {.pool = pool};
    struct one ones[NQ];
    for (int i = 0; i < NQ; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        const char *p[] = {v};
        ones[i] = (struct one){&f, i};
        ck_assert_int_eq(baic_db_query(pool, "SELECT $1::int, pg_sleep(0.02)", 1, p, on_fan,
                                       &ones[i]), 0);
    }
    baic_db_stats_t st;
    baic_db_pool_stats(pool, &st);
    ck_assert_int_eq(st.waiting, NQ);
    wait_n(&loop, &f.done, NQ);
    ck_assert_int_eq(f.ok, NQ);
    ck_assert_int_le(f.max_in_use, 3);
    baic_db_pool_stats(pool, &st);
    ck_assert_int_eq(st.waiting, 0);
    ck_assert_int_eq(st.connected, 3);
    ck_assert_int_eq(st.idle, 3);
    /* FIFO: the first query issued is among the first answered. */
    ck_assert_int_lt(f.order[0], 3);
    close_pool(&loop, pool);
}
END_TEST

/* ---- transactions ---- */

typedef struct {
    int done;
    int err;
    baic_db_tx_t *tx;
} txres_t;

static void on_begin(baic_db_tx_t *tx, int err, const char *errmsg, void *arg) {
    txres_t *t = arg;
    t->done = 1;
    t->err = err;
    t->tx = tx;
}

static void on_end(int err, const char *errmsg, void *arg) {
    txres_t *t = arg;
    t->done = 1;
    t->err = err;
}

static baic_db_tx_t *begin_sync(uv_loop_t *loop, baic_db_pool_t *pool) {
    txres_t t = {0};
    ck_assert_int_eq(baic_db_tx_begin(pool, on_begin, &t), 0);
    run_until(loop, &t.done);
    ck_assert_int_eq(t.err, 0);
    return t.tx;
}

static qres_t txq_sync(uv_loop_t *loop, baic_db_tx_t *tx, const char *sql, int n,
                       const char *const *p) {
    qres_t q = {0};
    ck_assert_int_eq(baic_db_tx_query(tx, sql, n, p, on_q, &q), 0);
    run_until(loop, &q.done);
    return q;
}

START_TEST(test_transactions_commit_and_rollback) {
    SKIP_IF_NO_PG();
    uv_loop_t loop;
    uv_loop_init(&loop);
    baic_db_pool_t *pool;
    ck_assert_int_eq(baic_db_pool_new(&loop, dsn, 2, &pool), 0);
    ck_assert_int_eq(q_sync(&loop, pool, "CREATE TABLE t_tx (k text PRIMARY KEY)", 0, NULL).err, 0);

    /* Commit: visible to other connections only afterwards. */
    baic_db_tx_t *tx = begin_sync(&loop, pool);
    const char *a[] = {"committed"};
    ck_assert_int_eq(txq_sync(&loop, tx, "INSERT INTO t_tx VALUES ($1)", 1, a).err, 0);
    qres_t q = q_sync(&loop, pool, "SELECT count(*) FROM t_tx", 0, NULL);
    ck_assert_str_eq(q.v[0], "0");
    txres_t e = {0};
    ck_assert_int_eq(baic_db_tx_commit(tx, on_end, &e), 0);
    run_until(&loop, &e.done);
    ck_assert_int_eq(e.err, 0);
    q = q_sync(&loop, pool, "SELECT count(*) FROM t_tx", 0, NULL);
    ck_assert_str_eq(q.v[0], "1");

    /* Rollback: several queued queries, then nothing remains. */
    tx = begin_sync(&loop, pool);
    qres_t q1 = {0}, q2 = {0};
    const char *b[] = {"rolled-1"}, *c[] = {"rolled-2"};
    ck_assert_int_eq(baic_db_tx_query(tx, "INSERT INTO t_tx VALUES ($1)", 1, b, on_q, &q1), 0);
    ck_assert_int_eq(baic_db_tx_query(tx, "INSERT INTO t_tx VALUES ($1)", 1, c, on_q, &q2), 0);
    e = (txres_t){0};
    ck_assert_int_eq(baic_db_tx_rollback(tx, on_end, &e), 0);
    run_until(&loop, &e.done);
    ck_assert(q1.done && q2.done);
    ck_assert_int_eq(q1.err, 0);
    ck_assert_int_eq(q2.err, 0);
    ck_assert_int_eq(e.err, 0);
    q = q_sync(&loop, pool, "SELECT count(*) FROM t_tx", 0, NULL);
    ck_assert_str_eq(q.v[0], "1");

    /* An error aborts the transaction; rollback recovers the connection. */
    tx = begin_sync(&loop, pool);
    q = txq_sync(&loop, tx, "INSERT INTO t_tx VALUES ($1)", 1, a);
    ck_assert_int_eq(q.err, BAIC_EEXISTS);
    q = txq_sync(&loop, tx, "SELECT 1", 0, NULL);
    ck_assert_str_eq(q.sqlstate, "25P02"); /* in_failed_sql_transaction */
    e = (txres_t){0};
    ck_assert_int_eq(baic_db_tx_rollback(tx, on_end, &e), 0);
    run_until(&loop, &e.done);
    ck_assert_int_eq(e.err, 0);

    baic_db_stats_t st;
    baic_db_pool_stats(pool, &st);
    ck_assert_int_eq(st.in_use, 0);
    close_pool(&loop, pool);
}
END_TEST

/* ---- PostgreSQL restarts under the pool ---- */

struct proc {
    uv_process_t p;
    int exited;
    int64_t status;
};

static void on_exit_cb(uv_process_t *p, int64_t status, int sig) {
    struct proc *x = (struct proc *)p;
    x->exited = 1;
    x->status = status;
    uv_close((uv_handle_t *)p, NULL);
}

static void spawn_svc(uv_loop_t *loop, struct proc *x, const char *fn) {
    char cmd[8192];
    baic_svc_cmd(cmd, sizeof cmd, fn, pg_dir);
    char *args[] = {"bash", "-c", cmd, NULL};
    uv_stdio_container_t io[3] = {{.flags = UV_IGNORE}, {.flags = UV_IGNORE},
                                  {.flags = UV_INHERIT_FD, .data.fd = 2}};
    uv_process_options_t o = {.exit_cb = on_exit_cb, .file = "bash", .args = args,
                              .stdio_count = 3, .stdio = io};
    memset(x, 0, sizeof *x);
    ck_assert_int_eq(uv_spawn(loop, &x->p, &o), 0);
}

/* A statement text seen again on a connection runs prepared; the answers do not change,
 * errors neither, and a text seen once is not prepared. */
START_TEST(test_prepared_statements) {
    SKIP_IF_NO_PG();
    uv_loop_t loop;
    uv_loop_init(&loop);
    baic_db_pool_t *pool;
    ck_assert_int_eq(baic_db_pool_new(&loop, dsn, 1, &pool), 0);
    static const char *const in[] = {"1", "2", "3", "41"};
    static const char *const out[] = {"2", "3", "4", "42"};
    for (int i = 0; i < 4; i++) {
        const char *p[] = {in[i]};
        qres_t q = q_sync(&loop, pool, "SELECT $1::int + 1", 1, p);
        ck_assert_msg(q.err == 0, "%s", q.msg);
        ck_assert_str_eq(q.v[0], out[i]);
    }
    const char *sql[] = {"SELECT $1::int + 1"};
    qres_t q = q_sync(&loop, pool, "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1",
                      1, sql);
    ck_assert_str_eq(q.v[0], "1");
    ck_assert_int_eq(q_sync(&loop, pool, "SELECT 'once'", 0, NULL).err, 0);
    const char *once[] = {"SELECT 'once'"};
    q = q_sync(&loop, pool, "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1", 1,
               once);
    ck_assert_str_eq(q.v[0], "0");
    /* A text the server cannot prepare fails alike every time; the connection stays good. */
    for (int i = 0; i < 3; i++) {
        q = q_sync(&loop, pool, "SELEC $1", 1, in);
        ck_assert_int_eq(q.err, BAIC_EBACKEND);
        ck_assert_str_eq(q.sqlstate, "42601");
    }
    /* Prepared statements serve inside transactions too. */
    baic_db_tx_t *tx = begin_sync(&loop, pool);
    const char *p[] = {"9"};
    q = txq_sync(&loop, tx, "SELECT $1::int + 1", 1, p);
    ck_assert_msg(q.err == 0, "%s", q.msg);
    ck_assert_str_eq(q.v[0], "10");
    txres_t e = {0};
    ck_assert_int_eq(baic_db_tx_commit(tx, on_end, &e), 0);
    run_until(&loop, &e.done);
    ck_assert_int_eq(e.err, 0);
    close_pool(&loop, pool);
}
END_TEST

/* ---- db/batch.h ---- */

typedef struct {
    int done, err, nrows;
    char first[64];
} bres_t;

static void on_b(const baic_db_result_t *res, const int *rows, int nrows, int err,
                 const char *errmsg, void *arg) {
    (void)errmsg;
    bres_t *b = arg;
    b->done++;
    b->err = err;
    b->nrows = nrows;
    if (nrows > 0) {
        const char *v = baic_db_result_get_by_name(res, rows[0], "v");
        snprintf(b->first, sizeof b->first, "%s", v ? v : "<null>");
        for (int r = 1; r < nrows; r++) /* an item's rows come in the statement's order */
            ck_assert_int_gt(rows[r], rows[r - 1]);
    }
}

static void on_pause(uv_timer_t *t) {
    (void)t;
}

static int all_done(const bres_t *b, int n) {
    for (int i = 0; i < n; i++)
        if (b[i].done == 0)
            return 0;
    return 1;
}

START_TEST(test_batch) {
    SKIP_IF_NO_PG();
    uv_loop_t loop;
    uv_loop_init(&loop);
    baic_db_pool_t *pool;
    ck_assert_int_eq(baic_db_pool_new(&loop, dsn, 2, &pool), 0);
    qres_t q = q_sync(&loop, pool, "CREATE TABLE t_batch (k text PRIMARY KEY, n int NOT NULL)",
                      0, NULL);
    ck_assert_msg(q.err == 0, "%s", q.msg);
    q = q_sync(&loop, pool, "CREATE TABLE t_batch_log (id serial, n int)", 0, NULL);
    ck_assert_msg(q.err == 0, "%s", q.msg);

    /* An upsert that could not touch one key twice in a statement; every statement logs
     * its size, so the test sees how the items were grouped. Item 0 gets no row (n = 0
     * is skipped); item "mul" gets three. */
    baic_db_batch_t *b = baic_db_batch_new(
        &loop, pool,
        "WITH x AS (SELECT (e->>'i')::int AS i, e->>'k' AS k, (e->>'n')::int AS n"
        "   FROM jsonb_array_elements($1::jsonb) e),"
        " log AS (INSERT INTO t_batch_log (n) SELECT count(*) FROM x),"
        " up AS (INSERT INTO t_batch AS t SELECT k, n FROM x WHERE n > 0 ON CONFLICT (k)"
        "   DO UPDATE SET n = t.n + EXCLUDED.n RETURNING t.k, t.n)"
        " SELECT x.i, up.n::text || ':' || g AS v FROM x JOIN up ON up.k = x.k,"
        "   generate_series(1, CASE WHEN x.k = 'mul' THEN 3 ELSE 1 END) g ORDER BY x.i, g",
        100);
    ck_assert_ptr_nonnull(b);
    bres_t r[6] = {0};
    const char *keys[6] = {"zero", "a", "b", "a", "mul", "a"};
    const int ns[6] = {0, 1, 10, 100, 5, 1000};
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(baic_db_batch_add(b, keys[i], json_pack("{s:s, s:i}", "k", keys[i], "n",
                                                                  ns[i]), on_b, &r[i]), 0);
    ck_assert_int_eq(r[0].done, 0); /* nothing before the loop turns */
    while (!all_done(r, 6))
        uv_run(&loop, UV_RUN_ONCE);
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(r[i].done, 1);
        ck_assert_int_eq(r[i].err, 0);
    }
    ck_assert_int_eq(r[0].nrows, 0);
    ck_assert_int_eq(r[4].nrows, 3);
    ck_assert_str_eq(r[4].first, "5:1");
    ck_assert_str_eq(r[2].first, "10:1");
    /* "a" three times: three statements, run one after the other (the pool has two
     * connections, so only the chaining keeps them in order), each adding to what the one
     * before it left. */
    ck_assert_str_eq(r[1].first, "1:1");
    ck_assert_str_eq(r[3].first, "101:1");
    ck_assert_str_eq(r[5].first, "1101:1");
    q = q_sync(&loop, pool, "SELECT string_agg(n::text, ',' ORDER BY id) FROM t_batch_log", 0, NULL);
    ck_assert_str_eq(q.v[0], "4,1,1"); /* zero, a, b, mul | a | a */

    /* A full statement goes at once; a failing one fails each of its items alike. */
    baic_db_batch_t *small = baic_db_batch_new(&loop, pool, "SELECT (e->>'i')::int AS i,"
                                               " 1 / (e->>'d')::int AS v FROM"
                                               " jsonb_array_elements($1::jsonb) e", 2);
    bres_t s[3] = {0};
    const int ds[3] = {1, 0, 1};
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(baic_db_batch_add(small, NULL, json_pack("{s:i}", "d", ds[i]), on_b, &s[i]), 0);
    while (!all_done(s, 3))
        uv_run(&loop, UV_RUN_ONCE);
    ck_assert_int_eq(s[0].err, BAIC_EBACKEND); /* 1 and 0 shared the statement */
    ck_assert_int_eq(s[1].err, BAIC_EBACKEND);
    ck_assert_int_eq(s[2].err, 0);
    ck_assert_str_eq(s[2].first, "1");

    /* With a linger, items added apart go out together, not before the linger is over,
     * and what comes in while a statement is out waits its own linger after it. */
    baic_db_batch_t *lb = baic_db_batch_new(
        &loop, pool,
        "WITH x AS (SELECT (e->>'i')::int AS i FROM jsonb_array_elements($1::jsonb) e),"
        " log AS (INSERT INTO t_batch_log (n) SELECT 1000 + count(*) FROM x)"
        " SELECT i, 'ok' AS v FROM x", 100);
    baic_db_batch_set_linger(lb, 150);
    bres_t l[3] = {0};
    uv_update_time(&loop);
    uint64_t t_first = uv_now(&loop);
    ck_assert_int_eq(baic_db_batch_add(lb, NULL, json_object(), on_b, &l[0]), 0);
    uv_timer_t pause;
    uv_timer_init(&loop, &pause);
    uv_timer_start(&pause, on_pause, 60, 0);
    while (uv_is_active((uv_handle_t *)&pause))
        uv_run(&loop, UV_RUN_ONCE);
    ck_assert_int_eq(l[0].done, 0);
    ck_assert_int_eq(baic_db_batch_add(lb, NULL, json_object(), on_b, &l[1]), 0);
    while (!all_done(l, 2))
        uv_run(&loop, UV_RUN_ONCE);
    ck_assert_uint_ge(uv_now(&loop) - t_first, 150);
    ck_assert_str_eq(l[1].first, "ok");
    ck_assert_int_eq(baic_db_batch_add(lb, NULL, json_object(), on_b, &l[2]), 0);
    while (!all_done(l, 3))
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&pause, NULL);
    baic_db_batch_close(lb);
    q = q_sync(&loop, pool, "SELECT string_agg(n::text, ',' ORDER BY id) FROM t_batch_log"
               " WHERE n > 1000", 0, NULL);
    ck_assert_str_eq(q.v[0], "1002,1001"); /* the two together, then the third */

    /* Closing sends what waits; nothing is added after. */
    bres_t c = {0};
    ck_assert_int_eq(baic_db_batch_add(small, NULL, json_pack("{s:i}", "d", 1), on_b, &c), 0);
    baic_db_batch_close(small);
    ck_assert_int_eq(baic_db_batch_add(b, NULL, json_pack("{s:s, s:i}", "k", "x", "n", 1),
                                       on_b, &c), 0);
    baic_db_batch_close(b);
    while (c.done < 2)
        uv_run(&loop, UV_RUN_ONCE);
    ck_assert_int_eq(c.err, 0);
    close_pool(&loop, pool);
}
END_TEST

START_TEST(test_survives_postgres_restart) {
    SKIP_IF_NO_PG();
    uv_loop_t loop;
    uv_loop_init(&loop);
    baic_db_pool_t *pool;
    ck_assert_int_eq(baic_db_pool_new(&loop, dsn, 2, &pool), 0);
    ck_assert_int_eq(q_sync(&loop, pool, "SELECT 1", 0, NULL).err, 0);

    /* A query in flight while the server restarts fails with a clear error. */
    qres_t slow = {0};
    ck_assert_int_eq(baic_db_query(pool, "SELECT pg_sleep(60)", 0, NULL, on_q, &slow), 0);
    while (1) { /* wait until it is really running */
        baic_db_stats_t st;
        baic_db_pool_stats(pool, &st);
        if (st.in_use == 1 && st.waiting == 0)
            break;
        uv_run(&loop, UV_RUN_ONCE);
    }
    struct proc r;
    spawn_svc(&loop, &r, "restart_pg");
    run_until(&loop, &slow.done);
    ck_assert_int_eq(slow.err, -ECONNRESET);
    ck_assert_msg(strstr(slow.msg, "connection lost") != NULL, "%s", slow.msg);
    run_until(&loop, &r.exited);
    ck_assert_int_eq(r.status, 0);

    /* Right after the restart: no daemon restart needed, the next query just works. */
    qres_t q = q_sync(&loop, pool, "SELECT 2", 0, NULL);
    ck_assert_msg(q.err == 0, "%d %s", q.err, q.msg);
    ck_assert_str_eq(q.v[0], "2");

    /* Server down: queries fail fast instead of hanging. */
    spawn_svc(&loop, &r, "stop_pg");
    run_until(&loop, &r.exited);
    uint64_t t0 = uv_hrtime();
    q = q_sync(&loop, pool, "SELECT 3", 0, NULL);
    ck_assert_msg(q.err == -ENOTCONN || q.err == -ECONNRESET, "%d %s", q.err, q.msg);
    ck_assert_uint_lt(uv_hrtime() - t0, 5000000000ull);

    /* Back up: the pool reconnects on its own. */
    spawn_svc(&loop, &r, "restart_pg");
    run_until(&loop, &r.exited);
    ck_assert_int_eq(r.status, 0);
    q = q_sync(&loop, pool, "SELECT 4", 0, NULL);
    ck_assert_msg(q.err == 0, "%d %s", q.err, q.msg);
    baic_db_stats_t st;
    baic_db_pool_stats(pool, &st);
    ck_assert_uint_ge(st.reconnects, 1);
    close_pool(&loop, pool);
}
END_TEST

START_TEST(test_close_cancels_queued) {
    SKIP_IF_NO_PG();
    uv_loop_t loop;
    uv_loop_init(&loop);
    baic_db_pool_t *pool;
    ck_assert_int_eq(baic_db_pool_new(&loop, dsn, 1, &pool), 0);
    qres_t a = {0}, b = {0};
    ck_assert_int_eq(baic_db_query(pool, "SELECT 1", 0, NULL, on_q, &a), 0);
    ck_assert_int_eq(baic_db_query(pool, "SELECT 2", 0, NULL, on_q, &b), 0);
    int closed = 0;
    baic_db_pool_close(pool, on_closed, &closed);
    ck_assert(a.done && b.done);
    ck_assert_int_eq(a.err, BAIC_ECANCELLED);
    ck_assert_int_eq(baic_db_query(pool, "SELECT 3", 0, NULL, on_q, &a), BAIC_ECANCELLED);
    run_until(&loop, &closed);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

static Suite *db_suite(void) {
    Suite *s = suite_create("db");
    BAIC_TCASE(s, tc, "postgres", 120);
    tcase_add_unchecked_fixture(tc, pg_setup, pg_teardown);
    tcase_add_test(tc, test_query_params_and_null);
    tcase_add_test(tc, test_columns_by_name);
    tcase_add_test(tc, test_errors_carry_sqlstate);
    tcase_add_test(tc, test_slow_statement_logged);
    tcase_add_test(tc, test_pool_queues_excess_queries);
    tcase_add_test(tc, test_transactions_commit_and_rollback);
    tcase_add_test(tc, test_close_cancels_queued);
    tcase_add_test(tc, test_prepared_statements);
    tcase_add_test(tc, test_batch);
    tcase_add_test(tc, test_survives_postgres_restart);
    return s;
}

BAIC_CHECK_MAIN(db_suite)
