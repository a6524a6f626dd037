/* SPDX-License-Identifier: Apache-2.0 */
/* /folders: invitations to user folders, shares of project folders, leaving a shared folder. */
#include "vfolder_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log/log.h"

#define S(o, k) json_string_value(json_object_get((o), (k)))

static const char *const PERMS[] = {"ro", "rw", "wd", NULL};

static int perm_ok(const char *p) {
    for (const char *const *a = PERMS; p && *a; a++)
        if (strcmp(*a, p) == 0)
            return 1;
    return 0;
}

/* A list of 1..64 e-mail strings under key (or alt); its JSON text in v->aux. */
static int email_list(vf_t *v, const char *key, const char *alt) {
    json_t *l = json_object_get(v->body, key);
    if (l == NULL && alt)
        l = json_object_get(v->body, alt);
    size_t i;
    json_t *e;
    if (!json_is_array(l) || json_array_size(l) == 0 || json_array_size(l) > 64)
        goto bad;
    json_array_foreach(l, i, e) if (!json_is_string(e) || json_string_length(e) == 0 ||
                                    json_string_length(e) > 128) goto bad;
    v->aux = json_incref(l);
    return 0;
bad:;
    char msg[160];
    snprintf(msg, sizeof msg, "'%s' must be a list of 1 to 64 e-mail addresses.", key);
    baic_api_invalid_params(v->req, msg);
    return -1;
}

static json_t *parse_col(const baic_db_result_t *res, const char *col) {
    const char *t = baic_db_result_get_by_name(res, 0, col);
    json_t *j = t ? json_loads(t, 0, NULL) : NULL;
    return j ? j : json_array();
}

/* ---- invite ---- */

static const char INVITE_SQL[] =
    "WITH want AS (SELECT DISTINCT jsonb_array_elements_text($2::jsonb) AS email),"
    " known AS (SELECT w.email, u.uuid FROM want w LEFT JOIN users u ON u.email = w.email"
    "   AND u.status = 'active' AND u.domain_name = $6),"
    " ins AS (INSERT INTO vfolder_invitations (permission, inviter, invitee, vfolder)"
    "   SELECT $3, $4, k.email, $1::uuid FROM known k WHERE k.uuid IS NOT NULL"
    "   AND k.uuid <> $5::uuid AND NOT EXISTS (SELECT 1 FROM known x WHERE x.uuid IS NULL)"
    "   AND NOT EXISTS (SELECT 1 FROM vfolder_permissions p WHERE p.vfolder = $1::uuid"
    "     AND p.\"user\" = k.uuid)"
    "   AND NOT EXISTS (SELECT 1 FROM vfolder_invitations i WHERE i.vfolder = $1::uuid"
    "     AND i.invitee = k.email AND i.state = 'pending')"
    "   RETURNING id::text AS id)"
    " SELECT (SELECT json_agg(email) FROM known WHERE uuid IS NULL)::text AS unknown,"
    " (SELECT json_agg(id) FROM ins)::text AS ids";

static void invited(vf_t *v, const baic_db_result_t *res, int err) {
    (void)err;
    json_t *unknown = parse_col(res, "unknown");
    if (json_array_size(unknown) > 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "No such user to invite: %.128s.",
                 json_string_value(json_array_get(unknown, 0)));
        json_decref(unknown);
        baic_api_not_found(v->req, "user", msg);
        vf_free(v);
        return;
    }
    json_decref(unknown);
    BAIC_LOG_I("vfolder_invited", "id=%s by=%s", v->id, v->who->access_key);
    vf_reply(v, 200, json_pack("{s:o}", "invited_ids", parse_col(res, "ids")));
}

static void invite_found(vf_t *v) {
    if (strcmp(S(v->row, "ownership_type"), "user") != 0) {
        baic_api_invalid_params(v->req, "Project folders are shared with 'share', not invited to.");
        vf_free(v);
        return;
    }
    char *emails = json_dumps(v->aux, JSON_COMPACT);
    const char *p[6] = {
        v->id,         emails, S(v->body, "perm") ?: "rw", v->who->email, v->who->user_uuid,
        v->who->domain};
    vf_query(v, INVITE_SQL, 6, p, invited);
    free(emails);
}

static void post_invite(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    json_t *perm = json_object_get(v->body, "perm");
    if (perm != NULL && !perm_ok(json_string_value(perm))) {
        baic_api_invalid_params(req, "'perm' must be ro, rw or wd.");
        vf_free(v);
        return;
    }
    if (email_list(v, "emails", "user_ids") != 0) {
        vf_free(v);
        return;
    }
    vf_resolve_param(v, VF_OWNER, invite_found);
}

/* ---- invitation lists, accept, delete ---- */

