/* SPDX-License-Identifier: Apache-2.0 */
/* GET /config/resource-slots: slot names and types known to the cluster. */
#include "manager.h"

#include <string.h>

/*
 * cpu and mem always exist; accelerator slots come from what agents reported
 * (agents.available_slots carries the slot types their compute plugins declared,
 * stored by the agent registry under the "slot_types" key of the shared config).
 */
static void slots_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    baic_api_op_t *op = arg;
    if (baic_api_op_gone(op))
        return;
    json_t *out = json_pack("{s:s, s:s}", "cpu", "count", "mem", "bytes");
    if (err == 0 && baic_db_result_rows(res) > 0 && !baic_db_result_is_null(res, 0, 0)) {
        json_t *extra = json_loads(baic_db_result_get(res, 0, 0), 0, NULL);
        const char *k;
        json_t *v;
        if (json_is_object(extra))
            json_object_foreach(extra, k, v) if (json_is_string(v)) json_object_set(out, k, v);
        json_decref(extra);
    }
    baic_http_respond_json(op->req, 200, out);
}

static void get_resource_slots(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    baic_api_op_t *op = baic_api_op_new(req, m, who);
    const char *params[1] = {"config/resource_slots"};
    if (baic_db_query(m->db, "SELECT value::text FROM shared_config WHERE key = $1", 1, params,
                      slots_done, op) != 0)
        baic_api_unavailable(req, "The database is not reachable.");
}

int baic_api_config_init(baic_manager_t *m) {
    return baic_api_route(m, "GET", "/config/resource-slots", BAIC_ROUTE_USER,
                          get_resource_slots, 0);
}
