/* SPDX-License-Identifier: Apache-2.0 */
/* Resource presets: list them, and tell which ones the caller could start right now. */
#include "manager.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"

/* Kernel states that hold resources on an agent. */
#define LIVE_KERNEL "('SCHEDULED','PREPARING','PULLING','PREPARED','CREATING','RUNNING'," \
                    "'RESTARTING','RUNNING_DEGRADED','TERMINATING')"

/* ---- slot arithmetic on JSON objects of decimal strings ---- */

static double slot_value(const json_t *v) {
    if (json_is_number(v))
        return json_number_value(v);
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "Infinity") == 0 || strcmp(s, "inf") == 0)
            return INFINITY;
        return strtod(s, NULL);
    }
    return 0;
}

static json_t *slot_str(double v) {
    char buf[64];
    if (isinf(v))
        return json_string("Infinity");
    if (v == floor(v) && fabs(v) < 9e15)
        snprintf(buf, sizeof buf, "%.0f", v);
    else
        snprintf(buf, sizeof buf, "%.6g", v);
    return json_string(buf);
}

/* limits with unknown slots filled: unlimited, or 0 when the policy says LIMITED. */
static json_t *fill_limits(const json_t *limits, const json_t *known, int unlimited_default) {
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)known, k, v) {
        const json_t *l = json_object_get(limits, k);
        json_object_set_new(out, k, slot_str(l ? slot_value(l) : unlimited_default ? INFINITY : 0));
    }
    return out;
}

static json_t *slots_sub(const json_t *a, const json_t *b, const json_t *known) {
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)known, k, v) {
        double r = slot_value(json_object_get(a, k)) - slot_value(json_object_get(b, k));
        json_object_set_new(out, k, slot_str(r < 0 ? 0 : r));
    }
    return out;
}

static json_t *slots_min(const json_t *a, const json_t *b, const json_t *known) {
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)known, k, v) {
        double x = slot_value(json_object_get(a, k)), y = slot_value(json_object_get(b, k));
        json_object_set_new(out, k, slot_str(x < y ? x : y));
    }
    return out;
}

static json_t *slots_zero(const json_t *known) {
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)known, k, v) json_object_set_new(out, k, json_string("0"));
    return out;
}

/* need fits in have for every slot need names with a positive amount. */
static int slots_fit(const json_t *need, const json_t *have) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)need, k, v) {
        double n = slot_value(v);
        if (n > 0 && n > slot_value(json_object_get(have, k)))
            return 0;
    }
    return 1;
}

/* ---- GET /resource/presets ---- */

static json_t *preset_rows(const baic_db_result_t *res) {
    json_t *list = json_array();
    for (int r = 0; r < baic_db_result_rows(res); r++) {
        json_t *slots = json_loads(baic_db_result_get_by_name(res, r, "resource_slots"), 0, NULL);
        json_t *norm = json_object();
        const char *k;
        json_t *v;
        json_object_foreach(slots, k, v) json_object_set_new(norm, k, slot_str(slot_value(v)));
        json_decref(slots);
        const char *shm = baic_db_result_get_by_name(res, r, "shared_memory");
        const char *sg = baic_db_result_get_by_name(res, r, "scaling_group_name");
        int shm_null = baic_db_result_is_null(res, r, baic_db_result_col(res, "shared_memory"));
        int sg_null = baic_db_result_is_null(res, r, baic_db_result_col(res, "scaling_group_name"));
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:o, s:o, s:o}", "id", baic_db_result_get_by_name(res, r, "id"),
                            "name", baic_db_result_get_by_name(res, r, "name"), "resource_slots", norm,
                            "shared_memory", shm_null ? json_null() : json_string(shm),
                            "scaling_group_name", sg_null ? json_null() : json_string(sg)));
    }
    return list;
}

static const char PRESETS_SQL[] =
    "SELECT id::text AS id, name, resource_slots::text AS resource_slots, shared_memory,"
    " scaling_group_name FROM resource_presets"
    " WHERE scaling_group_name IS NULL OR scaling_group_name = $1 ORDER BY name";

