/* SPDX-License-Identifier: Apache-2.0 */
/* /folders/{name}/clone as a background task (bgtask.h; progress over GET /events/background-task). */
#include "vfolder_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bgtask.h"
#include "log/log.h"

#define S(o, k) json_string_value(json_object_get((o), (k)))

/* ---- the copy, after the answer ---- */

typedef struct job {
    baic_manager_t *m;
    char task[40], folder[40];
    int ok;
    char msg[300];
} job_t;

/* The folder's status is stored first, so a client that sees the task end finds it ready. */
static void job_noted(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    job_t *j = arg;
    (void)res;
    if (err != 0)
        BAIC_LOG_W("vfolder_clone_update_failed", "task=%s error=\"%s\"", j->task,
                   errmsg ? errmsg : "");
    if (!j->m->closing) {
        if (j->ok && err == 0)
            baic_bgtask_done(j->m, j->task, j->msg, NULL);
        else
            baic_bgtask_failed(j->m, j->task, err == 0 ? j->msg : "clone finished, but the "
                                                                 "folder could not be updated");
    }
    free(j);
}

static void job_finish(job_t *j, int ok, const char *msg) {
    BAIC_LOG_I("vfolder_clone_finished", "task=%s folder=%s ok=%d msg=\"%s\"", j->task, j->folder,
               ok, msg);
    if (j->m->closing) {
        free(j);
        return;
    }
    j->ok = ok;
    snprintf(j->msg, sizeof j->msg, "%s", msg);
    const char *p[2] = {j->folder, ok ? "ready" : "error"};
    if (baic_db_query(j->m->db,
                      "UPDATE vfolders SET status = $2::text, status_changed = now(),"
                      " status_history = status_history || jsonb_build_object($2::text, now()::text)"
                      " WHERE id = $1::uuid",
                      2, p, job_noted, j) != 0) {
        baic_bgtask_failed(j->m, j->task, "clone finished, but the database is not reachable");
        free(j);
    }
}

static void job_copied(int status, json_t *answer, int err, void *arg) {
    job_t *j = arg;
    char msg[300];
    if (err == 0 && status >= 200 && status < 300) {
        job_finish(j, 1, "cloned");
        return;
    }
    const char *pm = S(answer, "msg");
    snprintf(msg, sizeof msg, "clone failed: %s%.200s", err ? "storage proxy not reachable" : "",
             err ? "" : (pm ? pm : "storage proxy error"));
    job_finish(j, 0, msg);
}

/* ---- POST /folders/{name}/clone ---- */

static const char CLONE_SQL[] =
    "WITH lim AS (SELECT r.max_vfolder_count AS max, (SELECT count(*) FROM vfolders"
    "   WHERE \"user\" = $1::uuid AND status <> 'delete-complete') AS n FROM users u"
    "   JOIN user_resource_policies r ON r.name = u.resource_policy WHERE u.uuid = $1::uuid),"
    " t AS (INSERT INTO background_tasks (kind, access_key, total_progress)"
    "   SELECT 'vfolder_clone', $9, 1 FROM lim WHERE lim.max = 0 OR lim.n < lim.max"
    "   RETURNING id),"
    " f AS (INSERT INTO vfolders (host, domain_name, quota_scope_id, name, usage_mode,"
    "   permission, creator, ownership_type, \"user\", cloneable, status)"
    "   SELECT $2, $3, 'user:' || $1, $4, $5, $6, $7, 'user', $1::uuid, $8::boolean, 'cloning'"
    "   FROM t RETURNING id)"
    " SELECT (SELECT id::text FROM t) AS task, (SELECT id::text FROM f) AS folder";

