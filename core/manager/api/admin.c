/* SPDX-License-Identifier: Apache-2.0 */
/* Admin REST surface: create, read, change and delete tenancy objects (until GraphQL). */
#include "manager.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <baic/auth.h>

#include "log/log.h"

/*
 * One table describes each object kind; the SQL is built from these static column
 * names only, and every value travels as a parameter. Columns not listed here can
 * be neither set nor filtered on.
 */
enum ftype { F_STR, F_INT, F_BOOL, F_JSON, F_UUID, F_STRLIST };
enum { F_CREATE_ONLY = 1, F_REQUIRED = 2 };

typedef struct field {
    const char *name;
    enum ftype type;
    int flags;
} field_t;

typedef struct entity {
    const char *path;     /* /admin/rest/<path> */
    const char *table;
    const char *key;      /* column the {key} path segment matches */
    enum ftype key_type;
    const char *hidden;   /* " - 'col' - 'col'" removed from every row returned */
    const char *what;     /* for messages: "domain" */
    int has_modified_at;
    int invalidates_keys; /* changes may change what a keypair may do */
    const field_t *fields;
} entity_t;

#define END {NULL, 0, 0}

static const field_t domain_fields[] = {
    {"name", F_STR, F_CREATE_ONLY | F_REQUIRED}, {"description", F_STR, 0},
    {"is_active", F_BOOL, 0}, {"total_resource_slots", F_JSON, 0},
    {"allowed_vfolder_hosts", F_JSON, 0}, {"integration_id", F_STR, 0}, END};
static const field_t group_fields[] = {
    {"name", F_STR, F_REQUIRED}, {"domain_name", F_STR, F_CREATE_ONLY | F_REQUIRED},
    {"description", F_STR, 0}, {"is_active", F_BOOL, 0}, {"total_resource_slots", F_JSON, 0},
    {"allowed_vfolder_hosts", F_JSON, 0}, {"integration_id", F_STR, 0},
    {"resource_policy", F_STR, F_REQUIRED}, {"type", F_STR, 0}, END};
static const field_t user_fields[] = {
    {"email", F_STR, F_CREATE_ONLY | F_REQUIRED}, {"username", F_STR, 0},
    {"need_password_change", F_BOOL, 0}, {"full_name", F_STR, 0}, {"description", F_STR, 0},
    {"status", F_STR, 0}, {"domain_name", F_STR, F_REQUIRED}, {"role", F_STR, 0},
    {"resource_policy", F_STR, F_REQUIRED}, {"allowed_client_ip", F_STRLIST, 0},
    {"sudo_session_enabled", F_BOOL, 0}, END};
static const field_t keypair_fields[] = {
    {"is_active", F_BOOL, 0}, {"is_admin", F_BOOL, 0}, {"rate_limit", F_INT, 0},
    {"resource_policy", F_STR, 0}, {"ssh_public_key", F_STR, 0}, END};
static const field_t kp_policy_fields[] = {
    {"name", F_STR, F_CREATE_ONLY | F_REQUIRED}, {"default_for_unspecified", F_STR, 0},
    {"total_resource_slots", F_JSON, 0}, {"max_session_lifetime", F_INT, 0},
    {"max_concurrent_sessions", F_INT, 0}, {"max_pending_session_count", F_INT, 0},
    {"max_pending_session_resource_slots", F_JSON, 0}, {"max_concurrent_sftp_sessions", F_INT, 0},
    {"max_containers_per_session", F_INT, 0}, {"idle_timeout", F_INT, 0},
    {"allowed_vfolder_hosts", F_JSON, 0}, END};
static const field_t user_policy_fields[] = {
    {"name", F_STR, F_CREATE_ONLY | F_REQUIRED}, {"max_vfolder_count", F_INT, 0},
    {"max_quota_scope_size", F_INT, 0}, {"max_session_count_per_model_session", F_INT, 0},
    {"max_customized_image_count", F_INT, 0}, END};
