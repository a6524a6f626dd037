/* SPDX-License-Identifier: Apache-2.0 */
/* Reconciliation of agents' kernels with the database: the CLI command and POST /admin/reconcile. */
#include "reconcile.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <uv.h>

#include "auth/cluster.h"
#include "config/config.h"
#include "config/daemon.h"
#include "http/client.h"
#include "log/log.h"
#include "manager.h"
#include "server.h"

/*
 * Occupancy has one source of truth: the sum of occupied_slots over an agent's live
 * kernels (BAIC_LIVE_STATUSES). The scheduler, check-presets and the admin views all sum
 * it in SQL. agents.occupied_slots is only a stored copy for outside readers; nothing
 * decides with it, and this pass rewrites it where it drifted.
 */

/* Statuses in which the agent has been told about the kernel: SCHEDULED and PREPARING
 * kernels may not have been sent yet (the scheduler's deadline sweep owns those). */
#define DISPATCHED "('PULLING','PREPARED','CREATING','RUNNING','RESTARTING','RUNNING_DEGRADED'," \
                   "'TERMINATING')"

#define RPC_TIMEOUT_MS 10000

/* ---- agent RPC on a private loop ---- */

typedef struct listing {
    char *id, *addr;
    int status, err;
    json_t *kernels; /* the agent's list, NULL when it did not answer */
} listing_t;

static void list_done(int status, const baic_http_header_t *headers, const char *body,
                      size_t len, int err, void *arg) {
    listing_t *l = arg;
    (void)headers;
    l->status = status;
    l->err = err;
    if (err == 0 && status == 200) {
        json_t *j = json_loadb(body, len, 0, NULL);
        json_t *ks = json_object_get(j, "kernels");
        if (json_is_array(ks))
            l->kernels = json_incref(ks);
        json_decref(j);
    }
}

static void url_for(const char *addr, const char *path, char *url, size_t n) {
    snprintf(url, n, "%s%s%s", strncmp(addr, "http://", 7) == 0 ? "" : "http://", addr, path);
}

static int signed_request(uv_loop_t *loop, const char *secret, const char *addr,
                          const char *method, const char *path, const char *body,
                          baic_http_client_cb cb, void *arg) {
    char url[512], date[32], mac[65];
    url_for(addr, path, url, sizeof url);
    size_t blen = body ? strlen(body) : 0;
    if (baic_cluster_sign(secret ? secret : "", method, path, body, blen, date, mac) != 0)
        mac[0] = '\0';
    baic_http_header_t hdrs[] = {
        {"Date", date},
        {"X-BaiC-Cluster-Auth", mac},
        {"Content-Type", "application/json"},
        {NULL, NULL},
    };
    baic_http_client_req_t req = {.method = method,
                                  .url = url,
                                  .headers = hdrs,
                                  .body = body,
                                  .body_len = blen,
                                  .timeout_ms = RPC_TIMEOUT_MS};
    return baic_http_client_request(loop, &req, cb, arg);
}

typedef struct destroy {
    int status, err;
} destroy_t;

static void destroy_done(int status, const baic_http_header_t *headers, const char *body,
                         size_t len, int err, void *arg) {
    destroy_t *d = arg;
    (void)headers, (void)body, (void)len;
    d->status = status;
    d->err = err;
}

static void run_loop(uv_loop_t *loop) {
    uv_run(loop, UV_RUN_DEFAULT);
}

/* ---- database helpers ---- */

static int fail(char *err, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    size_t l = strlen(err);
    while (l > 0 && err[l - 1] == '\n') /* libpq messages end in a newline */
        err[--l] = '\0';
    return -1;
}

static PGresult *q(PGconn *c, const char *sql, int np, const char *const *p, char *err,
                   size_t errlen) {
    PGresult *r = PQexecParams(c, sql, np, NULL, p, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        fail(err, errlen, "%s", PQresultErrorMessage(r));
        PQclear(r);
        return NULL;
    }
    return r;
}

static const char *val(PGresult *r, int row, int col) {
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* ---- fixes ---- */

static void add_fix(json_t *fixes, int dry_run, const char *kind, const char *agent,
                    const char *kernel, const char *session, const char *before,
                    const char *after) {
    json_array_append_new(
        fixes, json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:b}", "kind", kind, "agent", agent,
                         "kernel", kernel, "session", session, "before", before, "after", after,
                         "applied", !dry_run));
    BAIC_LOG_I("reconcile_fix", "kind=%s kernel=%s session=%s agent=%s before=%s after=%s dry_run=%d",
               kind, kernel ? kernel : "-", session ? session : "-", agent ? agent : "-",
               before ? before : "-", after ? after : "-", dry_run);
}

