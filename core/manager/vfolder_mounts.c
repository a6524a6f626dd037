/* SPDX-License-Identifier: Apache-2.0 */
/* The manager side of mounting virtual folders into a session's kernels: which folders, where, how.
 */
#include "vfolder_mounts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/vfolder_int.h"
#include "log/log.h"

#define S(o, k) json_string_value(json_object_get((o), (k)))

typedef struct mres {
    vf_t *v;
    baic_vfolder_mounts_cb cb;
    void *arg;
    json_t *want;   /* [{"ref", "kernel_path", "ro"}] */
    json_t *rows;   /* folder rows by ref */
    json_t *mounts; /* the answer being built */
    size_t next;    /* mount whose host path is asked next */
} mres_t;

static char mount_sql[8192];

static void finish(mres_t *r, json_t *mounts) {
    r->cb(mounts, r->arg);
    json_decref(r->want);
    json_decref(r->rows);
    json_decref(r->mounts);
    r->v->on_drop = NULL;
    vf_free(r->v);
    free(r);
}

/* The request state went away on a database error or an abort: the caller still hears. */
static void dropped(vf_t *v) {
    mres_t *r = v->data;
    r->cb(NULL, r->arg);
    json_decref(r->want);
    json_decref(r->rows);
    json_decref(r->mounts);
    free(r);
}

static void fail(mres_t *r, int status, const char *slug, const char *title, const char *msg) {
    baic_http_respond_problem(r->v->req, status, slug, title, msg, NULL);
    finish(r, NULL);
}

/* "/home/work/x" or "x" -> "/home/work/x"; NULL when outside /home/work or with "..". */
static int kernel_path(const char *in, char *out, size_t n) {
    const char *rel = in;
    if (in[0] == '/') {
        if (strncmp(in, "/home/work/", 11) != 0)
            return -1;
        rel = in + 11;
    }
    while (*rel == '/')
        rel++;
    if (*rel == '\0' || strlen(in) > 255)
        return -1;
    for (const char *c = rel; *c;) {
        size_t k = strcspn(c, "/");
        if ((k == 2 && c[0] == '.' && c[1] == '.') || (k == 1 && c[0] == '.'))
            return -1;
        c += k;
        while (*c == '/')
            c++;
    }
    int w = snprintf(out, n, "/home/work/%s", rel);
    if (w < 0 || (size_t)w >= n)
        return -1;
    size_t l = strlen(out);
    while (l > 11 && out[l - 1] == '/')
        out[--l] = '\0';
    return 0;
}

static void ask_next(mres_t *r);

static void got_path(int status, json_t *answer, int err, void *arg) {
    mres_t *r = arg;
    if (baic_api_op_gone(r->v->op)) {
        finish(r, NULL);
        return;
    }
    json_t *mt = json_array_get(r->mounts, r->next);
    const char *path = S(answer, "path");
    if (err != 0 || status != 200 || path == NULL || path[0] != '/') {
        char msg[300];
        snprintf(msg, sizeof msg, "The storage proxy cannot give the host path of folder '%.64s'.",
                 S(mt, "name"));
        BAIC_LOG_W("vfolder_mount_path_failed", "vfid=%s status=%d err=%d", S(mt, "vfid"), status,
                   err);
        fail(r, err != 0 || status >= 500 ? 503 : 404,
             err != 0 || status >= 500 ? "service-unavailable" : "object-not-found",
             err != 0 || status >= 500 ? "Service unavailable." : "No such virtual folder.", msg);
        return;
    }
    json_object_set_new(mt, "host_path", json_string(path));
    json_object_del(mt, "_host");
    r->next++;
    ask_next(r);
}

static void ask_next(mres_t *r) {
    if (r->next >= json_array_size(r->mounts)) {
        json_t *out = r->mounts;
        r->mounts = NULL;
        finish(r, out);
        return;
    }
    json_t *mt = json_array_get(r->mounts, r->next);
    json_t *b = json_pack("{s:s}", "vfid", S(mt, "vfid"));
    int rc = baic_storage_call(r->v->m, S(mt, "_host"), "/folder/mount", b, 15000, got_path, r);
    json_decref(b);
    if (rc != 0)
        fail(r, 503, "service-unavailable", "Service unavailable.",
             "The folder's storage host has no configured proxy.");
}

