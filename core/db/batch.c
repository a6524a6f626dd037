/* SPDX-License-Identifier: Apache-2.0 */
/* Many small writes of one kind as one statement (see batch.h). */
#include "db/batch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <baic/errors.h>

typedef struct waiter {
    baic_db_batch_cb cb;
    void *arg;
} waiter_t;

/* One statement's items, from the first add until its callbacks ran. */
typedef struct stmt {
    struct baic_db_batch *b;
    json_t *items; /* the $1 array */
    json_t *keys;  /* key -> true: the keys already in it */
    waiter_t *w;
    size_t n, cap;
} stmt_t;

struct baic_db_batch {
    baic_db_pool_t *db;
    char *sql;
    size_t max;
    uint64_t linger_ms; /* how long the first waiting item may wait for company */
    uv_timer_t timer;
    int refs;      /* the timer, every statement not yet done, and next() running */
    int busy;      /* a statement is in flight */
    stmt_t **open; /* waiting statements, in the order they go out */
    size_t nopen, capopen;
    int closing;
};

static void batch_unref(struct baic_db_batch *b) {
    if (--b->refs > 0)
        return;
    free(b->open);
    free(b->sql);
    free(b);
}

static void stmt_free(stmt_t *st) {
    batch_unref(st->b);
    json_decref(st->items);
    json_decref(st->keys);
    free(st->w);
    free(st);
}

/* Every item of st gets err (res: the server's error, when it answered one). */
static void stmt_fail(stmt_t *st, const baic_db_result_t *res, int err, const char *msg) {
    for (size_t i = 0; i < st->n; i++)
        st->w[i].cb(res, NULL, 0, err, msg, st->w[i].arg);
    stmt_free(st);
}

static void next(struct baic_db_batch *b);
static void on_timer(uv_timer_t *t);

/* Hands each item its rows: the row indices grouped by the "i" column (a counting sort). */
static void stmt_results(stmt_t *st, const baic_db_result_t *res) {
    int nrows = baic_db_result_rows(res), col = baic_db_result_col(res, "i");
    size_t nr = (size_t)(nrows > 0 ? nrows : 0);
    size_t *start = calloc(2 * (st->n + 1), sizeof *start); /* then where each item fills */
    int *item_of = calloc(2 * nr + 1, sizeof *item_of);     /* then the grouped indices */
    if (start == NULL || item_of == NULL) {
        free(start);
        free(item_of);
        stmt_fail(st, NULL, -ENOMEM, "out of memory");
        return;
    }
    size_t *fill = start + st->n + 1;
    int *idx = item_of + nr;
    for (int r = 0; r < nrows; r++) {
        const char *v = col >= 0 ? baic_db_result_get(res, r, col) : NULL;
        char *end = NULL;
        long i = v ? strtol(v, &end, 10) : -1;
        item_of[r] = (v != NULL && *end == '\0' && i >= 0 && (size_t)i < st->n) ? (int)i : -1;
        if (item_of[r] >= 0)
            start[item_of[r] + 1]++;
    }
    for (size_t i = 0; i < st->n; i++)
        start[i + 1] += start[i];
    for (int r = 0; r < nrows; r++)
        if (item_of[r] >= 0)
            idx[start[item_of[r]] + fill[item_of[r]]++] = r;
    for (size_t i = 0; i < st->n; i++)
        st->w[i].cb(res, idx + start[i], (int)(start[i + 1] - start[i]), 0, NULL, st->w[i].arg);
    free(start);
    free(item_of);
    stmt_free(st);
}

/* One statement at a time: the next goes out when this one is done, holding what came in
 * meanwhile (up to max items), so the batches grow with the load. */
static void stmt_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    stmt_t *st = arg;
    struct baic_db_batch *b = st->b;
    b->refs++;
    b->busy = 0;
    if (err != 0)
        stmt_fail(st, res, err, errmsg);
    else
        stmt_results(st, res);
    if (b->linger_ms == 0 || b->closing || (b->nopen > 0 && b->open[0]->n >= b->max))
        next(b);
    else if (b->nopen > 0) /* what came in meanwhile gathers company first */
        uv_timer_start(&b->timer, on_timer, b->linger_ms, 0);
    batch_unref(b);
}

