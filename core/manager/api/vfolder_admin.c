/* SPDX-License-Identifier: Apache-2.0 */
/* /folders admin routes: fstab, mounts, quota, usage, used-bytes, perf-metric and
 * change-ownership (api-contract §5), answered from the storage proxies' manager API. */
#include "vfolder_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"

#define S(o, k) json_string_value(json_object_get((o), (k)))

/* ---- parameters: JSON body first, then the query string ---- */

/* *out = the string under key (or alias), NULL when absent. -1 (answered) on a wrong type or
 * an over-long value. */
static int param_str(vf_t *v, const char *key, const char *alias, size_t max, const char **out) {
    json_t *x = json_object_get(v->body, key);
    if (x == NULL && alias)
        x = json_object_get(v->body, alias);
    const char *s = NULL;
    if (x != NULL && !json_is_null(x)) {
        if (!json_is_string(x)) {
            char msg[160];
            snprintf(msg, sizeof msg, "'%s' must be a string.", key);
            baic_api_invalid_params(v->req, msg);
            vf_free(v);
            return -1;
        }
        s = json_string_value(x);
    } else if (x == NULL) {
        s = baic_http_query(v->req, key);
        if (s == NULL && alias)
            s = baic_http_query(v->req, alias);
    }
    if (s && strlen(s) > max) {
        char msg[160];
        snprintf(msg, sizeof msg, "'%s' is too long.", key);
        baic_api_invalid_params(v->req, msg);
        vf_free(v);
        return -1;
    }
    *out = s;
    return 0;
}

static int uuidish(const char *s) {
    size_t n = strlen(s), h = 0;
    if (n != 32 && n != 36)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (isxdigit((unsigned char)s[i]))
            h++;
        else if (s[i] != '-' || n != 36 || (i != 8 && i != 13 && i != 18 && i != 23))
            return 0;
    }
    return h == 32;
}

/* folder_host (alias folderHost): required, "<proxy>:<volume>" of a configured proxy.
 * 0, or -1 answered (400 missing/malformed, 404 unknown proxy). */
static int want_host(vf_t *v, const char **host) {
    const char *h = NULL;
    if (param_str(v, "folder_host", "folderHost", 200, &h) != 0)
        return -1;
    if (h == NULL || *h == '\0') {
        baic_api_invalid_params(v->req, "'folder_host' is required.");
        vf_free(v);
        return -1;
    }
    const char *c = strchr(h, ':');
    if (c == NULL || c == h || c[1] == '\0' || strchr(c + 1, ':') || strchr(h, '/')) {
        baic_api_invalid_params(v->req, "'folder_host' must be '<proxy>:<volume>'.");
        vf_free(v);
        return -1;
    }
    if (!baic_storage_host_ok(h)) {
        baic_api_not_found(v->req, "storage host", "No such storage host.");
        vf_free(v);
        return -1;
    }
    *host = h;
    return 0;
}

/* ---- finding a folder for the quota/usage routes ---- */

/* The folder ($5) when the caller owns it, is a member of its project, or is an admin of its
 * domain (superadmin: any). Folders shared by invitation don't count (as Backend.AI). */
static char admin_find_sql[8192];

static void found_row(vf_t *v, const baic_db_result_t *res, int err) {
    (void)err;
    const char *txt = baic_db_result_rows(res) > 0 ? baic_db_result_get(res, 0, 0) : NULL;
    json_t *row = txt ? json_loads(txt, 0, NULL) : NULL;
    const char *want = json_string_value(json_object_get(v->aux, "host"));
    if (row == NULL || want == NULL || S(row, "host") == NULL || strcmp(S(row, "host"), want)) {
        json_decref(row);
        baic_api_not_found(v->req, "virtual folder", "No such virtual folder on that host.");
        vf_free(v);
        return;
    }
    json_decref(v->row);
    v->row = row;
    v->level = json_is_true(json_object_get(row, "own")) ? VF_OWNER : VF_RO;
    v->id = S(row, "id");
    v->hex = S(row, "hex");
    v->name = S(row, "name");
    v->host = S(row, "host");
    v->qsid = S(row, "quota_scope_id");
    v->status = S(row, "status");
    int n = snprintf(v->vfid, sizeof v->vfid, "%s/%s", v->qsid ? v->qsid : "", v->hex);
    if (n < 0 || (size_t)n >= sizeof v->vfid) {
        baic_api_internal(v->req, "Folder id too long.");
        vf_free(v);
        return;
    }
    v->next(v);
}

