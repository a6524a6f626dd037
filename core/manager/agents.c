/* SPDX-License-Identifier: Apache-2.0 */
/* Agent registry and kernel progress: agent events in, RPC to agents out, session events for SSE. */
#include "manager.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "config/config.h"
#include "db/batch.h"
#include "http/client.h"
#include "auth/cluster.h"
#include "log/log.h"
#include "policy.h"

/*
 * Every manager reads BAIC_AGENT_EVENTS as one consumer of the group "managers", so
 * each agent event is applied once; a kernel event is acknowledged only after its update
 * committed (kev_ack), so one read by a manager that died meanwhile is applied by another
 * (or the next) manager, which claims it (bus.c). A kernel's forward moves are applied in
 * the order they arrived (one batched statement at a time, db/batch.h), but its end
 * (FINISH_SQL), a repeat claimed from a dead manager, or another manager's update can
 * still overtake one, so every status change is a guarded UPDATE that only moves
 * forward: a late kernel_creating never undoes a kernel_started.
 * Session events are read back by every manager (BAIC_SESSION_EVENTS) to wake the
 * requests waiting on a session, whichever manager made the change.
 */

struct baic_session_watch {
    struct baic_session_watch *next, **prevp;
    char session_id[40];
    baic_session_watch_cb cb;
    void *arg;
};

typedef struct baic_agents {
    baic_manager_t *m;
    baic_bus_sub_t *consumer, *reader;
    uv_timer_t lost_timer;
    int timer_open;
    long long lost_after_s;      /* no heartbeat for this long: LOST */
    long long lost_kernels_s;    /* LOST for this long: its kernels end with agent-lost */
    char consumer_name[128];
    baic_session_watch_t *watchers;
    /* One statement in flight for each kind of frequent write (db/batch.h): kernel
     * status changes, heartbeats, and the heartbeats' kernel lists. */
    baic_db_batch_t *forward, *beat, *reconcile;
} baic_agents_t;

#define FINAL "('TERMINATED','ERROR','CANCELLED')"
#define BATCH_MAX 500 /* items per batched statement */
#define HEARTBEAT_LINGER_MS 250 /* how long a heartbeat's write waits for others */

/* ---- session events ---- */

void baic_session_event(baic_manager_t *m, const char *name, const char *session_id,
                        const char *session_name, const char *access_key, const char *reason,
                        const char *kernel_id, int exit_code) {
    if (m->bus == NULL)
        return;
    json_t *body = json_pack("{s:s?, s:s?, s:s?, s:s?, s:o}", "reason", reason, "sessionName",
                             session_name, "ownerAccessKey", access_key, "sessionId", session_id,
                             "exitCode", exit_code == INT32_MIN ? json_null() : json_integer(exit_code));
    if (kernel_id != NULL) {
        json_object_set_new(body, "kernelId", json_string(kernel_id));
        json_object_set_new(body, "clusterRole", json_string("main"));
        json_object_set_new(body, "clusterIdx", json_integer(0));
    }
    int rc = baic_bus_publish(m->bus, BAIC_SESSION_EVENTS, name, body, NULL, NULL);
    if (rc != 0)
        BAIC_LOG_W("session_event_lost", "event=%s session=%s error=%d", name,
                   session_id ? session_id : "-", rc);
    json_decref(body);
}

/* ---- RPC to agents ---- */

typedef struct rpc {
    baic_agent_rpc_cb cb;
    void *arg;
} rpc_t;

static void rpc_done(int status, const baic_http_header_t *headers, const char *body, size_t len,
                     int err, void *arg) {
    rpc_t *r = arg;
    (void)headers;
    json_t *j = err == 0 && len > 0 ? json_loadb(body, len, 0, NULL) : NULL;
    if (r->cb)
        r->cb(err == 0 ? status : 0, j, err, r->arg);
    json_decref(j);
    free(r);
}

void baic_agent_auth(baic_manager_t *m, const char *method, const char *path, const void *body,
                     size_t len, char date[32], char mac_hex[65]) {
    if (baic_cluster_sign(m->cluster_secret, method, path, body, len, date, mac_hex) != 0)
        mac_hex[0] = '\0'; /* the agent answers 401; logged there */
}