static int matches(const json_t *row, const char *ref) {
    char hex[33];
    vf_hex(ref, hex);
    return strcmp(S(row, "name"), ref) == 0 || strcasecmp(S(row, "id"), ref) == 0 ||
           (strlen(ref) == 32 && strcmp(S(row, "hex"), hex) == 0);
}

static void rows_done(vf_t *v, const baic_db_result_t *res, int err) {
    (void)err;
    mres_t *r = v->data;
    json_t *rows = json_array();
    for (int i = 0; i < baic_db_result_rows(res); i++) {
        json_t *row = json_loads(baic_db_result_get(res, i, 0), 0, NULL);
        if (row)
            json_array_append_new(rows, row);
    }
    r->rows = rows;
    r->mounts = json_array();
    json_t *seen_paths = json_object(), *seen_ids = json_object();
    char msg[300];
    size_t i, j;
    json_t *w, *row;
    /* Requested folders, then the caller's own dot-folders not already asked for. */
    json_array_foreach(rows, j, row) {
        if (json_is_true(json_object_get(row, "own")) && S(row, "name")[0] == '.' &&
            strncmp(S(row, "status"), "delete-", 7) != 0) {
            int asked = 0;
            json_array_foreach(r->want, i, w) if (matches(row, S(w, "ref"))) asked = 1;
            if (!asked)
                json_array_append_new(r->want,
                                      json_pack("{s:s, s:n, s:b, s:b}", "ref", S(row, "id"),
                                                "kernel_path", "ro", 0, "auto", 1));
        }
    }
    json_array_foreach(r->want, i, w) {
        const char *ref = S(w, "ref");
        json_t *found = NULL;
        json_array_foreach(rows, j,
                           row) if (matches(row, ref) &&
                                    (found == NULL || json_is_true(json_object_get(row, "own"))))
            found = row;
        if (found == NULL || strncmp(S(found, "status"), "delete-", 7) == 0) {
            snprintf(msg, sizeof msg, "No such virtual folder to mount: '%.64s'.", ref);
            baic_api_not_found(v->req, "virtual folder", msg);
            goto out;
        }
        const char *perm;
        int level = vf_row_level(found, &perm);
        if (level < VF_RO) {
            snprintf(msg, sizeof msg, "No such virtual folder to mount: '%.64s'.", ref);
            baic_api_not_found(v->req, "virtual folder", msg);
            goto out;
        }
        json_decref(v->row);
        v->row = json_incref(found);
        if (!vf_host_allows(v, "mount-in-session")) {
            snprintf(msg, sizeof msg, "Folders on host '%.128s' may not be mounted in sessions.",
                     S(found, "host"));
            baic_api_forbidden(v->req, msg);
            goto out;
        }
        if (json_object_get(seen_ids, S(found, "id")) != NULL) {
            snprintf(msg, sizeof msg, "Folder '%.64s' is mounted twice.", S(found, "name"));
            baic_api_invalid_params(v->req, msg);
            goto out;
        }
        json_object_set_new(seen_ids, S(found, "id"), json_true());
        char kp[300];
        const char *target = S(w, "kernel_path");
        if (target == NULL)
            target = S(found, "name");
        if (kernel_path(target, kp, sizeof kp) != 0) {
            snprintf(msg, sizeof msg,
                     "The mount path of folder '%.64s' must be inside /home/work, without '..'.",
                     S(found, "name"));
            baic_api_invalid_params(v->req, msg);
            goto out;
        }
        if (json_object_get(seen_paths, kp) != NULL) {
            snprintf(msg, sizeof msg, "Two folders are mounted at %.200s.", kp);
            baic_api_invalid_params(v->req, msg);
            goto out;
        }
        json_object_set_new(seen_paths, kp, json_true());
        const char *mperm = level >= VF_OWNER ? "rw" : perm;
        if (json_is_true(json_object_get(w, "ro")) || level == VF_RO)
            mperm = "ro";
        char vfid[160];
        snprintf(vfid, sizeof vfid, "%s/%s", S(found, "quota_scope_id"), S(found, "hex"));
        json_array_append_new(r->mounts,
                              json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "name", S(found, "name"),
                                        "vfid", vfid, "id", S(found, "id"), "kernel_path", kp,
                                        "permission", mperm, "_host", S(found, "host")));
    }
    json_decref(seen_paths);
    json_decref(seen_ids);
    ask_next(r);
    return;
out:
    json_decref(seen_paths);
    json_decref(seen_ids);
    finish(r, NULL);
}