static const char INV_LIST_SQL[] =
    "SELECT COALESCE(json_agg(json_build_object('id', i.id::text, 'inviter', i.inviter,"
    " 'invitee', i.invitee, 'perm', i.permission, 'state', i.state,"
    " 'created_at', to_char(i.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
    "   || '+00:00',"
    " 'modified_at', to_char(i.modified_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
    "   || '+00:00',"
    " 'vfolder_id', replace(v.id::text, '-', ''), 'vfolder_name', v.name)"
    " ORDER BY i.created_at), '[]')::text"
    " FROM vfolder_invitations i JOIN vfolders v ON v.id = i.vfolder"
    " WHERE i.state = 'pending' AND v.status NOT LIKE 'delete-%' AND"
    " CASE WHEN $2 THEN i.inviter = $1 ELSE i.invitee = $1 END";

static void inv_listed(vf_t *v, const baic_db_result_t *res, int err) {
    (void)err;
    json_t *l = json_loads(baic_db_result_get(res, 0, 0) ?: "[]", 0, NULL);
    vf_reply(v, 200, json_pack("{s:o}", "invitations", l ? l : json_array()));
}

static void inv_list(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who, int sent) {
    vf_t *v = vf_new(req, m, who, 0);
    if (v == NULL)
        return;
    const char *p[2] = {who->email, sent ? "true" : "false"};
    vf_query(v, INV_LIST_SQL, 2, p, inv_listed);
}

static void get_invitations(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    inv_list(req, m, who, 0);
}
static void get_invitations_sent(baic_http_req_t *req, baic_manager_t *m,
                                 const baic_caller_t *who) {
    inv_list(req, m, who, 1);
}

static void inv_done(vf_t *v, const baic_db_result_t *res, int err) {
    (void)err;
    if (baic_db_result_rows(res) == 0) {
        baic_api_not_found(v->req, "invitation", "No such pending invitation for you.");
        vf_free(v);
        return;
    }
    BAIC_LOG_I("vfolder_invitation", "inv=%s result=%s by=%s", S(v->body, "inv_id"),
               baic_db_result_get(res, 0, 0), v->who->access_key);
    vf_reply(v, 200, json_object());
}

static const char *inv_id(vf_t *v) {
    const char *id = S(v->body, "inv_id");
    if (id == NULL || strlen(id) > 64) {
        baic_api_invalid_params(v->req, "'inv_id' is required.");
        vf_free(v);
        return NULL;
    }
    return id;
}

static void post_accept(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    const char *id = v ? inv_id(v) : NULL;
    if (id == NULL)
        return;
    const char *p[3] = {id, who->email, who->user_uuid};
    vf_query(v,
             "WITH i AS (UPDATE vfolder_invitations SET state = 'accepted', modified_at = now()"
             " WHERE id::text = lower($1) AND invitee = $2 AND state = 'pending'"
             " AND vfolder IN (SELECT id FROM vfolders WHERE status NOT LIKE 'delete-%')"
             " RETURNING vfolder, permission)"
             " INSERT INTO vfolder_permissions (vfolder, \"user\", permission)"
             " SELECT vfolder, $3::uuid, permission FROM i ON CONFLICT (vfolder, \"user\")"
             " DO UPDATE SET permission = EXCLUDED.permission RETURNING 'accepted'",
             3, p, inv_done);
}

static void post_inv_delete(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    const char *id = v ? inv_id(v) : NULL;
    if (id == NULL)
        return;
    const char *p[2] = {id, who->email};
    vf_query(v,
             "UPDATE vfolder_invitations SET modified_at = now(), state = CASE WHEN invitee = $2"
             " THEN 'rejected' ELSE 'canceled' END WHERE id::text = lower($1)"
             " AND state = 'pending' AND (invitee = $2 OR inviter = $2) RETURNING state",
             2, p, inv_done);
}

/* ---- project folder share / unshare ---- */

static const char SHARE_SQL[] =
    "WITH want AS (SELECT DISTINCT jsonb_array_elements_text($2::jsonb) AS email),"
    " ok AS (SELECT u.uuid, u.email FROM users u JOIN want w ON w.email = u.email"
    "   JOIN association_groups_users a ON a.user_id = u.uuid AND a.group_id = $3::uuid"
    "   WHERE u.status = 'active'),"
    " up AS (INSERT INTO vfolder_permissions (vfolder, \"user\", permission)"
    "   SELECT $1::uuid, uuid, $4 FROM ok WHERE (SELECT count(*) FROM ok) = (SELECT count(*)"
    "   FROM want) ON CONFLICT (vfolder, \"user\") DO UPDATE SET permission = EXCLUDED.permission"
    "   RETURNING \"user\")"
    " SELECT (SELECT json_agg(w.email) FROM want w WHERE w.email NOT IN (SELECT email FROM ok))"
    "   ::text AS bad,"
    " (SELECT json_agg(email ORDER BY email) FROM ok WHERE uuid IN (SELECT \"user\" FROM up))"
    "   ::text AS done";