int baic_agent_rpc(baic_manager_t *m, const char *addr, const char *method, const char *path,
                   json_t *body, unsigned timeout_ms, baic_agent_rpc_cb cb, void *arg) {
    if (addr == NULL || *addr == '\0')
        return -EINVAL;
    char url[512], date[32], mac_hex[65];
    snprintf(url, sizeof url, "%s%s%s", strncmp(addr, "http://", 7) == 0 ? "" : "http://", addr,
             path);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    size_t tlen = text ? strlen(text) : 0;
    baic_agent_auth(m, method, path, text, tlen, date, mac_hex);
    baic_http_header_t hdrs[] = {
        {"Date", date},
        {"X-BaiC-Cluster-Auth", mac_hex},
        {"Content-Type", "application/json"},
        {NULL, NULL},
    };
    rpc_t *r = calloc(1, sizeof *r);
    if (r == NULL) {
        free(text);
        return -ENOMEM;
    }
    r->cb = cb;
    r->arg = arg;
    baic_http_client_req_t req = {
        .method = method,
        .url = url,
        .headers = hdrs,
        .body = text,
        .body_len = tlen,
        .timeout_ms = timeout_ms,
    };
    int rc = baic_http_client_request(m->uv, &req, rpc_done, r);
    free(text);
    if (rc != 0)
        free(r);
    return rc;
}

typedef struct destroy_ctx {
    baic_manager_t *m;
    char kernel_id[40];
} destroy_ctx_t;

static void destroy_done(int status, json_t *answer, int err, void *arg) {
    destroy_ctx_t *d = arg;
    (void)answer;
    /* The agent does not know it: nothing to wait for, the kernel is gone. */
    if (status == 404)
        baic_kernel_finish(d->m, d->kernel_id, "TERMINATED", "user-requested", INT32_MIN);
    else if (err != 0 || status >= 300)
        BAIC_LOG_W("destroy_kernel_failed", "kernel=%s status=%d error=%d", d->kernel_id, status,
                   err);
    free(d);
}

int baic_agent_create_accepted(int status, const json_t *answer, int err) {
    if (err != 0)
        return 0;
    if (status == 202)
        return 1;
    const char *type = json_string_value(json_object_get(answer, "type"));
    size_t n = type ? strlen(type) : 0, k = strlen("kernel-already-exists");
    return status == 409 && n >= k && strcmp(type + n - k, "kernel-already-exists") == 0;
}

void baic_agent_destroy_kernel(baic_manager_t *m, const char *addr, const char *kernel_id,
                               const char *reason) {
    destroy_ctx_t *d = calloc(1, sizeof *d);
    if (d == NULL)
        return;
    d->m = m;
    snprintf(d->kernel_id, sizeof d->kernel_id, "%s", kernel_id);
    json_t *body = json_pack("{s:s, s:s}", "kernel_id", kernel_id, "reason",
                             reason ? reason : "user-requested");
    if (baic_agent_rpc(m, addr, "POST", "/rpc/destroy_kernel", body, 10000, destroy_done, d) != 0)
        free(d);
    json_decref(body);
}

/* ---- kernel status changes ---- */

/* Moves kernels forward (db/batch.h items {"kernel", "status", "from": the statuses it may
 * come from as an array literal "{A,B}", "container_id"?, "ports"?}); each session follows when its status is also
 * one it may come from (RUNNING: once every kernel runs). Two kernels of one session in
 * one statement move it once; a RUNNING one that left it behind checks again (CATCHUP_SQL). */
static const char FORWARD_SQL[] =
    "WITH x AS (SELECT (e->>'i')::int AS i, (e->>'kernel')::uuid AS kid, e->>'status' AS st,"
    "   (e->>'from')::text[] AS fr, e->>'container_id' AS cid,"
    "   e->'ports' AS ports FROM jsonb_array_elements($1::jsonb) e),"
    " k AS (UPDATE kernels k SET status = x.st, status_changed = now(),"
    "   status_history = k.status_history || jsonb_build_object(x.st, now()::text),"
    "   container_id = COALESCE(x.cid, k.container_id),"
    "   service_ports = COALESCE(x.ports, k.service_ports)"
    " FROM x WHERE k.id = x.kid AND (k.status = ANY(x.fr)) IS TRUE"
    " RETURNING x.i, k.id, k.session_id, x.st, x.fr),"
    " s AS (UPDATE sessions s SET status = k.st, status_changed = now(),"
    "   status_history = s.status_history || jsonb_build_object(k.st, now()::text)"
    " FROM k WHERE s.id = k.session_id AND (s.status = ANY(k.fr)) IS TRUE"
    "   AND (k.st <> 'RUNNING' OR NOT EXISTS (SELECT 1 FROM kernels o"
    "     WHERE o.session_id = s.id AND o.id <> k.id AND o.status <> 'RUNNING'))"
    " RETURNING k.i)"
    " SELECT k.i, k.session_id::text AS sid, se.name, se.access_key,"
    "   EXISTS (SELECT 1 FROM s WHERE s.i = k.i) AS session_changed"
    " FROM k JOIN sessions se ON se.id = k.session_id";