static const field_t project_policy_fields[] = {
    {"name", F_STR, F_CREATE_ONLY | F_REQUIRED}, {"max_vfolder_count", F_INT, 0},
    {"max_quota_scope_size", F_INT, 0}, {"max_network_count", F_INT, 0}, END};
static const field_t sgroup_fields[] = {
    {"name", F_STR, F_CREATE_ONLY | F_REQUIRED}, {"description", F_STR, 0},
    {"is_active", F_BOOL, 0}, {"is_public", F_BOOL, 0}, {"wsproxy_addr", F_STR, 0},
    {"driver", F_STR, 0}, {"driver_opts", F_JSON, 0}, {"scheduler", F_STR, 0},
    {"scheduler_opts", F_JSON, 0}, {"agent_selector", F_STR, 0},
    {"agent_selector_opts", F_JSON, 0}, {"use_host_network", F_BOOL, 0}, END};
static const field_t preset_fields[] = {
    {"name", F_STR, F_CREATE_ONLY | F_REQUIRED}, {"resource_slots", F_JSON, F_REQUIRED},
    {"shared_memory", F_INT, 0}, {"scaling_group_name", F_STR, 0}, END};

static const entity_t entities[] = {
    {"domains", "domains", "name", F_STR, " - 'dotfiles'", "domain", 1, 1, domain_fields},
    {"groups", "groups", "id", F_UUID, " - 'dotfiles'", "group", 1, 0, group_fields},
    {"users", "users", "email", F_STR, " - 'password' - 'totp_key'", "user", 1, 1, user_fields},
    {"keypairs", "keypairs", "access_key", F_STR, " - 'dotfiles' - 'ssh_private_key'", "keypair",
     1, 1, keypair_fields},
    {"keypair-resource-policies", "keypair_resource_policies", "name", F_STR, "",
     "keypair resource policy", 0, 0, kp_policy_fields},
    {"user-resource-policies", "user_resource_policies", "name", F_STR, "", "user resource policy",
     0, 0, user_policy_fields},
    {"project-resource-policies", "project_resource_policies", "name", F_STR, "",
     "project resource policy", 0, 0, project_policy_fields},
    {"scaling-groups", "scaling_groups", "name", F_STR, " - 'wsproxy_api_token'", "resource group",
     0, 0, sgroup_fields},
    {"resource-presets", "resource_presets", "name", F_STR, "", "resource preset", 0, 0,
     preset_fields},
};
#define NENTITIES (sizeof entities / sizeof entities[0])

static const char *const CASTS[] = {"text", "bigint", "boolean", "jsonb", "uuid", "text[]"};

/* ---- SQL assembly: fixed names from the tables above, $n for every value ---- */

typedef struct sqlbuf {
    char s[4096];
    size_t n;
    int overflow;
} sqlbuf_t;

static void sb(sqlbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb(sqlbuf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->s + b->n, sizeof b->s - b->n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof b->s - b->n)
        b->overflow = 1;
    else
        b->n += (size_t)k;
}

typedef struct params {
    const char *v[48];
    char *owned[48];
    int n;
} params_t;

static int param_add(params_t *p, const char *v, int own) {
    if (p->n >= 48)
        return -1;
    p->v[p->n] = v;
    p->owned[p->n] = own ? (char *)v : NULL;
    return ++p->n;
}

static void params_free(params_t *p) {
    for (int i = 0; i < p->n; i++)
        free(p->owned[i]);
}

/* Renders a JSON value as the text of a parameter of type t; NULL when json null.
 * Returns 0, or -EINVAL with msg set when the type is wrong. */
