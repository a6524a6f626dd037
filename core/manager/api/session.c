/* SPDX-License-Identifier: Apache-2.0 */
/* Compute sessions: create (queue and wait), inspect and destroy a single-kernel session. */
#include "manager.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "policy.h"
#include "vfolder_mounts.h"

/* Statuses a creating client waits through (api-contract §3). */
static int scheduling_status(const char *st) {
    static const char *const s[] = {"PENDING", "SCHEDULED", "PREPARING", "PULLING", "PREPARED",
                                    "CREATING"};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        if (strcmp(st, s[i]) == 0)
            return 1;
    return 0;
}

/* The first of several alias keys that is present. */
static json_t *alias(const json_t *obj, const char *a, const char *b, const char *c) {
    json_t *v = json_object_get(obj, a);
    if (v == NULL && b)
        v = json_object_get(obj, b);
    if (v == NULL && c)
        v = json_object_get(obj, c);
    return v;
}

/* ^(?=.{4,64}$)\w[\w.-]*\w$ over ASCII. */
int baic_session_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n < 4 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        int w = isalnum((unsigned char)s[i]) || s[i] == '_';
        if (!w && (i == 0 || i == n - 1 || (s[i] != '.' && s[i] != '-')))
            return 0;
    }
    return 1;
}

static void problem(baic_http_req_t *req, int status, const char *slug, const char *title,
                    const char *msg, json_t *data) {
    baic_http_respond_problem(req, status, slug, title, msg, data);
}

/* ---- python str() of JSON values, as the 24.09 manager renders dicts ---- */

typedef struct sbuf {
    char *s;
    size_t n, cap;
} sbuf_t;

static void sput(sbuf_t *b, const char *t, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 128;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *ns = realloc(b->s, cap);
        if (ns == NULL)
            return;
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->n, t, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sputs(sbuf_t *b, const char *t) {
    sput(b, t, strlen(t));
}

static void pyrepr(sbuf_t *b, const json_t *v) {
    char num[64];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *x;
        int first = 1;
        sputs(b, "{");
        json_object_foreach((json_t *)v, k, x) {
            if (!first)
                sputs(b, ", ");
            first = 0;
            json_t *ks = json_string(k);
            pyrepr(b, ks);
            json_decref(ks);
            sputs(b, ": ");
            pyrepr(b, x);
        }
        sputs(b, "}");
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *x;
        sputs(b, "[");
        json_array_foreach(v, i, x) {
            if (i)
                sputs(b, ", ");
            pyrepr(b, x);
        }
        sputs(b, "]");
        break;
    }
    case JSON_STRING: {
        sputs(b, "'");
        for (const char *p = json_string_value(v); *p; p++) {
            if (*p == '\'' || *p == '\\')
                sputs(b, "\\");
            if (*p == '\n')
                sputs(b, "\\n");
            else
                sput(b, p, 1);
        }
        sputs(b, "'");
        break;
    }
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        sputs(b, num);
        break;
    case JSON_REAL:
        snprintf(num, sizeof num, "%.17g", json_real_value(v));
        sputs(b, num);
        break;
    case JSON_TRUE:
        sputs(b, "True");
        break;
    case JSON_FALSE:
        sputs(b, "False");
        break;
    default:
        sputs(b, "None");
    }
}

/* str() of the JSON text of a column (NULL -> "None"). */
static json_t *py_str(const char *text) {
    json_t *j = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    sbuf_t b = {0};
    pyrepr(&b, j ? j : json_null());
    json_decref(j);
    json_t *out = json_string(b.s ? b.s : "None");
    free(b.s);
    return out;
}

/* ---- POST /session ---- */

static char context_sql[8192];

static const char CONTEXT_SQL_FMT[] =
    "SELECT (SELECT row_to_json(x)::text FROM (%s) x) AS image,"
    " (SELECT g.id::text FROM groups g JOIN association_groups_users a ON a.group_id = g.id"
    "   AND a.user_id = $8::uuid WHERE (g.name = $3 OR g.id::text = $3) AND g.domain_name = $4"
    "   AND g.is_active LIMIT 1) AS group_id,"
    " (SELECT json_build_object('id', s.id::text, 'image', s.images[1], 'status', s.status,"
    "   'ports', (SELECT k.service_ports FROM kernels k WHERE k.session_id = s.id"
    "   AND k.cluster_idx = 0 LIMIT 1))::text FROM sessions s WHERE s.access_key = $5"
    "   AND s.name = $6 AND s.status NOT IN " BAIC_FINAL_STATUSES " LIMIT 1) AS existing,"
    " (SELECT value::text FROM shared_config WHERE key = 'config/resource_slots') AS slot_types,"
    " (SELECT sg.name FROM scaling_groups sg WHERE sg.is_active AND ($7::text IS NULL OR"
    "   sg.name = $7) AND ((sg.is_public AND sg.name IN (SELECT scaling_group FROM"
    "   sgroups_for_domains WHERE domain = $4))"
    "   OR sg.name IN (SELECT f.scaling_group FROM sgroups_for_groups f"
    "   JOIN groups g ON g.id = f.\"group\" WHERE (g.name = $3 OR g.id::text = $3)"
    "   AND g.domain_name = $4) OR sg.name IN (SELECT scaling_group FROM sgroups_for_keypairs"
    "   WHERE access_key = $5)) ORDER BY (sg.name = 'default') DESC, sg.name LIMIT 1) AS sgroup,"
    " (SELECT p.max_pending_session_count FROM keypairs k JOIN keypair_resource_policies p"
    "   ON p.name = k.resource_policy WHERE k.access_key = $5) AS max_pending,"
    " (SELECT count(*) FROM sessions WHERE access_key = $5 AND status = 'PENDING') AS n_pending,"
    BAIC_CREATE_POLICY_COLUMNS;

