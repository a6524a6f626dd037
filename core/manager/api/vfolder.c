/* SPDX-License-Identifier: Apache-2.0 */
/* /folders: virtual folder create, list, hosts, info, trash, purge, restore, rename, options, and
 * the request state the other api/vfolder_*.c files share. */
#include "vfolder_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"

#define S(o, k) json_string_value(json_object_get((o), (k)))

/* Host permissions granted on v.host by the folder's domain, the caller's projects (and the
 * folder's project) and the caller's keypair policy. */
#define VF_HOST_PERMS                                                                              \
    " (SELECT COALESCE(jsonb_agg(DISTINCT z.e), '[]'::jsonb) FROM (SELECT"                         \
    "   jsonb_array_elements_text(CASE WHEN jsonb_typeof(h.a -> v.host) = 'array'"                 \
    "   THEN h.a -> v.host ELSE '[]'::jsonb END) AS e FROM ("                                      \
    "   SELECT d.allowed_vfolder_hosts AS a FROM domains d WHERE d.name = v.domain_name"           \
    "   UNION ALL SELECT gg.allowed_vfolder_hosts FROM groups gg WHERE gg.id = v.\"group\""        \
    "   OR gg.id IN (SELECT group_id FROM association_groups_users WHERE user_id = $1::uuid)"      \
    "   UNION ALL SELECT kp.allowed_vfolder_hosts FROM keypairs k JOIN keypair_resource_policies"  \
    "   kp ON kp.name = k.resource_policy WHERE k.access_key = $4) h) z) AS host_perms"

const char VF_COLUMNS[] =
    " v.id::text AS id, replace(v.id::text, '-', '') AS hex, v.name, v.host, v.quota_scope_id,"
    " v.usage_mode, v.permission AS vperm, v.max_files, v.max_size, v.num_files, v.cur_size,"
    " to_char(v.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00'"
    "   AS created_at,"
    " to_char(v.last_used AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00'"
    "   AS last_used,"
    " v.creator, v.ownership_type, v.\"user\"::text AS \"user\", v.\"group\"::text AS \"group\","
    " v.cloneable, v.status, v.domain_name, COALESCE(v.\"user\" = $1::uuid, false) AS own,"
    " ($2::boolean AND v.\"group\" IS NOT NULL AND ($3::text IS NULL OR g.domain_name = $3))"
    "   AS gadmin,"
    " (v.\"group\" IS NOT NULL AND v.\"group\" IN (SELECT group_id FROM association_groups_users"
    "   WHERE user_id = $1::uuid)) AS member,"
    " p.permission AS sperm, u.email AS user_email, g.name AS group_name," VF_HOST_PERMS;

const char VF_FROM_VISIBLE[] =
    " FROM vfolders v LEFT JOIN vfolder_permissions p ON p.vfolder = v.id AND p.\"user\" = $1::uuid"
    " LEFT JOIN users u ON u.uuid = v.\"user\" LEFT JOIN groups g ON g.id = v.\"group\""
    " WHERE v.status <> 'delete-complete' AND (v.\"user\" = $1::uuid OR p.\"user\" IS NOT NULL"
    "   OR v.\"group\" IN (SELECT group_id FROM association_groups_users WHERE user_id = $1::uuid)"
    "   OR ($2::boolean AND v.\"group\" IS NOT NULL AND ($3::text IS NULL OR g.domain_name = $3)))";

/* ---- request state ---- */

vf_t *vf_new(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who, int parse_body) {
    json_t *body = NULL;
    if (parse_body && (body = baic_api_json_body(req)) == NULL)
        return NULL;
    vf_t *v = calloc(1, sizeof *v);
    if (v == NULL) {
        json_decref(body);
        baic_api_internal(req, "Out of memory.");
        return NULL;
    }
    v->req = req;
    v->m = m;
    v->who = who;
    v->body = body ? body : json_object();
    v->op = baic_api_op_new(req, m, who);
    return v;
}

void vf_free(vf_t *v) {
    if (v == NULL)
        return;
    if (v->on_drop)
        v->on_drop(v);
    json_decref(v->body);
    json_decref(v->row);
    json_decref(v->acc);
    json_decref(v->aux);
    free(v);
}

void vf_reply(vf_t *v, int status, json_t *body) {
    baic_http_respond_json(v->req, status, body);
    vf_free(v);
}

void vf_empty(vf_t *v, int status) {
    baic_http_respond(v->req, status, NULL, NULL, 0);
    vf_free(v);
}

static void vf_unavailable(vf_t *v) {
    baic_api_unavailable(v->req, "The database is not reachable.");
    vf_free(v);
}

static void db_trampoline(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    vf_t *v = arg;
    if (baic_api_op_gone(v->op)) {
        vf_free(v);
        return;
    }
    if (err != 0 && err != BAIC_EEXISTS) {
        BAIC_LOG_W("vfolder_query_failed", "error=\"%s\"", errmsg ? errmsg : "");
        vf_unavailable(v);
        return;
    }
    v->dbnext(v, res, err);
}

void vf_query(vf_t *v, const char *sql, int n, const char *const *p, vf_db_step next) {
    v->dbnext = next;
    if (baic_db_query(v->m->db, sql, n, p, db_trampoline, v) != 0)
        vf_unavailable(v);
}

typedef struct spcall {
    vf_t *v;
    int raw;
} spcall_t;

static void sp_trampoline(int status, json_t *answer, int err, void *arg) {
    spcall_t *c = arg;
    vf_t *v = c->v;
    int raw = c->raw;
    free(c);
    if (baic_api_op_gone(v->op)) {
        vf_free(v);
        return;
    }
    if (!raw && (err != 0 || status < 200 || status >= 300)) {
        baic_storage_fail(v->req, status, answer, err);
        vf_free(v);
        return;
    }
    v->spnext(v, err != 0 ? 0 : status, answer);
}