static int value_text(const field_t *f, const json_t *v, char **out, char *msg, size_t n) {
    *out = NULL;
    if (json_is_null(v))
        return 0;
    char buf[64];
    switch (f->type) {
    case F_STR:
    case F_UUID:
        if (!json_is_string(v))
            goto wrong;
        *out = strdup(json_string_value(v));
        return 0;
    case F_INT:
        if (!json_is_integer(v))
            goto wrong;
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        *out = strdup(buf);
        return 0;
    case F_BOOL:
        if (!json_is_boolean(v))
            goto wrong;
        *out = strdup(json_is_true(v) ? "true" : "false");
        return 0;
    case F_JSON:
        if (!json_is_object(v))
            goto wrong;
        *out = json_dumps(v, JSON_COMPACT);
        return 0;
    case F_STRLIST: {
        if (!json_is_array(v))
            goto wrong;
        /* A PostgreSQL array literal with every element quoted and escaped. */
        size_t cap = 3, i;
        const json_t *e;
        json_array_foreach(v, i, e) {
            if (!json_is_string(e))
                goto wrong;
            cap += 3 + 2 * strlen(json_string_value(e));
        }
        char *s = malloc(cap), *w = s;
        *w++ = '{';
        json_array_foreach(v, i, e) {
            if (i)
                *w++ = ',';
            *w++ = '"';
            for (const char *c = json_string_value(e); *c; c++) {
                if (*c == '"' || *c == '\\')
                    *w++ = '\\';
                *w++ = *c;
            }
            *w++ = '"';
        }
        *w++ = '}';
        *w = '\0';
        *out = s;
        return 0;
    }
    }
wrong:
    snprintf(msg, n, "Field '%s' must be %s.", f->name,
             (const char *[]){"a string", "an integer", "a boolean", "a JSON object",
                              "a UUID string", "a list of strings"}[f->type]);
    return -EINVAL;
}

