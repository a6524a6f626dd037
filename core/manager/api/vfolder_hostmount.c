/* SPDX-License-Identifier: Apache-2.0 */
/* Host mounts on the compute nodes (docs/vfolders.md): POST /folders/_/mounts mounts a
 * filesystem at <mount_prefix>/<name> on every ALIVE agent (of one scaling group when
 * asked), DELETE /folders/_/mounts and POST /folders/_/umounts take it away, and
 * GET /folders/_/mounts lists what the agents have mounted. The agents are asked in
 * parallel (/rpc/mounts, /rpc/umounts of docs/agent-protocol.md); each one's outcome is
 * reported under "agents" and the route answers 200 whatever they said, as Backend.AI. */
#include "vfolder_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "util/hostmount.h"

#define HM_RPC_TIMEOUT_MS 35000

/* ALIVE agents ([[id, addr], ...]) in scaling group $1 (NULL: all), and whether that group
 * exists. */
static const char AGENTS_SQL[] =
    "SELECT $1::text IS NULL OR EXISTS (SELECT 1 FROM scaling_groups s WHERE s.name = $1),"
    " COALESCE((SELECT json_agg(json_build_array(a.id, a.addr) ORDER BY a.id) FROM agents a"
    "   WHERE a.status = 'ALIVE' AND ($1::text IS NULL OR a.scaling_group = $1)), '[]')::text";

typedef struct hm_call {
    vf_t *v;
    size_t idx;
} hm_call_t;

static void hm_finish(vf_t *v) {
    if (baic_api_op_gone(v->op)) {
        vf_free(v);
        return;
    }
    json_t *out = v->acc;
    v->acc = NULL;
    vf_reply(v, 200, out);
}

/* One agent's outcome into acc.agents; the answer goes when the last one is in. */
static void hm_record(vf_t *v, size_t idx, json_t *result) {
    json_t *row = json_array_get(json_object_get(v->aux, "agents"), idx);
    const char *id = json_string_value(json_array_get(row, 0));
    json_object_set_new(json_object_get(v->acc, "agents"), id ? id : "?", result);
    if (--v->n == 0)
        hm_finish(v);
}

static json_t *hm_failure(const char *message) {
    return json_pack("{s:b, s:[], s:s}", "success", 0, "mounts", "message", message);
}

static void hm_answered(int status, json_t *answer, int err, void *arg) {
    hm_call_t *c = arg;
    vf_t *v = c->v;
    size_t idx = c->idx;
    free(c);
    json_t *result;
    if (status == 200 && json_is_object(answer) &&
        json_is_boolean(json_object_get(answer, "success"))) {
        json_t *mounts = json_object_get(answer, "mounts");
        const char *msg = json_string_value(json_object_get(answer, "message"));
        result = json_pack("{s:b, s:o, s:s}", "success",
                           json_is_true(json_object_get(answer, "success")), "mounts",
                           json_is_array(mounts) ? json_incref(mounts) : json_array(), "message",
                           msg ? msg : "");
    } else {
        char msg[600];
        const char *why = json_string_value(json_object_get(answer, "msg"));
        if (why == NULL)
            why = json_string_value(json_object_get(answer, "title"));
        if (status == 0)
            snprintf(msg, sizeof msg, "The agent is unreachable (%s).", uv_strerror(err));
        else if (status == 200 || status == 404)
            snprintf(msg, sizeof msg,
                     "The agent's answer is no mount report (HTTP %d; an agent without host "
                     "mounts?).",
                     status);
        else
            snprintf(msg, sizeof msg, "The agent answered HTTP %d: %.500s", status,
                     why ? why : "(no reason given)");
        result = hm_failure(msg);
    }
    hm_record(v, idx, result);
}

