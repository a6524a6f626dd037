/* SPDX-License-Identifier: Apache-2.0 */
/* Admin REST for agents: list them, drain one (no new placements) and undrain it. */
#include "manager.h"
#include "policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"

/* What an agent row shows; occupancy is summed from its live kernels. */
#define AGENT_JSON                                                                              \
    "json_build_object('id', a.id, 'status', a.status, 'scaling_group', a.scaling_group,"        \
    " 'schedulable', a.schedulable, 'architecture', a.architecture, 'addr', a.addr,"             \
    " 'region', a.region, 'version', a.version, 'available_slots', a.available_slots,"           \
    " 'occupied_slots', (SELECT COALESCE(jsonb_object_agg(key, total), '{}') FROM ("              \
    "   SELECT e.key, sum((e.value #>> '{}')::numeric)::text AS total FROM kernels k,"            \
    "   jsonb_each(k.occupied_slots) e WHERE k.agent = a.id AND k.status IN " BAIC_LIVE_STATUSES \
    "   GROUP BY e.key) x),"                                                                     \
    " 'n_kernels', (SELECT count(*) FROM kernels k WHERE k.agent = a.id AND k.status IN "         \
    BAIC_LIVE_STATUSES "),"                                                                      \
    " 'first_contact', a.first_contact, 'heartbeat_at', a.heartbeat_at, 'lost_at', a.lost_at)::text"

typedef struct call {
    baic_api_op_t *op;
    int many, wake;
    char id[72];
} call_t;

static void done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    call_t *c = arg;
    if (baic_api_op_gone(c->op)) {
        free(c);
        return;
    }
    baic_http_req_t *req = c->op->req;
    if (err != 0) {
        BAIC_LOG_W("agent_admin_query_failed", "error=\"%s\"", errmsg ? errmsg : "");
        baic_api_unavailable(req, "The database is not reachable.");
        free(c);
        return;
    }
    int rows = baic_db_result_rows(res);
    if (c->many) {
        json_t *items = json_array();
        for (int r = 0; r < rows; r++)
            json_array_append_new(items, json_loads(baic_db_result_get(res, r, 0), 0, NULL));
        baic_http_respond_json(req, 200, json_pack("{s:o}", "items", items));
    } else if (rows == 0) {
        baic_api_not_found(req, "agent", NULL);
    } else {
        json_t *row = json_loads(baic_db_result_get(res, 0, 0), 0, NULL);
        if (c->wake) {
            BAIC_LOG_I("agent_schedulable", "agent=%s schedulable=%s", c->id,
                       c->wake > 1 ? "true" : "false");
            if (c->wake > 1)
                baic_scheduler_wake(c->op->m);
        }
        baic_http_respond_json(req, 200, row ? row : json_object());
    }
    free(c);
}

static void query(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who,
                  const char *sql, int nparams, const char *const *params, int many, int wake) {
    call_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        baic_api_internal(req, "Out of memory.");
        return;
    }
    c->op = baic_api_op_new(req, m, who);
    c->many = many;
    c->wake = wake;
    snprintf(c->id, sizeof c->id, "%.64s", nparams > 0 && params[0] ? params[0] : "");
    if (baic_db_query(m->db, sql, nparams, params, done, c) != 0) {
        baic_api_unavailable(req, "The database is not reachable.");
        free(c);
    }
}

static void h_list(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    const char *sg = baic_http_query(req, "scaling_group");
    const char *p[1] = {sg};
    query(req, m, who,
          "SELECT " AGENT_JSON " FROM agents a WHERE $1::text IS NULL OR a.scaling_group = $1"
          " ORDER BY a.id",
          1, p, 1, 0);
}

static const char *agent_id(baic_http_req_t *req) {
    const char *id = baic_http_param(req, "id");
    if (id == NULL || *id == '\0' || strlen(id) > 64) {
        baic_api_not_found(req, "agent", NULL);
        return NULL;
    }
    return id;
}

static void h_get(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    const char *id = agent_id(req);
    if (id == NULL)
        return;
    const char *p[1] = {id};
    query(req, m, who, "SELECT " AGENT_JSON " FROM agents a WHERE a.id = $1", 1, p, 0, 0);
}

/* POST /admin/rest/agents/{id}/drain | /undrain: agents.schedulable. */
static void set_schedulable(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who,
                            int on) {
    const char *id = agent_id(req);
    if (id == NULL)
        return;
    const char *p[2] = {id, on ? "true" : "false"};
    query(req, m, who,
          "UPDATE agents AS a SET schedulable = $2::boolean WHERE a.id = $1 RETURNING " AGENT_JSON,
          2, p, 0, on ? 2 : 1);
}

static void h_drain(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    set_schedulable(req, m, who, 0);
}

static void h_undrain(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    set_schedulable(req, m, who, 1);
}

int baic_api_agent_admin_init(baic_manager_t *m) {
    int rc = baic_api_route(m, "GET", "/admin/rest/agents", BAIC_ROUTE_SUPERADMIN, h_list, 0);
    if (rc == 0)
        rc = baic_api_route(m, "GET", "/admin/rest/agents/{id}", BAIC_ROUTE_SUPERADMIN, h_get, 0);
    if (rc == 0)
        rc = baic_api_route(m, "POST", "/admin/rest/agents/{id}/drain", BAIC_ROUTE_SUPERADMIN,
                            h_drain, 0);
    if (rc == 0)
        rc = baic_api_route(m, "POST", "/admin/rest/agents/{id}/undrain", BAIC_ROUTE_SUPERADMIN,
                            h_undrain, 0);
    return rc;
}
