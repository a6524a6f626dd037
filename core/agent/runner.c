/* SPDX-License-Identifier: Apache-2.0 */
/* The execution relay: the agent's connection to each kernel's runner and the execute, file and pty RPCs over it. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"
#include "http/websocket.h"
#include "log/log.h"
#include "util/strerror.h"

#define CONNECT_DEADLINE_MS 10000 /* connect and hello, after start or a lost connection */
#define SLOW_RETRY_MS 2000        /* a started kernel whose runner stays away */
#define CALL_TIMEOUT_MS 30000     /* interrupt, completion, files, pty.open */
#define DEFAULT_WAIT_MS 1000
#define MAX_WAIT_MS 60000
#define TICK_MS 50
#define MAX_LINE (48u << 20)      /* 32 MiB files as base64, plus the JSON around them */
#define FILES_MAX_BODY (48u << 20)
#define RPC_MAX_BODY (4u << 20)

enum call_kind { C_EXEC, C_INPUT, C_INTERRUPT, C_COMPLETE, C_FILES, C_PTY_OPEN };

typedef struct run run_t;
typedef struct pty pty_t;
typedef struct conn conn_t;
typedef struct agent_runner runner_t;

/* A request sent to the runner whose answer (by id) is awaited. */
typedef struct call {
    struct call *next;
    json_int_t id;
    enum call_kind kind;
    baic_http_req_t *req;     /* interrupt/complete/files: answered with the runner's answer */
    run_t *run;               /* exec/input: the run whose waiter hears of an error */
    pty_t *pty;               /* pty.open */
    uint64_t deadline;
} call_t;

/* One execution (runId): the runner's results not yet collected, and who waits. */
struct run {
    run_t *next;
    runner_t *r;
    char *run_id;
    json_t *queue;            /* results in arrival order, "final" kept until collected */
    int done;                 /* the final result arrived */
    baic_http_req_t *waiter;
    uint64_t wait_deadline;
};

/* A WebSocket terminal relayed to one pty of the runner. */
struct pty {
    pty_t *next;
    runner_t *r;              /* NULL once the runner connection is gone */
    baic_http_ws_t *ws;
    json_int_t num;           /* the runner's pty number, 0 until pty.open answered */
    json_t *early;            /* messages from the client before that */
    int closing;
};

struct conn {
    uv_pipe_t pipe;
    uv_connect_t creq;
    runner_t *r;              /* NULL once dropped */
    char *buf;
    size_t len, cap;
};

struct agent_runner {
    agent_t *a;
    agent_kernel_t *k;        /* NULL once detached */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    conn_t *conn;
    int hello;
    uint64_t deadline;        /* for connect + hello; 0 = none (slow retries) */
    unsigned backoff;
    uv_timer_t retry, tick;
    int open_handles;
    json_int_t next_id;
    call_t *calls;
    run_t *runs;
    pty_t *ptys;
};