static const char UNSHARE_SQL[] =
    "WITH d AS (DELETE FROM vfolder_permissions p USING users u WHERE p.vfolder = $1::uuid"
    " AND u.uuid = p.\"user\" AND u.email IN (SELECT jsonb_array_elements_text($2::jsonb))"
    " RETURNING u.email)"
    " SELECT '[]' AS bad, (SELECT json_agg(email ORDER BY email) FROM d)::text AS done";

static void shared_done(vf_t *v, const baic_db_result_t *res, int err) {
    (void)err;
    json_t *badl = parse_col(res, "bad");
    if (json_array_size(badl) > 0) {
        char msg[240];
        snprintf(msg, sizeof msg, "Not an active member of the folder's project: %.128s.",
                 json_string_value(json_array_get(badl, 0)));
        json_decref(badl);
        baic_api_invalid_params(v->req, msg);
        vf_free(v);
        return;
    }
    json_decref(badl);
    BAIC_LOG_I("vfolder_share", "id=%s op=%s by=%s", v->id, v->flag ? "share" : "unshare",
               v->who->access_key);
    vf_reply(
        v, v->flag ? 201 : 200,
        json_pack("{s:o}", v->flag ? "shared_emails" : "unshared_emails", parse_col(res, "done")));
}

static void share_found(vf_t *v) {
    if (strcmp(S(v->row, "ownership_type"), "group") != 0) {
        baic_api_invalid_params(v->req, "Only project folders are shared this way; invite users "
                                        "to your own folders.");
        vf_free(v);
        return;
    }
    char *emails = json_dumps(v->aux, JSON_COMPACT);
    const char *p[4] = {v->id, emails, S(v->row, "group"), S(v->body, "permission") ?: "rw"};
    vf_query(v, v->flag ? SHARE_SQL : UNSHARE_SQL, v->flag ? 4 : 2, p, shared_done);
    free(emails);
}

static void share_common(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who,
                         int share) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    json_t *perm = json_object_get(v->body, "permission");
    if (share && perm != NULL && !perm_ok(json_string_value(perm))) {
        baic_api_invalid_params(req, "'permission' must be ro, rw or wd.");
        vf_free(v);
        return;
    }
    if (email_list(v, "emails", NULL) != 0) {
        vf_free(v);
        return;
    }
    v->flag = share;
    vf_resolve_param(v, VF_OWNER, share_found);
}

static void post_share(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    share_common(req, m, who, 1);
}
static void post_unshare(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    share_common(req, m, who, 0);
}

/* ---- leave ---- */

static void left(vf_t *v, const baic_db_result_t *res, int err) {
    (void)err;
    if (baic_db_result_affected(res) == 0) {
        baic_api_invalid_params(v->req, "The folder is not shared with that user.");
        vf_free(v);
        return;
    }
    vf_reply(v, 200, json_pack("{s:s}", "msg", "left the shared vfolder"));
}

static void leave_found(vf_t *v) {
    const char *target = S(v->body, "shared_user_uuid");
    if (v->level == VF_OWNER && target == NULL) {
        baic_api_invalid_params(v->req, "The owner cannot leave a folder; name shared_user_uuid "
                                        "to remove someone else.");
        vf_free(v);
        return;
    }
    if (v->level != VF_OWNER && target != NULL && strcasecmp(target, v->who->user_uuid) != 0) {
        baic_api_forbidden(v->req, "Only the owner may remove other users from a folder.");
        vf_free(v);
        return;
    }
    const char *p[2] = {v->id, target ? target : v->who->user_uuid};
    vf_query(v,
             "DELETE FROM vfolder_permissions WHERE vfolder = $1::uuid AND \"user\"::text ="
             " lower($2)",
             2, p, left);
}

static void post_leave(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    json_t *t = json_object_get(v->body, "shared_user_uuid");
    if (t != NULL && !json_is_null(t) && (!json_is_string(t) || json_string_length(t) > 40)) {
        baic_api_invalid_params(req, "'shared_user_uuid' must be a user id.");
        vf_free(v);
        return;
    }
    if (json_is_null(t))
        json_object_del(v->body, "shared_user_uuid");
    vf_resolve_param(v, VF_RO, leave_found);
}

/* ---- GET|POST /folders/_/shared ---- */

#define OWNED_BY_CALLER                                                                            \
    " (v.\"user\" = $1::uuid OR ($2::boolean AND v.\"group\" IS NOT NULL AND ($3::text IS NULL"    \
    "  OR g.domain_name = $3)))"

