/* SPDX-License-Identifier: Apache-2.0 */
/* The scheduler's predicates: resource policies, group access, dependencies, start times. */
#include "manager.h"
#include "policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"

/*
 * A scheduling round reads BAIC_POLICY_PAGE_COLS with its page and BAIC_POLICY_ROUND_SQL
 * (the policies of what the page names) in its transaction. Every pending session is
 * checked against all predicates (named as Backend.AI names them, so status_data reads
 * the same):
 *   reserved_time              starts_at not reached yet
 *   dependencies               some dependency has not ended TERMINATED with SUCCESS
 *   concurrency                keypair max_concurrent_sessions
 *   keypair_resource_limit     keypair policy total_resource_slots
 *   user_resource_limit        the user's main keypair's policy, over all the user's kernels
 *   user_group_resource_limit  the project's total_resource_slots
 *   domain_resource_limit      the domain's total_resource_slots
 *   scaling_group              the session's resource group is still open to it
 *   container_count            cluster_size within max_containers_per_session
 *   image_min_resources        requested slots reach the image's minimums
 * Occupancy is summed from live kernels (BAIC_POLICY_OCC_SQL, through the scheduler's
 * occupancy cache) and grows with each placement of the round.
 */

#define MAX_SLOTS 32

/* The policies of what the page names ($1: baic_policy_round_param()): resource-group access
 * once per (group, domain, project, keypair) on the page, the keypairs', users' (their
 * main keypair's), projects' and domains' limits, and the agents' container limit. */
const char BAIC_POLICY_ROUND_SQL[] =
    "WITH c AS (SELECT x->>0 AS sgroup, x->>1 AS domain_name, (x->>2)::uuid AS group_id,"
    "   x->>3 AS access_key FROM jsonb_array_elements($1::jsonb->'access') x)"
    " SELECT 'access' AS kind, concat_ws('|', c.sgroup, c.domain_name, c.group_id::text,"
    "   c.access_key) AS id, to_json(EXISTS (SELECT 1 FROM scaling_groups sg"
    "   WHERE sg.name = c.sgroup AND sg.is_active AND ((sg.is_public AND EXISTS (SELECT 1 FROM"
    "     sgroups_for_domains f WHERE f.scaling_group = sg.name AND f.domain = c.domain_name))"
    "     OR EXISTS (SELECT 1 FROM sgroups_for_groups f WHERE f.scaling_group = sg.name"
    "       AND f.\"group\" = c.group_id)"
    "     OR EXISTS (SELECT 1 FROM sgroups_for_keypairs f WHERE f.scaling_group = sg.name"
    "       AND f.access_key = c.access_key))))::text AS doc FROM c"
    " UNION ALL SELECT 'keypair', k.access_key, json_build_object('limits',"
    "   pol.total_resource_slots, 'default', pol.default_for_unspecified, 'max_sessions',"
    "   pol.max_concurrent_sessions, 'max_containers', pol.max_containers_per_session)::text"
    "   FROM keypairs k JOIN keypair_resource_policies pol ON pol.name = k.resource_policy"
    "   WHERE k.access_key IN (SELECT jsonb_array_elements_text($1::jsonb->'keypairs'))"
    " UNION ALL SELECT 'user', u.uuid::text, json_build_object('limits',"
    "   pol.total_resource_slots, 'default', pol.default_for_unspecified)::text"
    "   FROM users u JOIN keypairs mk ON mk.access_key = u.main_access_key"
    "   JOIN keypair_resource_policies pol ON pol.name = mk.resource_policy"
    "   WHERE u.uuid IN (SELECT jsonb_array_elements_text($1::jsonb->'users')::uuid)"
    " UNION ALL SELECT 'group', g.id::text, json_build_object('limits', g.total_resource_slots,"
    "   'default', 'UNLIMITED')::text FROM groups g"
    "   WHERE g.id IN (SELECT jsonb_array_elements_text($1::jsonb->'groups')::uuid)"
    " UNION ALL SELECT 'domain', dm.name, json_build_object('limits', dm.total_resource_slots,"
    "   'default', 'UNLIMITED')::text FROM domains dm"
    "   WHERE dm.name IN (SELECT jsonb_array_elements_text($1::jsonb->'domains'))"
    " UNION ALL SELECT 'config', 'max-container-count', value::text FROM shared_config"
    "   WHERE key = 'config/agent/max-container-count'";

/* A pending row's resource-group access key: its group, domain, project and keypair. */
static const char *const ACCESS_COLS[4] = {"sgroup", "domain_name", "group_id", "access_key"};