static const char INSERT_SQL[] =
    "WITH s AS (INSERT INTO sessions (name, session_type, priority, cluster_mode, cluster_size,"
    "   domain_name, group_id, user_uuid, access_key, scaling_group_name, target_sgroup_names,"
    "   images, tag, architecture, requested_slots, environ, bootstrap_script, startup_command,"
    "   resource_opts, status, status_changed, enqueued_at, status_history, starts_at,"
    "   vfolder_mounts)"
    " VALUES ($1, $2, $3::int, $23, $22::int, $4, $5::uuid, $6::uuid, $7, $8,"
    "   ARRAY[$8]::varchar(64)[], ARRAY[$9]::varchar(512)[], $18, $12, $13::jsonb, $14::jsonb,"
    "   $15, $16, $17::jsonb, 'PENDING', now(), now(), jsonb_build_object('PENDING', now()::text),"
    "   $19::timestamptz, $21::jsonb) RETURNING id, name),"
    " d AS (INSERT INTO session_dependencies (session_id, depends_on) SELECT s.id, x.value::uuid"
    "   FROM s, json_array_elements_text(COALESCE($20::json, '[]')) x),"
    " k AS (INSERT INTO kernels (session_id, session_name, session_type, cluster_mode,"
    "   cluster_size, cluster_role, cluster_idx, cluster_hostname, scaling_group, domain_name,"
    "   group_id, user_uuid, access_key, image, architecture, registry, tag, requested_slots,"
    "   resource_opts, environ, bootstrap_script, startup_command, status, status_changed,"
    "   status_history, vfolder_mounts)"
    " SELECT s.id, s.name, $2, $23, $22::int, CASE WHEN g = 0 THEN 'main' ELSE 'sub' END, g,"
    "   CASE WHEN g = 0 THEN 'main1' ELSE 'sub' || g END, $8, $4, $5::uuid, $6::uuid,"
    "   $7, $9, $12, $10, $11, $24::jsonb, $17::jsonb,"
    "   ARRAY(SELECT key || '=' || value FROM jsonb_each_text($14::jsonb)), $15, $16, 'PENDING',"
    "   now(), jsonb_build_object('PENDING', now()::text), $21::jsonb"
    "   FROM s, generate_series(0, $22::int - 1) g RETURNING id, cluster_idx)" /* cluster.c */
    " SELECT s.id::text AS id, (SELECT id::text FROM k WHERE cluster_idx = 0) AS kernel_id FROM s";

typedef struct create {
    baic_api_op_t *op;
    baic_manager_t *m;
    baic_http_req_t *req;
    json_t *body;
    char *name, *image_ref, *type, *group, *domain, *sgroup, *arch;
    char *startup, *bootstrap, *tag;
    json_t *resources, *environ, *resource_opts;
    baic_create_policy_t pol; /* dependencies, starts_at (api/session_policy.c) */
    json_t *mounts; /* kernel.mounts (vfolder_mounts.c) */
    const baic_caller_t *who;
    int enqueue_only, reuse, priority;
    long long max_wait;
    int cluster_size;        /* kernels: main1, sub1 .. sub(N-1) */
    char cluster_mode[16];   /* single-node | multi-node */
    /* filled later */
    char session_id[40];
    const char *status;
    json_t *ports;
} create_t;

static void create_free(create_t *c) {
    json_decref(c->body);
    json_decref(c->resources);
    json_decref(c->environ);
    json_decref(c->resource_opts);
    json_decref(c->ports);
    json_decref(c->mounts);
    free(c->name);
    free(c->image_ref);
    free(c->type);
    free(c->group);
    free(c->domain);
    free(c->sgroup);
    free(c->arch);
    free(c->startup);
    free(c->bootstrap);
    free(c->tag);
    baic_create_policy_clear(&c->pol);
    free(c);
}

static json_t *answer(create_t *c, const char *status, json_t *ports, int created) {
    json_t *sp = json_is_array(ports) ? json_deep_copy(ports) : json_array();
    /* servicePorts entries carry "ports": container ports (api-contract §3). */
    size_t i;
    json_t *p;
    json_array_foreach(sp, i, p) {
        if (json_is_object(p) && json_object_get(p, "ports") == NULL &&
            json_object_get(p, "container_ports") != NULL)
            json_object_set(p, "ports", json_object_get(p, "container_ports"));
    }
    json_t *out = json_pack("{s:s, s:s, s:s, s:o, s:b}", "sessionId", c->session_id,
                            "sessionName", c->name, "status", status, "servicePorts", sp,
                            "created", created);
    if (!created)
        json_object_set(out, "service_ports", sp);
    return out;
}

/* ---- waiting until the session left the queue (baic_session_wait_start) ---- */

static const char WAIT_SQL[] =
    "SELECT s.status, (SELECT k.service_ports::text FROM kernels k"
    " WHERE k.session_id = s.id AND k.cluster_idx = 0 LIMIT 1)"
    " FROM sessions s WHERE s.id = $1::uuid";

static int wait_decide(baic_http_req_t *req, const baic_db_result_t *res, void *arg) {
    create_t *c = arg;
    const char *st = baic_db_result_get(res, 0, 0);
    if (scheduling_status(st))
        return 0;
    json_t *ports =
        baic_db_result_is_null(res, 0, 1) ? NULL : json_loads(baic_db_result_get(res, 0, 1), 0, NULL);
    baic_http_respond_json(req, 201, answer(c, st, ports, 1));
    json_decref(ports);
    return 1;
}