static const char FINISH_SQL[] =
    "WITH k AS (UPDATE kernels SET status = $2::text, status_changed = now(),"
    "   terminated_at = now(), status_info = $3::text,"
    "   status_data = COALESCE(status_data, '{}'::jsonb) || jsonb_build_object('kernel',"
    "     jsonb_build_object('exit_code', $4::int)),"
    "   status_history = status_history || jsonb_build_object($2::text, now()::text)"
    " WHERE id = $1::uuid AND status NOT IN " FINAL " RETURNING id, session_id),"
    " s AS (UPDATE sessions s SET status = x.st, status_changed = now(), terminated_at = now(),"
    "   status_info = $3::text, status_data = COALESCE(s.status_data, '{}'::jsonb) ||"
    "     jsonb_build_object('kernel', jsonb_build_object('exit_code', $4::int)),"
    "   result = CASE WHEN $4::int IS NULL THEN s.result WHEN $4::int = 0 THEN 'SUCCESS'"
    "     ELSE 'FAILURE' END,"
    "   status_history = s.status_history || jsonb_build_object(x.st, now()::text)"
    " FROM k, LATERAL (SELECT CASE WHEN $2::text = 'ERROR' OR EXISTS (SELECT 1 FROM kernels o"
    "     WHERE o.session_id = k.session_id AND o.id <> k.id AND o.status = 'ERROR')"
    "     THEN 'ERROR' ELSE 'TERMINATED' END AS st) x"
    " WHERE s.id = k.session_id AND s.status NOT IN " FINAL
    "   AND NOT EXISTS (SELECT 1 FROM kernels o WHERE o.session_id = s.id AND o.id <> k.id"
    "     AND o.status NOT IN " FINAL ")"
    " RETURNING s.id, s.status)"
    " SELECT k.session_id::text AS sid, se.name, se.access_key,"
    "   (SELECT status FROM s) AS session_status, se.session_type"
    " FROM k JOIN sessions se ON se.id = k.session_id";

typedef struct kev {
    baic_manager_t *m;
    char kernel_id[40];
    char kname[32], sname[32]; /* events to publish */
    char reason[128];
    int exit_code;
    char status[24], from[160]; /* kernel_forward's target status and sources */
    char ack[64]; /* the agent event applied, acknowledged once its update committed */
} kev_t;

#define EVENT_GROUP "managers"

/* An agent event is acknowledged only after the update it caused committed: a manager
 * killed in between leaves it pending, and the next manager applies it (bus.c claims
 * entries a dead consumer left). A failed update leaves it pending for a retry too. */
static void kev_ack(kev_t *e, int err) {
    if (e->ack[0] != '\0' && err == 0 && e->m->bus != NULL)
        (void)baic_bus_ack(e->m->bus, BAIC_AGENT_EVENTS, EVENT_GROUP, e->ack);
}

/*
 * The last kernel of a session to reach RUNNING moves the session; FORWARD_SQL checks the
 * other kernels in its own snapshot, so two kernels reported at the same moment can each
 * see the other still starting and neither moves it. After its own commit, a kernel that
 * left the session behind checks again with a fresh snapshot; the session row's lock lets
 * exactly one such check move it.
 */
static const char CATCHUP_SQL[] =
    "UPDATE sessions s SET status = $2::text, status_changed = now(),"
    "   status_history = s.status_history || jsonb_build_object($2::text, now()::text)"
    " WHERE s.id = $1::uuid AND s.status = ANY($3::text[])"
    "   AND NOT EXISTS (SELECT 1 FROM kernels o WHERE o.session_id = s.id"
    "     AND o.status <> $2::text)"
    " RETURNING s.id::text AS sid, s.name, s.access_key";

static void catchup_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    kev_t *e = arg;
    if (err != 0) {
        BAIC_LOG_W("session_update_failed", "kernel=%s status=%s error=\"%s\"", e->kernel_id,
                   e->status, errmsg ? errmsg : "");
    } else if (baic_db_result_rows(res) > 0) {
        baic_session_event(e->m, e->sname, baic_db_result_get_by_name(res, 0, "sid"),
                           baic_db_result_get_by_name(res, 0, "name"),
                           baic_db_result_get_by_name(res, 0, "access_key"), NULL, NULL,
                           INT32_MIN);
    }
    free(e);
}

static void forward_done(const baic_db_result_t *res, const int *rows, int nrows, int err,
                         const char *errmsg, void *arg) {
    kev_t *e = arg;
    kev_ack(e, err);
    if (err != 0) {
        BAIC_LOG_W("kernel_update_failed", "kernel=%s event=%s error=\"%s\"", e->kernel_id,
                   e->kname, errmsg ? errmsg : "");
    } else if (nrows > 0) {
        int r = rows[0];
        const char *sid = baic_db_result_get_by_name(res, r, "sid");
        const char *name = baic_db_result_get_by_name(res, r, "name");
        const char *ak = baic_db_result_get_by_name(res, r, "access_key");
        BAIC_LOG_I("kernel_status", "kernel=%s session=%s event=%s", e->kernel_id, sid, e->kname);
        baic_session_event(e->m, e->kname, sid, name, ak, NULL, e->kernel_id, INT32_MIN);
        if (strcmp(baic_db_result_get_by_name(res, r, "session_changed"), "t") == 0) {
            baic_session_event(e->m, e->sname, sid, name, ak, NULL, NULL, INT32_MIN);
        } else if (strcmp(e->status, "RUNNING") == 0) {
            const char *p[3] = {sid, e->status, e->from};
            if (baic_db_query(e->m->db, CATCHUP_SQL, 3, p, catchup_done, e) == 0)
                return; /* catchup_done frees e */
        }
    }
    free(e);
}

