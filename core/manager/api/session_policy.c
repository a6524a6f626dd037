/* SPDX-License-Identifier: Apache-2.0 */
/* Session creation side of the scheduling policies: dependencies, starts_at, pending limits. */
#include "manager.h"
#include "policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPS 64

static json_t *alias2(const json_t *obj, const char *a, const char *b) {
    json_t *v = json_object_get(obj, a);
    return v ? v : json_object_get(obj, b);
}

int baic_create_policy_parse(baic_http_req_t *req, const json_t *body, const char *type,
                             baic_create_policy_t *out) {
    memset(out, 0, sizeof *out);
    json_t *deps = json_object_get(body, "dependencies");
    if (deps != NULL && !json_is_null(deps)) {
        if (!json_is_array(deps) || json_array_size(deps) > MAX_DEPS) {
            baic_api_invalid_params(req, "'dependencies' must be a list of at most 64 session "
                                         "names or ids.");
            return -1;
        }
        size_t i;
        json_t *d;
        json_array_foreach(deps, i, d) {
            const char *s = json_string_value(d);
            if (s == NULL || *s == '\0' || strlen(s) > 80) {
                baic_api_invalid_params(req, "'dependencies' entries must be session names or "
                                             "ids (1-80 characters).");
                return -1;
            }
        }
        if (json_array_size(deps) > 0)
            out->deps = json_incref(deps);
    }
    json_t *sa = alias2(body, "starts_at", "startsAt");
    if (sa != NULL && !json_is_null(sa)) {
        int64_t when;
        if (!json_is_string(sa) ||
            baic_policy_parse_starts_at(json_string_value(sa), baic_wall_ms(), &when) != 0) {
            baic_api_invalid_params(req, "'starts_at' must be an ISO 8601 date-time or a delay "
                                         "like \"30m\", \"1h\" or \"1d2h\".");
            baic_create_policy_clear(out);
            return -1;
        }
        if (type == NULL || strcmp(type, "batch") != 0) {
            baic_api_invalid_params(req, "'starts_at' is only for batch sessions.");
            baic_create_policy_clear(out);
            return -1;
        }
        baic_policy_format_iso(when, out->starts_at, sizeof out->starts_at);
    }
    return 0;
}

void baic_create_policy_clear(baic_create_policy_t *p) {
    json_decref(p->deps);
    p->deps = NULL;
    free(p->dep_ids);
    p->dep_ids = NULL;
    p->starts_at[0] = '\0';
}

const char *baic_create_policy_refs(const baic_create_policy_t *p, char **owned) {
    *owned = p->deps ? json_dumps(p->deps, JSON_COMPACT) : NULL;
    return *owned;
}

static int slot_bytes(const json_t *types, const char *slot) {
    const char *t = json_string_value(json_object_get(types, slot));
    return t != NULL && strcmp(t, "bytes") == 0;
}

/* Amount of a slot value: 0 ok, 1 unlimited, -1 unreadable. */
static int amount(const json_t *types, const char *slot, const json_t *v, int64_t *out) {
    char num[64];
    const char *t = json_string_value(v);
    if (json_is_number(v)) {
        snprintf(num, sizeof num, "%.9g", json_number_value(v));
        t = num;
    }
    if (t == NULL)
        return -1;
    if (strcmp(t, "Infinity") == 0 || strcmp(t, "inf") == 0)
        return 1;
    return baic_slot_parse(t, slot_bytes(types, slot), out) == 0 ? 0 : -1;
}

/* A slot vector of an object of amounts; names borrowed from the object. */
static size_t to_slots(const json_t *types, const json_t *obj, baic_slot_t *v, size_t max,
                       int limits) {
    size_t n = 0;
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)obj, k, val) {
        int64_t x = 0;
        int rc = amount(types, k, val, &x);
        if (rc < 0 || n == max || (rc == 1 && !limits))
            continue;
        v[n].name = k;
        v[n++].value = rc == 1 ? -1 : x;
    }
    return n;
}

int baic_create_policy_check(baic_http_req_t *req, const baic_db_result_t *res,
                             const json_t *req_slots, const json_t *types, int cluster_size,
                             baic_create_policy_t *p) {
    char msg[400];
    const char *mc = baic_db_result_get_by_name(res, 0, "max_containers");
    if (mc != NULL && atoll(mc) > 0 && cluster_size > atoll(mc)) {
        snprintf(msg, sizeof msg, "You cannot create sessions of more than %s containers.", mc);
        baic_http_respond_problem(req, 412, "quota-exceeded",
                                  "You have reached your resource limit.", msg, NULL);
        return -1;
    }
    const char *maxp = baic_db_result_get_by_name(res, 0, "max_pending_slots");
    json_t *lim = maxp ? json_loads(maxp, 0, NULL) : NULL;
    if (json_is_object(lim)) {
        json_t *pend = json_loads(baic_db_result_get_by_name(res, 0, "pending_slots") ?: "{}", 0,
                                  NULL);
        baic_slot_t lv[32], pv[32], nv[32];
        baic_slots_t l = {lv, to_slots(types, lim, lv, 32, 1)};
        baic_slots_t u = {pv, to_slots(types, pend, pv, 32, 0)};
        baic_slots_t need = {nv, to_slots(types, req_slots, nv, 32, 0)};
        const char *slot = NULL;
        int ok = baic_policy_fits(&l, 1, &u, &need, &slot);
        if (!ok) {
            snprintf(msg, sizeof msg, "Your pending session resource limit is exceeded (%s).",
                     slot ? slot : "");
            baic_http_respond_problem(req, 412, "quota-exceeded",
                                      "You have reached your resource limit.", msg, NULL);
        }
        json_decref(pend);
        json_decref(lim);
        if (!ok)
            return -1;
    } else {
        json_decref(lim);
    }
    if (p->deps == NULL)
        return 0;
    json_t *deps = json_loads(baic_db_result_get_by_name(res, 0, "deps") ?: "[]", 0, NULL);
    json_t *ids = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(deps, i, d) {
        const char *id = json_string_value(json_object_get(d, "id"));
        if (id == NULL) {
            snprintf(msg, sizeof msg, "No such dependency session: %.80s",
                     json_string_value(json_object_get(d, "ref")) ?: "");
            baic_api_not_found(req, "session", msg);
            json_decref(deps);
            json_decref(ids);
            return -1;
        }
        int seen = 0;
        size_t j;
        json_t *x;
        json_array_foreach(ids, j, x) seen |= strcmp(json_string_value(x), id) == 0;
        if (!seen)
            json_array_append_new(ids, json_string(id));
    }
    free(p->dep_ids);
    p->dep_ids = json_dumps(ids, JSON_COMPACT);
    json_decref(deps);
    json_decref(ids);
    return 0;
}
