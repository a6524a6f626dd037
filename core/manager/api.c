/* SPDX-License-Identifier: Apache-2.0 */
/* Route trampoline: authenticates each request at its route's level, then calls the API. */
#include "manager.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/sign.h"
#include "log/log.h"
#include "ratelimit.h"

typedef struct api_route {
    struct api_route *next;
    baic_manager_t *m;
    baic_api_fn fn;
    int level;
} api_route_t;

typedef struct auth_op {
    baic_api_op_t op;
    const api_route_t *route;
    baic_auth_hdr_t hdr;
    baic_caller_t who;
} auth_op_t;

int64_t baic_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_abort(baic_http_req_t *req, void *arg) {
    baic_api_op_t *op = arg;
    (void)req;
    op->aborted = 1;
}

baic_api_op_t *baic_api_op_new(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    baic_api_op_t *op = baic_http_alloc(req, sizeof *op);
    memset(op, 0, sizeof *op);
    op->req = req;
    op->m = m;
    op->who = who;
    baic_http_req_on_abort(req, on_abort, op);
    return op;
}

int baic_api_op_gone(baic_api_op_t *op) {
    if (!op->aborted)
        return 0;
    baic_http_req_release(op->req);
    return 1;
}

void baic_api_bad_request(baic_http_req_t *req, const char *msg) {
    baic_http_respond_problem(req, 400, "generic-bad-request", "Bad request.", msg, NULL);
}
void baic_api_invalid_params(baic_http_req_t *req, const char *msg) {
    baic_http_respond_problem(req, 400, "invalid-api-params", "Missing or invalid API parameters.",
                              msg, NULL);
}
void baic_api_not_found(baic_http_req_t *req, const char *what, const char *msg) {
    char title[96];
    snprintf(title, sizeof title, "No such %s.", what);
    baic_http_respond_problem(req, 404, "object-not-found", title, msg, NULL);
}
void baic_api_forbidden(baic_http_req_t *req, const char *msg) {
    baic_http_respond_problem(req, 403, "insufficient-privilege", "Insufficient privilege.", msg,
                              NULL);
}
void baic_api_internal(baic_http_req_t *req, const char *msg) {
    baic_http_respond_problem(req, 500, "internal-server-error", "Internal server error.", msg,
                              NULL);
}
void baic_api_unavailable(baic_http_req_t *req, const char *msg) {
    baic_http_respond_problem(req, 503, "service-unavailable", "Service unavailable.", msg, NULL);
}

json_t *baic_api_json_body(baic_http_req_t *req) {
    size_t len;
    const char *body = baic_http_body(req, &len);
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'))
        i++;
    if (i == len)
        return json_object();
    json_error_t e;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
    if (j == NULL) {
        char msg[300];
        snprintf(msg, sizeof msg, "Malformed JSON body at line %d column %d: %s", e.line,
                 e.column, e.text);
        baic_api_invalid_params(req, msg);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        baic_api_invalid_params(req, "The request body must be a JSON object.");
        return NULL;
    }
    return j;
}

static void auth_problem(baic_http_req_t *req, baic_auth_fail_t why) {
    int status = baic_auth_fail_http_status(why);
    if (status == 401)
        baic_http_respond_problem(req, 401, "auth-failed", "Credential/signature mismatch.",
                                  baic_auth_fail_msg(why), NULL);
    else
        baic_http_respond_problem(req, 400, "invalid-auth-params",
                                  "Missing or invalid authorization parameters.",
                                  baic_auth_fail_msg(why), NULL);
}

static char *arena_dup(baic_http_req_t *req, const char *s) {
    return s ? baic_http_strdup(req, s) : NULL;
}

static void rate_limited(const baic_ratelimit_result_t *r, void *arg) {
    auth_op_t *a = arg;
    baic_http_req_t *req = a->op.req;
    if (baic_api_op_gone(&a->op))
        return;
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", r->limit);
    baic_http_add_header(req, "X-RateLimit-Limit", buf);
    snprintf(buf, sizeof buf, "%lld", r->remaining);
    baic_http_add_header(req, "X-RateLimit-Remaining", buf);
    snprintf(buf, sizeof buf, "%u", r->window_s);
    baic_http_add_header(req, "X-RateLimit-Window", buf);
    if (r->exceeded) {
        baic_http_respond_problem(req, 429, "rate-limit-exceeded", "Rate limit exceeded.",
                                  "Too many requests for this access key; retry later.", NULL);
        return;
    }
    baic_http_req_on_abort(req, NULL, NULL);
    a->route->fn(req, a->route->m, &a->who);
}