static void access_key_of(const json_t *row, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < 4; i++) {
        const char *v = json_string_value(json_object_get(row, ACCESS_COLS[i]));
        if (v == NULL) /* concat_ws skips NULLs */
            continue;
        int w = snprintf(buf + len, n - len, "%s%s", len ? "|" : "", v);
        if (w < 0 || (size_t)w >= n - len)
            return;
        len += (size_t)w;
    }
}

json_t *baic_policy_round_param(const json_t *pending) {
    json_t *seen = json_object(), *access = json_array();
    const char *kinds[4][2] = {{"keypairs", "access_key"}, {"users", "user_id"},
                               {"groups", "group_id"}, {"domains", "domain_name"}};
    json_t *lists[4];
    for (int k = 0; k < 4; k++)
        lists[k] = json_array();
    size_t i;
    json_t *row;
    char key[600];
    json_array_foreach(pending, i, row) {
        for (int k = 0; k < 4; k++) {
            const char *v = json_string_value(json_object_get(row, kinds[k][1]));
            if (v == NULL)
                continue;
            snprintf(key, sizeof key, "%d:%s", k, v);
            if (json_object_get(seen, key) == NULL) {
                json_object_set_new(seen, key, json_true());
                json_array_append_new(lists[k], json_string(v));
            }
        }
        char ak[512];
        access_key_of(row, ak, sizeof ak);
        snprintf(key, sizeof key, "a:%s", ak);
        if (json_object_get(seen, key) == NULL) {
            json_object_set_new(seen, key, json_true());
            json_t *t = json_array();
            for (int k = 0; k < 4; k++)
                json_array_append(t, json_object_get(row, ACCESS_COLS[k]) ?: json_null());
            json_array_append_new(access, t);
        }
    }
    json_decref(seen);
    json_t *param = json_pack("{s:o}", "access", access);
    for (int k = 0; k < 4; k++)
        json_object_set_new(param, kinds[k][0], lists[k]);
    return param;
}

/* What live kernels occupy per keypair, user, project and domain: the scheduler reads it
 * with its occupancy cache (not every round) and adds each round's placements to it. */
const char BAIC_POLICY_OCC_SQL[] =
    "SELECT CASE WHEN GROUPING(k.access_key) = 0 THEN 'keypair'"
    "   WHEN GROUPING(k.user_uuid) = 0 THEN 'user' WHEN GROUPING(k.group_id) = 0 THEN 'group'"
    "   ELSE 'domain' END AS kind,"
    " COALESCE(k.access_key, k.user_uuid::text, k.group_id::text, k.domain_name) AS id,"
    " e.key AS slot, sum((e.value #>> '{}')::numeric)::text AS total"
    " FROM kernels k, jsonb_each(k.occupied_slots) e WHERE k.status IN " BAIC_LIVE_STATUSES
    " GROUP BY GROUPING SETS ((k.access_key, e.key), (k.user_uuid, e.key), (k.group_id, e.key),"
    "   (k.domain_name, e.key))";

typedef struct vec {
    baic_slot_t v[MAX_SLOTS];
    size_t n;
} vec_t;

typedef struct ent {
    vec_t limit, occ;
    int unlimited_default, has_limits;
    long long live, max_sessions, max_containers;
    json_t *limits_json; /* borrowed from the doc, for messages */
} ent_t;

struct baic_policy {
    baic_manager_t *m;
    const json_t *types;
    json_t *names;   /* interned slot names */
    json_t *index;   /* "kind:id" -> index into ents */
    json_t *docs;    /* the parsed docs (own the JSON the entities borrow) */
    ent_t *ents;
    size_t nents;
    long long max_agent_containers; /* 0 = no limit */
    char *imin_text;                 /* the image minimums parsed last, and their JSON */
    json_t *imin;
    int cancel;                      /* some pending session's dependency failed */
};

static int slot_bytes(const baic_policy_t *p, const char *name) {
    const char *t = json_string_value(json_object_get(p->types, name));
    return t != NULL && strcmp(t, "bytes") == 0;
}

static const char *intern(baic_policy_t *p, const char *name) {
    void *it = json_object_iter_at(p->names, name);
    if (it == NULL) {
        json_object_set_new(p->names, name, json_true());
        it = json_object_iter_at(p->names, name);
    }
    return json_object_iter_key(it);
}