/* ---- base64 ---- */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const unsigned char *in, size_t n) {
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        *o++ = b64chars[(v >> 18) & 63];
        *o++ = b64chars[(v >> 12) & 63];
        *o++ = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? b64chars[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static int b64_val(char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decodes into a new buffer (*outlen bytes); NULL on bad input. */
static unsigned char *b64_decode(const char *in, size_t *outlen) {
    size_t n = strlen(in);
    unsigned char *out = malloc(n / 4 * 3 + 3), *o = out;
    uint32_t acc = 0;
    int bits = 0;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n && in[i] != '='; i++) {
        int v = b64_val(in[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            *o++ = (unsigned char)(acc >> bits);
        }
    }
    *outlen = (size_t)(o - out);
    return out;
}

static uint64_t now_ms(agent_t *a) {
    return uv_now(a->uv);
}

static void problem(baic_http_req_t *req, int status, const char *slug, const char *title,
                    const char *msg) {
    baic_http_respond_problem(req, status, slug, title, msg, NULL);
}

/* ---- sending ---- */

typedef struct wreq {
    uv_write_t w;
    char *data;
} wreq_t;

static void on_written(uv_write_t *w, int status) {
    wreq_t *wr = (wreq_t *)w;
    (void)status; /* a failed write shows up as a read error too */
    free(wr->data);
    free(wr);
}

/* Sends msg (stolen) as one line. Returns 0 or a negative code. */
static int runner_send(runner_t *r, json_t *msg) {
    if (msg == NULL)
        return UV_ENOMEM;
    if (r->conn == NULL || !r->hello) {
        json_decref(msg);
        return UV_ENOTCONN;
    }
    char *s = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    wreq_t *wr = calloc(1, sizeof *wr);
    if (s == NULL || wr == NULL) {
        free(s);
        free(wr);
        return UV_ENOMEM;
    }
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (line == NULL) {
        free(s);
        free(wr);
        return UV_ENOMEM;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    wr->data = line;
    uv_buf_t b = uv_buf_init(line, (unsigned)(n + 1));
    int rc = uv_write(&wr->w, (uv_stream_t *)&r->conn->pipe, &b, 1, on_written);
    if (rc != 0) {
        free(line);
        free(wr);
    }
    return rc;
}

static call_t *call_new(runner_t *r, enum call_kind kind) {
    call_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->id = ++r->next_id;
    c->kind = kind;
    c->deadline = now_ms(r->a) + CALL_TIMEOUT_MS;
    c->next = r->calls;
    r->calls = c;
    return c;
}

static void call_unlink(runner_t *r, call_t *c) {
    for (call_t **pp = &r->calls; *pp != NULL; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            return;
        }
}

static call_t *call_find(runner_t *r, const json_t *id) {
    if (!json_is_integer(id))
        return NULL;
    for (call_t *c = r->calls; c != NULL; c = c->next)
        if (c->id == json_integer_value(id))
            return c;
    return NULL;
}

/* ---- runs ---- */

static run_t *run_find(runner_t *r, const char *run_id) {
    for (run_t *u = r->runs; u != NULL; u = u->next)
        if (strcmp(u->run_id, run_id) == 0)
            return u;
    return NULL;
}

static void run_free(run_t *u) {
    runner_t *r = u->r;
    if (u->waiter != NULL)
        problem(u->waiter, 502, "backend-error", "The kernel runner went away.",
                "the run ended without an answer");
    for (run_t **pp = &r->runs; *pp != NULL; pp = &(*pp)->next)
        if (*pp == u) {
            *pp = u->next;
            break;
        }
    for (call_t *c = r->calls; c != NULL; c = c->next)
        if (c->run == u)
            c->run = NULL;
    json_decref(u->queue);
    free(u->run_id);
    free(u);
}

static void waiter_aborted(baic_http_req_t *req, void *arg) {
    run_t *u = arg;
    if (u->waiter == req)
        u->waiter = NULL;
    baic_http_req_release(req);
}

/* Appends src's console items to dst's, joining neighbouring text of one stream. */
static void console_merge(json_t *dst, const json_t *src) {
    size_t i;
    json_t *item;
    json_array_foreach(src, i, item) {
        json_t *last = json_array_get(dst, json_array_size(dst) - 1);
        const char *kind = json_string_value(json_array_get(item, 0));
        const char *text = json_string_value(json_array_get(item, 1));
        const char *lkind = json_string_value(json_array_get(last, 0));
        const char *ltext = json_string_value(json_array_get(last, 1));
        if (last != NULL && kind != NULL && text != NULL && lkind != NULL && ltext != NULL &&
            strcmp(kind, lkind) == 0 && (strcmp(kind, "stdout") == 0 || strcmp(kind, "stderr") == 0)) {
            /* Lengths from jansson: the text may hold NUL characters. */
            size_t a = json_string_length(json_array_get(last, 1));
            size_t b = json_string_length(json_array_get(item, 1));
            char *joined = malloc(a + b + 1);
            if (joined != NULL) {
                memcpy(joined, ltext, a);
                memcpy(joined + a, text, b);
                json_array_set_new(last, 1, json_stringn(joined, a + b));
                free(joined);
                continue;
            }
        }
        json_array_append_new(dst, json_deep_copy(item));
    }
}

static json_t *empty_result(const run_t *u) {
    return json_pack("{s:s, s:s, s:[], s:n, s:{}, s:[]}", "runId", u->run_id, "status",
                     "continued", "console", "exitCode", "options", "files");
}

/* Answers the waiter with what is queued: `continued` results merged, up to and including
 * the first other one. The run goes once its final result was collected. */
static void run_deliver(run_t *u) {
    if (u->waiter == NULL || json_array_size(u->queue) == 0)
        return;
    json_t *out = json_deep_copy(json_array_get(u->queue, 0));
    size_t taken = 1;
    const char *st = json_string_value(json_object_get(out, "status"));
    while (st != NULL && strcmp(st, "continued") == 0 && taken < json_array_size(u->queue)) {
        json_t *next = json_array_get(u->queue, taken++);
        json_t *console = json_object_get(out, "console");
        if (!json_is_array(console)) {
            console = json_array();
            json_object_set_new(out, "console", console);
        }
        console_merge(console, json_object_get(next, "console"));
        const char *keys[] = {"status", "exitCode", "options", "final"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            json_t *v = json_object_get(next, keys[i]);
            if (v != NULL)
                json_object_set(out, keys[i], v);
        }
        json_t *files = json_object_get(out, "files");
        if (json_is_array(files) && json_is_array(json_object_get(next, "files")))
            json_array_extend(files, json_object_get(next, "files"));
        st = json_string_value(json_object_get(out, "status"));
    }
    for (size_t i = 0; i < taken; i++)
        json_array_remove(u->queue, 0);
    int final = json_is_true(json_object_get(out, "final"));
    json_object_del(out, "final");
    json_object_del(out, "id");
    baic_http_req_t *req = u->waiter;
    u->waiter = NULL;
    baic_http_respond_json(req, 200, out);
    if (final)
        run_free(u);
}

static void run_set_waiter(run_t *u, baic_http_req_t *req, long long wait_ms) {
    if (u->waiter != NULL) {
        /* A second caller for one run: the first gets an empty part. */
        baic_http_req_t *old = u->waiter;
        u->waiter = NULL;
        baic_http_respond_json(old, 200, empty_result(u));
    }
    u->waiter = req;
    u->wait_deadline = now_ms(u->r->a) + (uint64_t)wait_ms;
    baic_http_req_on_abort(req, waiter_aborted, u);
    run_deliver(u);
}

/* ---- ptys ---- */

static void pty_input(pty_t *p, const json_t *msg) {
    if (p->num == 0) {
        json_array_append(p->early, (json_t *)msg);
        return;
    }
    json_t *m = json_deep_copy(msg);
    json_object_set_new(m, "pty", json_integer(p->num));
    runner_send(p->r, m);
}

static void pty_close_ws(pty_t *p, int code, const char *why) {
    if (!p->closing) {
        p->closing = 1;
        baic_http_ws_close(p->ws, code, why);
    }
}

static void on_ws_message(baic_http_ws_t *ws, int is_text, const void *data, size_t len,
                          void *arg) {
    pty_t *p = arg;
    (void)ws;
    if (p->r == NULL || p->closing)
        return;
    if (is_text && len > 0 && ((const char *)data)[0] == '{') {
        json_t *j = json_loadb(data, len, 0, NULL);
        const char *type = json_string_value(json_object_get(j, "type"));
        if (type != NULL && strcmp(type, "resize") == 0) {
            json_t *m = json_pack("{s:s, s:O, s:O}", "op", "pty.resize", "rows",
                                  json_object_get(j, "rows") ? json_object_get(j, "rows")
                                                             : json_integer(24),
                                  "cols", json_object_get(j, "cols") ? json_object_get(j, "cols")
                                                                     : json_integer(80));
            if (m != NULL)
                pty_input(p, m);
            json_decref(m);
            json_decref(j);
            return;
        }
        json_decref(j);
    }
    char *b64 = b64_encode(data, len);
    if (b64 == NULL)
        return;
    json_t *m = json_pack("{s:s, s:s}", "op", "pty.input", "data_b64", b64);
    free(b64);
    if (m != NULL)
        pty_input(p, m);
    json_decref(m);
}

static void on_ws_close(baic_http_ws_t *ws, int code, void *arg) {
    pty_t *p = arg;
    runner_t *r = p->r;
    (void)ws;
    BAIC_LOG_D("pty_closed", "code=%d pty=%" JSON_INTEGER_FORMAT, code, p->num);
    if (r != NULL) {
        if (p->num > 0)
            runner_send(r, json_pack("{s:s, s:I}", "op", "pty.close", "pty", (json_int_t)p->num));
        for (pty_t **pp = &r->ptys; *pp != NULL; pp = &(*pp)->next)
            if (*pp == p) {
                *pp = p->next;
                break;
            }
        for (call_t *c = r->calls; c != NULL; c = c->next)
            if (c->pty == p)
                c->pty = NULL;
    }
    json_decref(p->early);
    free(p);
}

static pty_t *pty_find(runner_t *r, const json_t *num) {
    for (pty_t *p = r->ptys; p != NULL; p = p->next)
        if (json_is_integer(num) && p->num == json_integer_value(num))
            return p;
    return NULL;
}

/* ---- answers from the runner ---- */

static int error_status(const char *err) {
    if (err == NULL)
        return 502;
    if (strcmp(err, "run-in-progress") == 0 || strcmp(err, "not-waiting-input") == 0)
        return 409;
    if (strcmp(err, "no-such-run") == 0)
        return 404;
    if (strcmp(err, "failed") == 0)
        return 502;
    return 400;
}

/* Files calls: every refusal is the caller's (400), as the protocol says. */
static void respond_runner_error(baic_http_req_t *req, const json_t *m, int files) {
    const char *err = json_string_value(json_object_get(m, "error"));
    const char *msg = json_string_value(json_object_get(m, "msg"));
    int st = files ? 400 : error_status(err);
    baic_http_respond_problem(req, st, err ? err : "backend-error",
                              st == 502 ? "The kernel runner failed." : "The kernel runner refused the request.",
                              msg ? msg : err, NULL);
}

static void on_answer(runner_t *r, call_t *c, json_t *m) {
    int ok = json_is_true(json_object_get(m, "ok"));
    call_unlink(r, c);
    switch (c->kind) {
    case C_EXEC:
    case C_INPUT:
        if (!ok && c->run != NULL) {
            run_t *u = c->run;
            if (u->waiter != NULL) {
                baic_http_req_t *req = u->waiter;
                u->waiter = NULL;
                respond_runner_error(req, m, 0);
            }
            if (c->kind == C_EXEC)
                run_free(u); /* the runner never started it */
        }
        break;
    case C_INTERRUPT:
    case C_COMPLETE:
    case C_FILES:
        if (c->req == NULL)
            break;
        if (!ok) {
            respond_runner_error(c->req, m, c->kind == C_FILES);
        } else if (c->kind == C_INTERRUPT) {
            baic_http_respond(c->req, 204, NULL, NULL, 0);
        } else if (c->kind == C_COMPLETE) {
            json_t *res = json_object_get(m, "result");
            baic_http_respond_json(c->req, 200,
                                   json_pack("{s:O}", "result", res ? res : json_array()));
        } else {
            json_t *out = json_deep_copy(m);
            json_object_del(out, "id");
            json_object_del(out, "ok");
            baic_http_respond_json(c->req, 200, out);
        }
        break;
    case C_PTY_OPEN:
        if (c->pty == NULL)
            break;
        if (!ok || !json_is_integer(json_object_get(m, "pty"))) {
            pty_close_ws(c->pty, 1011, "pty.open failed");
        } else {
            pty_t *p = c->pty;
            p->num = json_integer_value(json_object_get(m, "pty"));
            size_t i;
            json_t *e;
            json_array_foreach(p->early, i, e) pty_input(p, e);
            json_array_clear(p->early);
        }
        break;
    }
    free(c);
}

static void on_result(runner_t *r, json_t *m) {
    const char *run_id = json_string_value(json_object_get(m, "runId"));
    call_t *c = call_find(r, json_object_get(m, "id"));
    if (c != NULL && (c->kind == C_EXEC || c->kind == C_INPUT)) {
        call_unlink(r, c);
        free(c);
    }
    run_t *u = run_find(r, run_id);
    if (u == NULL) {
        BAIC_LOG_D("runner_result_dropped", "runId=%s", run_id);
        return;
    }
    json_t *item = json_deep_copy(m);
    json_object_del(item, "id");
    json_array_append_new(u->queue, item);
    if (json_is_true(json_object_get(m, "final")))
        u->done = 1;
    run_deliver(u);
}

static void on_line(runner_t *r, json_t *m) {
    const char *op = json_string_value(json_object_get(m, "op"));
    if (op != NULL && strcmp(op, "hello") == 0) {
        int first = !r->hello;
        r->hello = 1;
        r->deadline = 0;
        r->backoff = 0;
        BAIC_LOG_I("runner_hello", "kernel=%s runtime_type=%s first=%d", r->k->id,
                   json_string_value(json_object_get(m, "runtimeType")), first);
        agent_kernel_runner_ready(r->k);
        return;
    }
    if (op != NULL && strcmp(op, "pty.output") == 0) {
        pty_t *p = pty_find(r, json_object_get(m, "pty"));
        const char *b64 = json_string_value(json_object_get(m, "data_b64"));
        size_t n = 0;
        unsigned char *data = (p != NULL && b64 != NULL) ? b64_decode(b64, &n) : NULL;
        if (data != NULL && !p->closing)
            baic_http_ws_send_binary(p->ws, data, n);
        free(data);
        return;
    }
    if (op != NULL && strcmp(op, "pty.exit") == 0) {
        pty_t *p = pty_find(r, json_object_get(m, "pty"));
        if (p != NULL) {
            p->num = -1; /* nothing to close on the runner's side any more */
            pty_close_ws(p, 1000, "shell exited");
        }
        return;
    }
    if (op != NULL && strcmp(op, "startup.finished") == 0) {
        json_t *code = json_object_get(m, "exitCode");
        BAIC_LOG_I("runner_startup_finished", "kernel=%s exit_code=%d", r->k->id,
                   json_is_integer(code) ? (int)json_integer_value(code) : -1);
        agent_kernel_startup_finished(r->k, json_is_integer(code) ? (int)json_integer_value(code)
                                                                  : 1);
        return;
    }
    if (op != NULL) {
        BAIC_LOG_I("runner_message", "kernel=%s op=%s", r->k->id, op);
        return;
    }
    if (json_object_get(m, "ok") != NULL) {
        call_t *c = call_find(r, json_object_get(m, "id"));
        if (c != NULL)
            on_answer(r, c, m);
        return;
    }
    if (json_is_string(json_object_get(m, "runId")) && json_is_string(json_object_get(m, "status")))
        on_result(r, m);
}

/* ---- the connection ---- */

static void try_connect(runner_t *r);

static void on_conn_closed(uv_handle_t *h) {
    conn_t *c = h->data;
    free(c->buf);
    free(c);
}

static void conn_drop(runner_t *r) {
    conn_t *c = r->conn;
    if (c == NULL)
        return;
    r->conn = NULL;
    c->r = NULL;
    uv_close((uv_handle_t *)&c->pipe, on_conn_closed);
}

/* Every waiting caller gets an answer: the runner cannot give one any more. */
static void fail_pending(runner_t *r, int status, const char *slug, const char *msg) {
    while (r->calls != NULL) {
        call_t *c = r->calls;
        r->calls = c->next;
        if (c->req != NULL)
            problem(c->req, status, slug, "The kernel runner is not reachable.", msg);
        if (c->pty != NULL)
            pty_close_ws(c->pty, 1011, msg);
        free(c);
    }
    while (r->runs != NULL) {
        run_t *u = r->runs;
        if (u->waiter != NULL) {
            baic_http_req_t *req = u->waiter;
            u->waiter = NULL;
            problem(req, status, slug, "The kernel runner is not reachable.", msg);
        }
        run_free(u);
    }
    for (pty_t *p = r->ptys; p != NULL; p = p->next) {
        p->r = NULL;
        pty_close_ws(p, 1011, msg);
    }
    r->ptys = NULL;
}

static void on_retry(uv_timer_t *t) {
    try_connect(t->data);
}

static void schedule_retry(runner_t *r) {
    unsigned ms;
    if (r->deadline == 0) {
        ms = SLOW_RETRY_MS;
    } else {
        /* The runner usually listens within tens of milliseconds of the start, and
         * every millisecond here is session start latency: begin at 2 ms, grow
         * gently, and cap low; a connect attempt on a unix socket is cheap. */
        r->backoff = r->backoff ? r->backoff + r->backoff / 2 + 1 : 2;
        if (r->backoff > 100)
            r->backoff = 100;
        ms = r->backoff;
    }
    uv_timer_start(&r->retry, on_retry, ms, 0);
}

/* The deadline passed without a hello. */
static void give_up(runner_t *r) {
    agent_kernel_t *k = r->k;
    char msg[160];
    snprintf(msg, sizeof msg, "the kernel runner did not say hello within %d s",
             CONNECT_DEADLINE_MS / 1000);
    conn_drop(r);
    uv_timer_stop(&r->retry);
    r->deadline = 0;
    int started = k->started_sent;
    agent_kernel_runner_failed(k, msg); /* may detach r (r->k is NULL then) */
    if (r->k != NULL && started)
        schedule_retry(r);
}

static void conn_lost(runner_t *r, const char *why) {
    BAIC_LOG_W("runner_disconnected", "kernel=%s reason=\"%s\"", r->k->id, why);
    conn_drop(r);
    r->hello = 0;
    fail_pending(r, 502, "backend-error", "the connection to the kernel runner was lost");
    /* A kernel still waiting for its first hello keeps its first deadline. */
    if (r->k->started_sent || r->deadline == 0)
        r->deadline = now_ms(r->a) + CONNECT_DEADLINE_MS;
    r->backoff = 100;
    schedule_retry(r);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out) {
    conn_t *c = h->data;
    (void)suggested;
    if (c->cap - c->len < 65536) {
        size_t ncap = c->cap ? c->cap * 2 : 131072;
        while (ncap - c->len < 65536)
            ncap *= 2;
        char *nb = realloc(c->buf, ncap);
        if (nb == NULL) {
            *out = uv_buf_init(NULL, 0);
            return;
        }
        c->buf = nb;
        c->cap = ncap;
    }
    *out = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    conn_t *c = s->data;
    runner_t *r = c->r;
    (void)buf;
    if (r == NULL)
        return;
    if (nread < 0) {
        conn_lost(r, nread == UV_EOF ? "end of stream" : uv_strerror((int)nread));
        return;
    }
    c->len += (size_t)nread;
    size_t start = 0;
    for (;;) {
        char *nl = memchr(c->buf + start, '\n', c->len - start);
        if (nl == NULL)
            break;
        size_t n = (size_t)(nl - (c->buf + start));
        json_error_t jerr;
        json_t *m = n ? json_loadb(c->buf + start, n, 0, &jerr) : NULL;
        start += n + 1;
        if (json_is_object(m))
            on_line(r, m);
        else if (n > 0)
            BAIC_LOG_W("runner_bad_line", "kernel=%s bytes=%zu", r->k ? r->k->id : "-", n);
        json_decref(m);
        if (r->k == NULL || r->conn != c)
            return; /* detached or dropped while handling the line */
    }
    memmove(c->buf, c->buf + start, c->len - start);
    c->len -= start;
    if (c->len > MAX_LINE)
        conn_lost(r, "line too long");
}

static void on_connect(uv_connect_t *req, int status) {
    conn_t *c = req->handle->data;
    runner_t *r = c->r;
    if (r == NULL)
        return; /* dropped meanwhile */
    if (status != 0) {
        conn_drop(r);
        if (r->deadline != 0 && now_ms(r->a) >= r->deadline)
            give_up(r);
        else
            schedule_retry(r);
        return;
    }
    BAIC_LOG_D("runner_connected", "kernel=%s", r->k->id);
    int rc = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
    if (rc != 0)
        conn_lost(r, uv_strerror(rc));
}

static void try_connect(runner_t *r) {
    if (r->k == NULL || r->conn != NULL)
        return;
    conn_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        schedule_retry(r);
        return;
    }
    uv_pipe_init(r->a->uv, &c->pipe, 0);
    c->pipe.data = c;
    c->r = r;
    r->conn = c;
    uv_pipe_connect(&c->creq, &c->pipe, r->path, on_connect);
}

static void on_tick(uv_timer_t *t) {
    runner_t *r = t->data;
    uint64_t now = now_ms(r->a);
    if (!r->hello && r->deadline != 0 && now >= r->deadline) {
        give_up(r);
        if (r->k == NULL)
            return;
    }
    for (call_t **pp = &r->calls; *pp != NULL;) {
        call_t *c = *pp;
        if (now < c->deadline || c->kind == C_EXEC || c->kind == C_INPUT) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        if (c->req != NULL)
            problem(c->req, 504, "backend-error", "The kernel runner did not answer.", NULL);
        if (c->pty != NULL)
            pty_close_ws(c->pty, 1011, "pty.open timed out");
        free(c);
    }
    for (run_t *u = r->runs; u != NULL; u = u->next) {
        if (u->waiter != NULL && now >= u->wait_deadline) {
            baic_http_req_t *req = u->waiter;
            u->waiter = NULL;
            baic_http_respond_json(req, 200, empty_result(u));
        }
    }
}

/* ---- attach / detach ---- */

void agent_runner_dir(const agent_t *a, const char *id, char *buf, size_t len) {
    snprintf(buf, len, "%s/kernels/%s/sock", a->data_dir, id);
}

int agent_runner_dir_make(const agent_t *a, const char *id) {
    char p[4096];
    snprintf(p, sizeof p, "%s/kernels/%s", a->data_dir, id);
    if (mkdir(p, 0700) != 0 && errno != EEXIST)
        return -errno;
    agent_runner_dir(a, id, p, sizeof p);
    if (mkdir(p, 0700) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

void agent_runner_dir_remove(const agent_t *a, const char *id) {
    char p[4096];
    agent_runner_dir(a, id, p, sizeof p);
    size_t n = strlen(p);
    snprintf(p + n, sizeof p - n, "/runner.sock");
    unlink(p);
    snprintf(p + n, sizeof p - n, "/console.log");
    unlink(p);
    p[n] = '\0';
    rmdir(p);
    snprintf(p, sizeof p, "%s/kernels/%s", a->data_dir, id);
    rmdir(p);
}

int agent_runner_attach(agent_kernel_t *k) {
    agent_t *a = k->a;
    char dir[4096];
    agent_runner_dir(a, k->id, dir, sizeof dir);
    runner_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return UV_ENOMEM;
    int n = snprintf(r->path, sizeof r->path, "%s/runner.sock", dir);
    if (n < 0 || (size_t)n >= sizeof r->path) {
        free(r);
        return UV_ENAMETOOLONG;
    }
    r->a = a;
    r->k = k;
    uv_timer_init(a->uv, &r->retry);
    uv_timer_init(a->uv, &r->tick);
    r->retry.data = r->tick.data = r;
    r->open_handles = 2;
    r->deadline = now_ms(a) + CONNECT_DEADLINE_MS;
    k->runner = r;
    uv_timer_start(&r->tick, on_tick, TICK_MS, TICK_MS);
    try_connect(r);
    return 0;
}

static void on_timer_closed(uv_handle_t *h) {
    runner_t *r = h->data;
    if (--r->open_handles == 0)
        free(r);
}

void agent_runner_detach(agent_kernel_t *k) {
    runner_t *r = k->runner;
    if (r == NULL)
        return;
    k->runner = NULL;
    fail_pending(r, 409, "kernel-not-ready", "the kernel is terminating");
    conn_drop(r);
    r->k = NULL;
    uv_close((uv_handle_t *)&r->retry, on_timer_closed);
    uv_close((uv_handle_t *)&r->tick, on_timer_closed);
}

/* ---- RPC endpoints ---- */

/* The kernel of the request with a runner that said hello, or NULL after answering. */
static runner_t *ready_runner(baic_http_req_t *req, agent_t *a) {
    const char *kid = baic_http_param(req, "id");
    agent_kernel_t *k = kid ? agent_kernel_find(a, kid) : NULL;
    if (k == NULL) {
        problem(req, 404, "object-not-found", "No such kernel.", kid);
        return NULL;
    }
    if (k->runner == NULL || !k->runner->hello || k->state != KS_RUNNING) {
        problem(req, 409, "kernel-not-ready", "The kernel is not ready.",
                k->runner == NULL ? "no kernel runner connection"
                                  : "the kernel runner has not said hello");
        return NULL;
    }
    return k->runner;
}

static json_t *req_body(baic_http_req_t *req) {
    size_t len = 0;
    const char *body = baic_http_body(req, &len);
    json_error_t jerr;
    json_t *j = json_loadb(body ? body : "", len, 0, &jerr);
    if (j == NULL || !json_is_object(j)) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", j ? "body must be a JSON object" : jerr.text);
        json_decref(j);
        problem(req, 400, "invalid-api-params", "Missing or invalid API parameters.", msg);
        return NULL;
    }
    return j;
}

static void new_run_id(runner_t *r, char *buf, size_t len) {
    unsigned char rnd[8] = {0};
    uv_random(NULL, NULL, rnd, sizeof rnd, 0, NULL);
    snprintf(buf, len, "%02x%02x%02x%02x%02x%02x%02x%02x-%" JSON_INTEGER_FORMAT, rnd[0], rnd[1],
             rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7], r->next_id + 1);
}

static void h_execute(baic_http_req_t *req, void *arg) {
    agent_t *a = arg;
    runner_t *r = ready_runner(req, a);
    if (r == NULL)
        return;
    json_t *body = req_body(req);
    if (body == NULL)
        return;
    const char *mode = json_string_value(json_object_get(body, "mode"));
    const char *code = json_string_value(json_object_get(body, "code"));
    json_t *jrid = json_object_get(body, "runId"), *opts = json_object_get(body, "options");
    if (mode == NULL || (json_object_get(body, "code") != NULL && code == NULL &&
                         !json_is_null(json_object_get(body, "code"))) ||
        (jrid != NULL && !json_is_string(jrid) && !json_is_null(jrid)) ||
        (opts != NULL && !json_is_object(opts) && !json_is_null(opts)) ||
        (jrid != NULL && json_is_string(jrid) &&
         (json_string_length(jrid) == 0 || json_string_length(jrid) > 256))) {
        problem(req, 400, "invalid-api-params", "Missing or invalid API parameters.",
                "expected {mode, code, runId, options}");
        json_decref(body);
        return;
    }
    long long wait_ms = DEFAULT_WAIT_MS;
    json_t *w = json_object_get(opts, "wait_ms");
    if (json_is_integer(w))
        wait_ms = json_integer_value(w);
    if (wait_ms < 0)
        wait_ms = 0;
    if (wait_ms > MAX_WAIT_MS)
        wait_ms = MAX_WAIT_MS;
    const char *rid = json_string_value(jrid);
    run_t *u = rid ? run_find(r, rid) : NULL;

    if (strcmp(mode, "continue") == 0 || strcmp(mode, "input") == 0) {
        if (u == NULL) {
            problem(req, 404, "no-such-run", "No such run.", rid ? rid : "runId is required");
            json_decref(body);
            return;
        }
        if (strcmp(mode, "input") == 0) {
            call_t *c = call_new(r, C_INPUT);
            int rc = c ? runner_send(r, json_pack("{s:I, s:s, s:s, s:s, s:s}", "id", c->id, "op",
                                                  "execute", "mode", "input", "runId", rid,
                                                  "code", code ? code : ""))
                       : UV_ENOMEM;
            if (rc != 0) {
                if (c != NULL) {
                    call_unlink(r, c);
                    free(c);
                }
                problem(req, 502, "backend-error", "The kernel runner is not reachable.",
                        baic_strerror(rc));
                json_decref(body);
                return;
            }
            c->run = u;
        }
        json_decref(body);
        run_set_waiter(u, req, wait_ms);
        return;
    }
    if (strcmp(mode, "query") != 0 && strcmp(mode, "batch") != 0) {
        problem(req, 400, "invalid-api-params", "Missing or invalid API parameters.",
                "mode must be query, batch, input or continue");
        json_decref(body);
        return;
    }
    if (u != NULL) {
        if (!u->done) {
            problem(req, 409, "run-in-progress", "A run is in progress.",
                    "this runId is still running");
            json_decref(body);
            return;
        }
        run_free(u); /* an old, finished run of the same id */
    }
    /* One run at a time: finished runs nobody collected are stale now. */
    for (run_t *o = r->runs, *next; o != NULL; o = next) {
        next = o->next;
        if (o->done && o->waiter == NULL)
            run_free(o);
    }
    char idbuf[64];
    if (rid == NULL) {
        new_run_id(r, idbuf, sizeof idbuf);
        rid = idbuf;
    }
    u = calloc(1, sizeof *u);
    call_t *c = u ? call_new(r, C_EXEC) : NULL;
    if (u != NULL) {
        u->r = r;
        u->run_id = strdup(rid);
        u->queue = json_array();
    }
    if (c == NULL || u->run_id == NULL || u->queue == NULL) {
        if (c != NULL) {
            call_unlink(r, c);
            free(c);
        }
        if (u != NULL) {
            free(u->run_id);
            json_decref(u->queue);
            free(u);
        }
        problem(req, 500, "internal-server-error", "Something went wrong.", "out of memory");
        json_decref(body);
        return;
    }
    json_t *msg = json_pack("{s:I, s:s, s:s, s:s, s:s}", "id", c->id, "op", "execute", "mode",
                            mode, "code", code ? code : "", "runId", rid);
    if (msg != NULL)
        json_object_set_new(msg, "options",
                            json_is_object(opts) ? json_incref(opts) : json_object());
    int rc = runner_send(r, msg);
    json_decref(body);
    if (rc != 0) {
        call_unlink(r, c);
        free(c);
        free(u->run_id);
        json_decref(u->queue);
        free(u);
        problem(req, 502, "backend-error", "The kernel runner is not reachable.",
                baic_strerror(rc));
        return;
    }
    c->run = u;
    u->next = r->runs;
    r->runs = u;
    run_set_waiter(u, req, wait_ms);
}

static void call_aborted(baic_http_req_t *req, void *arg) {
    call_t *c = arg;
    if (c->req == req)
        c->req = NULL;
    baic_http_req_release(req);
}

/* Sends msg (stolen) for a plain call; the runner's answer finishes req. */
static void plain_call(baic_http_req_t *req, runner_t *r, enum call_kind kind, json_t *msg) {
    call_t *c = call_new(r, kind);
    if (c == NULL || msg == NULL) {
        json_decref(msg);
        if (c != NULL) {
            call_unlink(r, c);
            free(c);
        }
        problem(req, 500, "internal-server-error", "Something went wrong.", "out of memory");
        return;
    }
    json_object_set_new(msg, "id", json_integer(c->id));
    int rc = runner_send(r, msg);
    if (rc != 0) {
        call_unlink(r, c);
        free(c);
        problem(req, 502, "backend-error", "The kernel runner is not reachable.",
                baic_strerror(rc));
        return;
    }
    c->req = req;
    baic_http_req_on_abort(req, call_aborted, c);
}

static void h_interrupt(baic_http_req_t *req, void *arg) {
    runner_t *r = ready_runner(req, arg);
    if (r != NULL)
        plain_call(req, r, C_INTERRUPT, json_pack("{s:s}", "op", "interrupt"));
}

static void h_complete(baic_http_req_t *req, void *arg) {
    runner_t *r = ready_runner(req, arg);
    if (r == NULL)
        return;
    json_t *body = req_body(req);
    if (body == NULL)
        return;
    json_t *code = json_object_get(body, "code"), *opts = json_object_get(body, "options");
    json_t *msg = json_pack("{s:s, s:s}", "op", "complete", "code",
                            json_is_string(code) ? json_string_value(code) : "");
    if (msg != NULL)
        json_object_set_new(msg, "options",
                            json_is_object(opts) ? json_incref(opts) : json_object());
    json_decref(body);
    plain_call(req, r, C_COMPLETE, msg);
}

static void files_call(baic_http_req_t *req, void *arg, const char *op, int with_data) {
    runner_t *r = ready_runner(req, arg);
    if (r == NULL)
        return;
    json_t *body = req_body(req);
    if (body == NULL)
        return;
    const char *path = json_string_value(json_object_get(body, "path"));
    const char *data = json_string_value(json_object_get(body, "data_b64"));
    if (path == NULL || (with_data && data == NULL)) {
        problem(req, 400, "invalid-api-params", "Missing or invalid API parameters.",
                with_data ? "expected {path, data_b64}" : "expected {path}");
        json_decref(body);
        return;
    }
    json_t *msg = json_pack("{s:s, s:s}", "op", op, "path", path);
    if (msg != NULL && with_data)
        json_object_set(msg, "data_b64", json_object_get(body, "data_b64"));
    json_decref(body);
    plain_call(req, r, C_FILES, msg);
}

static void h_files_list(baic_http_req_t *req, void *arg) {
    files_call(req, arg, "files.list", 0);
}

static void h_files_upload(baic_http_req_t *req, void *arg) {
    files_call(req, arg, "files.upload", 1);
}

static void h_files_download(baic_http_req_t *req, void *arg) {
    files_call(req, arg, "files.download", 0);
}

static void h_pty(baic_http_req_t *req, void *arg) {
    runner_t *r = ready_runner(req, arg);
    if (r == NULL)
        return;
    pty_t *p = calloc(1, sizeof *p);
    if (p == NULL || (p->early = json_array()) == NULL) {
        free(p);
        problem(req, 500, "internal-server-error", "Something went wrong.", "out of memory");
        return;
    }
    int rows = 24, cols = 80;
    const char *q = baic_http_query(req, "rows");
    if (q != NULL && atoi(q) > 0 && atoi(q) < 1000)
        rows = atoi(q);
    q = baic_http_query(req, "cols");
    if (q != NULL && atoi(q) > 0 && atoi(q) < 1000)
        cols = atoi(q);
    if (baic_http_ws_accept(req, on_ws_message, on_ws_close, p, &p->ws) != 0) {
        json_decref(p->early);
        free(p);
        return;
    }
    p->r = r;
    p->next = r->ptys;
    r->ptys = p;
    call_t *c = call_new(r, C_PTY_OPEN);
    int rc = c ? runner_send(r, json_pack("{s:I, s:s, s:i, s:i}", "id", c->id, "op", "pty.open",
                                          "cols", cols, "rows", rows))
               : UV_ENOMEM;
    if (rc != 0) {
        if (c != NULL) {
            call_unlink(r, c);
            free(c);
        }
        pty_close_ws(p, 1011, "kernel runner not reachable");
        return;
    }
    c->pty = p;
}

int agent_runner_routes(agent_t *a) {
    int rc;
    if ((rc = baic_http_route(a->http, "POST", "/rpc/kernels/{id}/execute", h_execute, a,
                              RPC_MAX_BODY)) != 0 ||
        (rc = baic_http_route(a->http, "POST", "/rpc/kernels/{id}/interrupt", h_interrupt, a,
                              0)) != 0 ||
        (rc = baic_http_route(a->http, "POST", "/rpc/kernels/{id}/complete", h_complete, a,
                              RPC_MAX_BODY)) != 0 ||
        (rc = baic_http_route(a->http, "POST", "/rpc/kernels/{id}/files/list", h_files_list, a,
                              0)) != 0 ||
        (rc = baic_http_route(a->http, "POST", "/rpc/kernels/{id}/files/upload", h_files_upload,
                              a, FILES_MAX_BODY)) != 0 ||
        (rc = baic_http_route(a->http, "POST", "/rpc/kernels/{id}/files/download",
                              h_files_download, a, 0)) != 0 ||
        (rc = baic_http_route(a->http, "GET", "/rpc/kernels/{id}/pty", h_pty, a, 0)) != 0)
        return rc;
    return 0;
}