void vf_storage(vf_t *v, const char *host, const char *path, json_t *body, int add_vfid, int raw,
                unsigned timeout_ms, vf_sp_step next) {
    if (body == NULL)
        body = json_object();
    if (add_vfid)
        json_object_set_new(body, "vfid", json_string(v->vfid));
    spcall_t *c = malloc(sizeof *c);
    v->spnext = next;
    int rc = c ? baic_storage_call(v->m, host, path, body, timeout_ms, sp_trampoline, c) : -ENOMEM;
    json_decref(body);
    if (c)
        c->v = v, c->raw = raw;
    if (rc != 0) {
        free(c);
        if (rc == -ENOENT)
            baic_http_respond_problem(v->req, 503, "service-unavailable", "Service unavailable.",
                                      "The folder's storage host has no configured proxy.", NULL);
        else
            baic_api_unavailable(v->req, "The storage proxy could not be called.");
        vf_free(v);
    }
}

int vf_relpath_ok(vf_t *v, const json_t *s, const char *what) {
    char msg[200];
    if (!json_is_string(s)) {
        snprintf(msg, sizeof msg, "'%s' must be a string path inside the folder.", what);
        baic_api_invalid_params(v->req, msg);
        return -1;
    }
    const char *p = json_string_value(s);
    size_t n = json_string_length(s);
    if (n > 1024 || strlen(p) != n) {
        snprintf(msg, sizeof msg, "'%s' is too long or holds a NUL character.", what);
        baic_api_invalid_params(v->req, msg);
        return -1;
    }
    if (p[0] == '/') {
        snprintf(msg, sizeof msg, "'%s' must be relative to the folder.", what);
        baic_api_invalid_params(v->req, msg);
        return -1;
    }
    for (const char *c = p; *c;) {
        size_t k = strcspn(c, "/");
        if (k == 2 && c[0] == '.' && c[1] == '.') {
            snprintf(msg, sizeof msg, "'%s' must not contain '..'.", what);
            baic_api_invalid_params(v->req, msg);
            return -1;
        }
        c += k;
        while (*c == '/')
            c++;
    }
    return 0;
}

int vf_host_allows(vf_t *v, const char *perm) {
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(v->row, "host_perms"), i,
                       e) if (json_is_string(e) &&
                              strcmp(json_string_value(e), perm) == 0) return 1;
    return 0;
}

void vf_hex(const char *uuid, char out[33]) {
    size_t o = 0;
    for (const char *c = uuid; *c && o < 32; c++)
        if (*c != '-')
            out[o++] = (char)tolower((unsigned char)*c);
    out[o] = '\0';
}

static int perm_level(const char *p) {
    if (p == NULL)
        return 0;
    if (strcmp(p, "ro") == 0)
        return VF_RO;
    if (strcmp(p, "rw") == 0)
        return VF_RW;
    if (strcmp(p, "wd") == 0)
        return VF_WD;
    return 0;
}

int vf_row_level(const json_t *row, const char **perm) {
    const char *vperm = S(row, "vperm"), *sperm = S(row, "sperm");
    if (json_is_true(json_object_get(row, "own")) || json_is_true(json_object_get(row, "gadmin"))) {
        *perm = vperm;
        return VF_OWNER;
    }
    const char *p = sperm;
    if (p == NULL && json_is_true(json_object_get(row, "member")))
        p = vperm;
    *perm = p ? p : "ro";
    return perm_level(p);
}

static json_t *jcopy(const json_t *row, const char *k) {
    json_t *x = json_object_get(row, k);
    return x ? json_deep_copy(x) : json_null();
}

json_t *vf_list_item(const json_t *row, int level, const char *perm) {
    json_t *o = json_object();
    json_object_set_new(o, "name", jcopy(row, "name"));
    json_object_set_new(o, "id", jcopy(row, "hex"));
    json_object_set_new(o, "quota_scope_id", jcopy(row, "quota_scope_id"));
    json_object_set_new(o, "host", jcopy(row, "host"));
    json_object_set_new(o, "status", jcopy(row, "status"));
    json_object_set_new(o, "usage_mode", jcopy(row, "usage_mode"));
    json_object_set_new(o, "created_at", jcopy(row, "created_at"));
    json_object_set_new(o, "is_owner", json_boolean(level == VF_OWNER));
    json_object_set_new(o, "permission", json_string(perm));
    json_object_set_new(o, "user", jcopy(row, "user"));
    json_object_set_new(o, "group", jcopy(row, "group"));
    json_object_set_new(o, "creator", jcopy(row, "creator"));
    json_object_set_new(o, "user_email", jcopy(row, "user_email"));
    json_object_set_new(o, "group_name", jcopy(row, "group_name"));
    json_object_set_new(o, "ownership_type", jcopy(row, "ownership_type"));
    json_object_set_new(o, "type", jcopy(row, "ownership_type"));
    json_object_set_new(o, "cloneable", jcopy(row, "cloneable"));
    json_object_set_new(o, "max_files", jcopy(row, "max_files"));
    json_t *ms = json_object_get(row, "max_size");
    json_object_set_new(o, "max_size", json_is_integer(ms) ? json_deep_copy(ms) : json_integer(0));
    json_object_set_new(o, "cur_size", jcopy(row, "cur_size"));
    return o;
}

/* The four caller parameters every visibility query starts with. */
static void caller_params(const vf_t *v, const char *p[4]) {
    p[0] = v->who->user_uuid;
    p[1] = v->who->is_admin ? "true" : "false";
    p[2] = v->who->is_superadmin ? NULL : v->who->domain;
    p[3] = v->who->access_key;
}

static char resolve_sql[8192];