static int64_t *vec_slot(baic_policy_t *p, vec_t *v, const char *name) {
    for (size_t i = 0; i < v->n; i++)
        if (v->v[i].name == name || strcmp(v->v[i].name, name) == 0)
            return &v->v[i].value;
    if (v->n == MAX_SLOTS)
        return NULL;
    v->v[v->n].name = intern(p, name);
    v->v[v->n].value = 0;
    return &v->v[v->n++].value;
}

/* An amount of a slot: 0, 1 for unlimited ("Infinity"), -1 when unreadable. */
static int amount(const baic_policy_t *p, const char *slot, const json_t *val, int64_t *out) {
    char num[64];
    const char *t = json_string_value(val);
    if (json_is_number(val)) {
        snprintf(num, sizeof num, "%.9g", json_number_value(val));
        t = num;
    }
    if (t == NULL)
        return -1;
    if (strcmp(t, "Infinity") == 0 || strcmp(t, "inf") == 0 || strcmp(t, "infinity") == 0)
        return 1;
    return baic_slot_parse(t, slot_bytes(p, slot), out) == 0 ? 0 : -1;
}

static void vec_from(baic_policy_t *p, vec_t *v, const json_t *obj, int limits) {
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)obj, k, val) {
        int64_t x = 0;
        int rc = amount(p, k, val, &x);
        if (rc < 0 || (rc == 1 && !limits))
            continue;
        int64_t *slot = vec_slot(p, v, k);
        if (slot)
            *slot = rc == 1 ? -1 : x;
    }
}

static void vec_add(baic_policy_t *p, vec_t *dst, const baic_slots_t *src) {
    for (size_t i = 0; i < src->count; i++) {
        int64_t *slot = vec_slot(p, dst, src->v[i].name);
        if (slot)
            *slot += src->v[i].value;
    }
}

static baic_slots_t as_slots(const vec_t *v) {
    baic_slots_t s = {v->v, v->n};
    return s;
}

static ent_t *ent(const baic_policy_t *p, const char *kind, const char *id) {
    if (id == NULL)
        return NULL;
    char key[600];
    snprintf(key, sizeof key, "%s:%.560s", kind, id);
    json_t *i = json_object_get(p->index, key);
    return i ? &p->ents[json_integer_value(i)] : NULL;
}


/* A pending row's dependencies ([[id, name, status, result]]), or NULL. */
static json_t *row_deps(const json_t *row) {
    const char *t = json_string_value(json_object_get(row, "deps"));
    return t ? json_loads(t, 0, NULL) : NULL;
}

baic_policy_t *baic_policy_new(baic_manager_t *m, const json_t *rows, const json_t *pending,
                               const json_t *types, const json_t *occ, const json_t *live) {
    baic_policy_t *p = calloc(1, sizeof *p);
    if (p == NULL)
        abort();
    p->m = m;
    p->types = types;
    p->names = json_object();
    p->index = json_object();
    p->docs = json_object();
    p->ents = calloc(json_array_size(rows) + 1, sizeof *p->ents);
    if (p->ents == NULL)
        abort();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        const char *kind = json_string_value(json_object_get(row, "kind"));
        const char *id = json_string_value(json_object_get(row, "id"));
        const char *text = json_string_value(json_object_get(row, "doc"));
        if (kind == NULL || id == NULL || text == NULL)
            continue;
        json_t *doc = json_loads(text, JSON_DECODE_ANY, NULL);
        if (doc == NULL)
            continue;
        char key[600];
        snprintf(key, sizeof key, "%s:%.560s", kind, id);
        json_object_set_new(p->docs, key, doc);
        if (strcmp(kind, "config") == 0) {
            int64_t n = 0;
            const char *s = json_string_value(doc);
            if (json_is_integer(doc))
                n = json_integer_value(doc);
            else if (s)
                n = atoll(s);
            p->max_agent_containers = n > 0 ? n : 0;
            continue;
        }
        if (strcmp(kind, "access") == 0)
            continue;
        ent_t *e = &p->ents[p->nents];
        json_t *limits = json_object_get(doc, "limits");
        const char *dflt = json_string_value(json_object_get(doc, "default"));
        e->unlimited_default = dflt == NULL || strcmp(dflt, "UNLIMITED") == 0;
        e->has_limits = 1;
        e->limits_json = limits;
        vec_from(p, &e->limit, limits, 1);
        vec_from(p, &e->occ, json_object_get(json_object_get(occ, kind), id), 0);
        if (strcmp(kind, "keypair") == 0) {
            size_t j;
            json_t *l;
            json_array_foreach(live, j, l) {
                const char *ak = json_string_value(json_object_get(l, "access_key"));
                if (ak != NULL && strcmp(ak, id) == 0) {
                    e->live = atoll(json_string_value(json_object_get(l, "n")) ?: "0");
                    break;
                }
            }
        }
        e->max_sessions = json_integer_value(json_object_get(doc, "max_sessions"));
        e->max_containers = json_integer_value(json_object_get(doc, "max_containers"));
        json_object_set_new(p->index, key, json_integer((json_int_t)p->nents));
        p->nents++;
    }
    /* A dependency that failed cancels its dependants, checked this round or not. */
    json_array_foreach(pending, i, row) {
        if (p->cancel)
            break;
        json_t *deps = row_deps(row); /* NULL without dependencies */
        if (baic_policy_deps_state(deps, NULL, 0) == BAIC_DEPS_FAILED)
            p->cancel = 1;
        json_decref(deps);
    }
    return p;
}