/* Reads folder_host and id, then finds the folder and runs next. */
static void find_folder(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who,
                        vf_step next) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    const char *host, *id = NULL;
    if (want_host(v, &host) != 0 || param_str(v, "id", "vfolder_id", 64, &id) != 0)
        return;
    if (id == NULL || *id == '\0') {
        baic_api_invalid_params(req, "'id' (the folder's UUID) is required.");
        vf_free(v);
        return;
    }
    if (!uuidish(id)) {
        baic_api_invalid_params(req, "'id' must be a UUID.");
        vf_free(v);
        return;
    }
    v->aux = json_pack("{s:s}", "host", host);
    v->next = next;
    const char *p[5] = {who->user_uuid, who->is_admin ? "true" : "false",
                        who->is_superadmin ? NULL : who->domain, who->access_key, id};
    vf_query(v, admin_find_sql, 5, p, found_row);
}

/* ---- GET /folders/_/usage, /folders/_/used-bytes ---- */

static void usage_got(vf_t *v, int status, json_t *answer) {
    (void)status;
    json_t *fc = json_object_get(answer, "file_count"), *ub = json_object_get(answer, "used_bytes");
    if (v->flag)
        vf_reply(v, 200, json_pack("{s:I}", "used_bytes", json_integer_value(ub)));
    else
        vf_reply(v, 200,
                 json_pack("{s:I, s:I}", "file_count", json_integer_value(fc), "used_bytes",
                           json_integer_value(ub)));
}

static void usage_found(vf_t *v) {
    /* A fresh walk: files written behind the proxy's back count too. */
    vf_storage(v, v->host, "/folder/usage", json_pack("{s:b}", "rescan", 1), 1, 0, 120000,
               usage_got);
}

static void used_found(vf_t *v) {
    v->flag = 1;
    usage_found(v);
}

static void get_usage(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    find_folder(req, m, who, usage_found);
}

static void get_used_bytes(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    find_folder(req, m, who, used_found);
}

/* ---- GET|POST /folders/_/quota ---- */

static void quota_got(vf_t *v, int status, json_t *answer) {
    (void)status;
    vf_reply(v, 200,
             json_pack("{s:s, s:I, s:I}", "quota_scope_id", v->qsid ? v->qsid : "", "used_bytes",
                       json_integer_value(json_object_get(answer, "used_bytes")), "limit_bytes",
                       json_integer_value(json_object_get(answer, "limit_bytes"))));
}

static void quota_found(vf_t *v) {
    vf_storage(v, v->host, "/quota-scope/get", json_pack("{s:s}", "qsid", v->qsid ? v->qsid : ""),
               0, 0, 30000, quota_got);
}

static void get_quota(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    find_folder(req, m, who, quota_found);
}

static json_int_t quota_size(const vf_t *v) {
    return json_integer_value(json_object_get(v->aux, "size"));
}

static void quota_recorded(vf_t *v, const baic_db_result_t *res, int err) {
    (void)res;
    (void)err;
    vf_reply(v, 200, json_pack("{s:I}", "size_bytes", quota_size(v)));
}

static void quota_applied(vf_t *v, int status, json_t *answer) {
    (void)status;
    (void)answer;
    /* max_size (MiB, rounded up) of every folder sharing the quota scope on this host. */
    char size[32];
    snprintf(size, sizeof size, "%lld", (long long)quota_size(v));
    const char *p[3] = {v->qsid, v->host, size};
    vf_query(v,
             "UPDATE vfolders SET max_size = CASE WHEN $3::bigint = 0 THEN NULL"
             " ELSE ($3::bigint + 1048575) / 1048576 END"
             " WHERE quota_scope_id = $1 AND host = $2",
             3, p, quota_recorded);
}