/* 0 when the update is on its way (ack: the event to acknowledge after it, or NULL).
 * from: the statuses it may come from, as a PostgreSQL array literal ("{A,B}"). */
static int kernel_forward(baic_manager_t *m, const char *kernel_id, const char *status,
                          const char *from, const char *container_id, json_t *ports,
                          const char *kname, const char *sname, const char *ack) {
    if (m->agents == NULL)
        return BAIC_ECANCELLED;
    kev_t *e = calloc(1, sizeof *e);
    if (e == NULL)
        return -ENOMEM;
    e->m = m;
    snprintf(e->ack, sizeof e->ack, "%s", ack ? ack : "");
    snprintf(e->kernel_id, sizeof e->kernel_id, "%s", kernel_id);
    snprintf(e->kname, sizeof e->kname, "%s", kname);
    snprintf(e->sname, sizeof e->sname, "%s", sname);
    snprintf(e->status, sizeof e->status, "%s", status);
    snprintf(e->from, sizeof e->from, "%s", from);
    json_t *item = json_pack("{s:s, s:s, s:s, s:s*, s:O*}", "kernel", kernel_id, "status", status,
                             "from", from, "container_id", container_id, "ports", ports);
    if (item == NULL) {
        free(e);
        return -ENOMEM;
    }
    int rc = baic_db_batch_add(m->agents->forward, kernel_id, item, forward_done, e);
    if (rc != 0)
        free(e);
    return rc;
}

static void finish_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    kev_t *e = arg;
    kev_ack(e, err);
    if (err != 0) {
        BAIC_LOG_W("kernel_update_failed", "kernel=%s event=kernel_terminated error=\"%s\"",
                   e->kernel_id, errmsg ? errmsg : "");
    } else if (baic_db_result_rows(res) > 0) {
        const char *sid = baic_db_result_get_by_name(res, 0, "sid");
        const char *name = baic_db_result_get_by_name(res, 0, "name");
        const char *ak = baic_db_result_get_by_name(res, 0, "access_key");
        const char *sst = baic_db_result_get_by_name(res, 0, "session_status");
        BAIC_LOG_I("kernel_finished", "kernel=%s session=%s reason=\"%s\" session_status=%s",
                   e->kernel_id, sid, e->reason, sst ? sst : "-");
        baic_session_event(e->m, "kernel_terminated", sid, name, ak, e->reason, e->kernel_id,
                           e->exit_code);
        /* A batch session's result (sessions.result) is announced before it ends. */
        const char *stype = baic_db_result_get_by_name(res, 0, "session_type");
        if (sst != NULL && stype != NULL && strcmp(stype, "batch") == 0 &&
            e->exit_code != INT32_MIN)
            baic_session_event(e->m, e->exit_code == 0 ? "session_success" : "session_failure",
                               sid, name, ak, e->reason, NULL, e->exit_code);
        if (sst != NULL)
            baic_session_event(e->m, "session_terminated", sid, name, ak, e->reason, NULL,
                               e->exit_code);
        /* Sessions waiting on it give up unless it succeeded (predicates.c). */
        if (sst != NULL && (strcmp(sst, "TERMINATED") != 0 || e->exit_code != 0))
            baic_policy_cancel_dependants(e->m);
        if (sst == NULL)
            baic_cluster_member_ended(e->m, sid); /* cluster.c: the others go too */
        /* Resources came free. */
        baic_scheduler_wake(e->m);
    }
    free(e);
}

static int kernel_finish(baic_manager_t *m, const char *kernel_id, const char *status,
                         const char *reason, int exit_code, const char *ack) {
    kev_t *e = calloc(1, sizeof *e);
    if (e == NULL)
        return -ENOMEM;
    e->m = m;
    snprintf(e->ack, sizeof e->ack, "%s", ack ? ack : "");
    e->exit_code = exit_code;
    snprintf(e->kernel_id, sizeof e->kernel_id, "%s", kernel_id);
    snprintf(e->reason, sizeof e->reason, "%s", reason ? reason : "");
    char code[24];
    snprintf(code, sizeof code, "%d", exit_code);
    const char *p[4] = {kernel_id, status, reason, exit_code == INT32_MIN ? NULL : code};
    if (baic_db_query(m->db, FINISH_SQL, 4, p, finish_done, e) != 0) {
        free(e);
        return -EIO;
    }
    return 0;
}