void baic_policy_free(baic_policy_t *p) {
    if (p == NULL)
        return;
    if (p->cancel && !p->m->closing)
        baic_policy_cancel_dependants(p->m);
    json_decref(p->names);
    json_decref(p->index);
    json_decref(p->docs);
    json_decref(p->imin);
    free(p->imin_text);
    free(p->ents);
    free(p);
}

int baic_policy_agent_ok(const baic_policy_t *p, uint32_t n_kernels) {
    return p == NULL || p->max_agent_containers <= 0 ||
           (long long)n_kernels < p->max_agent_containers;
}

/* "cpu=2 mem=4g" of a limits object, as Backend.AI humanizes a policy. */
static void humanize(const baic_policy_t *p, const json_t *limits, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = '\0';
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)limits, k, v) {
        int64_t x = 0;
        char val[48];
        int rc = amount(p, k, v, &x);
        if (rc < 0)
            continue;
        if (rc == 1)
            snprintf(val, sizeof val, "Infinity");
        else if (slot_bytes(p, k) && x > 0 && x % (1LL << 30) == 0)
            snprintf(val, sizeof val, "%lldg", (long long)(x >> 30));
        else if (slot_bytes(p, k) && x > 0 && x % (1LL << 20) == 0)
            snprintf(val, sizeof val, "%lldm", (long long)(x >> 20));
        else
            baic_slot_format(x, slot_bytes(p, k), val, sizeof val);
        int w = snprintf(buf + len, n - len, "%s%s=%s", len ? " " : "", k, val);
        if (w < 0 || (size_t)w >= n - len)
            break;
        len += (size_t)w;
    }
}

static void fail(json_t *failed, char *first, size_t n, const char *name, const char *msg) {
    json_array_append_new(failed, json_pack("{s:s, s:s}", "name", name, "msg", msg));
    if (first[0] == '\0') {
        size_t len = strlen(msg);
        if (len >= n)
            len = n - 1;
        memcpy(first, msg, len);
        first[len] = '\0';
    }
}

/* The predicates a session passed, named only when some other one failed (the check
 * runs for every placement; most pass everything). */
typedef struct passes {
    const char *name[16];
    int n;
} passes_t;

static void pass(passes_t *ps, const char *name) {
    if (ps->n < 16)
        ps->name[ps->n++] = name;
}

/* One resource-limit predicate over an entity (absent entity: nothing to limit). */
static void limit_check(const baic_policy_t *p, const ent_t *e, const baic_slots_t *need,
                        const char *name, const char *what, json_t *failed, passes_t *passed,
                        char *first, size_t n) {
    const char *slot = NULL;
    if (e == NULL) {
        pass(passed, name);
        return;
    }
    baic_slots_t lim = as_slots(&e->limit), used = as_slots(&e->occ);
    if (baic_policy_fits(&lim, e->unlimited_default, &used, need, &slot)) {
        pass(passed, name);
        return;
    }
    char h[256], msg[400];
    humanize(p, e->limits_json, h, sizeof h);
    snprintf(msg, sizeof msg, "Your %s resource quota is exceeded. (%s; %s)", what,
             h[0] ? h : "nothing allowed", slot ? slot : "");
    fail(failed, first, n, name, msg);
}


/* An image's resource minimums ({"cpu": {"min": ...}}) as JSON: parsed once while the
 * sessions checked in a row name the same image's text. */