static void shared_listed(vf_t *v, const baic_db_result_t *res, int err) {
    (void)err;
    json_t *l = json_loads(baic_db_result_get(res, 0, 0) ?: "[]", 0, NULL);
    vf_reply(v, 200, json_pack("{s:o}", "shared", l ? l : json_array()));
}

static void shared_updated(vf_t *v, const baic_db_result_t *res, int err) {
    (void)err;
    if (baic_db_result_rows(res) == 0) {
        baic_api_not_found(v->req, "shared folder", "No such share on a folder of yours.");
        vf_free(v);
        return;
    }
    vf_reply(v, 200, json_pack("{s:s}", "msg", "success"));
}

static void get_shared(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    const char *vid = baic_http_query(req, "vfolder_id");
    if (vid == NULL)
        vid = S(v->body, "vfolder_id");
    const char *p[4] = {who->user_uuid, who->is_admin ? "true" : "false",
                        who->is_superadmin ? NULL : who->domain, vid};
    vf_query(
        v,
        "SELECT COALESCE(json_agg(json_build_object('vfolder_id', replace(v.id::text, '-', ''),"
        " 'vfolder_name', v.name, 'status', v.status, 'owner', COALESCE(v.\"user\"::text,"
        " v.\"group\"::text), 'type', v.ownership_type, 'shared_to', json_build_object("
        " 'uuid', u.uuid::text, 'email', u.email), 'perm', p.permission)"
        " ORDER BY v.name, u.email), '[]')::text"
        " FROM vfolder_permissions p JOIN vfolders v ON v.id = p.vfolder"
        " JOIN users u ON u.uuid = p.\"user\" LEFT JOIN groups g ON g.id = v.\"group\""
        " WHERE v.status <> 'delete-complete' AND" OWNED_BY_CALLER
        " AND ($4::text IS NULL OR v.id::text = lower($4)"
        " OR replace(v.id::text, '-', '') = lower($4))",
        4, p, shared_listed);
}

static void post_shared(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    const char *vid = S(v->body, "vfolder"), *user = S(v->body, "user");
    json_t *perm = json_object_get(v->body, "perm");
    if (vid == NULL || user == NULL || strlen(vid) > 64 || strlen(user) > 64 ||
        (perm != NULL && !json_is_null(perm) && !perm_ok(json_string_value(perm)))) {
        baic_api_invalid_params(req, "Give 'vfolder', 'user' and 'perm' (ro, rw, wd or null).");
        vf_free(v);
        return;
    }
    const char *p[6] = {who->user_uuid,
                        who->is_admin ? "true" : "false",
                        who->is_superadmin ? NULL : who->domain,
                        vid,
                        user,
                        json_string_value(perm)};
    vf_query(v,
             "WITH t AS (SELECT p.vfolder, p.\"user\" FROM vfolder_permissions p"
             " JOIN vfolders v ON v.id = p.vfolder LEFT JOIN groups g ON g.id = v.\"group\""
             " WHERE v.status <> 'delete-complete' AND" OWNED_BY_CALLER
             " AND (v.id::text = lower($4) OR replace(v.id::text, '-', '') = lower($4))"
             " AND p.\"user\"::text = lower($5)),"
             " d AS (DELETE FROM vfolder_permissions x USING t WHERE $6::text IS NULL"
             " AND x.vfolder = t.vfolder AND x.\"user\" = t.\"user\" RETURNING 1),"
             " u AS (UPDATE vfolder_permissions x SET permission = $6 FROM t WHERE $6::text"
             " IS NOT NULL AND x.vfolder = t.vfolder AND x.\"user\" = t.\"user\" RETURNING 1)"
             " SELECT 1 FROM d UNION ALL SELECT 1 FROM u",
             6, p, shared_updated);
}

int baic_api_vfolder_share_init(baic_manager_t *m) {
    static const struct {
        const char *method, *path;
        baic_api_fn fn;
    } r[] = {
        {"GET", "/folders/_/shared", get_shared},
        {"POST", "/folders/_/shared", post_shared},
        {"GET", "/folders/invitations/list", get_invitations},
        {"GET", "/folders/invitations/list-sent", get_invitations_sent},
        {"GET", "/folders/invitations/list_sent", get_invitations_sent},
        {"POST", "/folders/invitations/accept", post_accept},
        {"DELETE", "/folders/invitations/delete", post_inv_delete},
        {"POST", "/folders/invitations/delete", post_inv_delete},
        {"POST", "/folders/{name}/invite", post_invite},
        {"POST", "/folders/{name}/share", post_share},
        {"DELETE", "/folders/{name}/unshare", post_unshare},
        {"POST", "/folders/{name}/unshare", post_unshare},
        {"POST", "/folders/{name}/leave", post_leave},
    };
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof r / sizeof r[0]; i++)
        rc = baic_api_route(m, r[i].method, r[i].path, BAIC_ROUTE_USER, r[i].fn, 0);
    return rc;
}