static const field_t *field_find(const entity_t *e, const char *name) {
    for (const field_t *f = e->fields; f->name; f++)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

/* Checks every key of body against the entity; fills params and the column list. */
static int collect(const entity_t *e, const json_t *body, int creating, params_t *p,
                   const field_t **cols, int *ncols, char *msg, size_t n) {
    const char *k;
    json_t *v;
    *ncols = 0;
    json_object_foreach((json_t *)body, k, v) {
        const field_t *f = field_find(e, k);
        if (f == NULL) {
            snprintf(msg, n, "Unknown field '%.64s' for a %s.", k, e->what);
            return -EINVAL;
        }
        if (!creating && (f->flags & F_CREATE_ONLY)) {
            snprintf(msg, n, "Field '%s' cannot be changed.", k);
            return -EINVAL;
        }
        char *text;
        if (value_text(f, v, &text, msg, n) != 0)
            return -EINVAL;
        if (param_add(p, text, 1) < 0) {
            free(text);
            snprintf(msg, n, "Too many fields.");
            return -EINVAL;
        }
        cols[(*ncols)++] = f;
    }
    if (creating) {
        for (const field_t *f = e->fields; f->name; f++) {
            if ((f->flags & F_REQUIRED) && json_object_get(body, f->name) == NULL) {
                snprintf(msg, n, "Field '%s' is required.", f->name);
                return -EINVAL;
            }
        }
    }
    return 0;
}

/* ---- answering ---- */

typedef struct admin_call {
    baic_api_op_t *op;
    const entity_t *e;
    int status_ok; /* 200 or 201 */
    int many;      /* list: an array of rows */
    char *key;     /* for messages and cache invalidation */
    params_t p;
    json_t *body;
    char *password; /* users: to hash before the insert */
    char *hash;
    char *sql;
} admin_call_t;

static void call_free(admin_call_t *c) {
    params_free(&c->p);
    json_decref(c->body);
    if (c->password) {
        memset(c->password, 0, strlen(c->password));
        free(c->password);
    }
    free(c->hash);
    free(c->key);
    free(c->sql);
    free(c);
}

static void db_error(baic_http_req_t *req, const entity_t *e, const baic_db_result_t *res,
                     const char *errmsg) {
    const char *state = res ? baic_db_result_sqlstate(res) : NULL;
    char msg[512];
    if (state && strcmp(state, "23505") == 0) {
        snprintf(msg, sizeof msg, "A %s with this key already exists.", e->what);
        baic_http_respond_problem(req, 400, "generic-bad-request", "Already exists.", msg, NULL);
    } else if (state && strcmp(state, "23503") == 0) {
        snprintf(msg, sizeof msg, "It refers to an object that does not exist, or other objects "
                                  "still refer to this %s.", e->what);
        baic_api_invalid_params(req, msg);
    } else if (state && (strcmp(state, "23514") == 0 || strcmp(state, "22P02") == 0 ||
                         strcmp(state, "23502") == 0 || strcmp(state, "22003") == 0)) {
        snprintf(msg, sizeof msg, "A value is not allowed here: %s",
                 errmsg ? errmsg : "constraint violated");
        baic_api_invalid_params(req, msg);
    } else {
        BAIC_LOG_W("admin_query_failed", "entity=%s sqlstate=%s error=\"%s\"", e->path,
                   state ? state : "-", errmsg ? errmsg : "");
        baic_api_unavailable(req, "The database could not complete the request.");
    }
}

static void rows_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    admin_call_t *c = arg;
    baic_http_req_t *req = c->op->req;
    if (baic_api_op_gone(c->op)) {
        call_free(c);
        return;
    }
    if (err != 0) {
        db_error(req, c->e, res, errmsg);
        call_free(c);
        return;
    }
    int rows = baic_db_result_rows(res);
    if (c->many) {
        json_t *items = json_array();
        for (int r = 0; r < rows; r++)
            json_array_append_new(items, json_loads(baic_db_result_get(res, r, 0), 0, NULL));
        baic_http_respond_json(req, 200, json_pack("{s:o}", "items", items));
    } else if (rows == 0) {
        baic_api_not_found(req, c->e->what, NULL);
    } else {
        if (c->e->invalidates_keys && c->status_ok != 201) {
            /* Users and domains change what many keys may do: drop them all. */
            baic_keycache_invalidate(c->op->m->keys,
                                     strcmp(c->e->path, "keypairs") == 0 ? c->key : NULL);
        }
        json_t *row = json_loads(baic_db_result_get(res, 0, 0), 0, NULL);
        baic_http_respond_json(req, c->status_ok, row ? row : json_object());
    }
    call_free(c);
}

static void run(admin_call_t *c, const char *sql) {
    if (baic_db_query(c->op->m->db, sql, c->p.n, c->p.v, rows_done, c) != 0) {
        baic_api_unavailable(c->op->req, "The database is not reachable.");
        call_free(c);
    }
}

static admin_call_t *call_new(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who,
                              const entity_t *e) {
    admin_call_t *c = calloc(1, sizeof *c);
    c->op = baic_api_op_new(req, m, who);
    c->e = e;
    c->status_ok = 200;
    const char *key = baic_http_param(req, "key");
    c->key = key ? strdup(key) : NULL;
    return c;
}

static const entity_t *entity_of(baic_http_req_t *req) {
    const char *pattern = baic_http_route_pattern(req);
    for (size_t i = 0; i < NENTITIES; i++) {
        size_t n = strlen("/admin/rest/");
        if (strncmp(pattern + n, entities[i].path, strlen(entities[i].path)) == 0 &&
            (pattern[n + strlen(entities[i].path)] == '\0' ||
             pattern[n + strlen(entities[i].path)] == '/'))
            return &entities[i];
    }
    return NULL;
}

/* ---- generic handlers ---- */