int baic_kernel_forward(baic_manager_t *m, const char *kernel_id, const char *status,
                        const char *from, const char *kname, const char *sname) {
    return kernel_forward(m, kernel_id, status, from, NULL, NULL, kname, sname, NULL);
}

void baic_kernel_finish(baic_manager_t *m, const char *kernel_id, const char *status,
                        const char *reason, int exit_code) {
    (void)kernel_finish(m, kernel_id, status, reason, exit_code, NULL);
}

/* ---- agent events ---- */

/* Heartbeats (db/batch.h items {"id", "region", "sgroup", "slots", "addr", "version",
 * "arch", "plugins", "types"}): each agent's row upserted, the slot types any of them
 * reports merged into config/resource_slots; "prev": the status before (NEW: unknown). */
static const char HEARTBEAT_SQL[] =
    "WITH x AS (SELECT (e->>'i')::int AS i, e->>'id' AS id, e->>'region' AS region,"
    "   e->>'sgroup' AS sgroup, e->'slots' AS slots, e->>'addr' AS addr, e->>'version' AS ver,"
    "   e->>'arch' AS arch, e->'plugins' AS plugins, e->'types' AS types"
    "   FROM jsonb_array_elements($1::jsonb) e),"
    " prev AS (SELECT a.id, a.status FROM agents a JOIN x ON a.id = x.id),"
    " up AS (INSERT INTO agents AS a (id, status, status_changed, region, scaling_group,"
    "   available_slots, addr, version, architecture, compute_plugins, heartbeat_at)"
    " SELECT x.id, 'ALIVE', now(), x.region, COALESCE(g.name, 'default'), x.slots, x.addr,"
    "   x.ver, x.arch, x.plugins, now() FROM x LEFT JOIN scaling_groups g ON g.name = x.sgroup"
    " ON CONFLICT (id) DO UPDATE SET status = 'ALIVE',"
    "   status_changed = CASE WHEN a.status = 'ALIVE' THEN a.status_changed ELSE now() END,"
    "   lost_at = NULL, region = EXCLUDED.region, scaling_group = EXCLUDED.scaling_group,"
    "   available_slots = EXCLUDED.available_slots, addr = EXCLUDED.addr,"
    "   version = EXCLUDED.version, architecture = EXCLUDED.architecture,"
    "   compute_plugins = EXCLUDED.compute_plugins, heartbeat_at = now()),"
    " t AS (SELECT COALESCE(jsonb_object_agg(y.key, y.value), '{}') AS v"
    "   FROM x, jsonb_each(x.types) y),"
    " sc AS (INSERT INTO shared_config AS c (key, value) SELECT 'config/resource_slots', t.v FROM t"
    " ON CONFLICT (key) DO UPDATE SET value = c.value || EXCLUDED.value, updated_at = now()"
    " WHERE NOT c.value @> EXCLUDED.value)"
    " SELECT x.i, COALESCE(p.status, 'NEW') AS prev FROM x LEFT JOIN prev p ON p.id = x.id";

/* Kernels an agent has but we think ended (or never knew): destroy them. Kernels we
 * think run there but the agent no longer lists: they ended without a word.
 * Items {"id": agent, "kernels": its heartbeat's list}. */
static const char RECONCILE_SQL[] =
    "WITH x AS (SELECT (e->>'i')::int AS i, e->>'id' AS agent, e->'kernels' AS ks"
    "   FROM jsonb_array_elements($1::jsonb) e),"
    " rep AS (SELECT DISTINCT x.i, y->>'kernel_id' AS id FROM x, jsonb_array_elements(x.ks) y"
    "   WHERE y->>'kernel_id' ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    "[0-9a-fA-F]{12}$')"
    " SELECT r.i, 'stale' AS what, r.id FROM rep r LEFT JOIN kernels k ON k.id = r.id::uuid"
    "   WHERE k.id IS NULL OR k.status IN " FINAL
    " UNION ALL SELECT x.i, 'gone', k.id::text FROM x CROSS JOIN LATERAL (SELECT k.id FROM"
    "   kernels k WHERE k.agent = x.agent AND k.status IN ('RUNNING', 'TERMINATING')"
    "   AND k.status_changed < now() - interval '30 seconds' OFFSET 0) k"
    /* OFFSET 0 keeps the lookup per agent, on (agent, status): flattened, the planner
     * walked every RUNNING kernel once per batch when its statistics lagged a burst. */
    "   WHERE NOT EXISTS (SELECT 1 FROM rep WHERE rep.i = x.i AND rep.id = k.id::text)";

typedef struct hb {
    baic_manager_t *m;
    char agent_id[72];
    char addr[136];
} hb_t;