/* The client's maxWaitSeconds passed: TIMEOUT, and the session stays queued. */
static void wait_timeout(baic_http_req_t *req, void *arg) {
    baic_http_respond_json(req, 201, answer(arg, "TIMEOUT", NULL, 1));
}

static void wait_over(void *arg) {
    create_free(arg);
}

static void start_wait(create_t *c) {
    /* Ticks re-check in case an event was lost, and watch the client's limit. */
    uint64_t every = 5000, max = c->max_wait > 0 ? (uint64_t)c->max_wait * 1000 : 0;
    if (max > 0 && max < every)
        every = max;
    if (baic_session_wait_start(c->m, c->req, c->session_id, WAIT_SQL, every, max, wait_decide,
                                wait_timeout, wait_over, c) == NULL) {
        baic_http_respond_json(c->req, 201, answer(c, "PENDING", NULL, 1));
        create_free(c);
    }
}

static void inserted(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    create_t *c = arg;
    if (baic_api_op_gone(c->op)) {
        create_free(c);
        return;
    }
    if (err == BAIC_EEXISTS) {
        problem(c->req, 400, "session-already-exists", "The session already exists.",
                "A live session with this name exists.", NULL);
        create_free(c);
        return;
    }
    if (err != 0 || baic_db_result_rows(res) == 0) {
        BAIC_LOG_W("session_insert_failed", "name=%s error=\"%s\"", c->name, errmsg ? errmsg : "");
        baic_api_unavailable(c->req, "The session could not be stored.");
        create_free(c);
        return;
    }
    snprintf(c->session_id, sizeof c->session_id, "%s", baic_db_result_get(res, 0, 0));
    BAIC_LOG_I("session_enqueued", "session=%s name=%s access_key=%s image=%s sgroup=%s",
               c->session_id, c->name, c->op->who->access_key, c->image_ref, c->sgroup);
    baic_session_event(c->m, "session_enqueued", c->session_id, c->name, c->op->who->access_key,
                       NULL, NULL, INT32_MIN);
    if (c->enqueue_only) {
        baic_http_respond_json(c->req, 201, answer(c, "PENDING", NULL, 1));
        baic_scheduler_wake(c->m);
        create_free(c);
        return;
    }
    start_wait(c);
    baic_scheduler_wake(c->m);
}

static int slot_bytes(const json_t *types, const char *slot) {
    const char *t = json_string_value(json_object_get(types, slot));
    return t != NULL && strcmp(t, "bytes") == 0;
}

/* Requested slots, normalised and raised to the image's minimums. NULL + msg on error. */
static json_t *requested_slots(create_t *c, const json_t *types, const json_t *image_res,
                               char *msg, size_t n) {
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(c->resources, k, v) {
        if (json_object_get(types, k) == NULL) {
            snprintf(msg, n, "Unknown resource slot '%.64s'.", k);
            goto bad;
        }
        char num[64];
        const char *t = json_string_value(v);
        if (json_is_number(v)) {
            snprintf(num, sizeof num, "%.9g", json_number_value(v));
            t = num;
        }
        int64_t x;
        int bytes = slot_bytes(types, k);
        if (t == NULL || baic_slot_parse(t, bytes, &x) != 0) {
            snprintf(msg, n, "Invalid amount for resource slot '%.64s'.", k);
            goto bad;
        }
        char buf[48];
        baic_slot_format(x, bytes, buf, sizeof buf);
        json_object_set_new(out, k, json_string(buf));
    }
    json_object_foreach((json_t *)image_res, k, v) {
        const char *t = json_string_value(json_object_get(v, "min"));
        int bytes = slot_bytes(types, k);
        int64_t min, have;
        if (t == NULL || baic_slot_parse(t, bytes, &min) != 0)
            continue;
        const char *h = json_string_value(json_object_get(out, k));
        if (h == NULL) {
            char buf[48];
            baic_slot_format(min, bytes, buf, sizeof buf);
            json_object_set_new(out, k, json_string(buf));
        } else if (baic_slot_parse(h, bytes, &have) == 0 && have < min) {
            char buf[48];
            baic_slot_format(min, bytes, buf, sizeof buf);
            snprintf(msg, n, "The requested %s (%s) is below the image's minimum (%s).", k, h, buf);
            goto bad;
        }
    }
    /* Every kernel gets some CPU and memory even when neither side named them. */
    if (json_object_get(out, "cpu") == NULL)
        json_object_set_new(out, "cpu", json_string("1"));
    if (json_object_get(out, "mem") == NULL)
        json_object_set_new(out, "mem", json_string("1073741824"));
    return out;
bad:
    json_decref(out);
    return NULL;
}

