/* SPDX-License-Identifier: Apache-2.0 */
/* WebSocket streams of a session: execute (by polling the agent's execute RPC) and pty (relayed to the agent's pty websocket). */
#include "manager.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "http/websocket.h"
#include "log/log.h"
#include "ws_client.h"

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
    json_t *b = json_pack("{s:s, s:s, s:s, s:o}", "mode", mode, "code", code, "runId", x->run_id,
                          "options", opts ? json_incref(opts) : json_object());
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

/*
 * GET /stream/session/{ref}/pty: the client's text frames {"type":"stdin","chars":b64},
 * {"type":"resize","rows","cols"} ({"type":"ping"} and "restart" are ignored) go to the
 * agent's GET /rpc/kernels/{id}/pty websocket as binary input / the resize text frame;
 * the agent's binary output frames come back as binary {"type":"out","data":b64}.
 */

typedef struct frame {
    struct frame *next;
    int is_text;
    size_t len;
    unsigned char data[];
} frame_t;

typedef struct pty {
    baic_http_ws_t *ws;        /* client side; NULL once closed */
    baic_ws_client_t *agent;   /* agent side; NULL once closed */
    int agent_open;
    frame_t *pending, **tail;  /* input that came before the agent's side opened */
    size_t pending_bytes;
} pty_t;

static void pty_maybe_free(pty_t *p) {
    if (p->ws != NULL || p->agent != NULL)
        return;
    for (frame_t *f = p->pending, *n; f; f = n) {
        n = f->next;
        free(f);
    }
    free(p);
}

static void to_agent(pty_t *p, int is_text, const void *data, size_t len) {
    if (p->agent_open) {
        baic_ws_client_send(p->agent, is_text, data, len);
        return;
    }
    if (p->pending_bytes + len > 1024 * 1024)
        return;
    frame_t *f = malloc(sizeof *f + len);
    if (f == NULL)
        return;
    f->next = NULL;
    f->is_text = is_text;
    f->len = len;
    memcpy(f->data, data, len);
    *p->tail = f;
    p->tail = &f->next;
    p->pending_bytes += len;
}

static void agent_opened(baic_ws_client_t *c, int err, int status, void *arg) {
    pty_t *p = arg;
    (void)c;
    if (err != 0) {
        BAIC_LOG_W("pty_relay_failed", "status=%d error=%d", status, err);
        p->agent = NULL;
        if (p->ws)
            baic_http_ws_close(p->ws, 1011, "the agent's terminal is not reachable");
        pty_maybe_free(p);
        return;
    }
    p->agent_open = 1;
    for (frame_t *f = p->pending, *n; f; f = n) {
        n = f->next;
        baic_ws_client_send(p->agent, f->is_text, f->data, f->len);
        free(f);
    }
    p->pending = NULL;
    p->tail = &p->pending;
}

static void agent_message(baic_ws_client_t *c, int is_text, const void *data, size_t len,
                          void *arg) {
    pty_t *p = arg;
    (void)c;
    if (is_text || p->ws == NULL)
        return;
    char *b64 = malloc(4 * ((len + 2) / 3) + 1);
    if (b64 == NULL)
        return;
    EVP_EncodeBlock((unsigned char *)b64, data, (int)len);
    json_t *m = json_pack("{s:s, s:s}", "type", "out", "data", b64);
    char *t = json_dumps(m, JSON_COMPACT);
    if (t)
        baic_http_ws_send_binary(p->ws, t, strlen(t));
    free(t);
    json_decref(m);
    free(b64);
}

static void agent_closed(baic_ws_client_t *c, void *arg) {
    pty_t *p = arg;
    (void)c;
    p->agent = NULL;
    if (p->ws)
        baic_http_ws_close(p->ws, 1000, NULL);
    pty_maybe_free(p);
}

static void pty_client_message(baic_http_ws_t *ws, int is_text, const void *data, size_t len,
                               void *arg) {
    pty_t *p = arg;
    (void)ws;
    if (p->agent == NULL)
        return;
    json_t *j = is_text ? json_loadb(data, len, 0, NULL) : NULL;
    const char *type = json_string_value(json_object_get(j, "type"));
    if (type && strcmp(type, "stdin") == 0) {
        const char *b64 = json_string_value(json_object_get(j, "chars"));
        size_t bl = b64 ? strlen(b64) : 0;
        unsigned char *raw = bl % 4 == 0 ? malloc(bl / 4 * 3 + 1) : NULL;
        int n = raw ? EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)bl) : -1;
        if (n >= 0) {
            if (bl >= 1 && b64[bl - 1] == '=')
                n--;
            if (bl >= 2 && b64[bl - 2] == '=')
                n--;
            to_agent(p, 0, raw, (size_t)n);
        }
        free(raw);
    } else if (type && strcmp(type, "resize") == 0) {
        json_t *rows = json_object_get(j, "rows"), *cols = json_object_get(j, "cols");
        json_t *r = json_pack("{s:s, s:I, s:I}", "type", "resize", "rows",
                              (json_int_t)(json_is_integer(rows) ? json_integer_value(rows) : 24),
                              "cols",
                              (json_int_t)(json_is_integer(cols) ? json_integer_value(cols) : 80));
        char *t = r ? json_dumps(r, JSON_COMPACT) : NULL;
        if (t)
            to_agent(p, 1, t, strlen(t));
        free(t);
        json_decref(r);
    }
    json_decref(j);
}

static void pty_client_closed(baic_http_ws_t *ws, int code, void *arg) {
    pty_t *p = arg;
    (void)ws;
    (void)code;
    p->ws = NULL;
    if (p->agent)
        baic_ws_client_close(p->agent); /* agent_closed follows */
    else
        pty_maybe_free(p);
}

static void start_pty(baic_http_req_t *req, baic_manager_t *m, const baic_kref_t *k) {
    pty_t *p = calloc(1, sizeof *p);
    if (p == NULL) {
        baic_api_internal(req, "Out of memory.");
        return;
    }
    p->tail = &p->pending;
    char path[160], date[32], mac[65];
    snprintf(path, sizeof path, "/rpc/kernels/%s/pty", k->kernel_id);
    baic_agent_auth(m, "GET", path, NULL, 0, date, mac);
    baic_http_header_t hdrs[] = {{"Date", date}, {"X-BaiC-Cluster-Auth", mac}, {NULL, NULL}};
    if (baic_ws_client_connect(m->uv, k->addr, path, hdrs, agent_opened, agent_message,
                               agent_closed, p, &p->agent) != 0) {
        free(p);
        baic_http_respond_problem(req, 503, "instance-not-available",
                                  "There is no available instance.",
                                  "The agent holding the kernel is not reachable.", NULL);
        return;
    }
    if (baic_http_ws_accept(req, pty_client_message, pty_client_closed, p, &p->ws) != 0) {
        p->ws = NULL;
        baic_ws_client_close(p->agent);
    }
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
        start_pty(req, op->m, k);
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