static void h_list(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    const entity_t *e = entity_of(req);
    const char *ls = baic_http_query(req, "limit"), *os = baic_http_query(req, "offset");
    char *end;
    long limit = ls ? strtol(ls, &end, 10) : 100, offset = os ? strtol(os, &end, 10) : 0;
    if (limit < 1 || limit > 1000 || offset < 0) {
        baic_api_invalid_params(req, "limit must be 1..1000 and offset >= 0.");
        return;
    }
    admin_call_t *c = call_new(req, m, who, e);
    c->many = 1;
    char lb[32], ob[32];
    snprintf(lb, sizeof lb, "%ld", limit);
    snprintf(ob, sizeof ob, "%ld", offset);
    param_add(&c->p, strdup(lb), 1);
    param_add(&c->p, strdup(ob), 1);
    sqlbuf_t b = {0};
    sb(&b, "SELECT (to_jsonb(t)%s)::text FROM %s t ORDER BY %s LIMIT $1 OFFSET $2", e->hidden,
       e->table, e->key);
    run(c, b.s);
}

static void h_get(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    const entity_t *e = entity_of(req);
    admin_call_t *c = call_new(req, m, who, e);
    param_add(&c->p, strdup(c->key), 1);
    sqlbuf_t b = {0};
    sb(&b, "SELECT (to_jsonb(t)%s)::text FROM %s t WHERE %s = $1::%s", e->hidden, e->table,
       e->key, CASTS[e->key_type]);
    run(c, b.s);
}

static void h_delete(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    const entity_t *e = entity_of(req);
    admin_call_t *c = call_new(req, m, who, e);
    param_add(&c->p, strdup(c->key), 1);
    sqlbuf_t b = {0};
    if (strcmp(e->path, "users") == 0) {
        /* Users are marked deleted and their keys disabled, as Backend.AI does; their
         * sessions and folders keep a valid owner. */
        sb(&b, "WITH u AS (UPDATE users t SET status = 'deleted', modified_at = now()"
               " WHERE email = $1 RETURNING t.*), k AS (UPDATE keypairs SET is_active = false"
               " WHERE \"user\" IN (SELECT uuid FROM u)) SELECT (to_jsonb(u)%s)::text FROM u",
           e->hidden);
    } else {
        sb(&b, "DELETE FROM %s t WHERE %s = $1::%s RETURNING (to_jsonb(t)%s)::text", e->table,
           e->key, CASTS[e->key_type], e->hidden);
    }
    run(c, b.s);
}

static void h_update(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    const entity_t *e = entity_of(req);
    json_t *body = baic_api_json_body(req);
    if (body == NULL)
        return;
    admin_call_t *c = call_new(req, m, who, e);
    c->body = body;
    const field_t *cols[48];
    int ncols;
    char msg[256];
    if (collect(e, body, 0, &c->p, cols, &ncols, msg, sizeof msg) != 0 || ncols == 0) {
        baic_api_invalid_params(req, ncols == 0 && msg[0] == '\0' ? "Nothing to change." : msg);
        call_free(c);
        return;
    }
    sqlbuf_t b = {0};
    sb(&b, "UPDATE %s t SET ", e->table);
    for (int i = 0; i < ncols; i++)
        sb(&b, "%s%s = $%d::%s", i ? ", " : "", cols[i]->name, i + 1, CASTS[cols[i]->type]);
    if (e->has_modified_at)
        sb(&b, ", modified_at = now()");
    int kp = param_add(&c->p, strdup(c->key), 1);
    sb(&b, " WHERE %s = $%d::%s RETURNING (to_jsonb(t)%s)::text", e->key, kp, CASTS[e->key_type],
       e->hidden);
    run(c, b.s);
}

static void build_insert(admin_call_t *c, const field_t **cols, int ncols, sqlbuf_t *b) {
    const entity_t *e = c->e;
    sb(b, "INSERT INTO %s AS t (", e->table);
    for (int i = 0; i < ncols; i++)
        sb(b, "%s%s", i ? ", " : "", cols[i]->name);
    sb(b, ") VALUES (");
    for (int i = 0; i < ncols; i++)
        sb(b, "%s$%d::%s", i ? ", " : "", i + 1, CASTS[cols[i]->type]);
    sb(b, ") RETURNING (to_jsonb(t)%s)::text", e->hidden);
}