static void context_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    create_t *c = arg;
    baic_http_req_t *req = c->req;
    if (baic_api_op_gone(c->op)) {
        create_free(c);
        return;
    }
    if (err != 0 || baic_db_result_rows(res) == 0) {
        BAIC_LOG_W("session_context_failed", "error=\"%s\"", errmsg ? errmsg : "");
        baic_api_unavailable(req, "The database is not reachable.");
        create_free(c);
        return;
    }
    const char *image_txt = baic_db_result_get_by_name(res, 0, "image");
    const char *group_id = baic_db_result_get_by_name(res, 0, "group_id");
    const char *existing_txt = baic_db_result_get_by_name(res, 0, "existing");
    const char *types_txt = baic_db_result_get_by_name(res, 0, "slot_types");
    const char *sgroup = baic_db_result_get_by_name(res, 0, "sgroup");
    const char *max_pending = baic_db_result_get_by_name(res, 0, "max_pending");
    const char *n_pending = baic_db_result_get_by_name(res, 0, "n_pending");
    json_t *image = image_txt ? json_loads(image_txt, 0, NULL) : NULL;
    json_t *existing = existing_txt ? json_loads(existing_txt, 0, NULL) : NULL;
    json_t *types = json_pack("{s:s, s:s}", "cpu", "count", "mem", "bytes");
    json_t *extra = types_txt ? json_loads(types_txt, 0, NULL) : NULL;
    json_t *req_slots = NULL;
    if (json_is_object(extra))
        json_object_update(types, extra);
    json_decref(extra);
    char msg[300];

    if (existing != NULL) {
        const char *eimg = json_string_value(json_object_get(existing, "image"));
        snprintf(c->session_id, sizeof c->session_id, "%s",
                 json_string_value(json_object_get(existing, "id")));
        if (c->reuse && image && eimg &&
            strcmp(eimg, json_string_value(json_object_get(image, "name"))) == 0) {
            baic_http_respond_json(req, 201,
                                   answer(c, json_string_value(json_object_get(existing, "status")),
                                          json_object_get(existing, "ports"), 0));
        } else {
            problem(req, 400, "session-already-exists", "The session already exists.",
                    "A live session with this name exists with another image, or reuse is off.",
                    json_pack("{s:s}", "existingSessionId", c->session_id));
        }
        goto done;
    }
    if (image == NULL) {
        baic_api_not_found(req, "environment image", "No such environment image.");
        goto done;
    }
    if (group_id == NULL) {
        baic_api_invalid_params(req, "No such project (group) for you in this domain.");
        goto done;
    }
    if (sgroup == NULL) {
        baic_api_invalid_params(req, c->sgroup ? "The resource group does not exist or is not "
                                                 "allowed for you."
                                               : "No resource group is allowed for you.");
        goto done;
    }
    if (max_pending != NULL && atoll(n_pending) >= atoll(max_pending)) {
        snprintf(msg, sizeof msg, "You cannot have more than %s pending sessions.", max_pending);
        problem(req, 412, "quota-exceeded", "You have reached your resource limit.", msg, NULL);
        goto done;
    }
    json_t *ires = json_loads(json_string_value(json_object_get(image, "resources")) ?: "{}", 0,
                              NULL);
    req_slots = requested_slots(c, types, ires, msg, sizeof msg);
    json_decref(ires);
    if (req_slots == NULL) {
        baic_api_invalid_params(req, msg);
        goto done;
    }
    json_t *total = baic_cluster_total_slots(req_slots, types, c->cluster_size); /* cluster.c */
    int pc = baic_create_policy_check(req, res, total, types, c->cluster_size, &c->pol);
    json_decref(total);
    if (pc != 0)
        goto done;
    free(c->sgroup);
    c->sgroup = strdup(sgroup);
    char prio[16];
    snprintf(prio, sizeof prio, "%d", c->priority);
    json_t *sum = baic_cluster_total_slots(req_slots, types, c->cluster_size);
    char *s_req = json_dumps(sum, JSON_COMPACT);
    char *s_kreq = json_dumps(req_slots, JSON_COMPACT);
    json_decref(sum);
    char csize[16];
    snprintf(csize, sizeof csize, "%d", c->cluster_size);
    char *s_env = json_dumps(c->environ, JSON_COMPACT);
    char *s_opts = json_dumps(c->resource_opts, JSON_COMPACT);
    char *s_mounts = json_dumps(c->mounts, JSON_COMPACT);
    const char *p[24] = {
        c->name, c->type, prio, c->domain, group_id, c->op->who->user_uuid,
        c->op->who->access_key, sgroup, json_string_value(json_object_get(image, "name")),
        json_string_value(json_object_get(image, "registry")),
        json_string_value(json_object_get(image, "tag")),
        json_string_value(json_object_get(image, "architecture")), s_req, s_env, c->bootstrap,
        c->startup, s_opts, c->tag, c->pol.starts_at[0] ? c->pol.starts_at : NULL,
        c->pol.dep_ids, s_mounts, csize, c->cluster_mode, s_kreq,
    };
    free(c->image_ref);
    c->image_ref = strdup(p[8]);
    int rc = baic_db_query(c->m->db, INSERT_SQL, 24, p, inserted, c);
    free(s_kreq);
    free(s_mounts);
    free(s_req);
    free(s_env);
    free(s_opts);
    json_decref(image);
    json_decref(existing);
    json_decref(types);
    json_decref(req_slots);
    if (rc != 0) {
        baic_api_unavailable(req, "The database is not reachable.");
        create_free(c);
    }
    return;
done:
    json_decref(image);
    json_decref(existing);
    json_decref(types);
    json_decref(req_slots);
    create_free(c);
}

/* Optional string member: 0 ok (NULL when absent or null), -1 wrong type (answered). */
static int opt_str(baic_http_req_t *req, json_t *v, const char *what, char **out) {
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        char msg[128];
        snprintf(msg, sizeof msg, "'%s' must be a string.", what);
        baic_api_invalid_params(req, msg);
        return -1;
    }
    *out = strdup(json_string_value(v));
    return 0;
}

