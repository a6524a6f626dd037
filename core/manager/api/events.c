/* SPDX-License-Identifier: Apache-2.0 */
/* GET /events/session and /events/background-task: Server-Sent Events, resumable by Last-Event-ID. */
#include "manager.h"
#include "bgtask.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"

typedef struct sse {
    baic_api_op_t *op;
    baic_manager_t *m;
    baic_bus_sub_t *sub;
    char key[128];     /* the owner whose sessions are shown */
    char name[80];     /* "*" = any */
    char sid[40];      /* "" = any */
    int scope_session, scope_kernel;
    int done;
} sse_t;

static void sse_stop(sse_t *s) {
    if (s->done)
        return;
    s->done = 1;
    /* After shutdown began, the bus ends (and frees) its subscriptions itself. */
    if (s->sub != NULL && !s->m->closing)
        baic_bus_unsubscribe(s->sub);
    s->sub = NULL;
}

static void on_abort(baic_http_req_t *req, void *arg) {
    sse_t *s = arg;
    sse_stop(s);
    baic_http_req_release(req);
}

static int on_event(const baic_bus_event_t *ev, void *arg) {
    sse_t *s = arg;
    if (s->done)
        return 0;
    const char *ak = json_string_value(json_object_get(ev->body, "ownerAccessKey"));
    const char *nm = json_string_value(json_object_get(ev->body, "sessionName"));
    const char *id = json_string_value(json_object_get(ev->body, "sessionId"));
    if (ak == NULL || strcmp(ak, s->key) != 0)
        return 0;
    if (strcmp(s->name, "*") != 0 && (nm == NULL || strcmp(nm, s->name) != 0) &&
        (id == NULL || strcmp(id, s->name) != 0))
        return 0;
    if (s->sid[0] && (id == NULL || strcmp(id, s->sid) != 0))
        return 0;
    int is_kernel = strncmp(ev->name, "kernel_", 7) == 0;
    if ((is_kernel && !s->scope_kernel) || (!is_kernel && !s->scope_session))
        return 0;
    char *data = json_dumps(ev->body, JSON_COMPACT);
    int rc = baic_http_sse_send(s->op->req, ev->name, ev->id, data ? data : "{}");
    free(data);
    if (rc != 0)
        sse_stop(s);
    return 0;
}

/* "1700000000000-0" or "1700000000000". */
static int stream_id_ok(const char *s) {
    size_t i = 0, digits = 0;
    while (isdigit((unsigned char)s[i]))
        i++, digits++;
    if (digits == 0 || digits > 20)
        return 0;
    if (s[i] == '\0')
        return 1;
    if (s[i++] != '-')
        return 0;
    size_t d2 = 0;
    while (isdigit((unsigned char)s[i]))
        i++, d2++;
    return d2 > 0 && d2 <= 20 && s[i] == '\0';
}

static const char *q2(baic_http_req_t *req, const char *a, const char *b) {
    const char *v = baic_http_query(req, a);
    return v && *v ? v : b ? baic_http_query(req, b) : NULL;
}

static void get_events(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    const char *owner = q2(req, "ownerAccessKey", "owner_access_key");
    if (owner != NULL && *owner && strcmp(owner, who->access_key) != 0 && !who->is_admin) {
        baic_api_forbidden(req, "Only administrators may watch other users' sessions.");
        return;
    }
    if (owner == NULL || *owner == '\0')
        owner = who->access_key;
    const char *name = q2(req, "sessionName", "name");
    const char *sid = q2(req, "sessionId", "session_id");
    const char *scope = baic_http_query(req, "scope");
    if (scope == NULL || *scope == '\0')
        scope = "*";
    int ss = 0, sk = 0;
    for (const char *p = scope; *p;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (n == 1 && *p == '*')
            ss = sk = 1;
        else if (n == 7 && strncmp(p, "session", 7) == 0)
            ss = 1;
        else if (n == 6 && strncmp(p, "kernel", 6) == 0)
            sk = 1;
        else {
            baic_api_invalid_params(req, "'scope' must be *, session, kernel or session,kernel.");
            return;
        }
        p = c ? c + 1 : p + n;
    }
    if (strlen(owner) >= 128 || (name && strlen(name) >= 80) || (sid && strlen(sid) >= 40)) {
        baic_api_invalid_params(req, "A parameter is too long.");
        return;
    }
    const char *last = baic_http_header(req, "Last-Event-ID");
    if (last != NULL && *last && !stream_id_ok(last)) {
        baic_api_invalid_params(req, "Last-Event-ID must be an event id this stream sent.");
        return;
    }
    sse_t *s = baic_http_alloc(req, sizeof *s);
    memset(s, 0, sizeof *s);
    s->m = m;
    s->op = baic_api_op_new(req, m, who);
    snprintf(s->key, sizeof s->key, "%s", owner);
    snprintf(s->name, sizeof s->name, "%s", name && *name ? name : "*");
    snprintf(s->sid, sizeof s->sid, "%s", sid ? sid : "");
    s->scope_session = ss;
    s->scope_kernel = sk;
    if (m->bus == NULL) {
        baic_api_unavailable(req, "The event bus is not available.");
        return;
    }
    if (baic_http_sse_begin(req, 15) != 0) {
        baic_http_req_release(req);
        return;
    }
    baic_http_req_on_abort(req, on_abort, s);
    int rc = baic_bus_read_from(m->bus, BAIC_SESSION_EVENTS, last && *last ? last : "$", on_event,
                                s, &s->sub);
    if (rc != 0) {
        BAIC_LOG_W("sse_subscribe_failed", "error=%d", rc);
        s->done = 1;
        baic_http_sse_end(req);
    }
}

/* ---- GET /events/background-task?task_id= ---- */

