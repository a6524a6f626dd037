/* SPDX-License-Identifier: Apache-2.0 */
/* Background tasks: the background_tasks row and its events (bgtask.h), and a test-only task. */
#include "bgtask.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "log/log.h"

/* ---- start ---- */

typedef struct start_q {
    baic_manager_t *m;
    baic_bgtask_started_cb cb;
    void *arg;
    char kind[72];
} start_q_t;

static void inserted(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    start_q_t *q = arg;
    if (err != 0 || baic_db_result_rows(res) == 0) {
        BAIC_LOG_W("bgtask_start_failed", "kind=%s error=\"%s\"", q->kind, errmsg ? errmsg : "");
        q->cb(q->m, NULL, err != 0 ? err : -EIO, q->arg);
    } else {
        const char *id = baic_db_result_get(res, 0, 0);
        BAIC_LOG_I("bgtask_started", "task=%s kind=%s", id, q->kind);
        q->cb(q->m, id, 0, q->arg);
    }
    free(q);
}

int baic_bgtask_start(baic_manager_t *m, const char *kind, const char *access_key,
                      baic_bgtask_started_cb cb, void *arg) {
    if (kind == NULL || *kind == '\0' || strlen(kind) > 64 || cb == NULL)
        return -EINVAL;
    start_q_t *q = calloc(1, sizeof *q);
    if (q == NULL)
        return -ENOMEM;
    q->m = m;
    q->cb = cb;
    q->arg = arg;
    snprintf(q->kind, sizeof q->kind, "%s", kind);
    const char *p[2] = {kind, access_key};
    int rc = baic_db_query(m->db,
                           "INSERT INTO background_tasks (kind, access_key) VALUES ($1, $2)"
                           " RETURNING id::text",
                           2, p, inserted, q);
    if (rc != 0)
        free(q);
    return rc;
}

/* ---- reports ---- */

static void updated(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    (void)res;
    if (err != 0)
        BAIC_LOG_W("bgtask_update_failed", "task=%s error=\"%s\"", (char *)arg,
                   errmsg ? errmsg : "");
    free(arg);
}

static void publish(baic_manager_t *m, const char *name, json_t *body) {
    int rc =
        m->bus ? baic_bus_publish(m->bus, BAIC_BGTASK_EVENTS, name, body, NULL, NULL) : -ENOTCONN;
    if (rc != 0)
        BAIC_LOG_W("bgtask_event_lost", "event=%s task=%s error=%d", name,
                   json_string_value(json_object_get(body, "task_id")), rc);
    json_decref(body);
}

static void store(baic_manager_t *m, const char *task_id, const char *sql, int n,
                  const char *const *p) {
    char *id = strdup(task_id);
    if (id != NULL && baic_db_query(m->db, sql, n, p, updated, id) != 0)
        free(id);
}

void baic_bgtask_progress(baic_manager_t *m, const char *task_id, int64_t current, int64_t total,
                          const char *message) {
    if (task_id == NULL)
        return;
    publish(m, "bgtask_updated",
            json_pack("{s:s, s:s?, s:I, s:I}", "task_id", task_id, "message", message,
                      "current_progress", (json_int_t)current, "total_progress",
                      (json_int_t)total));
    char cur[24], tot[24];
    snprintf(cur, sizeof cur, "%" PRId64, current);
    snprintf(tot, sizeof tot, "%" PRId64, total);
    const char *p[4] = {task_id, cur, tot, message};
    store(m, task_id,
          "UPDATE background_tasks SET current_progress = GREATEST(current_progress, $2::bigint),"
          " total_progress = $3::bigint, message = COALESCE($4, message), updated_at = now()"
          " WHERE id = $1::uuid AND status = 'running'",
          4, p);
}

static void finish(baic_manager_t *m, const char *task_id, const char *status, const char *event,
                   const char *message, const json_t *errors) {
    if (task_id == NULL)
        return;
    json_t *body = json_pack("{s:s, s:s}", "task_id", task_id, "message", message ? message : "");
    if (json_is_array(errors) && json_array_size(errors) > 0)
        json_object_set(body, "errors", (json_t *)errors);
    publish(m, event, body);
    BAIC_LOG_I("bgtask_finished", "task=%s status=%s", task_id, status);
    const char *p[3] = {task_id, status, message};
    store(m, task_id,
          "UPDATE background_tasks SET status = $2, message = COALESCE($3, message),"
          " current_progress = CASE WHEN $2 = 'done' THEN GREATEST(current_progress,"
          "   total_progress) ELSE current_progress END, updated_at = now()"
          " WHERE id = $1::uuid AND status = 'running'",
          3, p);
}

