/* SPDX-License-Identifier: Apache-2.0 */
/* Transfer tokens: HS256 JWTs signed with the secret the manager shares, checked for expiry, op and signature. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jwt.h>

#include "proxy.h"

static int64_t claim_int(const json_t *c, const char *k, int64_t def) {
    const json_t *v = json_object_get(c, k);
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_real(v))
        return (int64_t)json_real_value(v);
    return def;
}

int sp_token_check(sp_t *sp, baic_http_req_t *req, const char *want_op, sp_token_t *out) {
    memset(out, 0, sizeof *out);
    const char *tok = baic_http_query(req, "token");
    if (tok == NULL || *tok == '\0') {
        sp_fail(req, 401, "auth-failed", "Authentication failed.", "token is missing");
        return -1;
    }
    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, tok, (const unsigned char *)sp->jwt_secret,
                   (int)strlen(sp->jwt_secret)) != 0 || jwt == NULL) {
        sp_fail(req, 401, "auth-failed", "Authentication failed.",
                "token is malformed or its signature does not verify");
        return -1;
    }
    /* Only HS256: a token that names another algorithm (or none) is not ours. */
    int alg_ok = jwt_get_alg(jwt) == JWT_ALG_HS256;
    char *grants = alg_ok ? jwt_get_grants_json(jwt, NULL) : NULL;
    jwt_free(jwt);
    if (grants == NULL) {
        sp_fail(req, 401, "auth-failed", "Authentication failed.", "token algorithm must be HS256");
        return -1;
    }
    json_t *c = json_loads(grants, 0, NULL);
    free(grants);
    if (!json_is_object(c)) {
        json_decref(c);
        sp_fail(req, 401, "auth-failed", "Authentication failed.", "token claims are not an object");
        return -1;
    }
    int64_t exp = claim_int(c, "exp", -1);
    if (exp < 0 || exp < (int64_t)time(NULL)) {
        json_decref(c);
        sp_fail(req, 401, "auth-failed", "Authentication failed.",
                exp < 0 ? "token has no exp claim" : "token has expired");
        return -1;
    }
    out->claims = c;
    out->op = json_string_value(json_object_get(c, "op"));
    out->volume = json_string_value(json_object_get(c, "volume"));
    out->vfid = json_string_value(json_object_get(c, "vfid"));
    out->relpath = json_string_value(json_object_get(c, "relpath"));
    out->session = json_string_value(json_object_get(c, "session"));
    out->size = claim_int(c, "size", -1);
    out->archive = json_is_true(json_object_get(c, "archive"));
    if (out->op == NULL || strcmp(out->op, want_op) != 0) {
        sp_fail(req, 403, "generic-forbidden", "Forbidden operation.",
                "token is for op \"%s\", not \"%s\"", out->op ? out->op : "", want_op);
        json_decref(c);
        out->claims = NULL;
        return -1;
    }
    if (out->volume == NULL || out->vfid == NULL || out->relpath == NULL) {
        sp_fail(req, 403, "generic-forbidden", "Forbidden operation.",
                "token lacks volume, vfid or relpath");
        json_decref(c);
        out->claims = NULL;
        return -1;
    }
    return 0;
}

char *sp_token_issue(const sp_t *sp, json_t *claims, int64_t ttl_s) {
    jwt_t *jwt = NULL;
    if (jwt_new(&jwt) != 0)
        return NULL;
    json_t *c = json_deep_copy(claims);
    json_object_set_new(c, "exp", json_integer((json_int_t)time(NULL) + ttl_s));
    char *s = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    char *tok = NULL;
    if (s != NULL && jwt_add_grants_json(jwt, s) == 0 &&
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)sp->jwt_secret,
                    (int)strlen(sp->jwt_secret)) == 0)
        tok = jwt_encode_str(jwt);
    free(s);
    jwt_free(jwt);
    return tok;
}