static void presets_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    baic_api_op_t *op = arg;
    if (baic_api_op_gone(op))
        return;
    if (err != 0) {
        BAIC_LOG_W("presets_query_failed", "error=\"%s\"", errmsg ? errmsg : "");
        baic_api_unavailable(op->req, "The database is not reachable.");
        return;
    }
    baic_http_respond_json(op->req, 200, json_pack("{s:o}", "presets", preset_rows(res)));
}

static void get_presets(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    baic_api_op_t *op = baic_api_op_new(req, m, who);
    const char *sg = baic_http_query(req, "scaling_group");
    const char *params[1] = {sg};
    if (baic_db_query(m->db, PRESETS_SQL, 1, params, presets_done, op) != 0)
        baic_api_unavailable(req, "The database is not reachable.");
}

/* ---- POST /resource/check-presets ---- */

enum { Q_KEYPAIR, Q_KP_USING, Q_GROUP, Q_SGROUPS, Q_AGENTS, Q_PRESETS, Q_SLOTS, Q_DOMAIN,
       Q_USER_SG, NQ };

static const char *const CHECK_SQL[NQ] = {
    /* Q_KEYPAIR: $1 access key */
    "SELECT p.total_resource_slots::text AS limits, p.default_for_unspecified AS dflt"
    " FROM keypairs k JOIN keypair_resource_policies p ON p.name = k.resource_policy"
    " WHERE k.access_key = $1",
    /* Q_KP_USING: $1 access key */
    "SELECT COALESCE(jsonb_object_agg(key, total), '{}')::text AS using FROM ("
    " SELECT e.key, sum((e.value #>> '{}')::numeric)::text AS total FROM kernels k,"
    " jsonb_each(k.occupied_slots) e WHERE k.access_key = $1 AND k.status IN " LIVE_KERNEL
    " GROUP BY e.key) s",
    /* Q_GROUP: $1 group name, $2 domain, $3 user: limits and usage of the caller's project */
    "SELECT g.id::text AS id, g.total_resource_slots::text AS limits,"
    " (SELECT COALESCE(jsonb_object_agg(key, total), '{}')::text FROM ("
    "   SELECT e.key, sum((e.value #>> '{}')::numeric)::text AS total FROM kernels k,"
    "   jsonb_each(k.occupied_slots) e WHERE k.group_id = g.id AND k.status IN " LIVE_KERNEL
    "   GROUP BY e.key) s) AS using"
    " FROM groups g JOIN association_groups_users a ON a.group_id = g.id AND a.user_id = $3::uuid"
    " WHERE (g.name = $1 OR g.id::text = $1) AND g.domain_name = $2 AND g.is_active",
    /* Q_SGROUPS: resource groups the caller may use: $1 domain, $2 group name, $3 key
     * (a private group only through its project or keypair, as the scheduler checks) */
    "SELECT DISTINCT sg.name FROM scaling_groups sg WHERE sg.is_active AND ("
    " (sg.is_public AND sg.name IN (SELECT scaling_group FROM sgroups_for_domains"
    "   WHERE domain = $1))"
    " OR sg.name IN (SELECT f.scaling_group FROM sgroups_for_groups f JOIN groups g"
    "   ON g.id = f.\"group\" WHERE (g.name = $2 OR g.id::text = $2) AND g.domain_name = $1)"
    " OR sg.name IN (SELECT scaling_group FROM sgroups_for_keypairs WHERE access_key = $3))"
    " ORDER BY sg.name",
    /* Q_AGENTS: live schedulable agents with what is free on each */
    "SELECT a.id, a.scaling_group, a.available_slots::text AS available,"
    " (SELECT COALESCE(jsonb_object_agg(key, total), '{}')::text FROM ("
    "   SELECT e.key, sum((e.value #>> '{}')::numeric)::text AS total FROM kernels k,"
    "   jsonb_each(k.occupied_slots) e WHERE k.agent = a.id AND k.status IN " LIVE_KERNEL
    "   GROUP BY e.key) s) AS occupied"
    " FROM agents a WHERE a.status = 'ALIVE' AND a.schedulable",
    /* Q_PRESETS: $1 resource group or NULL */
    "SELECT id::text AS id, name, resource_slots::text AS resource_slots, shared_memory,"
    " scaling_group_name FROM resource_presets"
    " WHERE scaling_group_name IS NULL OR scaling_group_name = $1 ORDER BY name",
    /* Q_SLOTS: slot names known beyond cpu and mem */
    "SELECT value::text FROM shared_config WHERE key = 'config/resource_slots'",
    /* Q_DOMAIN: $1 domain: limits and usage */
    "SELECT d.total_resource_slots::text AS limits,"
    " (SELECT COALESCE(jsonb_object_agg(key, total), '{}')::text FROM ("
    "   SELECT e.key, sum((e.value #>> '{}')::numeric)::text AS total FROM kernels k,"
    "   jsonb_each(k.occupied_slots) e WHERE k.domain_name = d.name AND k.status IN " LIVE_KERNEL
    "   GROUP BY e.key) s) AS using FROM domains d WHERE d.name = $1",
    /* Q_USER_SG: $1 user: what the caller's kernels hold in each resource group */
    "SELECT k.scaling_group, e.key AS slot, sum((e.value #>> '{}')::numeric)::text AS total"
    " FROM kernels k, jsonb_each(k.occupied_slots) e WHERE k.user_uuid = $1::uuid"
    " AND k.status IN " LIVE_KERNEL " AND k.scaling_group IS NOT NULL GROUP BY 1, 2",
};