/* Kernels in the database that the agent does not list: they ended without a word. */
static const char MISSING_SQL[] =
    "WITH rep AS (SELECT x->>'kernel_id' AS id FROM jsonb_array_elements($2::jsonb) x"
    "   WHERE x->>'kernel_id' IS NOT NULL),"
    " o AS (SELECT id, status AS before FROM kernels WHERE agent = $1 AND status IN " DISPATCHED
    "   AND status_changed < now() - make_interval(secs => $3::int)"
    "   AND id::text NOT IN (SELECT lower(id) FROM rep) FOR UPDATE)"
    " UPDATE kernels k SET status = 'TERMINATED', status_changed = now(), terminated_at = now(),"
    "   status_info = 'reconciled-missing',"
    "   status_history = k.status_history || jsonb_build_object('TERMINATED', now()::text)"
    " FROM o WHERE k.id = o.id AND k.status = o.before"
    " RETURNING k.id::text, k.session_id::text, o.before";

/* Kernels the agent runs that the database ended, never knew, or places on another agent. */
static const char ORPHAN_SQL[] =
    "SELECT r.id, COALESCE(k.status, 'unknown') || CASE WHEN k.agent IS DISTINCT FROM $1"
    "   AND k.id IS NOT NULL THEN '@' || COALESCE(k.agent, '-') ELSE '' END AS before,"
    "   k.session_id::text"
    " FROM (SELECT x->>'kernel_id' AS id, x->>'status' AS st"
    "   FROM jsonb_array_elements($2::jsonb) x) r"
    " LEFT JOIN kernels k ON k.id::text = lower(r.id)"
    " WHERE r.id IS NOT NULL AND COALESCE(r.st, '') <> 'TERMINATING'"
    "   AND (k.id IS NULL OR k.status IN " BAIC_FINAL_STATUSES " OR k.agent IS DISTINCT FROM $1)"
    " ORDER BY r.id";

/* A slot map with numbers compared as numbers and zero amounts dropped. */
#define NORM(j)                                                                               \
    "(SELECT COALESCE(jsonb_object_agg(e.key, CASE WHEN e.value #>> '{}' ~ "                 \
    "'^[0-9]+(\\.[0-9]+)?$' THEN to_jsonb((e.value #>> '{}')::numeric) ELSE e.value END),"    \
    " '{}'::jsonb) FROM jsonb_each(" j ") e WHERE NOT (e.value #>> '{}' ~ '^0+(\\.0+)?$'))"

static const char OCCUPANCY_SQL[] =
    "WITH d AS (SELECT a.id, a.occupied_slots AS stored,"
    "   (SELECT COALESCE(jsonb_object_agg(key, total), '{}'::jsonb) FROM ("
    "     SELECT e.key, sum((e.value #>> '{}')::numeric)::text AS total FROM kernels k,"
    "     jsonb_each(k.occupied_slots) e WHERE k.agent = a.id AND k.status IN " BAIC_LIVE_STATUSES
    "     AND e.value #>> '{}' ~ '^[0-9]+(\\.[0-9]+)?$' GROUP BY e.key) x) AS derived"
    "   FROM agents a ORDER BY a.id FOR UPDATE OF a),"
    " c AS (SELECT id, stored, derived FROM d"
    "   WHERE " NORM("d.stored") " IS DISTINCT FROM " NORM("d.derived") ")"
    " UPDATE agents a SET occupied_slots = c.derived FROM c WHERE a.id = c.id"
    " RETURNING a.id, c.stored::text, c.derived::text";

static const char SESSION_SQL[] =
    "WITH c AS (SELECT s.id, s.status AS before,"
    "   CASE WHEN bool_or(k.status = 'ERROR') THEN 'ERROR'"
    "     WHEN bool_and(k.status = 'CANCELLED') THEN 'CANCELLED' ELSE 'TERMINATED' END AS after,"
    "   (array_agg(k.agent ORDER BY k.cluster_idx))[1] AS agent"
    "   FROM sessions s JOIN kernels k ON k.session_id = s.id"
    "   WHERE s.status NOT IN " BAIC_FINAL_STATUSES
    "   GROUP BY s.id, s.status HAVING bool_and(k.status IN " BAIC_FINAL_STATUSES "))"
    " UPDATE sessions s SET status = c.after, status_changed = now(),"
    "   terminated_at = COALESCE(s.terminated_at, now()), status_info = 'reconciled',"
    "   status_history = s.status_history || jsonb_build_object(c.after, now()::text)"
    " FROM c WHERE s.id = c.id AND s.status = c.before"
    " RETURNING s.id::text, c.before, c.after, c.agent";