static void quota_apply(vf_t *v) {
    json_int_t n = quota_size(v);
    if (n == 0)
        vf_storage(v, v->host, "/quota-scope/unset",
                   json_pack("{s:s}", "qsid", v->qsid ? v->qsid : ""), 0, 0, 30000, quota_applied);
    else
        vf_storage(v, v->host, "/quota-scope/set",
                   json_pack("{s:s, s:I}", "qsid", v->qsid ? v->qsid : "", "limit_bytes", n), 0, 0,
                   30000, quota_applied);
}

static void quota_policy(vf_t *v, const baic_db_result_t *res, int err) {
    (void)err;
    const char *cap = baic_db_result_rows(res) > 0 ? baic_db_result_get(res, 0, 0) : NULL;
    long long c = cap ? strtoll(cap, NULL, 10) : -1;
    if (c >= 0 && (quota_size(v) == 0 || quota_size(v) > c)) {
        char msg[160];
        snprintf(msg, sizeof msg, "Your resource policy allows a quota of at most %lld bytes.", c);
        baic_api_invalid_params(v->req, msg);
        vf_free(v);
        return;
    }
    quota_apply(v);
}

static void quota_set_found(vf_t *v) {
    if (v->who->is_admin) {
        quota_apply(v);
        return;
    }
    /* Non-admins: only the owner of a user folder, within the user resource policy's
     * max_quota_scope_size (-1 = no cap). */
    if (v->level != VF_OWNER) {
        baic_api_forbidden(v->req, "Only the folder's owner or an admin may change its quota.");
        vf_free(v);
        return;
    }
    const char *p[1] = {v->who->user_uuid};
    vf_query(v,
             "SELECT rp.max_quota_scope_size FROM users u JOIN user_resource_policies rp"
             " ON rp.name = u.resource_policy WHERE u.uuid = $1::uuid",
             1, p, quota_policy);
}

static void post_quota(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    json_t *in = json_object_get(v->body, "input");
    if (in != NULL && !json_is_object(in)) {
        baic_api_invalid_params(req, "'input' must be an object.");
        vf_free(v);
        return;
    }
    json_t *sz = json_object_get(in ? in : v->body, "size_bytes");
    if (!json_is_integer(sz) || json_integer_value(sz) < 0 ||
        json_integer_value(sz) > ((json_int_t)1 << 60)) {
        baic_api_invalid_params(req, "'input.size_bytes' must be an integer 0..2^60 (0 = none).");
        vf_free(v);
        return;
    }
    json_int_t n = json_integer_value(sz);
    const char *host, *id = NULL;
    if (want_host(v, &host) != 0 || param_str(v, "id", "vfolder_id", 64, &id) != 0)
        return;
    if (id == NULL || !uuidish(id)) {
        baic_api_invalid_params(req, "'id' (the folder's UUID) is required.");
        vf_free(v);
        return;
    }
    v->aux = json_pack("{s:s, s:I}", "host", host, "size", n);
    v->next = quota_set_found;
    const char *p[5] = {who->user_uuid, who->is_admin ? "true" : "false",
                        who->is_superadmin ? NULL : who->domain, who->access_key, id};
    vf_query(v, admin_find_sql, 5, p, found_row);
}

/* ---- GET /folders/_/perf-metric ---- */

static void perf_got(vf_t *v, int status, json_t *answer) {
    (void)status;
    vf_reply(v, 200,
             json_pack("{s:{s:I, s:I}}", "metric", "capacity_bytes",
                       json_integer_value(json_object_get(answer, "capacity_bytes")), "used_bytes",
                       json_integer_value(json_object_get(answer, "used_bytes"))));
}

static void get_perf_metric(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    const char *host;
    if (want_host(v, &host) != 0)
        return;
    v->aux = json_pack("{s:s}", "host", host);
    vf_storage(v, json_string_value(json_object_get(v->aux, "host")), "/volume/usage",
               json_object(), 0, 0, 30000, perf_got);
}

/* ---- GET /folders/_/fstab ---- */

static void admin_sp_cb(int status, json_t *answer, int err, void *arg) {
    vf_t *v = arg;
    if (baic_api_op_gone(v->op)) {
        vf_free(v);
        return;
    }
    v->spnext(v, err ? 0 : status, answer);
}