typedef struct check {
    baic_api_op_t *op;
    char *group, *sgroup;
    int pending, failed;
    json_t *res[NQ]; /* each query's rows as an array of objects */
} check_t;

static json_t *rows_json(const baic_db_result_t *res) {
    json_t *rows = json_array();
    for (int r = 0; r < baic_db_result_rows(res); r++) {
        json_t *row = json_object();
        for (int c = 0; c < baic_db_result_cols(res); c++) {
            if (baic_db_result_is_null(res, r, c))
                json_object_set_new(row, baic_db_result_col_name(res, c), json_null());
            else
                json_object_set_new(row, baic_db_result_col_name(res, c),
                                    json_string(baic_db_result_get(res, r, c)));
        }
        json_array_append_new(rows, row);
    }
    return rows;
}

static json_t *col_json(const json_t *rows, size_t i, const char *col) {
    json_t *j = json_loads(json_string_value(json_object_get(json_array_get(rows, i), col)) ?: "{}",
                           0, NULL);
    return j ? j : json_object();
}

static void check_free(check_t *c) {
    for (int i = 0; i < NQ; i++)
        json_decref(c->res[i]);
    free(c->group);
    free(c->sgroup);
    free(c);
}

static void check_finish(check_t *c) {
    baic_api_op_t *op = c->op;
    baic_http_req_t *req = op->req;
    if (c->failed) {
        baic_api_unavailable(req, "The database is not reachable.");
        return;
    }
    if (json_array_size(c->res[Q_GROUP]) == 0) {
        baic_api_invalid_params(req, "No such project (group) in your domain.");
        return;
    }
    json_t *known = json_pack("{s:s, s:s}", "cpu", "count", "mem", "bytes");
    json_t *extra = col_json(c->res[Q_SLOTS], 0, "value");
    json_object_update(known, extra);
    json_decref(extra);

    json_t *kp_raw = col_json(c->res[Q_KEYPAIR], 0, "limits");
    const char *dflt = json_string_value(json_object_get(json_array_get(c->res[Q_KEYPAIR], 0), "dflt"));
    json_t *kp_limits = fill_limits(kp_raw, known, dflt == NULL || strcmp(dflt, "UNLIMITED") == 0);
    json_t *kp_using_raw = col_json(c->res[Q_KP_USING], 0, "using");
    json_t *none = json_object();
    json_t *kp_using = slots_sub(kp_using_raw, none, known);
    json_t *kp_remaining = slots_sub(kp_limits, kp_using, known);
    /* Project limits: an absent slot means no limit for projects. */
    json_t *g_raw = col_json(c->res[Q_GROUP], 0, "limits");
    json_t *g_limits = fill_limits(g_raw, known, 1);
    json_t *g_using_raw = col_json(c->res[Q_GROUP], 0, "using");
    json_t *g_using = slots_sub(g_using_raw, none, known);
    json_t *g_remaining = slots_sub(g_limits, g_using, known);
    /* Domain limits likewise; what the caller may still take is the least of the three
     * (Backend.AI reports it as keypair_remaining). */
    json_t *d_raw = col_json(c->res[Q_DOMAIN], 0, "limits");
    json_t *d_limits = fill_limits(d_raw, known, 1);
    json_t *d_using_raw = col_json(c->res[Q_DOMAIN], 0, "using");
    json_t *d_remaining = slots_sub(d_limits, d_using_raw, known);
    json_t *gd = slots_min(g_remaining, d_remaining, known);
    json_t *kp_own = kp_remaining;
    kp_remaining = slots_min(kp_own, gd, known);
    json_decref(kp_own);
    json_decref(gd);
    json_decref(d_raw);
    json_decref(d_limits);
    json_decref(d_using_raw);
    json_decref(d_remaining);
    if (c->sgroup) {
        int allowed = 0;
        size_t j;
        json_t *sg;
        json_array_foreach(c->res[Q_SGROUPS], j, sg) allowed |=
            strcmp(json_string_value(json_object_get(sg, "name")), c->sgroup) == 0;
        if (!allowed) {
            baic_api_invalid_params(req, "Unknown scaling group");
            json_decref(known);
            json_decref(kp_raw);
            json_decref(kp_limits);
            json_decref(kp_using_raw);
            json_decref(none);
            json_decref(kp_using);
            json_decref(kp_remaining);
            json_decref(g_raw);
            json_decref(g_limits);
            json_decref(g_using_raw);
            json_decref(g_using);
            json_decref(g_remaining);
            return;
        }
    }

    /* Per resource group: sum of free capacity over its agents, and per agent. */
    json_t *sgroups = json_object();
    json_t *sg_remaining_total = slots_zero(known);
    json_t *agent_free = json_array(); /* free slots of agents in allowed groups */
    size_t i;
    json_t *row;
    json_array_foreach(c->res[Q_SGROUPS], i, row) {
        const char *name = json_string_value(json_object_get(row, "name"));
        if (c->sgroup && strcmp(c->sgroup, name) != 0)
            continue;
        json_t *using = slots_zero(known), *rem = slots_zero(known);
        size_t j;
        json_t *ag;
        /* using: what the caller's own kernels hold there. */
        json_array_foreach(c->res[Q_USER_SG], j, ag) {
            const char *slot = json_string_value(json_object_get(ag, "slot"));
            if (strcmp(json_string_value(json_object_get(ag, "scaling_group")), name) != 0 ||
                json_object_get(using, slot) == NULL)
                continue;
            json_object_set_new(using, slot,
                                slot_str(slot_value(json_object_get(using, slot)) +
                                         slot_value(json_object_get(ag, "total"))));
        }
        json_array_foreach(c->res[Q_AGENTS], j, ag) {
            if (strcmp(json_string_value(json_object_get(ag, "scaling_group")), name) != 0)
                continue;
            json_t *avail = col_json(c->res[Q_AGENTS], j, "available");
            json_t *occ = col_json(c->res[Q_AGENTS], j, "occupied");
            json_t *fr = slots_sub(avail, occ, known);
            const char *k;
            json_t *v;
            json_object_foreach(known, k, v) {
                json_object_set_new(rem, k, slot_str(slot_value(json_object_get(rem, k)) +
                                                     slot_value(json_object_get(fr, k))));
                json_object_set_new(sg_remaining_total, k,
                                    slot_str(slot_value(json_object_get(sg_remaining_total, k)) +
                                             slot_value(json_object_get(fr, k))));
            }
            json_array_append_new(agent_free, fr);
            json_decref(avail);
            json_decref(occ);
        }
        json_t *rem_cap = slots_min(rem, kp_remaining, known);
        json_decref(rem);
        json_object_set_new(sgroups, name,
                            json_pack("{s:o, s:o}", "using", using, "remaining", rem_cap));
    }

    /* A preset is allocatable when the caller's limits allow it and one agent can host it. */
    json_t *cap = json_incref(kp_remaining);
    json_t *sg_capped = slots_min(sg_remaining_total, kp_remaining, known);
    json_decref(sg_remaining_total);
    sg_remaining_total = sg_capped;
    json_t *presets = json_array();
    json_array_foreach(c->res[Q_PRESETS], i, row) {
        json_t *slots = col_json(c->res[Q_PRESETS], i, "resource_slots");
        json_t *norm = json_object();
        const char *k;
        json_t *v;
        json_object_foreach(slots, k, v) json_object_set_new(norm, k, slot_str(slot_value(v)));
        int ok = slots_fit(norm, cap);
        if (ok) {
            ok = 0;
            size_t j;
            json_t *fr;
            json_array_foreach(agent_free, j, fr) if (slots_fit(norm, fr)) ok = 1;
        }
        json_t *shm = json_object_get(row, "shared_memory");
        json_array_append_new(presets,
                              json_pack("{s:O, s:O, s:o, s:O, s:b}", "id", json_object_get(row, "id"),
                                        "name", json_object_get(row, "name"), "resource_slots",
                                        norm, "shared_memory", shm ? shm : json_null(),
                                        "allocatable", ok));
        json_decref(slots);
    }
    json_t *out = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "keypair_limits",
                            kp_limits, "keypair_using", kp_using, "keypair_remaining", kp_remaining,
                            "group_limits", g_limits, "group_using", g_using, "group_remaining",
                            g_remaining, "scaling_group_remaining", sg_remaining_total,
                            "scaling_groups", sgroups, "presets", presets);
    json_decref(none);
    json_decref(known);
    json_decref(kp_raw);
    json_decref(kp_using_raw);
    json_decref(g_raw);
    json_decref(g_using_raw);
    json_decref(agent_free);
    json_decref(cap);
    baic_http_respond_json(req, 200, out);
}

