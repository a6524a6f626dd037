/* SPDX-License-Identifier: Apache-2.0 */
/* POST /auth/authorize: password login through the configured auth plugin. */
#include "manager.h"

#include <string.h>

#include <baic/auth.h>

#include "log/log.h"

typedef struct login {
    baic_api_op_t *op;
    json_t *user; /* stored record or NULL */
    char *domain, *username, *password;
} login_t;

static void login_free(login_t *l) {
    json_decref(l->user);
    free(l->domain);
    free(l->username);
    if (l->password) {
        memset(l->password, 0, strlen(l->password));
        free(l->password);
    }
    free(l);
}

static void denied(baic_http_req_t *req, const char *reason) {
    baic_http_respond_problem(req, 401, "auth-failed", "Credential/signature mismatch.",
                              reason ? reason : "Invalid credentials.", NULL);
}

static void keys_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    login_t *l = arg;
    baic_api_op_t *op = l->op;
    if (baic_api_op_gone(op)) {
        login_free(l);
        return;
    }
    if (err != 0 || baic_db_result_rows(res) == 0) {
        if (err != 0)
            BAIC_LOG_W("authorize_keypair_lookup_failed", "error=\"%s\"", errmsg ? errmsg : "");
        baic_http_respond_problem(op->req, 401, "auth-failed", "Credential/signature mismatch.",
                                  "No active keypair belongs to this user.", NULL);
        login_free(l);
        return;
    }
    json_t *data = json_pack("{s:s, s:s, s:s, s:s}", "access_key",
                             baic_db_result_get_by_name(res, 0, "access_key"), "secret_key",
                             baic_db_result_get_by_name(res, 0, "secret_key"), "role",
                             json_string_value(json_object_get(l->user, "role")), "status",
                             json_string_value(json_object_get(l->user, "status")));
    BAIC_LOG_I("login", "user=%s domain=%s", l->username, l->domain);
    baic_http_respond_json(op->req, 200, json_pack("{s:o}", "data", data));
    login_free(l);
}

static void auth_done(const baic_auth_result_t *r, void *arg) {
    login_t *l = arg;
    baic_api_op_t *op = l->op;
    if (baic_api_op_gone(op)) {
        login_free(l);
        return;
    }
    if (r->outcome == BAIC_AUTH_ERROR) {
        BAIC_LOG_W("login_error", "user=%s code=%d", l->username, r->error);
        baic_api_unavailable(op->req, "The login backend could not decide; retry shortly.");
        login_free(l);
        return;
    }
    if (r->outcome != BAIC_AUTH_OK || l->user == NULL) {
        BAIC_LOG_I("login_denied", "user=%s domain=%s", l->username, l->domain);
        denied(op->req, r->reason);
        login_free(l);
        return;
    }
    const char *uuid = json_string_value(json_object_get(l->user, "uuid"));
    const char *params[1] = {uuid};
    if (baic_db_query(op->m->db,
                      "SELECT access_key, secret_key FROM keypairs WHERE \"user\" = $1 AND "
                      "is_active ORDER BY is_admin DESC, created_at LIMIT 1",
                      1, params, keys_done, l) != 0) {
        baic_api_unavailable(op->req, "The database is not reachable.");
        login_free(l);
    }
}

static void user_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    login_t *l = arg;
    baic_api_op_t *op = l->op;
    if (baic_api_op_gone(op)) {
        login_free(l);
        return;
    }
    if (err != 0) {
        BAIC_LOG_W("authorize_user_lookup_failed", "error=\"%s\"", errmsg ? errmsg : "");
        baic_api_unavailable(op->req, "The database is not reachable.");
        login_free(l);
        return;
    }
    if (baic_db_result_rows(res) > 0) {
        l->user = json_object();
        for (int c = 0; c < baic_db_result_cols(res); c++)
            if (!baic_db_result_is_null(res, 0, c))
                json_object_set_new(l->user, baic_db_result_col_name(res, c),
                                    json_string(baic_db_result_get(res, 0, c)));
        const char *status = json_string_value(json_object_get(l->user, "status"));
        if (status && strcmp(status, "active") != 0) {
            /* Still run the plugin so timing does not reveal the account's state. */
            json_object_set_new(l->user, "status", json_string(status));
        }
    }
    const baic_auth_ops_t *ops = op->m->auth_plugin->ops;
    baic_auth_request_t ar = {
        .size = sizeof ar,
        .type = BAIC_AUTH_REQ_PASSWORD,
        .domain = l->domain,
        .username = l->username,
        .password = l->password,
        .user = l->user,
        .client_addr = baic_http_remote_addr(op->req),
    };
    if (ops->authenticate(op->m->auth_plugin->state, &ar, auth_done, l) != 0) {
        baic_api_unavailable(op->req, "The login backend is not available.");
        login_free(l);
    }
}

static void post_authorize(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    if (m->auth_plugin == NULL) {
        baic_http_respond_problem(req, 400, "not-implemented", "Not implemented.",
                                  "No auth plugin is loaded; add one to [plugins] load.", NULL);
        return;
    }
    json_t *body = baic_api_json_body(req);
    if (body == NULL)
        return;
    const char *type = "keypair", *domain = NULL, *username = NULL, *password = NULL;
    json_error_t e;
    if (json_unpack_ex(body, &e, 0, "{s?s, s:s, s:s, s:s}", "type", &type, "domain", &domain,
                       "username", &username, "password", &password) != 0) {
        json_decref(body);
        baic_api_invalid_params(req, e.text);
        return;
    }
    if (strcmp(type, "keypair") != 0) {
        json_decref(body);
        baic_api_invalid_params(req, "Only type \"keypair\" is supported.");
        return;
    }
    login_t *l = calloc(1, sizeof *l);
    l->op = baic_api_op_new(req, m, who);
    l->domain = strdup(domain);
    l->username = strdup(username);
    l->password = strdup(password);
    json_decref(body);
    const char *params[2] = {l->username, l->domain};
    if (baic_db_query(m->db,
                      "SELECT uuid::text AS uuid, email, username, domain_name, role, status, "
                      "password FROM users WHERE (email = $1 OR username = $1) AND domain_name = $2",
                      2, params, user_done, l) != 0) {
        baic_api_unavailable(req, "The database is not reachable.");
        login_free(l);
    }
}

int baic_api_auth_init(baic_manager_t *m) {
    return baic_api_route(m, "POST", "/auth/authorize", BAIC_ROUTE_PUBLIC, post_authorize,
                          64 * 1024);
}