static void h_create(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    const entity_t *e = entity_of(req);
    json_t *body = baic_api_json_body(req);
    if (body == NULL)
        return;
    admin_call_t *c = call_new(req, m, who, e);
    c->body = body;
    c->status_ok = 201;
    const field_t *cols[48];
    int ncols;
    char msg[256] = "";
    if (collect(e, body, 1, &c->p, cols, &ncols, msg, sizeof msg) != 0) {
        baic_api_invalid_params(req, msg);
        call_free(c);
        return;
    }
    sqlbuf_t b = {0};
    build_insert(c, cols, ncols, &b);
    run(c, b.s);
}

/* ---- users: the password is hashed by the auth plugin, and a keypair comes along ---- */

static int random_text(char *out, size_t n, const char *alphabet) {
    unsigned char raw[64];
    size_t k = strlen(alphabet);
    if (n > sizeof raw || RAND_bytes(raw, (int)n) != 1)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[raw[i] % k];
    out[n] = '\0';
    return 0;
}

static void hash_work(void *arg) {
    admin_call_t *c = arg;
    const baic_plugin_t *p = c->op->m->auth_plugin;
    const baic_auth_ops_t *ops = p->ops;
    char *h = NULL;
    if (ops->hash_password(p->state, c->password, &h) == 0) {
        c->hash = strdup(h);
        p->host->free(h);
    }
    /* A pool thread keeps OpenSSL's per-thread state otherwise, for the daemon's life. */
    OPENSSL_thread_stop();
}