typedef struct part {
    check_t *c;
    int idx;
} part_t;

static void part_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    part_t *p = arg;
    check_t *c = p->c;
    if (err != 0) {
        BAIC_LOG_W("check_presets_query_failed", "query=%d error=\"%s\"", p->idx,
                   errmsg ? errmsg : "");
        c->failed = 1;
    } else {
        c->res[p->idx] = rows_json(res);
    }
    free(p);
    if (--c->pending > 0)
        return;
    if (!baic_api_op_gone(c->op))
        check_finish(c);
    check_free(c);
}

static void post_check_presets(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    json_t *body = baic_api_json_body(req);
    if (body == NULL)
        return;
    const char *group = "default", *sgroup = NULL;
    json_error_t e;
    /* Clients send null for "not given". */
    if (json_is_null(json_object_get(body, "group")))
        json_object_del(body, "group");
    if (json_is_null(json_object_get(body, "scaling_group")))
        json_object_del(body, "scaling_group");
    if (json_unpack_ex(body, &e, 0, "{s?s, s?s}", "group", &group, "scaling_group", &sgroup) != 0) {
        json_decref(body);
        baic_api_invalid_params(req, e.text);
        return;
    }
    check_t *c = calloc(1, sizeof *c);
    c->op = baic_api_op_new(req, m, who);
    c->group = strdup(group);
    c->sgroup = sgroup ? strdup(sgroup) : NULL;
    json_decref(body);
    const char *const params[NQ][3] = {
        [Q_KEYPAIR] = {who->access_key},
        [Q_KP_USING] = {who->access_key},
        [Q_GROUP] = {c->group, who->domain, who->user_uuid},
        [Q_SGROUPS] = {who->domain, c->group, who->access_key},
        [Q_AGENTS] = {NULL},
        [Q_PRESETS] = {c->sgroup},
        [Q_SLOTS] = {NULL},
        [Q_DOMAIN] = {who->domain},
        [Q_USER_SG] = {who->user_uuid},
    };
    static const int nparams[NQ] = {1, 1, 3, 3, 0, 1, 0, 1, 1};
    c->pending = NQ;
    for (int i = 0; i < NQ; i++) {
        part_t *p = calloc(1, sizeof *p);
        p->c = c;
        p->idx = i;
        if (baic_db_query(m->db, CHECK_SQL[i], nparams[i], params[i], part_done, p) != 0)
            part_done(NULL, -1, "pool closed", p);
    }
}

int baic_api_resource_init(baic_manager_t *m) {
    int rc = baic_api_route(m, "GET", "/resource/presets", BAIC_ROUTE_USER, get_presets, 0);
    if (rc == 0)
        rc = baic_api_route(m, "POST", "/resource/check-presets", BAIC_ROUTE_USER,
                            post_check_presets, 64 * 1024);
    return rc;
}