void baic_bgtask_done(baic_manager_t *m, const char *task_id, const char *message,
                      const json_t *errors) {
    finish(m, task_id, "done", "bgtask_done", message, errors);
}

void baic_bgtask_failed(baic_manager_t *m, const char *task_id, const char *message) {
    finish(m, task_id, "failed", "bgtask_failed", message, NULL);
}

void baic_bgtask_cancelled(baic_manager_t *m, const char *task_id, const char *message) {
    finish(m, task_id, "cancelled", "bgtask_cancelled", message, NULL);
}

/* ---- POST /_test/bgtask: a task that only counts, for the tests of the event stream ---- */

typedef struct test_task {
    baic_manager_t *m;
    baic_api_op_t *op;
    uv_timer_t timer;
    char id[40];
    char outcome[16];
    long long steps, step, interval_ms;
} test_task_t;

static void test_closed(uv_handle_t *h) {
    free(h->data);
}

static void test_tick(uv_timer_t *t) {
    test_task_t *x = t->data;
    if (x->m->closing || x->step >= x->steps) {
        if (!x->m->closing) {
            if (strcmp(x->outcome, "failed") == 0)
                baic_bgtask_failed(x->m, x->id, "the test task failed as asked");
            else if (strcmp(x->outcome, "cancelled") == 0)
                baic_bgtask_cancelled(x->m, x->id, "the test task was cancelled as asked");
            else
                baic_bgtask_done(x->m, x->id, "the test task is done", NULL);
        }
        uv_timer_stop(t);
        uv_close((uv_handle_t *)t, test_closed);
        return;
    }
    x->step++;
    char msg[64];
    snprintf(msg, sizeof msg, "step %lld of %lld", x->step, x->steps);
    baic_bgtask_progress(x->m, x->id, x->step, x->steps, msg);
}

static void test_started(baic_manager_t *m, const char *task_id, int err, void *arg) {
    test_task_t *x = arg;
    if (baic_api_op_gone(x->op)) {
        free(x);
        return;
    }
    if (task_id == NULL) {
        (void)err;
        baic_api_unavailable(x->op->req, "The task could not be stored.");
        free(x);
        return;
    }
    snprintf(x->id, sizeof x->id, "%s", task_id);
    baic_http_respond_json(x->op->req, 200, json_pack("{s:s}", "task_id", x->id));
    uv_timer_init(m->uv, &x->timer);
    x->timer.data = x;
    uv_timer_start(&x->timer, test_tick, (uint64_t)x->interval_ms, (uint64_t)x->interval_ms);
}

static void post_test_task(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    json_t *body = baic_api_json_body(req);
    if (body == NULL)
        return;
    json_t *steps = json_object_get(body, "steps"), *iv = json_object_get(body, "interval_ms");
    const char *outcome = json_string_value(json_object_get(body, "outcome"));
    if ((steps && (!json_is_integer(steps) || json_integer_value(steps) < 0 ||
                   json_integer_value(steps) > 1000)) ||
        (iv &&
         (!json_is_integer(iv) || json_integer_value(iv) < 1 || json_integer_value(iv) > 60000)) ||
        (json_object_get(body, "outcome") &&
         (outcome == NULL || (strcmp(outcome, "done") != 0 && strcmp(outcome, "failed") != 0 &&
                              strcmp(outcome, "cancelled") != 0)))) {
        baic_api_invalid_params(req, "steps 0..1000, interval_ms 1..60000, outcome done, "
                                     "failed or cancelled.");
        json_decref(body);
        return;
    }
    test_task_t *x = calloc(1, sizeof *x);
    if (x == NULL) {
        json_decref(body);
        baic_api_internal(req, "Out of memory.");
        return;
    }
    x->m = m;
    x->steps = steps ? json_integer_value(steps) : 3;
    x->interval_ms = iv ? json_integer_value(iv) : 200;
    snprintf(x->outcome, sizeof x->outcome, "%s", outcome ? outcome : "done");
    json_decref(body);
    x->op = baic_api_op_new(req, m, who);
    if (baic_bgtask_start(m, "test", who->access_key, test_started, x) != 0) {
        baic_api_unavailable(req, "The database is not reachable.");
        free(x);
    }
}

int baic_api_bgtask_init(baic_manager_t *m) {
    int on = 0;
    char err[256];
    if (baic_config_get_bool(m->config, "manager.test_routes", 0, &on, err, sizeof err) != 0) {
        BAIC_LOG_E("config_error", "msg=\"%s\"", err);
        return -EINVAL;
    }
    if (!on)
        return 0;
    BAIC_LOG_W("test_routes_enabled", "route=\"POST /_test/bgtask\"");
    return baic_api_route(m, "POST", "/_test/bgtask", BAIC_ROUTE_USER, post_test_task, 4096);
}