static void fstab_got(vf_t *v, int status, json_t *answer) {
    if (status != 200) {
        baic_storage_fail(v->req, status, answer, status == 0 ? -1 : 0);
        vf_free(v);
        return;
    }
    json_t *lines = json_object_get(answer, "lines");
    size_t len = 0, i;
    json_t *l;
    json_array_foreach(lines, i, l) len += strlen(json_string_value(l) ?: "") + 1;
    char *buf = malloc(len + 1);
    if (buf == NULL) {
        baic_api_internal(v->req, "Out of memory.");
        vf_free(v);
        return;
    }
    size_t off = 0;
    json_array_foreach(lines, i, l) {
        const char *s = json_string_value(l) ?: "";
        size_t n = strlen(s);
        memcpy(buf + off, s, n);
        off += n;
        buf[off++] = '\n';
    }
    buf[off] = '\0';
    const char *proxy = json_string_value(json_object_get(v->aux, "proxy"));
    vf_reply(
        v, 200,
        json_pack("{s:s, s:s, s:s}", "content", buf, "node", "storage-proxy", "node_id", proxy));
    free(buf);
}

static int proxy_known(const char *name) {
    for (size_t i = 0; i < baic_storage_nproxies(); i++)
        if (strcmp(baic_storage_proxy_name(i), name) == 0)
            return 1;
    return 0;
}

static void get_fstab(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    const char *path = NULL, *agent = NULL, *proxy = NULL;
    if (param_str(v, "fstab_path", "fstabPath", 1024, &path) != 0 ||
        param_str(v, "agent_id", "agentId", 128, &agent) != 0 ||
        param_str(v, "proxy", NULL, 128, &proxy) != 0)
        return;
    if (path != NULL && strcmp(path, "/etc/fstab") != 0) {
        baic_api_invalid_params(req, "Only '/etc/fstab' can be read.");
        vf_free(v);
        return;
    }
    if (agent != NULL) {
        baic_api_not_found(req, "agent", "Agents' fstab files are not readable here.");
        vf_free(v);
        return;
    }
    if (proxy == NULL) {
        const char *d = baic_storage_default_host();
        if (d != NULL && strchr(d, ':')) {
            v->aux = json_pack("{s:s%}", "proxy", d, (size_t)(strchr(d, ':') - d));
        } else if (baic_storage_nproxies() > 0) {
            v->aux = json_pack("{s:s}", "proxy", baic_storage_proxy_name(0));
        } else {
            baic_api_unavailable(req, "No storage proxy is configured.");
            vf_free(v);
            return;
        }
    } else if (!proxy_known(proxy)) {
        baic_api_not_found(req, "storage proxy", "No such storage proxy.");
        vf_free(v);
        return;
    } else {
        v->aux = json_pack("{s:s}", "proxy", proxy);
    }
    v->spnext = fstab_got;
    if (baic_storage_proxy_call(m, json_string_value(json_object_get(v->aux, "proxy")), "GET",
                                "/volume/fstab", NULL, 10000, admin_sp_cb, v) != 0) {
        baic_api_not_found(req, "storage proxy", "No such storage proxy.");
        vf_free(v);
    }
}

/* ---- GET /folders/_/mounts ---- */

static void mounts_next(vf_t *v);

/* "<dev> <mountpoint> <fstype> ..." -> [mountpoint, device, fstype, host]. */
static json_t *mount_item(const char *host, const char *line) {
    char dev[1024], mnt[1024], fs[64];
    if (sscanf(line, "%1023s %1023s %63s", dev, mnt, fs) != 3)
        return NULL;
    return json_pack("[s, s, s, s]", mnt, dev, fs, host);
}