static int opt_bool(baic_http_req_t *req, json_t *v, const char *what, int dflt, int *out) {
    *out = dflt;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_boolean(v)) {
        char msg[128];
        snprintf(msg, sizeof msg, "'%s' must be a boolean.", what);
        baic_api_invalid_params(req, msg);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

static int opt_int(baic_http_req_t *req, json_t *v, const char *what, long long lo, long long hi,
                   long long dflt, long long *out) {
    *out = dflt;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        char msg[128];
        snprintf(msg, sizeof msg, "'%s' must be an integer in %lld..%lld.", what, lo, hi);
        baic_api_invalid_params(req, msg);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

/* The folders to mount are known (or the request was answered): look up the rest. */
static void mounts_resolved(json_t *mounts, void *arg) {
    create_t *c = arg;
    const baic_caller_t *who = c->who;
    if (mounts == NULL) {
        create_free(c);
        return;
    }
    c->mounts = mounts;
    c->op = baic_api_op_new(c->req, c->m, who);
    char *refs = NULL;
    const char *p[9] = {c->image_ref, c->arch, c->group, c->domain, who->access_key, c->name,
                        c->sgroup, who->user_uuid, baic_create_policy_refs(&c->pol, &refs)};
    int qrc = baic_db_query(c->m->db, context_sql, 9, p, context_done, c);
    free(refs);
    if (qrc != 0) {
        baic_api_unavailable(c->req, "The database is not reachable.");
        create_free(c);
    }
}

static void post_session(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    json_t *body = baic_api_json_body(req);
    if (body == NULL)
        return;
    create_t *c = calloc(1, sizeof *c);
    c->body = body;
    c->m = m;
    c->req = req;
    json_t *config = json_object_get(body, "config");
    if (config != NULL && !json_is_null(config) && !json_is_object(config)) {
        baic_api_invalid_params(req, "'config' must be an object.");
        goto fail;
    }
    if (json_is_null(config))
        config = NULL;
    long long cluster_size, prio;
    json_t *owner = json_object_get(body, "owner_access_key");
    if (opt_str(req, alias(body, "name", "session_name", "clientSessionToken"), "name", &c->name) ||
        opt_str(req, alias(body, "image", "lang", NULL), "image", &c->image_ref) ||
        opt_str(req, alias(body, "type", "session_type", "sessionType"), "type", &c->type) ||
        opt_str(req, alias(body, "group", "groupName", "group_name"), "group", &c->group) ||
        opt_str(req, alias(body, "domain", "domainName", "domain_name"), "domain", &c->domain) ||
        opt_str(req, alias(body, "architecture", "arch", NULL), "architecture", &c->arch) ||
        opt_str(req, alias(body, "startup_command", "startupCommand", NULL), "startupCommand",
                &c->startup) ||
        opt_str(req, alias(body, "bootstrap_script", "bootstrapScript", NULL), "bootstrap_script",
                &c->bootstrap) ||
        opt_str(req, json_object_get(body, "tag"), "tag", &c->tag) ||
        opt_str(req, alias(config, "scalingGroup", "scaling_group", NULL), "config.scalingGroup",
                &c->sgroup) ||
        opt_bool(req, alias(body, "enqueueOnly", "enqueue_only", NULL), "enqueueOnly", 0,
                 &c->enqueue_only) ||
        opt_bool(req, alias(body, "reuseIfExists", "reuse", NULL), "reuseIfExists", 1, &c->reuse) ||
        opt_int(req, alias(body, "maxWaitSeconds", "max_wait_seconds", NULL), "maxWaitSeconds", 0,
                86400 * 365, 0, &c->max_wait) ||
        opt_int(req, alias(body, "clusterSize", "cluster_size", NULL), "clusterSize", 1, 250, 1, /* one /24 */
                &cluster_size) ||
        opt_int(req, json_object_get(body, "priority"), "priority", 0, 100, 10, &prio))
        goto fail;
    c->priority = (int)prio;
    if (c->name == NULL || c->image_ref == NULL) {
        baic_api_invalid_params(req, c->name == NULL ? "'name' (clientSessionToken) is required."
                                                     : "'image' (lang) is required.");
        goto fail;
    }
    if (!baic_session_name_ok(c->name) || strcmp(c->name, "from-template") == 0) {
        baic_api_invalid_params(req, "'name' must be 4-64 characters of letters, digits, '_', "
                                     "'.' and '-', starting and ending with a letter or digit.");
        goto fail;
    }
    if (strlen(c->image_ref) > 512 || c->image_ref[0] == '\0') {
        baic_api_invalid_params(req, "'image' must be 1-512 characters.");
        goto fail;
    }
    if (c->type == NULL)
        c->type = strdup("interactive");
    if (strcmp(c->type, "interactive") != 0 && strcmp(c->type, "batch") != 0 &&
        strcmp(c->type, "inference") != 0) {
        baic_api_invalid_params(req, "'type' must be interactive, batch or inference.");
        goto fail;
    }
    if (strcmp(c->type, "batch") == 0 && (c->startup == NULL || c->startup[0] == '\0')) {
        baic_api_invalid_params(req, "Batch sessions require a non-empty startupCommand.");
        goto fail;
    }
    c->cluster_size = (int)cluster_size;
    if (baic_cluster_mode_arg(req, alias(body, "clusterMode", "cluster_mode", NULL),
                              c->cluster_mode, sizeof c->cluster_mode) != 0) /* cluster.c */
        goto fail;
    if (owner != NULL && !json_is_null(owner) && !json_is_string(owner)) {
        baic_api_invalid_params(req, "'owner_access_key' must be a string.");
        goto fail;
    }
    if (json_is_string(owner) && *json_string_value(owner) &&
        strcmp(json_string_value(owner), who->access_key) != 0) {
        /* Again as the owner once its keypair is known (api/session_ops.c). */
        baic_session_create_for_owner(req, m, who, json_string_value(owner), post_session);
        goto fail;
    }
    if (c->group == NULL)
        c->group = strdup("default");
    if (c->domain == NULL)
        c->domain = strdup(who->domain);
    if (strcmp(c->domain, who->domain) != 0 && !who->is_superadmin) {
        baic_api_invalid_params(req, "You can only create sessions in your own domain.");
        goto fail;
    }
    json_t *res = config ? json_object_get(config, "resources") : NULL;
    json_t *env = config ? json_object_get(config, "environ") : NULL;
    json_t *ropts = config ? alias(config, "resource_opts", "resourceOpts", NULL) : NULL;
    if ((res && !json_is_null(res) && !json_is_object(res)) ||
        (env && !json_is_null(env) && !json_is_object(env)) ||
        (ropts && !json_is_null(ropts) && !json_is_object(ropts))) {
        baic_api_invalid_params(req, "config.resources, config.environ and config.resource_opts "
                                     "must be objects.");
        goto fail;
    }
    c->resources = json_is_object(res) ? json_incref(res) : json_object();
    c->environ = json_is_object(env) ? json_incref(env) : json_object();
    c->resource_opts = json_is_object(ropts) ? json_incref(ropts) : json_object();
    const char *k;
    json_t *v;
    json_object_foreach(c->environ, k, v) {
        if (!json_is_string(v) || strchr(k, '=') != NULL || *k == '\0') {
            baic_api_invalid_params(req, "config.environ must map variable names to strings.");
            goto fail;
        }
    }
    json_object_foreach(c->resources, k, v) {
        if (!json_is_string(v) && !json_is_number(v)) {
            baic_api_invalid_params(req, "config.resources values must be strings like \"1\", "
                                         "\"0.5\" or \"256m\".");
            goto fail;
        }
    }
    if (baic_create_policy_parse(req, body, c->type, &c->pol) != 0)
        goto fail;
    c->who = who;
    baic_vfolder_mounts_resolve(req, m, who, config, mounts_resolved, c);
    return;
fail:
    create_free(c);
}

/* ---- finding a session: GET and DELETE ---- */

static const char FIND_SQL[] =
    "SELECT s.id::text AS id, s.name, s.domain_name, s.group_id::text AS group_id,"
    " s.user_uuid::text AS user_id, s.status, s.status_info, s.status_data::text AS status_data,"
    " s.occupying_slots::text AS occupying, s.requested_slots::text AS requested,"
    " COALESCE(s.environ, '{}')::text AS environ, s.resource_opts::text AS resource_opts, s.tag,"
    " s.num_queries, s.last_stat::text AS last_stat, s.access_key,"
    " (extract(epoch FROM now() - s.created_at) * 1000)::bigint AS age_ms,"
    " to_char(s.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00:00' AS created,"
    " to_char(s.terminated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00:00'"
    "   AS terminated,"
    " k.id::text AS kernel_id, k.image, k.architecture, k.registry, k.container_id,"
    " k.occupied_slots::text AS occupied, k.occupied_shares::text AS shares"
    " FROM sessions s LEFT JOIN kernels k ON k.session_id = s.id AND k.cluster_idx = 0"
    " WHERE s.access_key = $2 AND (s.name = $1 OR s.id::text = lower($1))"
    " AND ($3::boolean IS NOT TRUE OR s.status NOT IN " BAIC_FINAL_STATUSES ")"
    " AND ($4::text IS NULL OR s.domain_name = $4)"
    " ORDER BY (s.status NOT IN " BAIC_FINAL_STATUSES ") DESC, s.created_at DESC LIMIT 1";

/* The access key whose sessions the caller means; NULL after answering 403. */
static const char *owner_key(baic_http_req_t *req, const baic_caller_t *who) {
    const char *o = baic_http_query(req, "owner_access_key");
    if (o == NULL || *o == '\0' || strcmp(o, who->access_key) == 0)
        return who->access_key;
    if (!who->is_admin) {
        baic_api_forbidden(req, "Only administrators may act on other users' sessions.");
        return NULL;
    }
    return o;
}

static json_t *nullable(const char *s) {
    return s ? json_string(s) : json_null();
}

static void get_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    baic_api_op_t *op = arg;
    if (baic_api_op_gone(op))
        return;
    if (err != 0) {
        BAIC_LOG_W("session_query_failed", "error=\"%s\"", errmsg ? errmsg : "");
        baic_api_unavailable(op->req, "The database is not reachable.");
        return;
    }
    if (baic_db_result_rows(res) == 0) {
        baic_api_not_found(op->req, "session", "No such session.");
        return;
    }
#define G(n) baic_db_result_get_by_name(res, 0, n)
    json_t *sd = G("status_data") ? json_loads(G("status_data"), 0, NULL) : NULL;
    json_t *ls = G("last_stat") ? json_loads(G("last_stat"), 0, NULL) : NULL;
    const char *si = G("status_info");
    json_t *out = json_object();
    json_object_set_new(out, "domainName", nullable(G("domain_name")));
    json_object_set_new(out, "groupId", nullable(G("group_id")));
    json_object_set_new(out, "userId", nullable(G("user_id")));
    json_object_set_new(out, "lang", nullable(G("image")));
    json_object_set_new(out, "image", nullable(G("image")));
    json_object_set_new(out, "architecture", nullable(G("architecture")));
    json_object_set_new(out, "registry", nullable(G("registry")));
    json_object_set_new(out, "tag", nullable(G("tag")));
    json_object_set_new(out, "containerId", json_string(G("container_id") ? G("container_id") : "None"));
    json_object_set_new(out, "occupiedSlots", py_str(G("occupied") ? G("occupied") : "{}"));
    json_object_set_new(out, "occupyingSlots", py_str(G("occupying")));
    json_object_set_new(out, "requestedSlots", py_str(G("requested")));
    json_object_set_new(out, "occupiedShares", py_str(G("shares") ? G("shares") : "{}"));
    json_object_set_new(out, "environ", py_str(G("environ")));
    json_object_set_new(out, "resourceOpts", py_str(G("resource_opts")));
    json_object_set_new(out, "status", json_string(G("status")));
    json_object_set_new(out, "statusInfo", json_string(si ? si : "None"));
    json_object_set_new(out, "statusData", sd ? sd : json_null());
    json_object_set_new(out, "age", json_integer(atoll(G("age_ms"))));
    json_object_set_new(out, "creationTime", nullable(G("created")));
    json_object_set_new(out, "terminationTime", nullable(G("terminated")));
    json_object_set_new(out, "numQueriesExecuted", json_integer(atoll(G("num_queries"))));
    json_object_set_new(out, "lastStat", ls ? ls : json_null());
    json_object_set_new(out, "idleChecks", json_object());
    json_object_set_new(out, "sessionId", json_string(G("id")));
    json_object_set_new(out, "sessionName", json_string(G("name")));
#undef G
    baic_http_respond_json(op->req, 200, out);
}

static void get_session(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    const char *key = owner_key(req, who);
    if (key == NULL)
        return;
    baic_api_op_t *op = baic_api_op_new(req, m, who);
    const char *p[4] = {baic_http_param(req, "ref"), key, "false",
                        baic_session_domain_scope(who, key)};
    if (baic_db_query(m->db, FIND_SQL, 4, p, get_done, op) != 0)
        baic_api_unavailable(req, "The database is not reachable.");
}

/* ---- DELETE /session/{ref} ---- */

static const char TERMINATE_SQL[] =
    "WITH c AS (UPDATE sessions SET status = 'CANCELLED', status_changed = now(),"
    "   terminated_at = now(), status_info = 'user-requested',"
    "   status_history = status_history || jsonb_build_object('CANCELLED', now()::text)"
    " WHERE id = $1::uuid AND status = 'PENDING' RETURNING id),"
    " ck AS (UPDATE kernels SET status = 'CANCELLED', status_changed = now(),"
    "   terminated_at = now(), status_info = 'user-requested',"
    "   status_history = status_history || jsonb_build_object('CANCELLED', now()::text)"
    " WHERE session_id = $1::uuid AND status = 'PENDING' AND EXISTS (SELECT 1 FROM c)"
    " RETURNING id),"
    " t AS (UPDATE kernels SET status = 'TERMINATING', status_changed = now(), destroy_tries = 1,"
    "   status_info = 'user-requested',"
    "   status_history = status_history || jsonb_build_object('TERMINATING', now()::text)"
    " WHERE session_id = $1::uuid AND status IN ('SCHEDULED', 'PREPARING', 'PULLING',"
    "   'PREPARED', 'CREATING', 'RUNNING', 'RESTARTING', 'RUNNING_DEGRADED')"
    " RETURNING id, agent_addr),"
    " ts AS (UPDATE sessions SET status = 'TERMINATING', status_changed = now(),"
    "   status_info = 'user-requested',"
    "   status_history = status_history || jsonb_build_object('TERMINATING', now()::text)"
    " WHERE id = $1::uuid AND status NOT IN ('PENDING', 'TERMINATING', 'TERMINATED', 'ERROR',"
    "   'CANCELLED') RETURNING id)"
    " SELECT 'cancelled' AS what, NULL AS kid, NULL AS addr, (SELECT count(*) FROM ck)::text AS n"
    "   FROM c"
    " UNION ALL SELECT 'terminating', t.id::text, t.agent_addr, NULL FROM t"
    " UNION ALL SELECT 'again', k.id::text, k.agent_addr, NULL FROM kernels k"
    "   WHERE k.session_id = $1::uuid AND k.status = 'TERMINATING'";

typedef struct destroy {
    baic_api_op_t *op;
    baic_manager_t *m;
    char ref[80], key[24], session_id[40], name[72], domain[72];
    int forced, tries, pending, any_domain;
} destroy_t;

static void destroy_find(destroy_t *d);

static void destroy_finish(destroy_t *d) {
    if (!baic_api_op_gone(d->op))
        baic_http_respond_json(d->op->req, 200, json_pack("{s:{}}", "stats"));
    free(d);
}

typedef struct dk {
    destroy_t *d;
    char kernel_id[40];
} dk_t;

static void destroy_acked(int status, json_t *answer, int err, void *arg) {
    dk_t *k = arg;
    destroy_t *d = k->d;
    (void)answer;
    if (!d->m->closing) {
        if (status == 404) {
            baic_kernel_finish(d->m, k->kernel_id, "TERMINATED", "user-requested", INT32_MIN);
        } else if (err != 0 || status >= 300) {
            BAIC_LOG_W("destroy_kernel_failed", "session=%s kernel=%s status=%d error=%d",
                       d->session_id, k->kernel_id, status, err);
            /* forced: the user wants it gone; the deadline sweep keeps retrying otherwise. */
            if (d->forced)
                baic_kernel_finish(d->m, k->kernel_id, "TERMINATED", "force-terminated",
                                   INT32_MIN);
        }
    }
    free(k);
    if (--d->pending == 0)
        destroy_finish(d);
}

static void terminate_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    destroy_t *d = arg;
    if (err != 0) {
        BAIC_LOG_W("session_terminate_failed", "session=%s error=\"%s\"", d->session_id,
                   errmsg ? errmsg : "");
        if (!baic_api_op_gone(d->op))
            baic_api_unavailable(d->op->req, "The database is not reachable.");
        free(d);
        return;
    }
    int rows = baic_db_result_rows(res);
    if (rows == 0) {
        /* The scheduler moved it between our look and our update: look again. */
        if (++d->tries < 3 && !baic_api_op_gone(d->op)) {
            destroy_find(d);
            return;
        }
        destroy_finish(d);
        return;
    }
    d->pending = 1;
    int announced = 0;
    for (int r = 0; r < rows; r++) {
        const char *what = baic_db_result_get(res, r, 0);
        const char *kid = baic_db_result_get(res, r, 1), *addr = baic_db_result_get(res, r, 2);
        if (strcmp(what, "cancelled") == 0) {
            BAIC_LOG_I("session_cancelled", "session=%s", d->session_id);
            baic_session_event(d->m, "session_cancelled", d->session_id, d->name, d->key,
                               "user-requested", NULL, INT32_MIN);
            baic_scheduler_wake(d->m);
            baic_policy_cancel_dependants(d->m); /* sessions waiting on it */
            continue;
        }
        if (strcmp(what, "terminating") == 0) {
            baic_session_event(d->m, "kernel_terminating", d->session_id, d->name, d->key,
                               "user-requested", kid, INT32_MIN);
            if (!announced++) {
                BAIC_LOG_I("session_terminating", "session=%s", d->session_id);
                baic_session_event(d->m, "session_terminating", d->session_id, d->name, d->key,
                                   "user-requested", NULL, INT32_MIN);
            }
        }
        if (addr == NULL) {
            baic_kernel_finish(d->m, kid, "TERMINATED", "user-requested", INT32_MIN);
            continue;
        }
        dk_t *k = calloc(1, sizeof *k);
        if (k == NULL)
            continue;
        k->d = d;
        snprintf(k->kernel_id, sizeof k->kernel_id, "%s", kid);
        json_t *body = json_pack("{s:s, s:s}", "kernel_id", kid, "reason", "user-requested");
        d->pending++;
        if (baic_agent_rpc(d->m, addr, "POST", "/rpc/destroy_kernel", body, 10000, destroy_acked,
                           k) != 0) {
            d->pending--;
            free(k);
        }
        json_decref(body);
    }
    if (--d->pending == 0)
        destroy_finish(d);
}

