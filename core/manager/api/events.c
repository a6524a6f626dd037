/* SPDX-License-Identifier: Apache-2.0 */
/* GET /events/session: the session event stream as Server-Sent Events, resumable by Last-Event-ID. */
#include "manager.h"

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

int baic_api_events_init(baic_manager_t *m) {
    return baic_api_route(m, "GET", "/events/session", BAIC_ROUTE_USER, get_events, 0);
}