static void heartbeat_done(const baic_db_result_t *res, const int *rows, int nrows, int err,
                           const char *errmsg, void *arg) {
    hb_t *h = arg;
    if (err != 0) {
        BAIC_LOG_W("agent_upsert_failed", "agent=%s error=\"%s\"", h->agent_id,
                   errmsg ? errmsg : "");
    } else if (nrows > 0) {
        const char *prev = baic_db_result_get_by_name(res, rows[0], "prev");
        if (strcmp(prev, "ALIVE") != 0) {
            BAIC_LOG_I("agent_alive", "agent=%s previous=%s addr=%s", h->agent_id, prev, h->addr);
            baic_scheduler_wake(h->m);
        }
    }
    free(h);
}

static void reconcile_done(const baic_db_result_t *res, const int *rows, int nrows, int err,
                           const char *errmsg, void *arg) {
    hb_t *h = arg;
    if (err != 0) {
        BAIC_LOG_W("agent_reconcile_failed", "agent=%s error=\"%s\"", h->agent_id,
                   errmsg ? errmsg : "");
    } else {
        for (int i = 0; i < nrows; i++) {
            const char *what = baic_db_result_get_by_name(res, rows[i], "what");
            const char *kid = baic_db_result_get_by_name(res, rows[i], "id");
            BAIC_LOG_I("kernel_reconciled", "agent=%s kernel=%s action=%s", h->agent_id, kid,
                       strcmp(what, "stale") == 0 ? "destroy" : "terminated");
            if (strcmp(what, "stale") == 0)
                baic_agent_destroy_kernel(h->m, h->addr, kid, "reconciled");
            else
                baic_kernel_finish(h->m, kid, "TERMINATED", "agent-lost", INT32_MIN);
        }
    }
    free(h);
}

static hb_t *hb_new(baic_manager_t *m, const char *agent_id, const char *addr) {
    hb_t *h = calloc(1, sizeof *h);
    if (h != NULL) {
        h->m = m;
        snprintf(h->agent_id, sizeof h->agent_id, "%s", agent_id);
        snprintf(h->addr, sizeof h->addr, "%s", addr);
    }
    return h;
}

static json_t *object_or_empty(json_t *j) {
    return json_is_object(j) ? json_incref(j) : json_object();
}

static void on_heartbeat(baic_manager_t *m, const char *agent_id, json_t *b) {
    const char *addr = json_string_value(json_object_get(b, "addr"));
    if (addr == NULL) {
        BAIC_LOG_W("agent_event_invalid", "agent=%s event=agent_heartbeat reason=\"no addr\"",
                   agent_id);
        return;
    }
    if (m->agents == NULL)
        return;
    const char *region = json_string_value(json_object_get(b, "region"));
    const char *sg = json_string_value(json_object_get(b, "scaling_group"));
    const char *arch = json_string_value(json_object_get(b, "architecture"));
    const char *ver = json_string_value(json_object_get(b, "version"));
    hb_t *h = hb_new(m, agent_id, addr);
    json_t *item = json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:o, s:o}", "id", agent_id,
                             "region", region ? region : "local", "sgroup", sg ? sg : "default",
                             "slots", object_or_empty(json_object_get(b, "available_slots")),
                             "addr", addr, "version", ver ? ver : "", "arch",
                             arch ? arch : "x86_64", "plugins",
                             object_or_empty(json_object_get(b, "compute_plugins")), "types",
                             object_or_empty(json_object_get(b, "slot_types")));
    if (h == NULL || item == NULL) {
        json_decref(item);
        free(h);
    } else if (baic_db_batch_add(m->agents->beat, agent_id, item, heartbeat_done, h) != 0) {
        free(h); /* the batch released item */
    }
    json_t *kernels = json_object_get(b, "kernels");
    if (json_is_array(kernels)) {
        hb_t *r = hb_new(m, agent_id, addr);
        item = json_pack("{s:s, s:O}", "id", agent_id, "kernels", kernels);
        if (r == NULL || item == NULL) {
            json_decref(item);
            free(r);
        } else if (baic_db_batch_add(m->agents->reconcile, agent_id, item, reconcile_done, r) !=
                   0) {
            free(r);
        }
    }
}

static void agent_terminated_done(const baic_db_result_t *res, int err, const char *errmsg,
                                  void *arg) {
    (void)res;
    if (err != 0)
        BAIC_LOG_W("agent_update_failed", "error=\"%s\"", errmsg ? errmsg : "");
    free(arg);
}