static void found_for_destroy(const baic_db_result_t *res, int err, const char *errmsg,
                              void *arg) {
    destroy_t *d = arg;
    if (baic_api_op_gone(d->op)) {
        free(d);
        return;
    }
    if (err != 0) {
        BAIC_LOG_W("session_query_failed", "error=\"%s\"", errmsg ? errmsg : "");
        baic_api_unavailable(d->op->req, "The database is not reachable.");
        free(d);
        return;
    }
    if (baic_db_result_rows(res) == 0) {
        if (d->tries > 0) {
            destroy_finish(d); /* it ended while we were at it */
            return;
        }
        baic_api_not_found(d->op->req, "session", "No such session.");
        free(d);
        return;
    }
    snprintf(d->session_id, sizeof d->session_id, "%s", baic_db_result_get_by_name(res, 0, "id"));
    snprintf(d->name, sizeof d->name, "%s", baic_db_result_get_by_name(res, 0, "name") ?: "");
    const char *p[1] = {d->session_id};
    if (baic_db_query(d->m->db, TERMINATE_SQL, 1, p, terminate_done, d) != 0) {
        baic_api_unavailable(d->op->req, "The database is not reachable.");
        free(d);
    }
}

static void destroy_find(destroy_t *d) {
    const char *p[4] = {d->ref, d->key, "true", d->any_domain ? NULL : d->domain};
    if (baic_db_query(d->m->db, FIND_SQL, 4, p, found_for_destroy, d) != 0) {
        baic_api_unavailable(d->op->req, "The database is not reachable.");
        free(d);
    }
}