static const json_t *image_minimums(baic_policy_t *p, const char *text) {
    if (text == NULL)
        text = "{}";
    if (p->imin_text == NULL || strcmp(p->imin_text, text) != 0) {
        json_decref(p->imin);
        free(p->imin_text);
        p->imin = json_loads(text, 0, NULL);
        p->imin_text = strdup(text);
    }
    return p->imin;
}

json_t *baic_policy_check(baic_policy_t *p, const json_t *row, const baic_slots_t *need) {
    const char *ak = json_string_value(json_object_get(row, "access_key"));
    json_t *failed = json_array();
    passes_t passed = {{0}, 0};
    char first[768] = "", msg[768];

    /* reserved_time */
    const char *wait = json_string_value(json_object_get(row, "wait_ms"));
    if (wait != NULL && atoll(wait) > 0) {
        snprintf(msg, sizeof msg, "Before start time (%s).",
                 json_string_value(json_object_get(row, "starts_at_text")) ?: "");
        fail(failed, first, sizeof first, "reserved_time", msg);
    } else {
        pass(&passed, "reserved_time");
    }
    /* dependencies */
    char which[400];
    json_t *deps = row_deps(row);
    int ds = baic_policy_deps_state(deps, which, sizeof which);
    json_decref(deps);
    if (ds == BAIC_DEPS_WAIT) {
        snprintf(msg, sizeof msg, "Waiting dependency sessions to finish as success. (%s)", which);
        fail(failed, first, sizeof first, "dependencies", msg);
    } else if (ds == BAIC_DEPS_FAILED) {
        snprintf(msg, sizeof msg, "A dependency session ended without success. (%s)", which);
        fail(failed, first, sizeof first, "dependencies", msg);
        p->cancel = 1;
    } else {
        pass(&passed, "dependencies");
    }
    /* concurrency */
    ent_t *kp = ent(p, "keypair", ak);
    if (kp && kp->max_sessions > 0 && kp->live >= kp->max_sessions) {
        snprintf(msg, sizeof msg, "You cannot run more than %lld concurrent sessions.",
                 kp->max_sessions);
        fail(failed, first, sizeof first, "concurrency", msg);
    } else {
        pass(&passed, "concurrency");
    }
    limit_check(p, kp, need, "keypair_resource_limit", "keypair", failed, &passed, first,
                sizeof first);
    limit_check(p, ent(p, "user", json_string_value(json_object_get(row, "user_id"))), need,
                "user_resource_limit", "main-keypair", failed, &passed, first, sizeof first);
    limit_check(p, ent(p, "group", json_string_value(json_object_get(row, "group_id"))), need,
                "user_group_resource_limit", "group", failed, &passed, first, sizeof first);
    limit_check(p, ent(p, "domain", json_string_value(json_object_get(row, "domain_name"))),
                need, "domain_resource_limit", "domain", failed, &passed, first, sizeof first);
    /* scaling_group */
    char akey[560];
    snprintf(akey, sizeof akey, "access:");
    access_key_of(row, akey + 7, sizeof akey - 7);
    if (!json_is_true(json_object_get(p->docs, akey))) {
        snprintf(msg, sizeof msg, "You do not have access to the scaling group '%.64s'.",
                 json_string_value(json_object_get(row, "sgroup")) ?: "");
        fail(failed, first, sizeof first, "scaling_group", msg);
    } else {
        pass(&passed, "scaling_group");
    }
    /* container_count */
    long long size = atoll(json_string_value(json_object_get(row, "cluster_size")) ?: "1");
    if (kp && kp->max_containers > 0 && size > kp->max_containers) {
        snprintf(msg, sizeof msg,
                 "A session of %lld containers exceeds your limit of %lld containers per session.",
                 size, kp->max_containers);
        fail(failed, first, sizeof first, "container_count", msg);
    } else {
        pass(&passed, "container_count");
    }
    /* image_min_resources */
    const json_t *imin = image_minimums(p, json_string_value(json_object_get(row, "image_resources")));
    const char *slot, *bad = NULL;
    json_t *v;
    json_object_foreach((json_t *)imin, slot, v) {
        int64_t want = 0, have = 0;
        if (amount(p, slot, json_object_get(v, "min"), &want) != 0)
            continue;
        baic_slots_get(need, slot, &have);
        if (have < want) {
            bad = slot;
            break;
        }
    }
    if (bad) {
        snprintf(msg, sizeof msg, "The requested %s is below the image's minimum.", bad);
        fail(failed, first, sizeof first, "image_min_resources", msg);
    } else {
        pass(&passed, "image_min_resources");
    }

    if (json_array_size(failed) == 0) {
        json_decref(failed);
        return NULL;
    }
    json_t *passed_json = json_array();
    for (int k = 0; k < passed.n; k++)
        json_array_append_new(passed_json, json_pack("{s:s}", "name", passed.name[k]));
    return json_pack("{s:s, s:s, s:o, s:o}", "info", "predicate-checks-failed", "msg", first,
                     "failed", failed, "passed", passed_json);
}