static void mounts_got(vf_t *v, int status, json_t *answer) {
    const char *proxy = baic_storage_proxy_name((size_t)v->i);
    json_t *sp = json_object_get(v->acc, "storage-proxy");
    if (status == 200) {
        const char *vol;
        json_t *lines;
        json_object_foreach(json_object_get(answer, "mounts"), vol, lines) {
            char host[300];
            int n = snprintf(host, sizeof host, "%s:%s", proxy, vol);
            if (n < 0 || (size_t)n >= sizeof host)
                continue;
            size_t i;
            json_t *l;
            json_array_foreach(lines, i, l) {
                json_t *it = json_is_string(l) ? mount_item(host, json_string_value(l)) : NULL;
                if (it)
                    json_array_append_new(json_object_get(sp, "mounts"), it);
            }
        }
    } else {
        char out[600];
        snprintf(out, sizeof out, "%s%s%s: %s", S(sp, "message"), *S(sp, "message") ? "; " : "",
                 proxy, status == 0 ? "unreachable" : "answered an error");
        json_object_set_new(sp, "message", json_string(out));
        json_object_set_new(sp, "success", json_false());
        BAIC_LOG_W("storage_proxy_mounts_failed", "proxy=%s status=%d", proxy, status);
    }
    v->i++;
    mounts_next(v);
}

static void mounts_next(vf_t *v) {
    while ((size_t)v->i < baic_storage_nproxies()) {
        v->spnext = mounts_got;
        if (baic_storage_proxy_call(v->m, baic_storage_proxy_name((size_t)v->i), "GET",
                                    "/volume/mounts", NULL, 10000, admin_sp_cb, v) == 0)
            return;
        v->i++;
    }
    vf_hostmount_list(v);
}

static void get_mounts(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    /* The manager mounts no folder volume itself; the agents' host mounts follow the
     * proxies' (vfolder_hostmount.c). */
    v->acc = json_pack("{s:{s:b, s:[], s:s}, s:{s:b, s:[], s:s}, s:{}}", "manager", "success", 1,
                       "mounts", "message", "", "storage-proxy", "success", 1, "mounts", "message",
                       "", "agents");
    mounts_next(v);
}

/* ---- POST /folders/_/change-ownership ---- */

static const char OWNERSHIP_SQL[] =
    "SELECT v.id::text, v.ownership_type, u.uuid::text,"
    " COALESCE(v.\"user\" = u.uuid, false),"
    " EXISTS (SELECT 1 FROM vfolders w WHERE w.\"user\" = u.uuid AND w.name = v.name"
    "   AND w.status <> 'delete-complete' AND w.id <> v.id),"
    " (EXISTS (SELECT 1 FROM domains d WHERE d.name = u.domain_name"
    "   AND jsonb_typeof(d.allowed_vfolder_hosts) = 'object' AND d.allowed_vfolder_hosts ? v.host)"
    "  OR EXISTS (SELECT 1 FROM groups g JOIN association_groups_users a ON a.group_id = g.id"
    "   WHERE a.user_id = u.uuid AND jsonb_typeof(g.allowed_vfolder_hosts) = 'object'"
    "   AND g.allowed_vfolder_hosts ? v.host)"
    "  OR EXISTS (SELECT 1 FROM keypairs k JOIN keypair_resource_policies kp"
    "   ON kp.name = k.resource_policy WHERE k.\"user\" = u.uuid"
    "   AND jsonb_typeof(kp.allowed_vfolder_hosts) = 'object'"
    "   AND kp.allowed_vfolder_hosts ? v.host))"
    " FROM vfolders v LEFT JOIN users u ON lower(u.email) = lower($2)"
    " WHERE v.status <> 'delete-complete' AND (v.id::text = lower($1)"
    "   OR replace(v.id::text, '-', '') = lower($1))";

static void owner_done(vf_t *v, const baic_db_result_t *res, int err) {
    (void)res;
    (void)err;
    vf_reply(v, 200, json_object());
}