static void clone_inserted(vf_t *v, const baic_db_result_t *res, int err) {
    if (err == BAIC_EEXISTS) {
        baic_http_respond_problem(v->req, 400, "vfolder-already-exists",
                                  "The virtual folder already exists with the same name.",
                                  "You already have a folder of this name.", NULL);
        vf_free(v);
        return;
    }
    const char *task = baic_db_result_get(res, 0, 0), *folder = baic_db_result_get(res, 0, 1);
    if (task == NULL || folder == NULL) {
        baic_http_respond_problem(v->req, 400, "vfolder-quota-exceeded",
                                  "Virtual folder count limit exceeded.",
                                  "You cannot create more folders.", NULL);
        vf_free(v);
        return;
    }
    json_t *b = v->aux;
    char hex[33], dvfid[160];
    vf_hex(folder, hex);
    snprintf(dvfid, sizeof dvfid, "user:%s/%s", v->who->user_uuid, hex);
    const char *dhost = S(b, "target_host");
    const char *dvol = strchr(dhost, ':') + 1;
    job_t *j = calloc(1, sizeof *j);
    json_t *body =
        json_pack("{s:s, s:s, s:s}", "src_vfid", v->vfid, "dst_volume", dvol, "dst_vfid", dvfid);
    json_object_set_new(body, "src_volume", json_string(strchr(v->host, ':') + 1));
    if (j != NULL) {
        j->m = v->m;
        snprintf(j->task, sizeof j->task, "%s", task);
        snprintf(j->folder, sizeof j->folder, "%s", folder);
        /* Up to an hour: a big folder's copy runs while the client follows the task. */
        baic_bgtask_progress(v->m, task, 0, 1, "copying");
        if (baic_storage_call(v->m, v->host, "/folder/clone", body, 3600000, job_copied, j) != 0)
            job_finish(j, 0, "clone failed: the storage proxy could not be called");
    }
    json_decref(body);
    BAIC_LOG_I("vfolder_clone_started", "task=%s src=%s dst=%s by=%s", task, v->id, folder,
               v->who->access_key);
    json_t *o =
        json_pack("{s:s, s:O, s:s, s:O, s:O, s:s, s:s, s:s, s:n, s:O, s:s}", "id", hex, "name",
                  json_object_get(b, "target_name"), "host", dhost, "usage_mode",
                  json_object_get(b, "usage_mode"), "permission", json_object_get(b, "permission"),
                  "creator", v->who->email, "ownership_type", "user", "user", v->who->user_uuid,
                  "group", "cloneable", json_object_get(b, "cloneable"), "bgtask_id", task);
    vf_reply(v, 201, o);
}

static void clone_found(vf_t *v) {
    json_t *b = v->aux;
    if (v->level != VF_OWNER && !json_is_true(json_object_get(v->row, "cloneable"))) {
        baic_api_forbidden(v->req, "The folder is not cloneable.");
        vf_free(v);
        return;
    }
    if (S(b, "target_host") == NULL)
        json_object_set_new(b, "target_host", json_string(v->host));
    const char *dh = S(b, "target_host"), *sc = strchr(v->host, ':');
    if (!baic_storage_host_ok(dh) || strncmp(dh, v->host, (size_t)(sc - v->host + 1)) != 0) {
        baic_api_invalid_params(v->req, "'target_host' must be a volume of the same storage "
                                        "proxy as the source folder.");
        vf_free(v);
        return;
    }
    if (S(b, "usage_mode") == NULL)
        json_object_set_new(b, "usage_mode", json_string(S(v->row, "usage_mode")));
    const char *p[9] = {
        v->who->user_uuid,  dh,
        v->who->domain,     S(b, "target_name"),
        S(b, "usage_mode"), S(b, "permission"),
        v->who->email,      json_is_true(json_object_get(b, "cloneable")) ? "true" : "false",
        v->who->access_key};
    vf_query(v, CLONE_SQL, 9, p, clone_inserted);
}

static void post_clone(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    static const char *const modes[] = {"general", "model", "data"};
    static const char *const perms[] = {"ro", "rw", "wd"};
    json_t *name = json_object_get(v->body, "target_name");
    json_t *host = json_object_get(v->body, "target_host");
    json_t *mode = json_object_get(v->body, "usage_mode");
    json_t *perm = json_object_get(v->body, "permission");
    json_t *cl = json_object_get(v->body, "cloneable");
    int mode_ok = mode == NULL || json_is_null(mode), perm_ok = perm == NULL || json_is_null(perm);
    for (int i = 0; i < 3; i++) {
        if (json_is_string(mode) && strcmp(json_string_value(mode), modes[i]) == 0)
            mode_ok = 1;
        if (json_is_string(perm) && strcmp(json_string_value(perm), perms[i]) == 0)
            perm_ok = 1;
    }
    if (!json_is_string(name) || !baic_vfolder_name_ok(json_string_value(name))) {
        baic_api_invalid_params(req, "'target_name' must be a valid folder name.");
        goto fail;
    }
    if ((host != NULL && !json_is_null(host) && !json_is_string(host)) || !mode_ok || !perm_ok ||
        (cl != NULL && !json_is_null(cl) && !json_is_boolean(cl))) {
        baic_api_invalid_params(req, "'target_host' must be a host, 'usage_mode' general, model "
                                     "or data, 'permission' ro, rw or wd, 'cloneable' a boolean.");
        goto fail;
    }
    v->aux = json_pack("{s:O, s:s?, s:s?, s:s, s:b}", "target_name", name, "target_host",
                       json_string_value(host), "usage_mode", json_string_value(mode), "permission",
                       json_is_string(perm) ? json_string_value(perm) : "rw", "cloneable",
                       json_is_true(cl));
    vf_resolve_param(v, VF_RO, clone_found);
    return;
fail:
    vf_free(v);
}

int baic_api_vfolder_clone_init(baic_manager_t *m) {
    /* GET /events/background-task is served by api/events.c for every kind of task. */
    return baic_api_route(m, "POST", "/folders/{name}/clone", BAIC_ROUTE_USER, post_clone, 0);
}