void baic_policy_place(baic_policy_t *p, const json_t *row, const baic_slots_t *need) {
    static const char *const kinds[4][2] = {{"keypair", "access_key"},
                                            {"user", "user_id"},
                                            {"group", "group_id"},
                                            {"domain", "domain_name"}};
    for (int i = 0; i < 4; i++) {
        ent_t *e = ent(p, kinds[i][0], json_string_value(json_object_get(row, kinds[i][1])));
        if (e == NULL)
            continue;
        vec_add(p, &e->occ, need);
        if (i == 0)
            e->live++;
    }
}

/* ---- dependants of failed sessions ---- */

static const char CANCEL_SQL[] =
    "WITH RECURSIVE bad (session_id, cause) AS ("
    "   SELECT d.session_id, d.depends_on FROM session_dependencies d"
    "   JOIN sessions ds ON ds.id = d.depends_on"
    "   JOIN sessions s ON s.id = d.session_id AND s.status = 'PENDING'"
    "   WHERE ds.status IN " BAIC_FINAL_STATUSES
    "     AND NOT (ds.status = 'TERMINATED' AND ds.result = 'SUCCESS')"
    " UNION SELECT d.session_id, d.depends_on FROM bad"
    "   JOIN session_dependencies d ON d.depends_on = bad.session_id"
    "   JOIN sessions s ON s.id = d.session_id AND s.status = 'PENDING'),"
    " one AS (SELECT DISTINCT ON (b.session_id) b.session_id, b.cause, cs.name AS cause_name,"
    "   cs.status AS cause_status FROM bad b JOIN sessions cs ON cs.id = b.cause"
    "   ORDER BY b.session_id, cs.status = 'PENDING'),"
    " c AS (UPDATE sessions s SET status = 'CANCELLED', status_changed = now(),"
    "   terminated_at = now(), status_info = 'dependency-failed',"
    "   status_data = COALESCE(s.status_data, '{}'::jsonb) || jsonb_build_object('scheduler',"
    "     COALESCE(s.status_data->'scheduler', '{}'::jsonb) || jsonb_build_object('msg',"
    "     format('The dependency session %s (%s) ended as %s without success.',"
    "       one.cause_name, one.cause, CASE WHEN one.cause_status = 'PENDING' THEN 'CANCELLED'"
    "       ELSE one.cause_status END))),"
    "   status_history = s.status_history || jsonb_build_object('CANCELLED', now()::text)"
    "   FROM one WHERE s.id = one.session_id AND s.status = 'PENDING'"
    "   RETURNING s.id, s.name, s.access_key),"
    " ck AS (UPDATE kernels k SET status = 'CANCELLED', status_changed = now(),"
    "   terminated_at = now(), status_info = 'dependency-failed',"
    "   status_history = k.status_history || jsonb_build_object('CANCELLED', now()::text)"
    "   FROM c WHERE k.session_id = c.id AND k.status = 'PENDING' RETURNING k.id)"
    " SELECT c.id::text, c.name, c.access_key, (SELECT count(*) FROM ck) FROM c";

static void cancelled(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    baic_manager_t *m = arg;
    if (err != 0) {
        BAIC_LOG_W("dependants_cancel_failed", "error=\"%s\"", errmsg ? errmsg : "");
        return;
    }
    for (int r = 0; r < baic_db_result_rows(res); r++) {
        const char *sid = baic_db_result_get(res, r, 0);
        BAIC_LOG_I("session_cancelled", "session=%s reason=dependency-failed", sid);
        baic_session_event(m, "session_cancelled", sid, baic_db_result_get(res, r, 1),
                           baic_db_result_get(res, r, 2), "dependency-failed", NULL, INT32_MIN);
    }
}

void baic_policy_cancel_dependants(baic_manager_t *m) {
    if (m == NULL || m->db == NULL || m->closing)
        return;
    if (baic_db_query(m->db, CANCEL_SQL, 0, NULL, cancelled, m) != 0)
        BAIC_LOG_W("dependants_cancel_failed", "error=\"database not reachable\"");
}
