/* SPDX-License-Identifier: Apache-2.0 */
/* A request waiting for a session to reach a status (manager.h, baic_session_wait_start). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "manager.h"

struct baic_session_wait {
    baic_manager_t *m;
    baic_http_req_t *req;
    char session_id[40];
    const char *sql;
    uint64_t started, max_ms;
    baic_session_wait_decide_fn decide;
    baic_session_wait_timeout_fn timeout;
    baic_session_wait_end_fn end;
    void *arg;
    baic_session_watch_t *watch;
    uv_timer_t timer;
    int querying, dirty, over, answered;
};

static void timer_closed(uv_handle_t *h) {
    baic_session_wait_t *w = h->data;
    if (w->end != NULL)
        w->end(w->arg);
    free(w);
}

/* The wait is over: stop listening; once no query is in flight, close and report the end. */
static void finish(baic_session_wait_t *w) {
    w->over = 1;
    if (w->querying)
        return; /* the query callback finishes */
    baic_session_unwatch(w->watch);
    w->watch = NULL;
    if (!w->answered) {
        w->answered = 1;
        baic_http_req_release(w->req);
    }
    if (!uv_is_closing((uv_handle_t *)&w->timer)) {
        uv_timer_stop(&w->timer);
        uv_close((uv_handle_t *)&w->timer, timer_closed);
    }
}

static void check(baic_session_wait_t *w);

static void read_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    baic_session_wait_t *w = arg;
    w->querying = 0;
    if (w->over || w->m->closing) {
        finish(w);
        return;
    }
    if (err != 0) {
        BAIC_LOG_W("session_status_query_failed", "session=%s error=\"%s\"", w->session_id,
                   errmsg ? errmsg : "");
    } else if (baic_db_result_rows(res) > 0 && w->decide(w->req, res, w->arg)) {
        w->answered = 1;
        finish(w);
        return;
    }
    if (w->dirty) {
        w->dirty = 0;
        check(w);
    }
}

static void check(baic_session_wait_t *w) {
    if (w->querying) {
        w->dirty = 1;
        return;
    }
    const char *p[1] = {w->session_id};
    w->querying = 1;
    if (baic_db_query(w->m->db, w->sql, 1, p, read_done, w) != 0)
        w->querying = 0;
}

static void on_change(void *arg) {
    baic_session_wait_t *w = arg;
    if (!w->over)
        check(w);
}

/* Every tick: a re-check in case an event was lost, and the deadline. */
static void on_tick(uv_timer_t *t) {
    baic_session_wait_t *w = t->data;
    if (w->max_ms > 0 && uv_now(w->m->uv) - w->started >= w->max_ms) {
        w->dirty = 0;
        w->answered = 1;
        w->timeout(w->req, w->arg);
        finish(w);
        return;
    }
    check(w);
}

static void on_abort(baic_http_req_t *req, void *arg) {
    (void)req;
    finish(arg);
}

baic_session_wait_t *baic_session_wait_start(baic_manager_t *m, baic_http_req_t *req,
                                             const char *session_id, const char *sql,
                                             uint64_t tick_ms, uint64_t max_ms,
                                             baic_session_wait_decide_fn decide,
                                             baic_session_wait_timeout_fn timeout,
                                             baic_session_wait_end_fn end, void *arg) {
    baic_session_wait_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->m = m;
    w->req = req;
    snprintf(w->session_id, sizeof w->session_id, "%s", session_id);
    w->sql = sql;
    w->max_ms = max_ms;
    w->decide = decide;
    w->timeout = timeout;
    w->end = end;
    w->arg = arg;
    w->started = uv_now(m->uv);
    w->watch = baic_session_watch(m, w->session_id, on_change, w);
    uv_timer_init(m->uv, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, on_tick, tick_ms, tick_ms < 1000 ? 1000 : tick_ms);
    baic_http_req_on_abort(req, on_abort, w);
    return w;
}

void baic_session_wait_poke(baic_session_wait_t *w) {
    if (w != NULL && !w->over)
        check(w);
}

void baic_session_wait_cancel(baic_session_wait_t *w) {
    if (w == NULL || w->over)
        return;
    w->answered = 1; /* the caller answers the request itself */
    finish(w);
}
