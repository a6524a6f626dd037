/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's RPC endpoints for the manager (docs/agent-protocol.md), behind the cluster HMAC. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "log/log.h"
#include "util/strerror.h"

#define RPC_MAX_BODY (4u << 20)

static int rpc_middleware(baic_http_req_t *req, void *arg) {
    agent_t *a = arg;
    const char *why = NULL;
    if (agent_auth_check(a, req, &why) != 0) {
        BAIC_LOG_W("rpc_auth_failed", "method=%s path=%s remote=%s reason=%s",
                   baic_http_method(req), baic_http_path(req), baic_http_remote_addr(req), why);
        baic_http_respond_problem(req, 401, "auth-failed", "Authentication failed.", why, NULL);
        return 1;
    }
    if (a->recovering || a->closing) {
        baic_http_add_header(req, "Retry-After", "1");
        baic_http_respond_problem(req, 503, "server-unavailable",
                                  "The agent is not ready.",
                                  a->closing ? "shutting down" : "recovering kernels", NULL);
        return 1;
    }
    return 0;
}

/* The body as a JSON object, or NULL after answering 400. */
static json_t *rpc_body(baic_http_req_t *req) {
    size_t len = 0;
    const char *body = baic_http_body(req, &len);
    json_error_t jerr;
    json_t *j = json_loadb(body ? body : "", len, 0, &jerr);
    if (j == NULL || !json_is_object(j)) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", j ? "body must be a JSON object" : jerr.text);
        json_decref(j);
        baic_http_respond_problem(req, 400, "invalid-api-params", "Missing or invalid API parameters.",
                                  msg, NULL);
        return NULL;
    }
    return j;
}

static void bad_params(baic_http_req_t *req, const char *msg) {
    baic_http_respond_problem(req, 400, "invalid-api-params", "Missing or invalid API parameters.",
                              msg, NULL);
}

static void h_health(baic_http_req_t *req, void *arg) {
    agent_t *a = arg;
    baic_http_respond_json(req, 200,
                           json_pack("{s:s, s:s}", "agent_id", a->id, "version", AGENT_VERSION));
}

static void h_create(baic_http_req_t *req, void *arg) {
    agent_t *a = arg;
    json_t *body = rpc_body(req);
    if (body == NULL)
        return;
    const char *sid = NULL, *sname = NULL, *akey = NULL;
    json_t *kernels = NULL;
    json_error_t jerr;
    char msg[512];
    if (json_unpack_ex(body, &jerr, 0, "{s:s, s:s, s:s, s:o}", "session_id", &sid, "session_name",
                       &sname, "access_key", &akey, "kernels", &kernels) != 0 ||
        !json_is_array(kernels) || json_array_size(kernels) == 0) {
        snprintf(msg, sizeof msg, "%s",
                 kernels != NULL ? "kernels must be a non-empty array" : jerr.text);
        bad_params(req, msg);
        json_decref(body);
        return;
    }
    size_t n = json_array_size(kernels);
    agent_kernel_t **ks = calloc(n, sizeof *ks);
    int rc = ks ? 0 : UV_ENOMEM;
    size_t i;
    for (i = 0; rc == 0 && i < n; i++) {
        const json_t *kid = json_object_get(json_array_get(kernels, i), "kernel_id");
        for (size_t j = 0; j < i && json_is_string(kid); j++)
            if (strcmp(ks[j]->id, json_string_value(kid)) == 0) {
                snprintf(msg, sizeof msg, "kernels[%zu].kernel_id: duplicate", i);
                rc = BAIC_EBAD_INPUT;
            }
        if (rc == 0)
            rc = agent_kernel_prepare(a, body, json_array_get(kernels, i), i, &ks[i], msg,
                                      sizeof msg);
    }
    if (rc != 0) {
        /* All or nothing: what the earlier kernels took goes back. */
        for (size_t j = 0; ks != NULL && j < n; j++)
            if (ks[j] != NULL)
                agent_kernel_discard(ks[j]);
        free(ks);
        BAIC_LOG_W("create_kernels_refused", "session=%s error=\"%s\" msg=\"%s\"", sid,
                   baic_strerror(rc), msg);
        if (rc == BAIC_EBAD_INPUT)
            bad_params(req, msg);
        else if (rc == BAIC_ENO_RESOURCES)
            baic_http_respond_problem(req, 409, "instance-not-available",
                                      "There is no available instance.", msg, NULL);
        else if (rc == BAIC_EEXISTS)
            baic_http_respond_problem(req, 409, "kernel-already-exists",
                                      "The kernel already exists.", msg, NULL);
        else
            baic_http_respond_problem(req, 500, "internal-server-error",
                                      "Something went wrong.", baic_strerror(rc), NULL);
        json_decref(body);
        return;
    }
    json_t *accepted = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(accepted, json_string(ks[i]->id));
        agent_kernel_launch(ks[i]);
    }
    free(ks);
    json_decref(body);
    baic_http_respond_json(req, 202, json_pack("{s:o}", "accepted", accepted));
}

