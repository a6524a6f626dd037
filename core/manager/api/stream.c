/* SPDX-License-Identifier: Apache-2.0 */
/* WebSocket streams of a session: execute (relayed by polling the agent's execute RPC); pty is not relayed yet. */
#include "manager.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "http/websocket.h"
#include "log/log.h"

/*
 * GET /stream/session/{ref}/execute (api-contract §3): the client's first text frame is
 * {"code","mode","options"}; the manager calls the agent's execute RPC for the run and
 * sends every result as {"status","console","exitCode","options","files"}, calling again
 * with mode "continue" until the run is finished. On waiting-input the next text frame
 * from the client is the input line. A new run may start after one has finished.
 */

typedef struct xs {
    baic_manager_t *m;
    baic_http_ws_t *ws; /* NULL once closed */
    baic_kref_t ref;
    char run_id[40];
    int inflight;       /* an RPC is out */
    int waiting_input;  /* the run wants the next text frame */
    int running;        /* a run is active */
} xs_t;

static void xs_maybe_free(xs_t *x) {
    if (x->ws == NULL && !x->inflight)
        free(x);
}

static void send_json(xs_t *x, json_t *j) {
    char *t = json_dumps(j, JSON_COMPACT);
    if (t && x->ws)
        baic_http_ws_send_text(x->ws, t, strlen(t));
    free(t);
    json_decref(j);
}

static void send_error(xs_t *x, const char *msg) {
    send_json(x, json_pack("{s:s, s:s}", "status", "error", "msg", msg));
}

static void call(xs_t *x, const char *mode, const char *code, json_t *opts);

static void exec_answer(int status, json_t *answer, int err, void *arg) {
    xs_t *x = arg;
    x->inflight = 0;
    if (x->ws == NULL) {
        xs_maybe_free(x);
        return;
    }
    if (err != 0 || status < 200 || status >= 300) {
        const char *msg = json_string_value(json_object_get(answer, "msg"));
        char buf[300];
        snprintf(buf, sizeof buf, "%s",
                 msg ? msg : err ? "The agent holding the kernel is not reachable."
                                 : "The agent refused the execution.");
        send_error(x, buf);
        x->running = 0;
        baic_http_ws_close(x->ws, 1011, NULL);
        return;
    }
    json_t *r = baic_exec_result(answer, x->run_id);
    const char *st = json_string_value(json_object_get(r, "status"));
    int finished = strcmp(st, "finished") == 0 || strcmp(st, "exec-timeout") == 0;
    int input = strcmp(st, "waiting-input") == 0;
    json_object_del(r, "runId");
    send_json(x, r);
    if (finished) {
        x->running = 0;
        baic_http_ws_close(x->ws, 1000, NULL);
    } else if (input) {
        x->waiting_input = 1;
    } else {
        call(x, "continue", "", NULL);
    }
}

static void call(xs_t *x, const char *mode, const char *code, json_t *opts) {
    char path[160];
    snprintf(path, sizeof path, "/rpc/kernels/%s/execute", x->ref.kernel_id);
    json_t *b = json_pack("{s:s, s:s, s:s, s:O}", "mode", mode, "code", code, "runId", x->run_id,
                          "options", opts ? opts : json_object());
    x->inflight = 1;
    int rc = baic_agent_rpc(x->m, x->ref.addr, "POST", path, b, 60000, exec_answer, x);
    json_decref(b);
    if (rc != 0) {
        x->inflight = 0;
        send_error(x, "The agent holding the kernel is not reachable.");
        baic_http_ws_close(x->ws, 1011, NULL);
    }
}

static void on_message(baic_http_ws_t *ws, int is_text, const void *data, size_t len,
                       void *arg) {
    xs_t *x = arg;
    (void)ws;
    if (!is_text)
        return;
    if (x->waiting_input) {
        char *line = strndup(data, len);
        x->waiting_input = 0;
        call(x, "input", line ? line : "", NULL);
        free(line);
        return;
    }
    if (x->running || x->inflight)
        return; /* one run at a time; stray frames are ignored */
    json_t *j = json_loadb(data, len, 0, NULL);
    const char *code = json_string_value(json_object_get(j, "code"));
    const char *mode = json_string_value(json_object_get(j, "mode"));
    json_t *opts = json_object_get(j, "options");
    if (mode == NULL)
        mode = "query";
    if (!json_is_object(j) || (strcmp(mode, "query") != 0 && strcmp(mode, "batch") != 0)) {
        send_error(x, "The first frame must be {\"code\", \"mode\": query|batch, \"options\"}.");
        json_decref(j);
        baic_http_ws_close(x->ws, 1008, NULL);
        return;
    }
    unsigned char r[8];
    if (RAND_bytes(r, sizeof r) != 1)
        memset(r, 0, sizeof r);
    for (int i = 0; i < 8; i++)
        snprintf(x->run_id + 2 * i, 3, "%02x", r[i]);
    x->running = 1;
    call(x, mode, code ? code : "", json_is_object(opts) ? opts : NULL);
    json_decref(j);
}

static void on_close(baic_http_ws_t *ws, int code, void *arg) {
    xs_t *x = arg;
    (void)ws;
    (void)code;
    x->ws = NULL;
    xs_maybe_free(x);
}

typedef struct upg {
    baic_api_op_t *op;
    int pty;
} upg_t;

static void found(const baic_kref_t *k, int err, void *arg) {
    upg_t *u = arg;
    baic_api_op_t *op = u->op;
    if (baic_api_op_gone(op))
        return;
    baic_http_req_t *req = op->req;
    if (err != 0) {
        baic_api_unavailable(req, "The database is not reachable.");
        return;
    }
    if (k == NULL || k->kernel_id[0] == '\0') {
        baic_api_not_found(req, "session", "No such session.");
        return;
    }
    if (strcmp(k->status, "RUNNING") != 0 || k->addr[0] == '\0') {
        char msg[160];
        snprintf(msg, sizeof msg, "The session is %.32s, not RUNNING.", k->status);
        baic_http_respond_problem(req, 409, "kernel-not-ready", "The kernel is not ready.", msg,
                                  NULL);
        return;
    }
    if (u->pty) {
        baic_http_respond_problem(req, 400, "not-implemented",
                                  "This feature is not implemented.",
                                  "The terminal stream is not relayed by this manager yet.",
                                  NULL);
        return;
    }
    xs_t *x = calloc(1, sizeof *x);
    if (x == NULL) {
        baic_api_internal(req, "Out of memory.");
        return;
    }
    x->m = op->m;
    x->ref = *k;
    if (baic_http_ws_accept(req, on_message, on_close, x, &x->ws) != 0)
        free(x);
}

static void start(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who, int pty) {
    const char *key = baic_api_owner_key(req, who);
    if (key == NULL)
        return;
    upg_t *u = baic_http_alloc(req, sizeof *u);
    u->op = baic_api_op_new(req, m, who);
    u->pty = pty;
    if (baic_kernel_lookup(m, baic_http_param(req, "ref"), key, found, u) != 0)
        baic_api_not_found(req, "session", "No such session.");
}

static void get_execute(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    start(req, m, who, 0);
}

static void get_pty(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    start(req, m, who, 1);
}

int baic_api_stream_init(baic_manager_t *m) {
    int rc = baic_api_route(m, "GET", "/stream/session/{ref}/execute", BAIC_ROUTE_USER,
                            get_execute, 0);
    if (rc == 0)
        rc = baic_api_route(m, "GET", "/stream/session/{ref}/pty", BAIC_ROUTE_USER, get_pty, 0);
    return rc;
}