static void resolved(vf_t *v, const baic_db_result_t *res, int err) {
    (void)err;
    const char *txt = baic_db_result_rows(res) > 0 ? baic_db_result_get(res, 0, 0) : NULL;
    json_t *row = txt ? json_loads(txt, 0, NULL) : NULL;
    if (row == NULL) {
        baic_api_not_found(v->req, "virtual folder", "No such virtual folder.");
        vf_free(v);
        return;
    }
    json_decref(v->row);
    v->row = row;
    int need = v->i, trash = v->n;
    v->i = v->n = 0;
    const char *st = S(row, "status");
    int in_trash = st && strncmp(st, "delete-", 7) == 0;
    if ((trash == 0 && in_trash) || (trash == 1 && !in_trash)) {
        baic_api_not_found(v->req, "virtual folder",
                           in_trash ? "The folder is in the trash bin; restore it first."
                                    : "The folder is not in the trash bin.");
        vf_free(v);
        return;
    }
    v->level = vf_row_level(row, &v->perm);
    if (v->level < need) {
        baic_api_forbidden(v->req, need == VF_OWNER ? "Only the folder's owner may do this."
                                   : need >= VF_RW  ? "You have no write permission on this folder."
                                                    : "You have no permission on this folder.");
        vf_free(v);
        return;
    }
    v->id = S(row, "id");
    v->hex = S(row, "hex");
    v->name = S(row, "name");
    v->host = S(row, "host");
    v->qsid = S(row, "quota_scope_id");
    v->status = st;
    snprintf(v->vfid, sizeof v->vfid, "%s/%s", v->qsid, v->hex);
    v->next(v);
}

void vf_resolve(vf_t *v, const char *ref, int need, int trash, vf_step next) {
    if (ref == NULL || *ref == '\0' || strlen(ref) > 128) {
        baic_api_not_found(v->req, "virtual folder", "No such virtual folder.");
        vf_free(v);
        return;
    }
    const char *p[5];
    caller_params(v, p);
    p[4] = ref;
    v->i = need;
    v->n = trash;
    v->next = next;
    vf_query(v, resolve_sql, 5, p, resolved);
}

void vf_resolve_param(vf_t *v, int need, vf_step next) {
    vf_resolve(v, baic_http_param(v->req, "name"), need, 0, next);
}

/* ---- names ---- */

static int is_uuidish(const char *s) {
    size_t n = strlen(s), h = 0;
    if (n != 32 && n != 36)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (isxdigit((unsigned char)s[i]))
            h++;
        else if (s[i] != '-')
            return 0;
    }
    return h == 32;
}

/* 1..64 of [A-Za-z0-9._-], not dots only, not UUID-shaped, not reserved. */
int baic_vfolder_name_ok(const char *s) {
    static const char *const reserved[] = {".terminfo", ".jupyter",   ".ssh",    ".local",
                                           ".config",   ".tmux.conf", ".bashrc", ".profile",
                                           ".vimrc",    "_"};
    size_t n = strlen(s);
    int dots = 1;
    if (n == 0 || n > 64 || is_uuidish(s))
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return 0;
        if (s[i] != '.')
            dots = 0;
    }
    if (dots || s[0] == '-')
        return 0;
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strcmp(s, reserved[i]) == 0)
            return 0;
    return 1;
}

static const char NAME_RULE[] = "Folder names are 1-64 characters of letters, digits, '.', '_' "
                                "and '-', not only dots, not starting with '-', not UUID-shaped "
                                "and not reserved (.ssh, .jupyter, ...).";

/* ---- POST /folders ---- */

static const char CREATE_CTX_SQL[] =
    "SELECT (SELECT g.id::text FROM groups g WHERE (g.id::text = lower($5) OR g.name = $5)"
    "   AND g.domain_name = $6 AND g.is_active LIMIT 1) AS group_id,"
    " (SELECT EXISTS (SELECT 1 FROM association_groups_users a JOIN groups g ON g.id = a.group_id"
    "   WHERE a.user_id = $1::uuid AND (g.id::text = lower($5) OR g.name = $5))) AS member,"
    " (SELECT r.max_vfolder_count FROM users u JOIN user_resource_policies r"
    "   ON r.name = u.resource_policy WHERE u.uuid = $1::uuid) AS user_max,"
    " (SELECT r.max_quota_scope_size FROM users u JOIN user_resource_policies r"
    "   ON r.name = u.resource_policy WHERE u.uuid = $1::uuid) AS user_quota,"
    " (SELECT r.max_vfolder_count FROM groups g JOIN project_resource_policies r"
    "   ON r.name = g.resource_policy WHERE (g.id::text = lower($5) OR g.name = $5)"
    "   AND g.domain_name = $6 LIMIT 1) AS group_max,"
    " (SELECT r.max_quota_scope_size FROM groups g JOIN project_resource_policies r"
    "   ON r.name = g.resource_policy WHERE (g.id::text = lower($5) OR g.name = $5)"
    "   AND g.domain_name = $6 LIMIT 1) AS group_quota,"
    " (SELECT count(*) FROM vfolders WHERE \"user\" = $1::uuid AND status <> 'delete-complete')"
    "   AS user_count,"
    " (SELECT count(*) FROM vfolders v JOIN groups g ON g.id = v.\"group\""
    "   WHERE (g.id::text = lower($5) OR g.name = $5) AND g.domain_name = $6"
    "   AND v.status <> 'delete-complete') AS group_count,"
    " (SELECT COALESCE(jsonb_agg(DISTINCT z.e), '[]'::jsonb)::text FROM (SELECT"
    "   jsonb_array_elements_text(CASE WHEN jsonb_typeof(h.a -> $2) = 'array'"
    "   THEN h.a -> $2 ELSE '[]'::jsonb END) AS e FROM ("
    "   SELECT d.allowed_vfolder_hosts AS a FROM domains d WHERE d.name = $6"
    "   UNION ALL SELECT g.allowed_vfolder_hosts FROM groups g WHERE ($5::text IS NOT NULL"
    "   AND (g.id::text = lower($5) OR g.name = $5) AND g.domain_name = $6) OR ($5::text IS NULL"
    "   AND g.id IN (SELECT group_id FROM association_groups_users WHERE user_id = $1::uuid))"
    "   UNION ALL SELECT kp.allowed_vfolder_hosts FROM keypairs k JOIN keypair_resource_policies"
    "   kp ON kp.name = k.resource_policy WHERE k.access_key = $4) h) z) AS host_perms,"
    " $3::text AS unused";