static void delete_session(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    const char *key = owner_key(req, who);
    if (key == NULL)
        return;
    const char *ref = baic_http_param(req, "ref");
    if (ref == NULL || strlen(ref) >= 80) {
        baic_api_not_found(req, "session", "No such session.");
        return;
    }
    destroy_t *d = calloc(1, sizeof *d);
    d->op = baic_api_op_new(req, m, who);
    d->m = m;
    snprintf(d->ref, sizeof d->ref, "%s", ref);
    snprintf(d->key, sizeof d->key, "%s", key);
    const char *scope = baic_session_domain_scope(who, key);
    d->any_domain = scope == NULL;
    snprintf(d->domain, sizeof d->domain, "%s", scope ? scope : "");
    const char *f = baic_http_query(req, "forced");
    d->forced = f != NULL && strcmp(f, "true") == 0;
    destroy_find(d);
}

int baic_api_session_init(baic_manager_t *m) {
    int n = snprintf(context_sql, sizeof context_sql, CONTEXT_SQL_FMT, BAIC_IMAGE_RESOLVE_SQL);
    if (n < 0 || (size_t)n >= sizeof context_sql)
        return -ENOSPC;
    int rc = baic_api_route(m, "POST", "/session", BAIC_ROUTE_USER, post_session, 256 * 1024);
    if (rc == 0)
        rc = baic_api_route(m, "POST", "/session/_/create", BAIC_ROUTE_USER, post_session,
                            256 * 1024);
    if (rc == 0)
        rc = baic_api_route(m, "GET", "/session/{ref}", BAIC_ROUTE_USER, get_session, 0);
    if (rc == 0)
        rc = baic_api_route(m, "DELETE", "/session/{ref}", BAIC_ROUTE_USER, delete_session, 0);
    if (rc == 0)
        rc = baic_api_session_ops_init(m);
    return rc;
}