static void bad(baic_http_req_t *req, const char *msg, baic_vfolder_mounts_cb cb, void *arg) {
    baic_api_invalid_params(req, msg);
    cb(NULL, arg);
}

void baic_vfolder_mounts_resolve(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who,
                                 const json_t *config, baic_vfolder_mounts_cb cb, void *arg) {
    const json_t *mounts = config ? json_object_get(config, "mounts") : NULL;
    const json_t *map = config ? json_object_get(config, "mount_map") : NULL;
    const json_t *opts = config ? json_object_get(config, "mount_options") : NULL;
    if (map == NULL && config)
        map = json_object_get(config, "mountMap");
    if (mounts != NULL && !json_is_null(mounts) &&
        (!json_is_array(mounts) || json_array_size(mounts) > 64)) {
        bad(req, "config.mounts must be a list of at most 64 folder names or ids.", cb, arg);
        return;
    }
    if ((map != NULL && !json_is_null(map) && !json_is_object(map)) ||
        (opts != NULL && !json_is_null(opts) && !json_is_object(opts))) {
        bad(req, "config.mount_map and config.mount_options must be objects.", cb, arg);
        return;
    }
    json_t *want = json_array(), *refs = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(mounts, i, e) {
        const char *ref = json_string_value(e);
        if (ref == NULL || *ref == '\0' || json_string_length(e) > 128) {
            json_decref(want);
            json_decref(refs);
            bad(req, "config.mounts must hold folder names or ids (strings).", cb, arg);
            return;
        }
        const json_t *t = json_object_get(map, ref);
        const json_t *o = json_object_get(opts, ref);
        const json_t *op = json_object_get(o, "permission");
        if ((t != NULL && !json_is_string(t)) || (o != NULL && !json_is_object(o)) ||
            (op != NULL && (!json_is_string(op) || (strcmp(json_string_value(op), "ro") != 0 &&
                                                    strcmp(json_string_value(op), "rw") != 0 &&
                                                    strcmp(json_string_value(op), "wd") != 0)))) {
            json_decref(want);
            json_decref(refs);
            bad(req,
                "config.mount_map values must be paths and mount_options values "
                "{\"permission\": \"ro\"|\"rw\"|\"wd\"}.",
                cb, arg);
            return;
        }
        json_array_append_new(want, json_pack("{s:s, s:s?, s:b}", "ref", ref, "kernel_path",
                                              json_string_value(t), "ro",
                                              op && strcmp(json_string_value(op), "ro") == 0));
        json_array_append_new(refs, json_string(ref));
    }
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)map, k, x) {
        int listed = 0;
        json_array_foreach(mounts, i, e) if (strcmp(json_string_value(e), k) == 0) listed = 1;
        if (!listed) {
            json_decref(want);
            json_decref(refs);
            bad(req, "config.mount_map names a folder that config.mounts does not list.", cb, arg);
            return;
        }
    }
    mres_t *r = calloc(1, sizeof *r);
    vf_t *v = r ? vf_new(req, m, who, 0) : NULL;
    if (v == NULL) {
        free(r);
        json_decref(want);
        json_decref(refs);
        if (r == NULL)
            baic_api_internal(req, "Out of memory.");
        cb(NULL, arg);
        return;
    }
    r->v = v;
    r->cb = cb;
    r->arg = arg;
    r->want = want;
    v->data = r;
    if (mount_sql[0] == '\0')
        snprintf(
            mount_sql, sizeof mount_sql,
            "SELECT row_to_json(x)::text FROM (SELECT %s%s AND ((v.\"user\" = $1::uuid"
            " AND v.name LIKE '.%%') OR v.name IN (SELECT jsonb_array_elements_text($5::jsonb))"
            " OR v.id::text IN (SELECT lower(jsonb_array_elements_text($5::jsonb)))"
            " OR replace(v.id::text, '-', '') IN (SELECT lower(jsonb_array_elements_text("
            "$5::jsonb))))) x",
            VF_COLUMNS, VF_FROM_VISIBLE);
    char *refs_txt = json_dumps(refs, JSON_COMPACT);
    json_decref(refs);
    const char *p[5] = {who->user_uuid, who->is_admin ? "true" : "false",
                        who->is_superadmin ? NULL : who->domain, who->access_key, refs_txt};
    v->on_drop = dropped;
    vf_query(v, mount_sql, 5, p, rows_done);
    free(refs_txt);
}