int baic_reconcile_run(const char *dsn, const char *cluster_secret, int dry_run, int grace_s,
                       json_t **report, char *err, size_t errlen) {
    *report = NULL;
    PGconn *c = PQconnectdb(dsn);
    if (PQstatus(c) != CONNECTION_OK) {
        fail(err, errlen, "cannot connect to the database: %s", PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    int rc = -1, nagents = 0;
    listing_t *ls = NULL;
    uv_loop_t loop;
    uv_loop_init(&loop);
    json_t *fixes = json_array(), *failed = json_array(), *orphans = json_array();
    PGresult *r = q(c, "SELECT id, addr FROM agents WHERE status = 'ALIVE' ORDER BY id", 0, NULL,
                    err, errlen);
    if (r == NULL)
        goto out_loop;
    nagents = PQntuples(r);
    ls = calloc(nagents ? (size_t)nagents : 1, sizeof *ls);
    if (ls == NULL) {
        PQclear(r);
        fail(err, errlen, "out of memory");
        goto out_loop;
    }
    /* Every agent is asked at once; the listings come before the transaction, and the
     * grace period keeps kernels that changed since out of the comparison. */
    for (int i = 0; i < nagents; i++) {
        ls[i].id = strdup(PQgetvalue(r, i, 0));
        ls[i].addr = strdup(PQgetvalue(r, i, 1));
        ls[i].err = UV_EINVAL;
        if (ls[i].id && ls[i].addr && *ls[i].addr != '\0')
            signed_request(&loop, cluster_secret, ls[i].addr, "GET", "/rpc/kernels", NULL,
                           list_done, &ls[i]);
    }
    PQclear(r);
    run_loop(&loop);

    r = q(c, "BEGIN", 0, NULL, err, errlen);
    if (r == NULL)
        goto out_loop;
    PQclear(r);
    char grace[24];
    snprintf(grace, sizeof grace, "%d", grace_s);
    for (int i = 0; i < nagents; i++) {
        listing_t *l = &ls[i];
        if (l->kernels == NULL) {
            char why[128];
            if (l->err != 0)
                snprintf(why, sizeof why, "%s", uv_strerror(l->err));
            else
                snprintf(why, sizeof why, "HTTP %d", l->status);
            json_array_append_new(failed, json_pack("{s:s, s:s}", "agent", l->id ? l->id : "",
                                                    "error", why));
            BAIC_LOG_W("reconcile_agent_unreachable", "agent=%s addr=%s error=\"%s\"",
                       l->id ? l->id : "-", l->addr ? l->addr : "-", why);
            continue;
        }
        char *rep = json_dumps(l->kernels, JSON_COMPACT);
        const char *p[3] = {l->id, rep ? rep : "[]", grace};
        PGresult *m = q(c, MISSING_SQL, 3, p, err, errlen);
        PGresult *o = m ? q(c, ORPHAN_SQL, 2, p, err, errlen) : NULL;
        free(rep);
        if (m == NULL || o == NULL) {
            PQclear(m);
            goto rollback;
        }
        for (int k = 0; k < PQntuples(m); k++)
            add_fix(fixes, dry_run, "missing", l->id, val(m, k, 0), val(m, k, 1), val(m, k, 2),
                    "TERMINATED");
        for (int k = 0; k < PQntuples(o); k++) {
            add_fix(fixes, dry_run, "orphan", l->id, val(o, k, 0), val(o, k, 2), val(o, k, 1),
                    "destroyed");
            json_array_append_new(orphans, json_pack("{s:s, s:s, s:i}", "addr", l->addr, "kernel",
                                                     val(o, k, 0), "fix",
                                                     (int)json_array_size(fixes) - 1));
        }
        PQclear(m);
        PQclear(o);
    }
    /* Sessions first: finalizing them changes no occupancy, but missing kernels above may
     * have been a session's last live ones. */
    PGresult *s = q(c, SESSION_SQL, 0, NULL, err, errlen);
    if (s == NULL)
        goto rollback;
    for (int k = 0; k < PQntuples(s); k++)
        add_fix(fixes, dry_run, "session", val(s, k, 3), NULL, val(s, k, 0), val(s, k, 1),
                val(s, k, 2));
    PQclear(s);
    PGresult *oc = q(c, OCCUPANCY_SQL, 0, NULL, err, errlen);
    if (oc == NULL)
        goto rollback;
    for (int k = 0; k < PQntuples(oc); k++)
        add_fix(fixes, dry_run, "occupancy", val(oc, k, 0), NULL, NULL, val(oc, k, 1),
                val(oc, k, 2));
    PQclear(oc);
    r = q(c, dry_run ? "ROLLBACK" : "COMMIT", 0, NULL, err, errlen);
    if (r == NULL)
        goto out_loop;
    PQclear(r);

    /* Orphans go only once the database agrees they should. A 404 means the agent
     * dropped the kernel meanwhile: the fix holds all the same. */
    if (!dry_run) {
        size_t n = json_array_size(orphans);
        destroy_t *ds = calloc(n ? n : 1, sizeof *ds);
        for (size_t i = 0; ds != NULL && i < n; i++) {
            json_t *o = json_array_get(orphans, i);
            json_t *body = json_pack("{s:s, s:s}", "kernel_id",
                                     json_string_value(json_object_get(o, "kernel")), "reason",
                                     "reconciled-orphan");
            char *text = json_dumps(body, JSON_COMPACT);
            json_decref(body);
            ds[i].err = UV_EINVAL;
            if (text != NULL)
                signed_request(&loop, cluster_secret, json_string_value(json_object_get(o, "addr")),
                               "POST", "/rpc/destroy_kernel", text, destroy_done, &ds[i]);
            free(text);
        }
        run_loop(&loop);
        for (size_t i = 0; ds != NULL && i < n; i++) {
            json_t *o = json_array_get(orphans, i);
            int ok = ds[i].err == 0 && ((ds[i].status >= 200 && ds[i].status < 300) ||
                                        ds[i].status == 404);
            if (!ok) {
                json_t *fix = json_array_get(fixes, (size_t)json_integer_value(
                                                        json_object_get(o, "fix")));
                json_object_set_new(fix, "applied", json_false());
                char why[64];
                snprintf(why, sizeof why, "%s",
                         ds[i].err ? uv_strerror(ds[i].err) : "agent refused");
                json_object_set_new(fix, "error", json_string(why));
                BAIC_LOG_W("reconcile_destroy_failed", "kernel=%s status=%d error=\"%s\"",
                           json_string_value(json_object_get(o, "kernel")), ds[i].status, why);
            }
        }
        free(ds);
    }
    rc = 0;
    *report = json_pack("{s:b, s:i, s:O, s:O}", "dry_run", dry_run, "agents_checked",
                        nagents - (int)json_array_size(failed), "agents_failed", failed, "fixes",
                        fixes);
    BAIC_LOG_I("reconcile_done", "dry_run=%d agents=%d unreachable=%zu fixes=%zu", dry_run,
               nagents, json_array_size(failed), json_array_size(fixes));
    goto out_loop;

rollback:
    PQclear(PQexec(c, "ROLLBACK"));
out_loop:
    run_loop(&loop);
    uv_loop_close(&loop);
    for (int i = 0; ls != NULL && i < nagents; i++) {
        free(ls[i].id);
        free(ls[i].addr);
        json_decref(ls[i].kernels);
    }
    free(ls);
    json_decref(fixes);
    json_decref(failed);
    json_decref(orphans);
    PQfinish(c);
    return rc;
}

/* ---- baic-manager reconcile ---- */

static int reconcile_cli(json_t *config, int dry_run, int grace);

int baic_reconcile_cli(json_t *config, int argc, char **argv) {
    int dry_run = 0;
    long grace = 30;
    const char *config_path = NULL;
    for (int i = 0; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--dry-run") == 0) {
            dry_run = 1;
        } else if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) &&
                   i + 1 < argc) {
            config_path = argv[++i];
        } else if (strcmp(argv[i], "--grace") == 0 && i + 1 < argc &&
                   (grace = strtol(argv[i + 1], &end, 10), *argv[i + 1] != '\0' && *end == '\0') &&
                   grace >= 0 && grace <= 86400) {
            i++;
        } else {
            fprintf(stderr, "usage: baic-manager [-c FILE] reconcile [--dry-run] [--grace SECONDS]"
                            " [--config FILE]\n");
            return 2;
        }
    }
    json_t *own = NULL;
    if (config_path != NULL) {
        if (baic_daemon_config_load("baic-manager", config_path, "manager", &own) != 0)
            return 2;
        config = own;
    }
    int status = reconcile_cli(config, dry_run, (int)grace);
    json_decref(own);
    return status;
}