static int on_agent_event(const baic_bus_event_t *ev, void *arg) {
    baic_manager_t *m = arg;
    json_t *b = ev->body;
    baic_manager_observe_event(m, ev);
    const char *agent_id = json_string_value(json_object_get(b, "agent_id"));
    if (agent_id == NULL || strlen(agent_id) > 64) {
        BAIC_LOG_W("agent_event_invalid", "id=%s event=%s reason=\"no agent_id\"", ev->id,
                   ev->name);
        return 0; /* a malformed entry never gets better: acknowledge it */
    }
    const char *kid = json_string_value(json_object_get(b, "kernel_id"));
    if (strcmp(ev->name, "agent_heartbeat") == 0) {
        on_heartbeat(m, agent_id, b);
    } else if (strcmp(ev->name, "agent_terminated") == 0) {
        const char *p[1] = {agent_id};
        BAIC_LOG_I("agent_terminated", "agent=%s", agent_id);
        baic_db_query(m->db,
                      "UPDATE agents SET status = 'TERMINATED', status_changed = now()"
                      " WHERE id = $1",
                      1, p, agent_terminated_done, NULL);
    } else if (kid == NULL || strlen(kid) != 36) {
        BAIC_LOG_W("agent_event_invalid", "agent=%s event=%s reason=\"no kernel_id\"", agent_id,
                   ev->name);
    } else if (strcmp(ev->name, "kernel_pulling") == 0) {
        kernel_forward(m, kid, "PULLING", "{SCHEDULED,PREPARING}", NULL, NULL, "kernel_pulling",
                       "session_pulling", ev->id);
        return 1; /* acknowledged once applied (kev_ack), or handled again */
    } else if (strcmp(ev->name, "kernel_creating") == 0) {
        kernel_forward(m, kid, "CREATING", "{SCHEDULED,PREPARING,PULLING,PREPARED}", NULL, NULL,
                       "kernel_creating", "session_creating", ev->id);
        return 1;
    } else if (strcmp(ev->name, "kernel_started") == 0) {
        json_t *ports = json_object_get(b, "service_ports");
        kernel_forward(m, kid, "RUNNING",
                       "{SCHEDULED,PREPARING,PULLING,PREPARED,CREATING,RESTARTING}",
                       json_string_value(json_object_get(b, "container_id")),
                       json_is_array(ports) ? ports : NULL, "kernel_started", "session_started",
                       ev->id);
        return 1;
    } else if (strcmp(ev->name, "kernel_terminated") == 0) {
        const char *reason = json_string_value(json_object_get(b, "reason"));
        json_t *code = json_object_get(b, "exit_code");
        int failed = reason != NULL && strcmp(reason, "failed-to-start") == 0;
        const char *logs = json_string_value(json_object_get(b, "logs"));
        if (logs != NULL) /* kernels.container_log: the logs of an ended session */
            baic_kernel_store_log(m, kid, logs);
        kernel_finish(m, kid, failed ? "ERROR" : "TERMINATED", reason ? reason : "self-terminated",
                      json_is_integer(code) ? (int)json_integer_value(code) : INT32_MIN, ev->id);
        return 1;
    } else {
        BAIC_LOG_D("agent_event_ignored", "agent=%s event=%s", agent_id, ev->name);
    }
    return 0;
}

/* ---- LOST detection ---- */

static void lost_kernels_done(const baic_db_result_t *res, int err, const char *errmsg,
                              void *arg) {
    baic_manager_t *m = arg;
    if (err != 0) {
        BAIC_LOG_W("lost_kernels_query_failed", "error=\"%s\"", errmsg ? errmsg : "");
        return;
    }
    for (int r = 0; r < baic_db_result_rows(res); r++)
        baic_kernel_finish(m, baic_db_result_get(res, r, 0), "TERMINATED", "agent-lost",
                           INT32_MIN);
}

static void lost_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    (void)arg;
    if (err != 0) {
        BAIC_LOG_W("agent_lost_check_failed", "error=\"%s\"", errmsg ? errmsg : "");
        return;
    }
    for (int r = 0; r < baic_db_result_rows(res); r++)
        BAIC_LOG_W("agent_lost", "agent=%s", baic_db_result_get(res, r, 0));
}

static void lost_tick(uv_timer_t *t) {
    baic_agents_t *a = t->data;
    char s1[24], s2[24];
    snprintf(s1, sizeof s1, "%lld", a->lost_after_s);
    snprintf(s2, sizeof s2, "%lld", a->lost_kernels_s);
    const char *p1[1] = {s1}, *p2[1] = {s2};
    baic_db_query(a->m->db,
                  "UPDATE agents SET status = 'LOST', status_changed = now(), lost_at = now()"
                  " WHERE status = 'ALIVE' AND COALESCE(heartbeat_at, first_contact)"
                  " < now() - make_interval(secs => $1::int) RETURNING id",
                  1, p1, lost_done, NULL);
    baic_db_query(a->m->db,
                  "SELECT k.id::text FROM kernels k JOIN agents a ON a.id = k.agent"
                  " WHERE a.status = 'LOST' AND a.lost_at < now() - make_interval(secs => $1::int)"
                  " AND k.status IN " BAIC_LIVE_STATUSES,
                  1, p2, lost_kernels_done, a->m);
}