static const char CREATE_INSERT_SQL[] =
    "INSERT INTO vfolders (host, domain_name, quota_scope_id, name, usage_mode, permission,"
    " creator, ownership_type, \"user\", \"group\", cloneable, status, max_size)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::uuid, $10::uuid, $11::boolean, 'performing', "
    "NULL)"
    " RETURNING id::text";

static void create_answer(vf_t *v) {
    json_t *o = json_object();
    json_t *b = v->aux;
    json_object_set_new(o, "id", json_string(v->hex));
    json_object_set_new(o, "name", jcopy(b, "name"));
    json_object_set_new(o, "quota_scope_id", json_string(v->qsid));
    json_object_set_new(o, "host", json_string(v->host));
    json_object_set_new(o, "usage_mode", jcopy(b, "usage_mode"));
    json_object_set_new(o, "permission", jcopy(b, "permission"));
    json_object_set_new(o, "max_size", json_integer(0));
    json_object_set_new(o, "creator", json_string(v->who->email ? v->who->email : ""));
    json_object_set_new(o, "ownership_type", jcopy(b, "ownership_type"));
    json_object_set_new(o, "user", jcopy(b, "user"));
    json_object_set_new(o, "group", jcopy(b, "group"));
    json_object_set_new(o, "cloneable", jcopy(b, "cloneable"));
    json_object_set_new(o, "status", json_string("ready"));
    vf_reply(v, 201, o);
}

static void create_ready(vf_t *v, const baic_db_result_t *res, int err) {
    (void)res;
    (void)err;
    BAIC_LOG_I("vfolder_created", "id=%s name=%s host=%s by=%s", v->id, v->name, v->host,
               v->who->access_key);
    create_answer(v);
}

static void db_ignore(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    (void)res;
    if (err != 0)
        BAIC_LOG_W("vfolder_undo_failed", "id=%s error=\"%s\"", (const char *)arg,
                   errmsg ? errmsg : "");
    free(arg);
}

static void create_made(vf_t *v, int status, json_t *answer) {
    const char *p[1] = {v->id};
    if (status < 200 || status >= 300) {
        baic_storage_fail(v->req, status, answer, status == 0 ? -1 : 0);
        /* The request is finished; forget the row (errors only logged). */
        char *id = strdup(v->id);
        if (id == NULL || baic_db_query(v->m->db, "DELETE FROM vfolders WHERE id = $1::uuid", 1, p,
                                        db_ignore, id) != 0) {
            BAIC_LOG_W("vfolder_undo_failed", "id=%s", v->id);
            free(id);
        }
        vf_free(v);
        return;
    }
    vf_query(v, "UPDATE vfolders SET status = 'ready', status_changed = now() WHERE id = $1::uuid",
             1, p, create_ready);
}

static void create_folder_call(vf_t *v, int status, json_t *answer) {
    (void)status;
    (void)answer;
    vf_storage(v, v->host, "/folder/create", json_object(), 1, 1, 120000, create_made);
}

static void create_inserted(vf_t *v, const baic_db_result_t *res, int err) {
    if (err == BAIC_EEXISTS) {
        baic_http_respond_problem(v->req, 400, "vfolder-already-exists",
                                  "The virtual folder already exists with the same name.",
                                  "You already have a folder of this name.", NULL);
        vf_free(v);
        return;
    }
    v->row = json_object();
    json_object_set_new(v->row, "id", json_string(baic_db_result_get(res, 0, 0)));
    v->id = S(v->row, "id");
    char hex[33];
    vf_hex(v->id, hex);
    json_object_set_new(v->row, "hex", json_string(hex));
    v->hex = S(v->row, "hex");
    snprintf(v->vfid, sizeof v->vfid, "%s/%s", v->qsid, v->hex);
    long long quota = json_integer_value(json_object_get(v->aux, "quota"));
    if (quota > 0) {
        json_t *b = json_pack("{s:s, s:I}", "qsid", v->qsid, "limit_bytes", (json_int_t)quota);
        vf_storage(v, v->host, "/quota-scope/set", b, 0, 1, 30000, create_folder_call);
        return;
    }
    create_folder_call(v, 204, NULL);
}

static void create_ctx(vf_t *v, const baic_db_result_t *res, int err) {
    (void)err;
#define C(n) baic_db_result_get_by_name(res, 0, n)
    json_t *b = v->aux;
    const char *group = S(b, "group_ref");
    const char *gid = C("group_id");
    int is_group = group != NULL;
    char msg[300];
    if (is_group) {
        if (gid == NULL || (!v->who->is_admin && strcmp(C("member"), "t") != 0)) {
            baic_api_not_found(v->req, "project", "No such project (group) for you.");
            vf_free(v);
            return;
        }
        if (!v->who->is_admin) {
            baic_api_forbidden(v->req, "Only administrators may create project folders.");
            vf_free(v);
            return;
        }
    }
    json_t *perms = json_loads(C("host_perms") ? C("host_perms") : "[]", 0, NULL);
    int allowed = 0;
    size_t i;
    json_t *e;
    json_array_foreach(perms, i, e) if (strcmp(json_string_value(e), "create-vfolder") == 0)
        allowed = 1;
    json_decref(perms);
    if (!allowed) {
        snprintf(msg, sizeof msg, "You are not allowed to create folders on host '%.128s'.",
                 v->host);
        baic_api_forbidden(v->req, msg);
        vf_free(v);
        return;
    }
    long long max = atoll(C(is_group ? "group_max" : "user_max") ?: "0");
    long long have = atoll(C(is_group ? "group_count" : "user_count") ?: "0");
    if (max > 0 && have >= max) {
        snprintf(msg, sizeof msg, "You cannot create more than %lld folders.", max);
        baic_http_respond_problem(v->req, 400, "vfolder-quota-exceeded",
                                  "Virtual folder count limit exceeded.", msg, NULL);
        vf_free(v);
        return;
    }
    json_object_set_new(b, "quota",
                        json_integer(atoll(C(is_group ? "group_quota" : "user_quota") ?: "-1")));
    char qsid[80];
    snprintf(qsid, sizeof qsid, "%s:%s", is_group ? "project" : "user",
             is_group ? gid : v->who->user_uuid);
    json_object_set_new(b, "qsid", json_string(qsid));
    v->qsid = S(b, "qsid");
    json_object_set_new(b, "ownership_type", json_string(is_group ? "group" : "user"));
    json_object_set_new(b, "user", is_group ? json_null() : json_string(v->who->user_uuid));
    json_object_set_new(b, "group", is_group ? json_string(gid) : json_null());
#undef C
    const char *p[11] = {v->host,
                         v->who->domain,
                         v->qsid,
                         S(b, "name"),
                         S(b, "usage_mode"),
                         S(b, "permission"),
                         v->who->email,
                         is_group ? "group" : "user",
                         is_group ? NULL : v->who->user_uuid,
                         is_group ? gid : NULL,
                         json_is_true(json_object_get(b, "cloneable")) ? "true" : "false"};
    v->name = S(b, "name");
    vf_query(v, CREATE_INSERT_SQL, 11, p, create_inserted);
}