static void user_insert(admin_call_t *c) {
    const entity_t *e = c->e;
    const field_t *cols[48];
    int ncols;
    char msg[256] = "";
    json_t *groups = json_object_get(c->body, "group_ids");
    json_incref(groups);
    json_object_del(c->body, "group_ids");
    json_object_del(c->body, "password");
    if (collect(e, c->body, 1, &c->p, cols, &ncols, msg, sizeof msg) != 0) {
        json_decref(groups);
        baic_api_invalid_params(c->op->req, msg);
        call_free(c);
        return;
    }
    char ak[21], sk[41], *glist = NULL;
    if (random_text(ak + 4, 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != 0 ||
        random_text(sk, 40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")) {
        json_decref(groups);
        baic_api_internal(c->op->req, "No randomness for new keys.");
        call_free(c);
        return;
    }
    memcpy(ak, "AKIA", 4);
    field_t list = {"group_ids", F_STRLIST, 0};
    if (groups != NULL && value_text(&list, groups, &glist, msg, sizeof msg) != 0) {
        json_decref(groups);
        baic_api_invalid_params(c->op->req, msg);
        call_free(c);
        return;
    }
    json_decref(groups);
    int pw = param_add(&c->p, c->hash, 0);
    int pak = param_add(&c->p, strdup(ak), 1);
    int psk = param_add(&c->p, strdup(sk), 1);
    int pg = param_add(&c->p, glist ? glist : strdup("{}"), 1);
    sqlbuf_t b = {0};
    sb(&b, "WITH u AS (INSERT INTO users AS t (");
    for (int i = 0; i < ncols; i++)
        sb(&b, "%s, ", cols[i]->name);
    sb(&b, "password, main_access_key) VALUES (");
    for (int i = 0; i < ncols; i++)
        sb(&b, "$%d::%s, ", i + 1, CASTS[cols[i]->type]);
    sb(&b, "$%d, $%d) RETURNING t.*),"
           " k AS (INSERT INTO keypairs (access_key, secret_key, user_id, \"user\", is_admin,"
           " resource_policy, rate_limit) SELECT $%d, $%d, u.email, u.uuid,"
           " u.role IN ('superadmin', 'admin'), 'default', 30000 FROM u"
           " RETURNING access_key, secret_key),"
           " g AS (INSERT INTO association_groups_users (user_id, group_id)"
           " SELECT u.uuid, gr.id FROM u JOIN groups gr ON gr.domain_name = u.domain_name"
           " WHERE gr.id::text = ANY($%d::text[]) RETURNING group_id)"
           " SELECT ((to_jsonb(u)%s) || jsonb_build_object('keypair', (SELECT to_jsonb(k) FROM k),"
           " 'group_ids', (SELECT COALESCE(jsonb_agg(group_id), '[]') FROM g)))::text FROM u",
       pw, pak, pak, psk, pg, e->hidden);
    run(c, b.s);
}

static void hash_done(void *arg, int status) {
    admin_call_t *c = arg;
    if (baic_api_op_gone(c->op)) {
        call_free(c);
        return;
    }
    if (status != 0 || c->hash == NULL) {
        baic_api_internal(c->op->req, "The password could not be hashed.");
        call_free(c);
        return;
    }
    user_insert(c);
}

static void h_create_user(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    json_t *body = baic_api_json_body(req);
    if (body == NULL)
        return;
    const char *password = json_string_value(json_object_get(body, "password"));
    if (password == NULL || strlen(password) < 8) {
        json_decref(body);
        baic_api_invalid_params(req, "Field 'password' is required (at least 8 characters).");
        return;
    }
    if (m->auth_plugin == NULL) {
        json_decref(body);
        baic_api_unavailable(req, "No auth plugin is loaded to hash passwords.");
        return;
    }
    admin_call_t *c = call_new(req, m, who, &entities[2]);
    c->body = body;
    c->status_ok = 201;
    c->password = strdup(password);
    const baic_host_t *h = m->auth_plugin->host;
    if (h->queue_work(h, hash_work, hash_done, c) != 0) {
        baic_api_internal(req, "The password could not be hashed.");
        call_free(c);
    }
}

/* ---- keypairs: keys are generated here, for an existing user ---- */

static void h_create_keypair(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    json_t *body = baic_api_json_body(req);
    if (body == NULL)
        return;
    const char *email = NULL, *policy = "default";
    int is_active = 1, is_admin = 0;
    json_int_t rate = 30000;
    json_error_t e;
    if (json_unpack_ex(body, &e, JSON_STRICT, "{s:s, s?b, s?b, s?I, s?s}", "user_id", &email,
                       "is_active", &is_active, "is_admin", &is_admin, "rate_limit", &rate,
                       "resource_policy", &policy) != 0) {
        json_decref(body);
        baic_api_invalid_params(req, e.text);
        return;
    }
    if (rate < 0) {
        json_decref(body);
        baic_api_invalid_params(req, "rate_limit must be >= 0 (0 = unlimited).");
        return;
    }
    admin_call_t *c = call_new(req, m, who, &entities[3]);
    c->body = body;
    c->status_ok = 201;
    char ak[21], sk[41], rb[32];
    if (random_text(ak + 4, 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != 0 ||
        random_text(sk, 40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")) {
        baic_api_internal(req, "No randomness for new keys.");
        call_free(c);
        return;
    }
    memcpy(ak, "AKIA", 4);
    snprintf(rb, sizeof rb, "%lld", (long long)rate);
    param_add(&c->p, strdup(ak), 1);
    param_add(&c->p, strdup(sk), 1);
    param_add(&c->p, strdup(email), 1);
    param_add(&c->p, strdup(is_active ? "true" : "false"), 1);
    param_add(&c->p, strdup(is_admin ? "true" : "false"), 1);
    param_add(&c->p, strdup(rb), 1);
    param_add(&c->p, strdup(policy), 1);
    /* No row back when the user does not exist: answered as 404 "No such keypair"
     * would mislead, so the user is checked in the same statement. */
    run(c, "INSERT INTO keypairs AS t (access_key, secret_key, user_id, \"user\", is_active,"
           " is_admin, rate_limit, resource_policy) SELECT $1, $2, u.email, u.uuid, $4::boolean,"
           " $5::boolean, $6::integer, $7 FROM users u WHERE u.email = $3"
           " RETURNING (to_jsonb(t) - 'dotfiles' - 'ssh_private_key')::text");
}

/* ---- resource-group associations ---- */

typedef struct assoc {
    const char *path;  /* domains | groups | keypairs */
    const char *table;
    const char *col;
    const char *cast;
} assoc_t;

static const assoc_t assocs[] = {
    {"domains", "sgroups_for_domains", "domain", "text"},
    {"groups", "sgroups_for_groups", "\"group\"", "uuid"},
    {"keypairs", "sgroups_for_keypairs", "access_key", "text"},
};

static const assoc_t *assoc_of(baic_http_req_t *req) {
    const char *pattern = baic_http_route_pattern(req);
    for (size_t i = 0; i < 3; i++) {
        char want[128];
        snprintf(want, sizeof want, "/admin/rest/scaling-groups/{key}/%s/{target}", assocs[i].path);
        if (strcmp(pattern, want) == 0)
            return &assocs[i];
    }
    return NULL;
}

static void h_associate(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    const assoc_t *a = assoc_of(req);
    admin_call_t *c = call_new(req, m, who, &entities[7]);
    param_add(&c->p, strdup(c->key), 1);
    param_add(&c->p, strdup(baic_http_param(req, "target")), 1);
    sqlbuf_t b = {0};
    if (strcmp(baic_http_method(req), "DELETE") == 0)
        sb(&b, "DELETE FROM %s t WHERE scaling_group = $1 AND %s = $2::%s"
               " RETURNING jsonb_build_object('scaling_group', t.scaling_group)::text",
           a->table, a->col, a->cast);
    else
        sb(&b, "INSERT INTO %s AS t (scaling_group, %s) VALUES ($1, $2::%s)"
               " ON CONFLICT DO NOTHING RETURNING jsonb_build_object('scaling_group',"
               " t.scaling_group)::text",
           a->table, a->col, a->cast);
    if (strcmp(baic_http_method(req), "DELETE") != 0)
        c->status_ok = 201;
    run(c, b.s);
}

int baic_api_admin_init(baic_manager_t *m) {
    int rc = 0;
    char coll[128], item[160];
    for (size_t i = 0; i < NENTITIES && rc == 0; i++) {
        snprintf(coll, sizeof coll, "/admin/rest/%s", entities[i].path);
        snprintf(item, sizeof item, "/admin/rest/%s/{key}", entities[i].path);
        baic_api_fn create = h_create;
        if (strcmp(entities[i].path, "users") == 0)
            create = h_create_user;
        else if (strcmp(entities[i].path, "keypairs") == 0)
            create = h_create_keypair;
        if ((rc = baic_api_route(m, "GET", coll, BAIC_ROUTE_SUPERADMIN, h_list, 0)) ||
            (rc = baic_api_route(m, "POST", coll, BAIC_ROUTE_SUPERADMIN, create, 256 * 1024)) ||
            (rc = baic_api_route(m, "GET", item, BAIC_ROUTE_SUPERADMIN, h_get, 0)) ||
            (rc = baic_api_route(m, "PATCH", item, BAIC_ROUTE_SUPERADMIN, h_update, 256 * 1024)) ||
            (rc = baic_api_route(m, "DELETE", item, BAIC_ROUTE_SUPERADMIN, h_delete, 0)))
            break;
    }
    for (size_t i = 0; i < 3 && rc == 0; i++) {
        snprintf(item, sizeof item, "/admin/rest/scaling-groups/{key}/%s/{target}", assocs[i].path);
        if ((rc = baic_api_route(m, "POST", item, BAIC_ROUTE_SUPERADMIN, h_associate, 0)) == 0)
            rc = baic_api_route(m, "DELETE", item, BAIC_ROUTE_SUPERADMIN, h_associate, 0);
    }
    return rc;
}