/* ---- session watchers ---- */

baic_session_watch_t *baic_session_watch(baic_manager_t *m, const char *session_id,
                                         baic_session_watch_cb cb, void *arg) {
    baic_agents_t *a = m->agents;
    baic_session_watch_t *w = calloc(1, sizeof *w);
    if (w == NULL || a == NULL) {
        free(w);
        return NULL;
    }
    snprintf(w->session_id, sizeof w->session_id, "%s", session_id);
    w->cb = cb;
    w->arg = arg;
    w->next = a->watchers;
    if (a->watchers)
        a->watchers->prevp = &w->next;
    w->prevp = &a->watchers;
    a->watchers = w;
    return w;
}

void baic_session_unwatch(baic_session_watch_t *w) {
    if (w == NULL)
        return;
    if (w->prevp == NULL) { /* detached at shutdown */
        free(w);
        return;
    }
    *w->prevp = w->next;
    if (w->next)
        w->next->prevp = w->prevp;
    free(w);
}

static int on_session_event(const baic_bus_event_t *ev, void *arg) {
    baic_agents_t *a = arg;
    const char *sid = json_string_value(json_object_get(ev->body, "sessionId"));
    if (sid == NULL)
        return 0;
    /* A callback unwatches only its own entry, so keeping next beforehand is safe. */
    for (baic_session_watch_t *w = a->watchers, *n; w; w = n) {
        n = w->next;
        if (strcmp(w->session_id, sid) == 0)
            w->cb(w->arg);
    }
    return 0;
}

/* ---- start and stop ---- */

int baic_agents_init(baic_manager_t *m) {
    baic_agents_t *a = calloc(1, sizeof *a);
    if (a == NULL)
        return -ENOMEM;
    a->m = m;
    char err[256];
    if (baic_config_get_int(m->config, "manager.agent_lost_after_s", 15, &a->lost_after_s, err,
                            sizeof err) != 0 ||
        baic_config_get_int(m->config, "manager.agent_lost_kernels_after_s", 60,
                            &a->lost_kernels_s, err, sizeof err) != 0) {
        BAIC_LOG_E("config_error", "msg=\"%s\"", err);
        free(a);
        return -EINVAL;
    }
    char host[64] = "manager";
    gethostname(host, sizeof host - 1);
    snprintf(a->consumer_name, sizeof a->consumer_name, "%s:%d", host, (int)getpid());
    a->forward = baic_db_batch_new(m->uv, m->db, FORWARD_SQL, BATCH_MAX);
    a->beat = baic_db_batch_new(m->uv, m->db, HEARTBEAT_SQL, BATCH_MAX);
    a->reconcile = baic_db_batch_new(m->uv, m->db, RECONCILE_SQL, BATCH_MAX);
    m->agents = a;
    if (a->forward == NULL || a->beat == NULL || a->reconcile == NULL)
        return -ENOMEM;
    /* Heartbeats (a thousand agents: 333 a second) wait a little to go as a few large
     * statements; statement by statement they had cost PostgreSQL a fifth of a core idle. */
    baic_db_batch_set_linger(a->beat, HEARTBEAT_LINGER_MS);
    baic_db_batch_set_linger(a->reconcile, HEARTBEAT_LINGER_MS);
    int rc = baic_bus_consume(m->bus, BAIC_AGENT_EVENTS, EVENT_GROUP, a->consumer_name,
                              on_agent_event, m, &a->consumer);
    if (rc == 0)
        rc = baic_bus_read_from(m->bus, BAIC_SESSION_EVENTS, "$", on_session_event, a,
                                &a->reader);
    if (rc != 0)
        return rc;
    uv_timer_init(m->uv, &a->lost_timer);
    a->lost_timer.data = a;
    a->timer_open = 1;
    uv_timer_start(&a->lost_timer, lost_tick, 1000, 5000);
    return 0;
}

static void free_on_close(uv_handle_t *h) {
    free(h->data);
}

void baic_agents_fini(baic_manager_t *m) {
    baic_agents_t *a = m->agents;
    if (a == NULL)
        return;
    m->agents = NULL;
    /* Waiting requests still hold their watchers and drop them when the HTTP server
     * aborts them; detach them from the list, which goes away with a. */
    for (baic_session_watch_t *w = a->watchers, *n; w; w = n) {
        n = w->next;
        w->next = NULL;
        w->prevp = NULL;
    }
    a->watchers = NULL;
    baic_db_batch_close(a->forward);
    baic_db_batch_close(a->beat);
    baic_db_batch_close(a->reconcile);
    /* The subscriptions end with the bus. */
    if (a->timer_open) {
        uv_timer_stop(&a->lost_timer);
        uv_close((uv_handle_t *)&a->lost_timer, free_on_close);
    } else {
        free(a);
    }
}