static void h_destroy(baic_http_req_t *req, void *arg) {
    agent_t *a = arg;
    json_t *body = rpc_body(req);
    if (body == NULL)
        return;
    const char *kid = NULL, *reason = NULL;
    json_error_t jerr;
    if (json_unpack_ex(body, &jerr, 0, "{s:s, s?s}", "kernel_id", &kid, "reason", &reason) != 0) {
        bad_params(req, jerr.text);
        json_decref(body);
        return;
    }
    agent_kernel_t *k = agent_kernel_find(a, kid);
    if (k == NULL) {
        char msg[200];
        snprintf(msg, sizeof msg, "kernel %.64s", kid);
        json_decref(body);
        baic_http_respond_problem(req, 404, "object-not-found", "No such kernel.", msg, NULL);
        return;
    }
    /* The protocol's reasons are the manager's to choose; only the slug form is kept. */
    char r[32];
    snprintf(r, sizeof r, "%s", reason && *reason ? reason : "user-requested");
    for (char *p = r; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
            *p = '-';
    /* Answered first: the kernel may be gone when destroy returns. */
    baic_http_respond_json(req, 202, json_pack("{s:s}", "kernel_id", k->id));
    json_decref(body);
    agent_kernel_destroy(k, r);
}

static void h_kernels(baic_http_req_t *req, void *arg) {
    agent_t *a = arg;
    json_t *list = json_array();
    for (agent_kernel_t *k = a->kernels; k != NULL; k = k->next)
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:s, s:s?, s:O}", "kernel_id", k->id, "session_id",
                            k->session_id, "status", agent_kstate_name(k->state), "container_id",
                            k->created ? k->id : NULL, "resource_slots", k->slots));
    baic_http_respond_json(req, 200, json_pack("{s:o}", "kernels", list));
}

typedef struct stats_call {
    baic_http_req_t *req;
    char id[72];
} stats_call_t;

static void on_stats(void *arg, int status, const baic_rt_stats_t *st) {
    stats_call_t *c = arg;
    if (status != 0 || st == NULL) {
        baic_http_respond_problem(c->req, 502, "backend-error", "The runtime failed.",
                                  baic_strerror(status), NULL);
    } else {
        baic_http_respond_json(
            c->req, 200,
            json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "kernel_id", c->id,
                      "cpu_used_ns", (json_int_t)st->cpu_used_ns, "mem_used_bytes",
                      (json_int_t)st->mem_used_bytes, "mem_max_bytes",
                      (json_int_t)st->mem_max_bytes, "pids", (json_int_t)st->pids,
                      "net_rx_bytes", (json_int_t)st->net_rx_bytes, "net_tx_bytes",
                      (json_int_t)st->net_tx_bytes, "io_read_bytes",
                      (json_int_t)st->io_read_bytes, "io_write_bytes",
                      (json_int_t)st->io_write_bytes));
    }
}

static void h_stats(baic_http_req_t *req, void *arg) {
    agent_t *a = arg;
    const char *kid = baic_http_param(req, "id");
    agent_kernel_t *k = kid ? agent_kernel_find(a, kid) : NULL;
    if (k == NULL || !k->created) {
        baic_http_respond_problem(req, 404, "object-not-found", "No such kernel.", NULL, NULL);
        return;
    }
    if (a->rt->stats == NULL) {
        baic_http_respond_problem(req, 501, "not-implemented",
                                  "This runtime does not report stats.", NULL, NULL);
        return;
    }
    stats_call_t *c = baic_http_alloc(req, sizeof *c);
    if (c == NULL) {
        baic_http_respond_problem(req, 500, "internal-server-error", "Something went wrong.",
                                  NULL, NULL);
        return;
    }
    c->req = req;
    snprintf(c->id, sizeof c->id, "%s", k->id);
    int rc = a->rt->stats(a->runtime->state, k->id, on_stats, c);
    if (rc != 0)
        baic_http_respond_problem(req, rc == BAIC_ENOT_FOUND ? 404 : 502,
                                  rc == BAIC_ENOT_FOUND ? "object-not-found" : "backend-error",
                                  "The runtime failed.", baic_strerror(rc), NULL);
}

int agent_rpc_init(agent_t *a) {
    int rc;
    baic_http_set_middleware(a->http, rpc_middleware, a);
    if ((rc = baic_http_route(a->http, "GET", "/rpc/health", h_health, a, 0)) != 0 ||
        (rc = baic_http_route(a->http, "POST", "/rpc/create_kernels", h_create, a,
                              RPC_MAX_BODY)) != 0 ||
        (rc = baic_http_route(a->http, "POST", "/rpc/destroy_kernel", h_destroy, a, 0)) != 0 ||
        (rc = baic_http_route(a->http, "GET", "/rpc/kernels", h_kernels, a, 0)) != 0 ||
        (rc = baic_http_route(a->http, "GET", "/rpc/kernels/{id}/stats", h_stats, a, 0)) != 0 ||
        (rc = agent_ops_routes(a)) != 0 || (rc = agent_runner_routes(a)) != 0 ||
        (rc = agent_hostmount_routes(a)) != 0)
        return rc;
    return 0;
}