static void keypair_found(baic_keypair_t *kp, int err, void *arg) {
    auth_op_t *a = arg;
    baic_http_req_t *req = a->op.req;
    if (baic_api_op_gone(&a->op))
        return;
    if (err != 0) {
        baic_api_unavailable(req, "The credential store is not reachable; retry shortly.");
        return;
    }
    if (kp == NULL) {
        baic_http_respond_problem(req, 401, "auth-failed", "Credential/signature mismatch.",
                                  "Access key not found.", NULL);
        return;
    }
    baic_auth_signed_req_t sr = {
        .method = baic_http_method(req),
        .raw_path = baic_http_raw_path(req),
        .host = baic_http_header(req, "Host"),
        .content_type = baic_http_header(req, "Content-Type"),
        .version = baic_http_header(req, "X-BackendAI-Version"),
        .sorna_version = baic_http_header(req, "X-Sorna-Version"),
    };
    if (sr.host == NULL)
        sr.host = "";
    sr.date = baic_http_header(req, "Date");
    if (sr.date == NULL)
        sr.date = baic_http_header(req, "X-BackendAI-Date");
    if (sr.date == NULL)
        sr.date = baic_http_header(req, "X-Sorna-Date");
    baic_auth_fail_t why = BAIC_AUTH_FAIL_NONE;
    int rc = baic_auth_verify_request_kc(&sr, &a->hdr, kp->secret_key, strlen(kp->secret_key),
                                         baic_wall_ms(), &kp->kc, &why);
    if (rc != 0) {
        if (rc == BAIC_EINTERNAL) {
            baic_api_internal(req, "Signature computation failed.");
            return;
        }
        BAIC_LOG_I("auth_denied", "access_key=%s reason=\"%s\" path=%s", kp->access_key,
                   baic_auth_fail_msg(why), baic_http_path(req));
        auth_problem(req, why);
        return;
    }
    if (!kp->is_active || (kp->status != NULL && strcmp(kp->status, "active") != 0)) {
        baic_http_respond_problem(req, 401, "auth-failed", "Credential/signature mismatch.",
                                  "This access key or its user is deactivated.", NULL);
        return;
    }
    baic_caller_t *w = &a->who;
    w->access_key = arena_dup(req, kp->access_key);
    w->user_uuid = arena_dup(req, kp->user_uuid);
    w->email = arena_dup(req, kp->email);
    w->role = arena_dup(req, kp->role ? kp->role : "user");
    w->domain = arena_dup(req, kp->domain ? kp->domain : "default");
    w->is_superadmin = kp->role && strcmp(kp->role, "superadmin") == 0;
    w->is_admin = kp->is_admin || w->is_superadmin || (kp->role && strcmp(kp->role, "admin") == 0);
    w->api_version = arena_dup(req, sr.version ? sr.version : sr.sorna_version);
    if ((a->route->level == BAIC_ROUTE_ADMIN && !w->is_admin) ||
        (a->route->level == BAIC_ROUTE_SUPERADMIN && !w->is_superadmin)) {
        baic_api_forbidden(req, "This API is for administrators only.");
        return;
    }
    baic_ratelimit_check(a->route->m, kp->access_key, kp->rate_limit, rate_limited, a);
}

static void route_entry(baic_http_req_t *req, void *arg) {
    const api_route_t *r = arg;
    if (r->level == BAIC_ROUTE_PUBLIC) {
        baic_http_add_header(req, "X-RateLimit-Limit", "1000");
        baic_http_add_header(req, "X-RateLimit-Remaining", "1000");
        baic_http_add_header(req, "X-RateLimit-Window", "900");
        r->fn(req, r->m, NULL);
        return;
    }
    const char *authz = baic_http_header(req, "Authorization");
    if (authz == NULL) {
        baic_http_respond_problem(req, 401, "auth-failed", "Credential/signature mismatch.",
                                  "This API requires a signed request (Authorization header).",
                                  NULL);
        return;
    }
    auth_op_t *a = baic_http_alloc(req, sizeof *a);
    memset(a, 0, sizeof *a);
    a->route = r;
    if (baic_auth_parse_header(authz, strlen(authz), &a->hdr) != 0) {
        auth_problem(req, a->hdr.fail != BAIC_AUTH_FAIL_NONE ? a->hdr.fail : BAIC_AUTH_FAIL_HEADER);
        return;
    }
    /* Version and date are checked before the key is looked up, as the reference
     * manager does, so a skewed clock is reported as such even for unknown keys. */
    const char *ver = baic_http_header(req, "X-BackendAI-Version");
    if (ver == NULL)
        ver = baic_http_header(req, "X-Sorna-Version");
    if (ver == NULL) {
        auth_problem(req, BAIC_AUTH_FAIL_VERSION_MISSING);
        return;
    }
    if (!baic_auth_version_supported(ver)) {
        auth_problem(req, BAIC_AUTH_FAIL_VERSION_UNSUPPORTED);
        return;
    }
    const char *date = baic_http_header(req, "Date");
    if (date == NULL)
        date = baic_http_header(req, "X-BackendAI-Date");
    if (date == NULL)
        date = baic_http_header(req, "X-Sorna-Date");
    baic_auth_fail_t why;
    if (baic_auth_check_date(date, baic_wall_ms(), &why) != 0) {
        auth_problem(req, why);
        return;
    }
    a->op.req = req;
    a->op.m = r->m;
    baic_http_req_on_abort(req, on_abort, &a->op);
    baic_keycache_get(r->m->keys, a->hdr.access_key, keypair_found, a);
}

int baic_api_route(baic_manager_t *m, const char *method, const char *pattern, int level,
                   baic_api_fn fn, size_t max_body) {
    api_route_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return -ENOMEM;
    r->m = m;
    r->fn = fn;
    r->level = level;
    int rc = baic_http_route(m->http, method, pattern, route_entry, r, max_body);
    if (rc != 0) {
        free(r);
        return rc;
    }
    r->next = m->routes;
    m->routes = r;
    return 0;
}

void baic_api_routes_free(baic_manager_t *m) {
    for (api_route_t *r = m->routes, *n; r; r = n) {
        n = r->next;
        free(r);
    }
    m->routes = NULL;
}