static int opt_string(vf_t *v, const char *key, const char *alt, const char *dflt,
                      const char *const *allowed, const char **out) {
    json_t *x = json_object_get(v->body, key);
    if (x == NULL && alt)
        x = json_object_get(v->body, alt);
    char msg[200];
    if (x == NULL || json_is_null(x)) {
        *out = dflt;
        return 0;
    }
    if (!json_is_string(x)) {
        snprintf(msg, sizeof msg, "'%s' must be a string.", key);
        baic_api_invalid_params(v->req, msg);
        return -1;
    }
    *out = json_string_value(x);
    if (allowed) {
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, *out) == 0)
                return 0;
        snprintf(msg, sizeof msg, "'%s' has an unknown value.", key);
        baic_api_invalid_params(v->req, msg);
        return -1;
    }
    return 0;
}

static const char *const PERMS[] = {"ro", "rw", "wd", NULL};
static const char *const MODES[] = {"general", "model", "data", NULL};

static void post_folders(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    const char *name, *host, *group, *mode, *perm;
    if (opt_string(v, "name", NULL, NULL, NULL, &name) ||
        opt_string(v, "host", "folder_host", baic_storage_default_host(), NULL, &host) ||
        opt_string(v, "group", "group_id", NULL, NULL, &group) ||
        opt_string(v, "usage_mode", NULL, "general", MODES, &mode) ||
        opt_string(v, "permission", NULL, "rw", PERMS, &perm)) {
        vf_free(v);
        return;
    }
    json_t *cl = json_object_get(v->body, "cloneable");
    json_t *um = json_object_get(v->body, "unmanaged_path");
    if (cl != NULL && !json_is_null(cl) && !json_is_boolean(cl)) {
        baic_api_invalid_params(req, "'cloneable' must be a boolean.");
        vf_free(v);
        return;
    }
    if (um != NULL && !json_is_null(um)) {
        baic_api_invalid_params(req, "Unmanaged folders are not supported.");
        vf_free(v);
        return;
    }
    if (name == NULL || !baic_vfolder_name_ok(name)) {
        baic_api_invalid_params(req, name == NULL ? "'name' is required." : NAME_RULE);
        vf_free(v);
        return;
    }
    if (host == NULL || !baic_storage_host_ok(host)) {
        baic_api_invalid_params(req, host == NULL
                                         ? "No 'host' given and no default host is "
                                           "configured."
                                         : "Unknown storage host (want <proxy>:<volume>).");
        vf_free(v);
        return;
    }
    v->aux = json_pack("{s:s, s:s, s:s, s:s, s:b, s:s?}", "name", name, "host", host, "usage_mode",
                       mode, "permission", perm, "cloneable", json_is_true(cl), "group_ref", group);
    v->host = S(v->aux, "host");
    const char *p[6] = {who->user_uuid, v->host, NULL, who->access_key, group, who->domain};
    vf_query(v, CREATE_CTX_SQL, 6, p, create_ctx);
}

/* ---- GET /folders ---- */

static char list_sql[8192];

static void list_done(vf_t *v, const baic_db_result_t *res, int err) {
    (void)err;
    json_t *out = json_array();
    for (int r = 0; r < baic_db_result_rows(res); r++) {
        json_t *row = json_loads(baic_db_result_get(res, r, 0), 0, NULL);
        if (row == NULL)
            continue;
        const char *perm;
        int level = vf_row_level(row, &perm);
        json_array_append_new(out, vf_list_item(row, level, perm));
        json_decref(row);
    }
    vf_reply(v, 200, out);
}

static void get_folders(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    const char *p[6];
    caller_params(v, p);
    const char *gid = baic_http_query(req, "group_id");
    json_t *all = json_object_get(v->body, "all");
    p[4] = gid && *gid ? gid : NULL;
    p[5] = json_is_true(all) && who->is_admin ? "true" : "false";
    vf_query(v, list_sql, 6, p, list_done);
}

/* ---- hosts ---- */

static void hosts_next(vf_t *v);

static void hosts_volumes(vf_t *v, int status, json_t *answer) {
    const char *proxy = baic_storage_proxy_name((size_t)v->i);
    if (status == 200) {
        size_t i;
        json_t *vol;
        json_array_foreach(json_object_get(answer, "volumes"), i, vol) {
            char host[200];
            snprintf(host, sizeof host, "%s:%s", proxy, S(vol, "name") ?: "");
            json_object_set_new(v->acc, host,
                                json_pack("{s:s?, s:O?, s:{}, s:[], s:b}", "backend",
                                          S(vol, "backend"), "capabilities",
                                          json_object_get(vol, "capabilities"), "usage",
                                          "sftp_scaling_groups", "available",
                                          json_is_true(json_object_get(vol, "available"))));
        }
    } else {
        BAIC_LOG_W("storage_proxy_volumes_failed", "proxy=%s status=%d", proxy, status);
    }
    v->i++;
    hosts_next(v);
}

