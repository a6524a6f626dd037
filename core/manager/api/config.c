/* SPDX-License-Identifier: Apache-2.0 */
/* GET /config/resource-slots: slot names and types known to the cluster. */
#include "manager.h"

#include <stdlib.h>
#include <string.h>

#include "log/log.h"

/*
 * cpu and mem always exist; accelerator slot types come from shared_config key
 * "config/resource_slots", which the agent registry keeps up to date. Clients ask
 * for this often and it changes only when hardware does, so the rendered answer is
 * kept for a few seconds instead of costing a query per request.
 */
#define SLOTS_TTL_MS 5000

static char *cached_body;
static size_t cached_len;
static uint64_t cached_at;

static void slots_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    baic_api_op_t *op = arg;
    json_t *out = json_pack("{s:s, s:s}", "cpu", "count", "mem", "bytes");
    if (err != 0) {
        BAIC_LOG_W("resource_slots_query_failed", "error=\"%s\"", errmsg ? errmsg : "");
    } else if (baic_db_result_rows(res) > 0 && !baic_db_result_is_null(res, 0, 0)) {
        json_t *extra = json_loads(baic_db_result_get(res, 0, 0), 0, NULL);
        const char *k;
        json_t *v;
        if (json_is_object(extra))
            json_object_foreach(extra, k, v) if (json_is_string(v)) json_object_set(out, k, v);
        json_decref(extra);
    }
    if (err == 0) {
        free(cached_body);
        cached_body = json_dumps(out, JSON_COMPACT);
        cached_len = cached_body ? strlen(cached_body) : 0;
        cached_at = uv_now(op->m->uv);
    }
    if (baic_api_op_gone(op)) {
        json_decref(out);
        return;
    }
    if (err != 0 && cached_body == NULL) {
        json_decref(out);
        baic_api_unavailable(op->req, "The database is not reachable.");
        return;
    }
    baic_http_respond_json(op->req, 200, out);
}

static void get_resource_slots(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    if (cached_body != NULL && uv_now(m->uv) - cached_at < SLOTS_TTL_MS) {
        baic_http_respond(req, 200, "application/json", cached_body, cached_len);
        return;
    }
    baic_api_op_t *op = baic_api_op_new(req, m, who);
    const char *params[1] = {"config/resource_slots"};
    if (baic_db_query(m->db, "SELECT value::text FROM shared_config WHERE key = $1", 1, params,
                      slots_done, op) != 0) {
        if (cached_body != NULL)
            baic_http_respond(req, 200, "application/json", cached_body, cached_len);
        else
            baic_api_unavailable(req, "The database is not reachable.");
    }
}

void baic_api_config_fini(void) {
    free(cached_body);
    cached_body = NULL;
}

int baic_api_config_init(baic_manager_t *m) {
    return baic_api_route(m, "GET", "/config/resource-slots", BAIC_ROUTE_USER,
                          get_resource_slots, 0);
}