static void owner_checked(vf_t *v, const baic_db_result_t *res, int err) {
    (void)err;
    if (baic_db_result_rows(res) < 1) {
        baic_api_not_found(v->req, "virtual folder", "No such virtual folder.");
        vf_free(v);
        return;
    }
    const char *id = baic_db_result_get(res, 0, 0), *type = baic_db_result_get(res, 0, 1),
               *uid = baic_db_result_get(res, 0, 2), *same = baic_db_result_get(res, 0, 3),
               *dup = baic_db_result_get(res, 0, 4), *hostok = baic_db_result_get(res, 0, 5);
    const char *fail = NULL;
    if (uid == NULL || *uid == '\0') {
        baic_api_not_found(v->req, "user", "No user has that e-mail address.");
        vf_free(v);
        return;
    }
    if (type == NULL || strcmp(type, "user") != 0)
        fail = "Only a user folder's ownership can be changed.";
    else if (same && strcmp(same, "t") == 0) {
        vf_reply(v, 200, json_object());
        return;
    } else if (dup && strcmp(dup, "t") == 0)
        fail = "The new owner already has a folder with that name.";
    else if (!hostok || strcmp(hostok, "t") != 0)
        fail = "The new owner may not use the folder's host.";
    if (fail) {
        baic_api_invalid_params(v->req, fail);
        vf_free(v);
        return;
    }
    BAIC_LOG_I("vfolder_owner_changed", "vfolder=%s user=%s by=%s", id, uid, v->who->user_uuid);
    const char *p[2] = {id, uid};
    vf_query(v,
             "WITH d AS (DELETE FROM vfolder_permissions WHERE vfolder = $1::uuid"
             "  AND \"user\" = $2::uuid)"
             " UPDATE vfolders SET \"user\" = $2::uuid WHERE id = $1::uuid",
             2, p, owner_done);
}

static void post_change_ownership(baic_http_req_t *req, baic_manager_t *m,
                                  const baic_caller_t *who) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    const char *id = NULL, *email = NULL;
    if (param_str(v, "vfolder", "id", 64, &id) != 0 ||
        param_str(v, "user_email", "userEmail", 256, &email) != 0)
        return;
    if (id == NULL || !uuidish(id) || email == NULL || *email == '\0') {
        baic_api_invalid_params(req, "'vfolder' (a UUID) and 'user_email' are required.");
        vf_free(v);
        return;
    }
    const char *p[2] = {id, email};
    vf_query(v, OWNERSHIP_SQL, 2, p, owner_checked);
}

int baic_api_vfolder_admin_init(baic_manager_t *m) {
    int n = snprintf(
        admin_find_sql, sizeof admin_find_sql,
        "SELECT row_to_json(x)::text FROM (SELECT %s FROM vfolders v"
        " LEFT JOIN vfolder_permissions p ON p.vfolder = v.id AND p.\"user\" = $1::uuid"
        " LEFT JOIN users u ON u.uuid = v.\"user\" LEFT JOIN groups g ON g.id = v.\"group\""
        " WHERE v.status <> 'delete-complete' AND (v.id::text = lower($5)"
        "   OR replace(v.id::text, '-', '') = lower($5)) AND (v.\"user\" = $1::uuid"
        "   OR v.\"group\" IN (SELECT group_id FROM association_groups_users"
        "     WHERE user_id = $1::uuid)"
        "   OR ($2::boolean AND ($3::text IS NULL OR v.domain_name = $3))) LIMIT 1) x",
        VF_COLUMNS);
    if (n < 0 || (size_t)n >= sizeof admin_find_sql)
        return -1;
    static const struct {
        const char *method, *path;
        int level;
        baic_api_fn fn;
    } routes[] = {
        {"GET", "/folders/_/fstab", BAIC_ROUTE_SUPERADMIN, get_fstab},
        {"GET", "/folders/_/mounts", BAIC_ROUTE_SUPERADMIN, get_mounts},
        {"GET", "/folders/_/quota", BAIC_ROUTE_USER, get_quota},
        {"POST", "/folders/_/quota", BAIC_ROUTE_USER, post_quota},
        {"GET", "/folders/_/usage", BAIC_ROUTE_USER, get_usage},
        {"GET", "/folders/_/used-bytes", BAIC_ROUTE_USER, get_used_bytes},
        {"GET", "/folders/_/perf-metric", BAIC_ROUTE_SUPERADMIN, get_perf_metric},
        {"POST", "/folders/_/change-ownership", BAIC_ROUTE_SUPERADMIN, post_change_ownership},
    };
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof routes / sizeof routes[0]; i++)
        rc = baic_api_route(m, routes[i].method, routes[i].path, routes[i].level, routes[i].fn, 0);
    if (rc == 0)
        rc = baic_api_vfolder_hostmount_init(m);
    return rc;
}