static void sp_plain(int status, json_t *answer, int err, void *arg) {
    vf_t *v = arg;
    if (baic_api_op_gone(v->op)) {
        vf_free(v);
        return;
    }
    v->spnext(v, err ? 0 : status, answer);
}

static void hosts_next(vf_t *v) {
    while ((size_t)v->i < baic_storage_nproxies()) {
        v->spnext = hosts_volumes;
        if (baic_storage_proxy_call(v->m, baic_storage_proxy_name((size_t)v->i), "GET", "/volumes",
                                    NULL, 10000, sp_plain, v) == 0)
            return;
        v->i++;
    }
    /* v->acc: every volume; v->aux: allowed host names (NULL = all, for all-hosts). */
    if (v->flag) {
        json_t *out = json_array();
        const char *k;
        json_t *x;
        json_object_foreach(v->acc, k, x) json_array_append_new(out, json_string(k));
        vf_reply(v, 200, json_pack("{s:o}", "allowed", out));
        return;
    }
    /* Allowed means permitted and served: a permitted host no proxy reports is left out. */
    json_t *info = json_object(), *allowed = json_array();
    size_t i;
    json_t *h;
    json_array_foreach(v->aux, i, h) {
        json_t *vi = json_object_get(v->acc, json_string_value(h));
        if (vi) {
            json_object_set(info, json_string_value(h), vi);
            json_array_append(allowed, h);
        }
    }
    const char *dflt = baic_storage_default_host();
    if (dflt != NULL && json_object_get(info, dflt) == NULL)
        dflt = NULL;
    vf_reply(
        v, 200,
        json_pack("{s:s?, s:o, s:o}", "default", dflt, "allowed", allowed, "volume_info", info));
}

static const char HOSTS_SQL[] =
    "SELECT COALESCE(jsonb_agg(DISTINCT z.h ORDER BY z.h), '[]'::jsonb)::text FROM (SELECT"
    " jsonb_object_keys(h.a) AS h FROM ("
    "  SELECT d.allowed_vfolder_hosts AS a FROM domains d WHERE d.name = $2"
    "  UNION ALL SELECT g.allowed_vfolder_hosts FROM groups g WHERE g.id IN"
    "   (SELECT group_id FROM association_groups_users WHERE user_id = $1::uuid)"
    "  UNION ALL SELECT kp.allowed_vfolder_hosts FROM keypairs k JOIN keypair_resource_policies kp"
    "   ON kp.name = k.resource_policy WHERE k.access_key = $3) h"
    " WHERE jsonb_typeof(h.a) = 'object') z";

static void hosts_allowed(vf_t *v, const baic_db_result_t *res, int err) {
    (void)err;
    v->aux = json_loads(baic_db_result_get(res, 0, 0) ?: "[]", 0, NULL);
    if (!json_is_array(v->aux)) {
        json_decref(v->aux);
        v->aux = json_array();
    }
    v->acc = json_object();
    hosts_next(v);
}

static void get_hosts(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 0);
    if (v == NULL)
        return;
    const char *p[3] = {who->user_uuid, who->domain, who->access_key};
    vf_query(v, HOSTS_SQL, 3, p, hosts_allowed);
}

static void get_all_hosts(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 0);
    if (v == NULL)
        return;
    v->flag = 1;
    v->acc = json_object();
    hosts_next(v);
}

static void get_allowed_types(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    (void)m;
    (void)who;
    baic_http_respond_json(req, 200, json_pack("[s, s]", "user", "group"));
}

/* ---- GET /folders/_/id ---- */

static void id_found(vf_t *v) {
    vf_reply(v, 200, json_pack("{s:s, s:s}", "id", v->hex, "name", v->name));
}

static void get_id(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    const char *name = S(v->body, "name");
    if (name == NULL)
        name = baic_http_query(req, "name");
    if (name == NULL) {
        baic_api_invalid_params(req, "'name' is required.");
        vf_free(v);
        return;
    }
    vf_resolve(v, name, VF_ANY, -1, id_found);
}

/* ---- GET /folders/{name} ---- */

static void info_usage(vf_t *v, int status, json_t *answer) {
    json_t *row = v->row;
    json_t *o = json_object();
    json_int_t files = json_integer_value(json_object_get(row, "num_files"));
    json_int_t used = json_integer_value(json_object_get(row, "cur_size"));
    if (status == 200) {
        files = json_integer_value(json_object_get(answer, "file_count"));
        used = json_integer_value(json_object_get(answer, "used_bytes"));
    }
    json_object_set_new(o, "name", jcopy(row, "name"));
    json_object_set_new(o, "id", jcopy(row, "hex"));
    json_object_set_new(o, "host", jcopy(row, "host"));
    json_object_set_new(o, "quota_scope_id", jcopy(row, "quota_scope_id"));
    json_object_set_new(o, "status", jcopy(row, "status"));
    json_object_set_new(o, "numFiles", json_integer(files));
    json_object_set_new(o, "num_files", json_integer(files));
    json_object_set_new(o, "used_bytes", json_integer(used));
    json_object_set_new(o, "created", jcopy(row, "created_at"));
    json_object_set_new(o, "created_at", jcopy(row, "created_at"));
    json_object_set_new(o, "last_used", jcopy(row, "last_used"));
    json_object_set_new(o, "user", jcopy(row, "user"));
    json_object_set_new(o, "group", jcopy(row, "group"));
    json_object_set_new(o, "type", jcopy(row, "ownership_type"));
    json_object_set_new(o, "is_owner", json_boolean(v->level == VF_OWNER));
    json_object_set_new(o, "permission", json_string(v->perm));
    json_object_set_new(o, "usage_mode", jcopy(row, "usage_mode"));
    json_object_set_new(o, "cloneable", jcopy(row, "cloneable"));
    json_t *ms = json_object_get(row, "max_size");
    json_object_set_new(o, "max_size", json_is_integer(ms) ? json_deep_copy(ms) : json_integer(0));
    json_object_set_new(o, "cur_size", json_integer(used));
    vf_reply(v, 200, o);
}