/* Replayed on a fresh subscription: events of the last moments, so none published
 * between the table read and the stream read is missed (progress repeats are harmless). */
#define BGTASK_REPLAY_MS 5000

typedef struct bgsse {
    baic_api_op_t *op;
    baic_manager_t *m;
    baic_bus_sub_t *sub;
    char task_id[40];
    char last[48];
    int done;
} bgsse_t;

static void bg_stop(bgsse_t *s) {
    if (s->done)
        return;
    s->done = 1;
    if (s->sub != NULL && !s->m->closing)
        baic_bus_unsubscribe(s->sub);
    s->sub = NULL;
}

static void bg_abort(baic_http_req_t *req, void *arg) {
    bg_stop(arg);
    baic_http_req_release(req);
}

static int bg_terminal(const char *name) {
    return strcmp(name, "bgtask_done") == 0 || strcmp(name, "bgtask_failed") == 0 ||
           strcmp(name, "bgtask_cancelled") == 0;
}

/* Sends one event; a terminal one ends the stream with server_close. */
static void bg_send(bgsse_t *s, const char *name, const char *id, json_t *body) {
    char *data = json_dumps(body, JSON_COMPACT);
    int rc = baic_http_sse_send(s->op->req, name, id, data ? data : "{}");
    free(data);
    if (rc == 0 && bg_terminal(name)) {
        baic_http_sse_send(s->op->req, "server_close", NULL, "{}");
        bg_stop(s);
        baic_http_sse_end(s->op->req);
        return;
    }
    if (rc != 0)
        bg_stop(s);
}

static int bg_event(const baic_bus_event_t *ev, void *arg) {
    bgsse_t *s = arg;
    if (s->done)
        return 0;
    const char *tid = json_string_value(json_object_get(ev->body, "task_id"));
    if (tid == NULL || strcmp(tid, s->task_id) != 0)
        return 0;
    bg_send(s, ev->name, ev->id, ev->body);
    return 0;
}

static void bg_found(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    bgsse_t *s = arg;
    if (baic_api_op_gone(s->op))
        return;
    baic_http_req_t *req = s->op->req;
    if (err != 0) {
        BAIC_LOG_W("bgtask_query_failed", "error=\"%s\"", errmsg ? errmsg : "");
        baic_api_unavailable(req, "The database is not reachable.");
        return;
    }
    if (baic_db_result_rows(res) == 0) {
        baic_api_not_found(req, "background task", "No such background task.");
        return;
    }
    const char *status = baic_db_result_get(res, 0, 0);
    const char *msg = baic_db_result_get(res, 0, 1);
    if (s->m->bus == NULL) {
        baic_api_unavailable(req, "The event bus is not available.");
        return;
    }
    if (baic_http_sse_begin(req, 15) != 0) {
        baic_http_req_release(req);
        return;
    }
    baic_http_req_on_abort(req, bg_abort, s);
    if (strcmp(status, "running") != 0) {
        /* Ended before the client came (or came back: with a Last-Event-ID the events after
         * it may have been trimmed from the stream, and waiting there would never end):
         * the end from the table. */
        char name[32];
        snprintf(name, sizeof name, "bgtask_%s", status);
        json_t *body = json_pack("{s:s, s:s}", "task_id", s->task_id, "message", msg ? msg : "");
        bg_send(s, name, NULL, body);
        json_decref(body);
        return;
    }
    char from[48];
    if (s->last[0])
        snprintf(from, sizeof from, "%s", s->last);
    else
        snprintf(from, sizeof from, "%lld-0", (long long)(baic_wall_ms() - BGTASK_REPLAY_MS));
    int rc = baic_bus_read_from(s->m->bus, BAIC_BGTASK_EVENTS, from, bg_event, s, &s->sub);
    if (rc != 0) {
        BAIC_LOG_W("sse_subscribe_failed", "stream=bgtask error=%d", rc);
        s->done = 1;
        baic_http_sse_end(req);
    }
}

static int uuid_ok(const char *s) {
    if (strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

static void get_bgtask_events(baic_http_req_t *req, baic_manager_t *m,
                              const baic_caller_t *who) {
    const char *tid = q2(req, "task_id", "taskId");
    if (tid == NULL || !uuid_ok(tid)) {
        baic_api_invalid_params(req, "'task_id' must be a background task UUID.");
        return;
    }
    const char *last = baic_http_header(req, "Last-Event-ID");
    if (last != NULL && *last && !stream_id_ok(last)) {
        baic_api_invalid_params(req, "Last-Event-ID must be an event id this stream sent.");
        return;
    }
    bgsse_t *s = baic_http_alloc(req, sizeof *s);
    memset(s, 0, sizeof *s);
    s->m = m;
    s->op = baic_api_op_new(req, m, who);
    snprintf(s->task_id, sizeof s->task_id, "%s", tid);
    for (char *p = s->task_id; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    snprintf(s->last, sizeof s->last, "%s", last ? last : "");
    /* Another keypair's task is not found. */
    const char *p[2] = {s->task_id, who->access_key};
    if (baic_db_query(m->db,
                      "SELECT status, message FROM background_tasks WHERE id = $1::uuid"
                      " AND access_key = $2",
                      2, p, bg_found, s) != 0)
        baic_api_unavailable(req, "The database is not reachable.");
}

int baic_api_events_init(baic_manager_t *m) {
    int rc = baic_api_route(m, "GET", "/events/session", BAIC_ROUTE_USER, get_events, 0);
    if (rc == 0)
        rc = baic_api_route(m, "GET", "/events/background-task", BAIC_ROUTE_USER,
                            get_bgtask_events, 0);
    if (rc == 0)
        rc = baic_api_bgtask_init(m);
    return rc;
}