static void hm_listed(vf_t *v, const baic_db_result_t *res, int err) {
    (void)err;
    const char *ok = baic_db_result_rows(res) > 0 ? baic_db_result_get(res, 0, 0) : NULL;
    const char *list = baic_db_result_rows(res) > 0 ? baic_db_result_get(res, 0, 1) : NULL;
    if (ok == NULL || strcmp(ok, "t") != 0) {
        baic_api_not_found(v->req, "scaling group", "No such scaling group.");
        vf_free(v);
        return;
    }
    json_t *agents = list ? json_loads(list, 0, NULL) : NULL;
    if (!json_is_array(agents)) {
        json_decref(agents);
        baic_api_internal(v->req, "The agent list could not be read.");
        vf_free(v);
        return;
    }
    json_object_set_new(v->aux, "agents", agents);
    const char *method = json_string_value(json_object_get(v->aux, "method"));
    const char *path = json_string_value(json_object_get(v->aux, "path"));
    json_t *body = json_object_get(v->aux, "rpc");
    size_t n = json_array_size(agents);
    v->n = (int)n + 1; /* held until every call is out */
    for (size_t i = 0; i < n; i++) {
        const char *addr = json_string_value(json_array_get(json_array_get(agents, i), 1));
        hm_call_t *c = calloc(1, sizeof *c);
        int rc = c ? 0 : -ENOMEM;
        if (c) {
            c->v = v;
            c->idx = i;
            rc = baic_agent_rpc(v->m, addr, method, path, body, HM_RPC_TIMEOUT_MS, hm_answered, c);
        }
        if (rc != 0) {
            free(c);
            char msg[200];
            snprintf(msg, sizeof msg, "The agent could not be called (%s).", uv_strerror(rc));
            hm_record(v, i, hm_failure(msg));
        }
    }
    if (--v->n == 0)
        hm_finish(v);
}

/* Asks the ALIVE agents (of scaling_group, NULL: all) with method/path and body (stolen,
 * NULL for GET), fills acc.agents and answers 200 with acc. */
static void hm_fan_out(vf_t *v, const char *method, const char *path, json_t *body,
                       const char *scaling_group) {
    json_decref(v->aux);
    v->aux = json_pack("{s:s, s:s, s:o?}", "method", method, "path", path, "rpc", body);
    if (json_object_get(v->acc, "agents") == NULL)
        json_object_set_new(v->acc, "agents", json_object());
    const char *p[1] = {scaling_group};
    vf_query(v, AGENTS_SQL, 1, p, hm_listed);
}

void vf_hostmount_list(vf_t *v) {
    hm_fan_out(v, "GET", "/rpc/mounts", NULL, NULL);
}

static void hm_change(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who,
                      int mount) {
    vf_t *v = vf_new(req, m, who, 1);
    if (v == NULL)
        return;
    baic_hostmount_req_t p;
    char msg[256];
    if (baic_hostmount_parse(v->body, mount, &p, msg, sizeof msg) != 0) {
        baic_api_invalid_params(req, msg);
        vf_free(v);
        return;
    }
    json_t *rpc = json_pack("{s:s, s:b}", "name", p.name, "edit_fstab", p.edit_fstab);
    if (p.fstab_path)
        json_object_set_new(rpc, "fstab_path", json_string(p.fstab_path));
    if (mount) {
        json_object_set_new(rpc, "fs_location", json_string(p.fs_location));
        json_object_set_new(rpc, "fs_type", json_string(p.fs_type));
        if (p.options)
            json_object_set_new(rpc, "options", json_string(p.options));
    }
    v->acc = json_pack(
        "{s:{s:b, s:[], s:s}, s:{s:b, s:[], s:s}, s:{}}", "manager", "success", 1, "mounts",
        "message", "The manager keeps no mount points; host mounts are made on the agents.",
        "storage-proxy", "success", 1, "mounts", "message",
        "Host mounts are done on agents; the storage proxies are left as they are.", "agents");
    BAIC_LOG_I(mount ? "host_mount_requested" : "host_umount_requested",
               "name=%s source=%s type=%s scaling_group=%s edit_fstab=%d by=%s", p.name,
               mount ? p.fs_location : "-", mount ? p.fs_type : "-",
               p.scaling_group ? p.scaling_group : "*", p.edit_fstab, who->access_key);
    /* scaling_group is borrowed from v->body, which lives as long as v. */
    hm_fan_out(v, "POST", mount ? "/rpc/mounts" : "/rpc/umounts", rpc, p.scaling_group);
}

static void post_mounts(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    hm_change(req, m, who, 1);
}

static void delete_mounts(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    hm_change(req, m, who, 0);
}

int baic_api_vfolder_hostmount_init(baic_manager_t *m) {
    int rc = baic_api_route(m, "POST", "/folders/_/mounts", BAIC_ROUTE_SUPERADMIN, post_mounts, 0);
    if (rc == 0)
        rc = baic_api_route(m, "DELETE", "/folders/_/mounts", BAIC_ROUTE_SUPERADMIN, delete_mounts,
                            0);
    if (rc == 0)
        rc = baic_api_route(m, "POST", "/folders/_/umounts", BAIC_ROUTE_SUPERADMIN, delete_mounts,
                            0);
    return rc;
}