static void info_found(vf_t *v) {
    vf_storage(v, v->host, "/folder/usage", json_object(), 1, 1, 30000, info_usage);
}

static void get_folder(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 0);
    if (v)
        vf_resolve(v, baic_http_param(req, "name"), VF_RO, -1, info_found);
}

/* ---- delete to trash, restore, purge ---- */

static void status_set(vf_t *v, const baic_db_result_t *res, int err) {
    (void)err;
    if (baic_db_result_rows(res) == 0) {
        baic_http_respond_problem(v->req, 400, "vfolder-in-use", "The folder is in use.",
                                  v->flag ? "The folder's status changed meanwhile."
                                          : "The folder is mounted in a live session.",
                                  NULL);
        vf_free(v);
        return;
    }
    BAIC_LOG_I("vfolder_status", "id=%s status=%s by=%s", v->id, baic_db_result_get(res, 0, 0),
               v->who->access_key);
    vf_empty(v, 204);
}

static void trash_found(vf_t *v) {
    const char *p[2] = {v->id, v->vfid};
    v->flag = 0;
    vf_query(v,
             "UPDATE vfolders SET status = 'delete-pending', status_changed = now(),"
             " status_history = status_history || jsonb_build_object('delete-pending',"
             " now()::text) WHERE id = $1::uuid AND status = 'ready' AND NOT EXISTS (SELECT 1"
             " FROM sessions s WHERE s.status NOT IN " BAIC_FINAL_STATUSES
             " AND s.vfolder_mounts @> jsonb_build_array(jsonb_build_object('vfid', $2::text)))"
             " RETURNING status",
             2, p, status_set);
}

static const char *body_id(vf_t *v) {
    const char *id = S(v->body, "id");
    if (id == NULL)
        id = S(v->body, "vfolder_id");
    if (id == NULL)
        id = S(v->body, "name");
    return id;
}

static void delete_folders(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    const char *id = body_id(v);
    if (id == NULL) {
        baic_api_invalid_params(req, "'id' is required.");
        vf_free(v);
        return;
    }
    vf_resolve(v, id, VF_OWNER, 0, trash_found);
}

static void delete_folder(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 0);
    if (v)
        vf_resolve_param(v, VF_OWNER, trash_found);
}

static void restore_found(vf_t *v) {
    const char *p[1] = {v->id};
    v->flag = 1;
    vf_query(v,
             "UPDATE vfolders SET status = 'ready', status_changed = now(),"
             " status_history = status_history || jsonb_build_object('ready', now()::text)"
             " WHERE id = $1::uuid AND status = 'delete-pending' RETURNING status",
             1, p, status_set);
}

/* The data is gone: purge drops the row (v->i == 1), delete-from-trash-bin keeps it. */
static void purge_db(vf_t *v) {
    const char *p[1] = {v->id};
    v->flag = 1;
    if (v->i == 1)
        vf_query(v, "DELETE FROM vfolders WHERE id = $1::uuid RETURNING 'purged'", 1, p,
                 status_set);
    else
        vf_query(v,
                 "UPDATE vfolders SET status = 'delete-complete', status_changed = now(),"
                 " status_history = status_history || jsonb_build_object('delete-complete',"
                 " now()::text) WHERE id = $1::uuid RETURNING status",
                 1, p, status_set);
}

/* A folder already gone from the volume is fine to purge. */
static void purge_gone_check(vf_t *v, int status, json_t *answer) {
    if ((status >= 200 && status < 300) || status == 404) {
        purge_db(v);
        return;
    }
    baic_storage_fail(v->req, status, answer, status == 0 ? -1 : 0);
    vf_free(v);
}

static void purge_unmounted(vf_t *v, const baic_db_result_t *res, int err) {
    (void)err;
    if (baic_db_result_rows(res) > 0) {
        baic_http_respond_problem(v->req, 400, "vfolder-in-use", "The folder is in use.",
                                  "The folder is mounted in a live session.", NULL);
        vf_free(v);
        return;
    }
    vf_storage(v, v->host, "/folder/delete", json_object(), 1, 1, 300000, purge_gone_check);
}

/* A live session's mount keeps the data (force delete reaches live folders). */
static void purge_found(vf_t *v) {
    const char *p[1] = {v->vfid};
    vf_query(v,
             "SELECT 1 FROM sessions s WHERE s.status NOT IN " BAIC_FINAL_STATUSES
             " AND s.vfolder_mounts @> jsonb_build_array(jsonb_build_object('vfid', $1::text))"
             " LIMIT 1",
             1, p, purge_unmounted);
}

static void trash_op(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who,
                     vf_step step, int trash) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    const char *id = body_id(v);
    if (id == NULL) {
        baic_api_invalid_params(req, "'id' is required.");
        vf_free(v);
        return;
    }
    vf_resolve(v, id, VF_OWNER, trash, step);
}

static void purge_found_purge(vf_t *v) {
    v->i = 1;
    purge_found(v);
}
static void purge_found_trash(vf_t *v) {
    v->i = 0;
    purge_found(v);
}

static void post_purge(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    trash_op(req, m, who, purge_found_purge, 1);
}
static void post_delete_from_trash(baic_http_req_t *req, baic_manager_t *m,
                                   const baic_caller_t *who) {
    trash_op(req, m, who, purge_found_trash, 1);
}
static void post_restore(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    trash_op(req, m, who, restore_found, 1);
}
static void delete_force(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 0);
    if (v)
        vf_resolve(v, baic_http_param(req, "name"), VF_OWNER, -1, purge_found_purge);
}

/* ---- rename, update-options ---- */

static void renamed(vf_t *v, const baic_db_result_t *res, int err) {
    if (err == BAIC_EEXISTS) {
        baic_http_respond_problem(v->req, 400, "vfolder-already-exists",
                                  "The virtual folder already exists with the same name.",
                                  "The owner already has a folder of this name.", NULL);
        vf_free(v);
        return;
    }
    (void)res;
    vf_empty(v, 201);
}