static int reconcile_cli(json_t *config, int dry_run, int grace) {
    const char *dsn = baic_manager_dsn(config);
    if (dsn == NULL)
        return 2;
    const char *secret = NULL;
    char err[1024];
    if (baic_config_get_string(config, "manager.cluster_secret", getenv("BAIC_CLUSTER_SECRET"),
                               &secret, err, sizeof err) != 0) {
        fprintf(stderr, "baic-manager: %s\n", err);
        return 2;
    }
    json_t *report = NULL;
    if (baic_reconcile_run(dsn, secret, dry_run, grace, &report, err, sizeof err) != 0) {
        fprintf(stderr, "baic-manager: reconcile: %s\n", err);
        return 1;
    }
    char *text = json_dumps(report, JSON_INDENT(2));
    printf("%s\n", text ? text : "{}");
    free(text);
    int partial = json_array_size(json_object_get(report, "agents_failed")) > 0;
    json_decref(report);
    return partial ? 3 : 0;
}

/* ---- POST /admin/reconcile ---- */

typedef struct rec_work {
    uv_work_t w;
    baic_manager_t *m;
    baic_api_op_t *op; /* in the request's arena: gone with it */
    char *dsn, *secret;
    int dry_run, grace, rc;
    json_t *report;
    char err[512];
} rec_work_t;