/* 0 when sent; otherwise its items have been failed. */
static int stmt_send(stmt_t *st) {
    char *text = json_dumps(st->items, JSON_COMPACT);
    int rc = text ? baic_db_query(st->b->db, st->b->sql, 1, (const char *[]){text}, stmt_done, st)
                  : -ENOMEM;
    free(text);
    if (rc != 0)
        stmt_fail(st, NULL, rc, rc == -ENOMEM ? "out of memory" : "query not sent");
    return rc;
}

/* Sends the first waiting statement unless one is in flight (and the ones after it when a
 * send fails at once). */
static void next(baic_db_batch_t *b) {
    b->refs++; /* a failed send may drop the last statement's reference */
    while (!b->busy && b->nopen > 0) {
        stmt_t *st = b->open[0];
        memmove(b->open, b->open + 1, --b->nopen * sizeof *b->open);
        b->busy = 1;
        if (stmt_send(st) != 0)
            b->busy = 0;
    }
    batch_unref(b);
}

void baic_db_batch_flush(baic_db_batch_t *b) {
    next(b);
}

static void on_timer(uv_timer_t *t) {
    baic_db_batch_flush(t->data);
}

baic_db_batch_t *baic_db_batch_new(uv_loop_t *loop, baic_db_pool_t *db, const char *sql,
                                   size_t max) {
    baic_db_batch_t *b = calloc(1, sizeof *b);
    if (b == NULL || (b->sql = strdup(sql)) == NULL) {
        free(b);
        return NULL;
    }
    b->db = db;
    b->refs = 1;
    b->max = max > 0 ? max : 1;
    uv_timer_init(loop, &b->timer);
    b->timer.data = b;
    return b;
}

static stmt_t *stmt_new(baic_db_batch_t *b) {
    stmt_t *st = calloc(1, sizeof *st);
    if (st == NULL)
        return NULL;
    st->b = b;
    b->refs++;
    st->items = json_array();
    st->keys = json_object();
    if (st->items == NULL || st->keys == NULL) {
        stmt_free(st);
        return NULL;
    }
    return st;
}

int baic_db_batch_add(baic_db_batch_t *b, const char *key, json_t *item, baic_db_batch_cb cb,
                      void *arg) {
    if (b->closing) {
        json_decref(item);
        return BAIC_ECANCELLED;
    }
    /* The first waiting statement with room that does not hold the key yet. */
    size_t k = 0;
    while (k < b->nopen && (b->open[k]->n >= b->max ||
                            (key != NULL && json_object_get(b->open[k]->keys, key) != NULL)))
        k++;
    if (k == b->nopen) {
        if (b->nopen == b->capopen) {
            size_t cap = b->capopen ? 2 * b->capopen : 4;
            stmt_t **o = realloc(b->open, cap * sizeof *o);
            if (o == NULL) {
                json_decref(item);
                return -ENOMEM;
            }
            b->open = o;
            b->capopen = cap;
        }
        stmt_t *st = stmt_new(b);
        if (st == NULL) {
            json_decref(item);
            return -ENOMEM;
        }
        b->open[b->nopen++] = st;
    }
    stmt_t *st = b->open[k];
    if (st->n == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 16;
        waiter_t *w = realloc(st->w, cap * sizeof *w);
        if (w == NULL) {
            json_decref(item);
            return -ENOMEM;
        }
        st->w = w;
        st->cap = cap;
    }
    if ((key != NULL && json_object_set_new(st->keys, key, json_true()) != 0) ||
        json_object_set_new(item, "i", json_integer((json_int_t)st->n)) != 0) {
        json_decref(item);
        return -ENOMEM;
    }
    if (json_array_append_new(st->items, item) != 0) /* releases item */
        return -ENOMEM;
    st->w[st->n++] = (waiter_t){cb, arg};
    if (st->n >= b->max && k == 0)
        next(b); /* full: goes now, unless one is in flight */
    else if (!uv_is_active((uv_handle_t *)&b->timer) && !b->busy)
        uv_timer_start(&b->timer, on_timer, b->linger_ms, 0);
    return 0;
}

void baic_db_batch_set_linger(baic_db_batch_t *b, uint64_t ms) {
    b->linger_ms = ms;
}

static void on_closed(uv_handle_t *h) {
    batch_unref(h->data);
}

void baic_db_batch_close(baic_db_batch_t *b) {
    if (b == NULL || b->closing)
        return;
    baic_db_batch_flush(b);
    b->closing = 1;
    uv_close((uv_handle_t *)&b->timer, on_closed);
}