static void rename_found(vf_t *v) {
    const char *nn = S(v->body, "new_name");
    const char *p[2] = {v->id, nn};
    vf_query(v, "UPDATE vfolders SET name = $2 WHERE id = $1::uuid", 2, p, renamed);
}

static void post_rename(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    const char *nn = S(v->body, "new_name");
    if (nn == NULL || !baic_vfolder_name_ok(nn)) {
        baic_api_invalid_params(req, nn == NULL ? "'new_name' is required." : NAME_RULE);
        vf_free(v);
        return;
    }
    vf_resolve_param(v, VF_OWNER, rename_found);
}

static void options_found(vf_t *v) {
    const char *perm = S(v->body, "permission");
    json_t *cl = json_object_get(v->body, "cloneable");
    const char *p[3] = {v->id, perm,
                        json_is_boolean(cl) ? (json_is_true(cl) ? "true" : "false") : NULL};
    vf_query(v,
             "UPDATE vfolders SET permission = COALESCE($2, permission),"
             " cloneable = COALESCE($3::boolean, cloneable) WHERE id = $1::uuid",
             3, p, renamed);
}

static void post_update_options(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    const char *perm;
    json_t *cl = json_object_get(v->body, "cloneable");
    if (opt_string(v, "permission", NULL, NULL, PERMS, &perm)) {
        vf_free(v);
        return;
    }
    if (cl != NULL && !json_is_null(cl) && !json_is_boolean(cl)) {
        baic_api_invalid_params(req, "'cloneable' must be a boolean.");
        vf_free(v);
        return;
    }
    vf_resolve_param(v, VF_OWNER, options_found);
}

/* ---- routes ---- */

int baic_api_vfolder_init(baic_manager_t *m) {
    int rc = baic_storage_init(m);
    if (rc != 0)
        return rc;
    int n = snprintf(resolve_sql, sizeof resolve_sql,
                     "SELECT row_to_json(x)::text FROM (SELECT %s%s AND (v.name = $5 OR"
                     " v.id::text = lower($5) OR replace(v.id::text, '-', '') = lower($5))"
                     " ORDER BY (v.name = $5 AND COALESCE(v.\"user\" = $1::uuid, false)) DESC,"
                     " COALESCE(v.\"user\" = $1::uuid, false) DESC, v.created_at LIMIT 1) x",
                     VF_COLUMNS, VF_FROM_VISIBLE);
    if (n < 0 || (size_t)n >= sizeof resolve_sql)
        return -EINVAL;
    n = snprintf(
        list_sql, sizeof list_sql,
        "SELECT row_to_json(x)::text FROM (SELECT %s%s AND ($5::text IS NULL OR"
        " v.\"group\"::text = lower($5)) UNION SELECT %s FROM vfolders v LEFT JOIN"
        " vfolder_permissions p ON p.vfolder = v.id AND p.\"user\" = $1::uuid"
        " LEFT JOIN users u ON u.uuid = v.\"user\" LEFT JOIN groups g ON g.id = v.\"group\""
        " WHERE $6::boolean AND v.status <> 'delete-complete' AND ($3::text IS NULL OR"
        " v.domain_name = $3) AND ($5::text IS NULL OR v.\"group\"::text = lower($5))"
        " ORDER BY created_at) x",
        VF_COLUMNS, VF_FROM_VISIBLE, VF_COLUMNS);
    if (n < 0 || (size_t)n >= sizeof list_sql)
        return -EINVAL;
    static const struct {
        const char *method, *path;
        int level;
        baic_api_fn fn;
    } first[] = {
        {"GET", "/folders/_/hosts", BAIC_ROUTE_USER, get_hosts},
        {"GET", "/folders/_/all-hosts", BAIC_ROUTE_SUPERADMIN, get_all_hosts},
        {"GET", "/folders/_/all_hosts", BAIC_ROUTE_SUPERADMIN, get_all_hosts},
        {"GET", "/folders/_/allowed-types", BAIC_ROUTE_USER, get_allowed_types},
        {"GET", "/folders/_/allowed_types", BAIC_ROUTE_USER, get_allowed_types},
        {"GET", "/folders/_/id", BAIC_ROUTE_USER, get_id},
        {"POST", "/folders/_/id", BAIC_ROUTE_USER, get_id},
        {"POST", "/folders", BAIC_ROUTE_USER, post_folders},
        {"GET", "/folders", BAIC_ROUTE_USER, get_folders},
        {"DELETE", "/folders", BAIC_ROUTE_USER, delete_folders},
        {"POST", "/folders/purge", BAIC_ROUTE_USER, post_purge},
        {"POST", "/folders/restore-from-trash-bin", BAIC_ROUTE_USER, post_restore},
        {"POST", "/folders/delete-from-trash-bin", BAIC_ROUTE_USER, post_delete_from_trash},
    };
    for (size_t i = 0; rc == 0 && i < sizeof first / sizeof first[0]; i++)
        rc = baic_api_route(m, first[i].method, first[i].path, first[i].level, first[i].fn, 0);
    if (rc == 0)
        rc = baic_api_vfolder_share_init(m);
    if (rc == 0)
        rc = baic_api_vfolder_files_init(m);
    if (rc == 0)
        rc = baic_api_vfolder_clone_init(m);
    if (rc == 0)
        rc = baic_api_vfolder_admin_init(m);
    static const struct {
        const char *method, *path;
        baic_api_fn fn;
    } last[] = {
        {"GET", "/folders/{name}", get_folder},
        {"DELETE", "/folders/{name}", delete_folder},
        {"DELETE", "/folders/{name}/force", delete_force},
        {"POST", "/folders/{name}/rename", post_rename},
        {"POST", "/folders/{name}/update-options", post_update_options},
    };
    for (size_t i = 0; rc == 0 && i < sizeof last / sizeof last[0]; i++)
        rc = baic_api_route(m, last[i].method, last[i].path, BAIC_ROUTE_USER, last[i].fn, 0);
    return rc;
}