static void rec_run(uv_work_t *w) {
    rec_work_t *r = w->data;
    r->rc = baic_reconcile_run(r->dsn, r->secret, r->dry_run, r->grace, &r->report, r->err,
                               sizeof r->err);
}

static void rec_after(uv_work_t *w, int status) {
    rec_work_t *r = w->data;
    if (!baic_api_op_gone(r->op)) {
        if (status != 0 || r->rc != 0) {
            BAIC_LOG_W("reconcile_failed", "error=\"%s\"", status ? uv_strerror(status) : r->err);
            baic_api_unavailable(r->op->req, "Reconciliation failed; see the manager log.");
        } else {
            baic_http_respond_json(r->op->req, 200, json_incref(r->report));
        }
    }
    /* Kernels ended and occupancy came free: a round may place what waits. */
    if (r->rc == 0 && !r->dry_run && !r->m->closing)
        baic_scheduler_wake(r->m);
    json_decref(r->report);
    free(r->dsn);
    free(r->secret);
    free(r);
}

static void h_reconcile(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    json_t *body = baic_api_json_body(req);
    if (body == NULL)
        return;
    json_t *dr = json_object_get(body, "dry_run"), *gr = json_object_get(body, "grace_seconds");
    if (dr != NULL && !json_is_boolean(dr)) {
        json_decref(body);
        baic_api_invalid_params(req, "dry_run must be a boolean.");
        return;
    }
    if (gr != NULL &&
        (!json_is_integer(gr) || json_integer_value(gr) < 0 || json_integer_value(gr) > 86400)) {
        json_decref(body);
        baic_api_invalid_params(req, "grace_seconds must be an integer from 0 to 86400.");
        return;
    }
    const char *q = baic_http_query(req, "dry_run");
    rec_work_t *r = calloc(1, sizeof *r);
    const char *dsn = baic_manager_dsn(m->config);
    if (r == NULL || dsn == NULL) {
        free(r);
        json_decref(body);
        baic_api_internal(req, "Out of memory.");
        return;
    }
    r->dry_run = json_is_true(dr) || (q != NULL && (strcmp(q, "1") == 0 || strcmp(q, "true") == 0));
    r->grace = gr ? (int)json_integer_value(gr) : 30;
    json_decref(body);
    r->dsn = strdup(dsn);
    r->secret = strdup(m->cluster_secret ? m->cluster_secret : "");
    r->m = m;
    r->op = baic_api_op_new(req, m, who);
    r->w.data = r;
    if (r->dsn == NULL || r->secret == NULL || r->op == NULL ||
        uv_queue_work(m->uv, &r->w, rec_run, rec_after) != 0) {
        free(r->dsn);
        free(r->secret);
        free(r);
        baic_api_internal(req, "Cannot start the reconciliation.");
    }
}

int baic_api_reconcile_init(baic_manager_t *m) {
    return baic_api_route(m, "POST", "/admin/reconcile", BAIC_ROUTE_SUPERADMIN, h_reconcile, 0);
}
