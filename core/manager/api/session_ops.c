/* SPDX-License-Identifier: Apache-2.0 */
/* Session control beyond create/get/destroy: restart, rename, logs, and creating for another owner.
 */
#include "manager.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"

/* How long PATCH /session/{ref} waits for the kernel to run again before answering. */
#define RESTART_WAIT_MS 120000

static void copy(char *dst, size_t n, const char *s) {
    int w = snprintf(dst, n, "%s", s ? s : "");
    if (w < 0 || (size_t)w >= n)
        dst[n - 1] = '\0';
}

/* ---- creating a session for another keypair (owner_access_key) ---- */

typedef struct owner_q {
    baic_api_op_t *op;
    baic_api_fn again;
    char key[24];
} owner_q_t;

static char *arena_dup(baic_http_req_t *req, const char *s) {
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = baic_http_alloc(req, n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

static void owner_found(baic_keypair_t *kp, int err, void *arg) {
    owner_q_t *q = arg;
    baic_api_op_t *op = q->op;
    if (baic_api_op_gone(op))
        return;
    baic_http_req_t *req = op->req;
    const baic_caller_t *who = op->who;
    if (err != 0) {
        baic_api_unavailable(req, "The credential store is not reachable; retry shortly.");
        return;
    }
    if (kp == NULL || !kp->is_active) {
        baic_api_invalid_params(req, kp == NULL ? "No such owner access key."
                                                : "The owner access key is not active.");
        return;
    }
    if (!who->is_superadmin && (kp->domain == NULL || strcmp(kp->domain, who->domain) != 0)) {
        baic_api_forbidden(req, "Domain administrators may only create sessions for keypairs "
                                "of their own domain.");
        return;
    }
    baic_caller_t *owner = baic_http_alloc(req, sizeof *owner);
    if (owner == NULL) {
        baic_api_internal(req, "Out of memory.");
        return;
    }
    memset(owner, 0, sizeof *owner);
    owner->access_key = arena_dup(req, kp->access_key);
    owner->user_uuid = arena_dup(req, kp->user_uuid);
    owner->email = arena_dup(req, kp->email);
    owner->role = arena_dup(req, kp->role);
    owner->domain = arena_dup(req, kp->domain);
    owner->is_admin =
        kp->is_admin ||
        (kp->role && (strcmp(kp->role, "admin") == 0 || strcmp(kp->role, "superadmin") == 0));
    owner->is_superadmin = kp->role && strcmp(kp->role, "superadmin") == 0;
    owner->api_version = who->api_version;
    if (owner->access_key == NULL || owner->user_uuid == NULL || owner->domain == NULL) {
        baic_api_internal(req, "Out of memory.");
        return;
    }
    BAIC_LOG_I("session_create_for_owner", "caller=%s owner=%s", who->access_key,
               owner->access_key);
    baic_http_req_on_abort(req, NULL, NULL);
    q->again(req, op->m, owner);
}

void baic_session_create_for_owner(baic_http_req_t *req, baic_manager_t *m,
                                   const baic_caller_t *who, const char *owner_key,
                                   baic_api_fn again) {
    if (!who->is_admin) {
        baic_api_forbidden(req, "Only administrators may create sessions for another access "
                                "key.");
        return;
    }
    size_t n = strlen(owner_key);
    if (n == 0 || n >= 24) {
        baic_api_invalid_params(req, "No such owner access key.");
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)owner_key[i])) {
            baic_api_invalid_params(req, "No such owner access key.");
            return;
        }
    owner_q_t *q = baic_http_alloc(req, sizeof *q);
    if (q == NULL) {
        baic_api_internal(req, "Out of memory.");
        return;
    }
    q->op = baic_api_op_new(req, m, who);
    q->again = again;
    copy(q->key, sizeof q->key, owner_key);
    baic_keycache_get(m->keys, q->key, owner_found, q);
}

const char *baic_session_domain_scope(const baic_caller_t *who, const char *key) {
    if (who->is_superadmin || key == NULL || strcmp(key, who->access_key) == 0)
        return NULL;
    return who->domain;
}

/* ---- the kernel's console log kept after it ended ---- */

static void log_stored(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    (void)res;
    if (err != 0)
        BAIC_LOG_W("kernel_log_store_failed", "kernel=%s error=\"%s\"", (char *)arg,
                   errmsg ? errmsg : "");
    free(arg);
}

void baic_kernel_store_log(baic_manager_t *m, const char *kernel_id, const char *text) {
    char *kid = strdup(kernel_id);
    if (kid == NULL)
        return;
    const char *p[2] = {kernel_id, text};
    if (baic_db_query(m->db,
                      "UPDATE kernels SET container_log = convert_to($2, 'UTF8')"
                      " WHERE id = $1::uuid",
                      2, p, log_stored, kid) != 0)
        free(kid);
}

/* ---- GET /session/{ref}/logs ---- */

/* The session (live first, then the newest ended one) and its main kernel or the one
 * named by $3, which must belong to it. */
static const char LOGS_SQL[] =
    "WITH s AS (SELECT id FROM sessions WHERE access_key = $2"
    "   AND (name = $1 OR id::text = lower($1)) AND ($4::text IS NULL OR domain_name = $4)"
    "   ORDER BY (status NOT IN " BAIC_FINAL_STATUSES ") DESC, created_at DESC LIMIT 1)"
    " SELECT k.id::text, k.status, k.agent_addr,"
    "   convert_from(COALESCE(k.container_log, ''::bytea), 'UTF8') AS log"
    " FROM s JOIN kernels k ON k.session_id = s.id"
    " WHERE ($3::uuid IS NULL AND k.cluster_idx = 0) OR k.id = $3::uuid LIMIT 1";

typedef struct logs_q {
    baic_api_op_t *op;
    char *kept; /* kernels.container_log */
} logs_q_t;

static void logs_answer(baic_http_req_t *req, const char *text) {
    baic_http_respond_json(req, 200, json_pack("{s:{s:s}}", "result", "logs", text ? text : ""));
}

static void logs_rpc_done(int status, json_t *answer, int err, void *arg) {
    logs_q_t *q = arg;
    if (!baic_api_op_gone(q->op)) {
        const char *live = json_string_value(json_object_get(answer, "logs"));
        if (err == 0 && status == 200 && live != NULL) {
            logs_answer(q->op->req, live);
        } else {
            /* The kernel ended meanwhile, or its agent cannot answer: what was kept. */
            BAIC_LOG_D("kernel_logs_fallback", "status=%d error=%d", status, err);
            logs_answer(q->op->req, q->kept);
        }
    }
    free(q->kept);
    free(q);
}

static void logs_found(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    baic_api_op_t *op = arg;
    if (baic_api_op_gone(op))
        return;
    if (err != 0) {
        BAIC_LOG_W("session_query_failed", "error=\"%s\"", errmsg ? errmsg : "");
        baic_api_unavailable(op->req, "The database is not reachable.");
        return;
    }
    if (baic_db_result_rows(res) == 0) {
        baic_api_not_found(op->req, "session", "No such session or kernel.");
        return;
    }
    const char *kid = baic_db_result_get(res, 0, 0), *st = baic_db_result_get(res, 0, 1);
    const char *addr = baic_db_result_get(res, 0, 2), *kept = baic_db_result_get(res, 0, 3);
    int live = strcmp(st, "TERMINATED") != 0 && strcmp(st, "ERROR") != 0 &&
               strcmp(st, "CANCELLED") != 0 && strcmp(st, "PENDING") != 0;
    if (!live || addr == NULL || *addr == '\0') {
        logs_answer(op->req, kept);
        return;
    }
    logs_q_t *q = calloc(1, sizeof *q);
    if (q == NULL) {
        baic_api_internal(op->req, "Out of memory.");
        return;
    }
    q->op = op;
    q->kept = strdup(kept ? kept : "");
    char path[128];
    snprintf(path, sizeof path, "/rpc/kernels/%s/logs", kid);
    if (baic_agent_rpc(op->m, addr, "GET", path, NULL, 10000, logs_rpc_done, q) != 0)
        logs_rpc_done(0, NULL, -EIO, q);
}

static int uuid_ok(const char *s) {
    if (strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

static void get_logs(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    const char *key = baic_api_owner_key(req, who);
    if (key == NULL)
        return;
    const char *ref = baic_http_param(req, "ref");
    const char *kid = baic_http_query(req, "kernel_id");
    if (kid == NULL || *kid == '\0')
        kid = baic_http_query(req, "kernelId");
    if (kid != NULL && *kid == '\0')
        kid = NULL;
    if (kid != NULL && !uuid_ok(kid)) {
        baic_api_invalid_params(req, "'kernel_id' must be a kernel UUID.");
        return;
    }
    if (ref == NULL || strlen(ref) >= 80) {
        baic_api_not_found(req, "session", "No such session.");
        return;
    }
    baic_api_op_t *op = baic_api_op_new(req, m, who);
    const char *p[4] = {ref, key, kid, baic_session_domain_scope(who, key)};
    if (baic_db_query(m->db, LOGS_SQL, 4, p, logs_found, op) != 0)
        baic_api_unavailable(req, "The database is not reachable.");
}

/* ---- POST /session/{ref}/rename?name= ---- */

static const char RENAME_SQL[] =
    "WITH s AS (SELECT id, name FROM sessions WHERE access_key = $2"
    "   AND (name = $1 OR id::text = lower($1)) AND ($4::text IS NULL OR domain_name = $4)"
    "   AND status NOT IN " BAIC_FINAL_STATUSES
    "   ORDER BY created_at DESC LIMIT 1),"
    " dup AS (SELECT o.id FROM sessions o, s WHERE o.access_key = $2 AND o.name = $3"
    "   AND o.id <> s.id AND o.status NOT IN " BAIC_FINAL_STATUSES " LIMIT 1),"
    " u AS (UPDATE sessions x SET name = $3 FROM s WHERE x.id = s.id"
    "   AND NOT EXISTS (SELECT 1 FROM dup) RETURNING x.id),"
    " uk AS (UPDATE kernels k SET session_name = $3 FROM u WHERE k.session_id = u.id"
    "   RETURNING k.id)"
    " SELECT s.id::text, s.name, (SELECT id::text FROM dup) AS dup,"
    "   (SELECT count(*) FROM u) AS renamed, (SELECT count(*) FROM uk) AS kernels FROM s";

static void renamed(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    baic_api_op_t *op = arg;
    if (baic_api_op_gone(op))
        return;
    if (err == BAIC_EEXISTS) { /* a concurrent rename or create took the name */
        baic_http_respond_problem(op->req, 400, "session-already-exists",
                                  "The session already exists.",
                                  "A live session with this name exists.", NULL);
        return;
    }
    if (err != 0) {
        BAIC_LOG_W("session_rename_failed", "error=\"%s\"", errmsg ? errmsg : "");
        baic_api_unavailable(op->req, "The database is not reachable.");
        return;
    }
    if (baic_db_result_rows(res) == 0) {
        baic_api_not_found(op->req, "session", "No such session.");
        return;
    }
    const char *dup = baic_db_result_get(res, 0, 2);
    if (dup != NULL) {
        baic_http_respond_problem(
            op->req, 400, "session-already-exists", "The session already exists.",
            "A live session with this name exists.", json_pack("{s:s}", "existingSessionId", dup));
        return;
    }
    BAIC_LOG_I("session_renamed", "session=%s from=%s", baic_db_result_get(res, 0, 0),
               baic_db_result_get(res, 0, 1));
    baic_http_respond(op->req, 204, NULL, NULL, 0);
}

static void post_rename(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    const char *key = baic_api_owner_key(req, who);
    if (key == NULL)
        return;
    const char *ref = baic_http_param(req, "ref");
    const char *name = baic_http_query(req, "name");
    if (name == NULL)
        name = baic_http_query(req, "session_name");
    if (name == NULL)
        name = baic_http_query(req, "clientSessionToken");
    if (name == NULL || *name == '\0') {
        baic_api_invalid_params(req, "'name' is required.");
        return;
    }
    if (!baic_session_name_ok(name)) {
        baic_api_invalid_params(req, "'name' must be 4-64 characters of letters, digits, '_', "
                                     "'.' and '-', starting and ending with a letter or digit.");
        return;
    }
    if (ref == NULL || strlen(ref) >= 80) {
        baic_api_not_found(req, "session", "No such session.");
        return;
    }
    baic_api_op_t *op = baic_api_op_new(req, m, who);
    const char *p[4] = {ref, key, name, baic_session_domain_scope(who, key)};
    if (baic_db_query(m->db, RENAME_SQL, 4, p, renamed, op) != 0)
        baic_api_unavailable(req, "The database is not reachable.");
}

/* ---- PATCH /session/{ref}: restart ---- */

static const char RESTARTING_SQL[] =
    "WITH d AS (SELECT id FROM sessions WHERE id = $1::uuid"
    "   AND ($3::text IS NULL OR domain_name = $3)),"
    " k AS (UPDATE kernels SET status = 'RESTARTING', status_changed = now(),"
    "   status_history = status_history || jsonb_build_object('RESTARTING', now()::text)"
    " WHERE session_id = $1::uuid AND id = $2::uuid AND status = 'RUNNING'"
    "   AND EXISTS (SELECT 1 FROM d) RETURNING id),"
    " s AS (UPDATE sessions SET status = 'RESTARTING', status_changed = now(),"
    "   status_history = status_history || jsonb_build_object('RESTARTING', now()::text)"
    " WHERE id = $1::uuid AND status = 'RUNNING' AND EXISTS (SELECT 1 FROM k) RETURNING id)"
    " SELECT (SELECT count(*) FROM k) AS k, (SELECT count(*) FROM s) AS s,"
    "   (SELECT count(*) FROM d) AS d";

static const char UNDO_SQL[] =
    "WITH k AS (UPDATE kernels SET status = 'RUNNING', status_changed = now()"
    " WHERE id = $2::uuid AND status = 'RESTARTING' RETURNING id)"
    " UPDATE sessions SET status = 'RUNNING', status_changed = now()"
    " WHERE id = $1::uuid AND status = 'RESTARTING' RETURNING id";

typedef struct restart {
    baic_http_req_t *req;
    baic_manager_t *m;
    baic_api_op_t *op;
    baic_kref_t ref;
    baic_session_wait_t *wait; /* until RUNNING again; NULL once over */
    char domain[72];           /* "" = any (baic_session_domain_scope) */
    int rpc_pending;
} restart_t;

static void restart_free(restart_t *r) {
    free(r);
}

/* Freed once both the wait and the agent's answer are over. */
static void restart_wait_over(void *arg) {
    restart_t *r = arg;
    r->wait = NULL;
    if (!r->rpc_pending)
        restart_free(r);
}

static int restart_decide(baic_http_req_t *req, const baic_db_result_t *res, void *arg) {
    restart_t *r = arg;
    const char *st = baic_db_result_get(res, 0, 0);
    if (strcmp(st, "RUNNING") == 0) {
        BAIC_LOG_I("session_restarted", "session=%s", r->ref.session_id);
        baic_http_respond(req, 204, NULL, NULL, 0);
        return 1;
    }
    if (strcmp(st, "TERMINATED") == 0 || strcmp(st, "ERROR") == 0 ||
        strcmp(st, "CANCELLED") == 0 || strcmp(st, "TERMINATING") == 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "The session is %s: the kernel did not come back.", st);
        baic_http_respond_problem(req, 500, "internal-server-error",
                                  "The session could not be restarted.", msg,
                                  json_pack("{s:s}", "status", st));
        return 1;
    }
    return 0;
}

/* Still on its way: the caller follows the session's events from here. */
static void restart_timeout(baic_http_req_t *req, void *arg) {
    (void)arg;
    baic_http_respond(req, 204, NULL, NULL, 0);
}

static void undo_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    (void)res;
    (void)arg;
    if (err != 0)
        BAIC_LOG_W("session_restart_undo_failed", "error=\"%s\"", errmsg ? errmsg : "");
}

static void restart_acked(int status, json_t *answer, int err, void *arg) {
    restart_t *r = arg;
    r->rpc_pending = 0;
    if (err == 0 && status == 202) {
        if (r->wait == NULL)
            restart_free(r); /* the wait is over already */
        else
            baic_session_wait_poke(r->wait); /* it may be RUNNING already */
        return;
    }
    BAIC_LOG_W("kernel_restart_failed", "session=%s kernel=%s status=%d error=%d",
               r->ref.session_id, r->ref.kernel_id, status, err);
    const char *p[2] = {r->ref.session_id, r->ref.kernel_id};
    baic_db_query(r->m->db, UNDO_SQL, 2, p, undo_done, NULL);
    if (r->wait == NULL) {
        restart_free(r);
        return;
    }
    baic_session_wait_cancel(r->wait); /* restart_wait_over frees r later */
    baic_api_agent_error(r->req, status, answer, err);
}

static void restarting_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    restart_t *r = arg;
    if (baic_api_op_gone(r->op)) {
        restart_free(r);
        return;
    }
    if (err != 0) {
        BAIC_LOG_W("session_restart_failed", "session=%s error=\"%s\"", r->ref.session_id,
                   errmsg ? errmsg : "");
        baic_api_unavailable(r->req, "The database is not reachable.");
        restart_free(r);
        return;
    }
    if (baic_db_result_rows(res) > 0 && strcmp(baic_db_result_get(res, 0, 2), "0") == 0) {
        baic_api_not_found(r->req, "session", "No such session.");
        restart_free(r);
        return;
    }
    if (baic_db_result_rows(res) == 0 || strcmp(baic_db_result_get(res, 0, 1), "1") != 0) {
        baic_http_respond_problem(r->req, 409, "kernel-not-ready", "The kernel is not ready.",
                                  "The session is not RUNNING.", NULL);
        restart_free(r);
        return;
    }
    BAIC_LOG_I("session_restarting", "session=%s kernel=%s", r->ref.session_id, r->ref.kernel_id);
    /* Wait first: the kernel may be back before the agent's answer arrives. */
    r->rpc_pending = 1; /* the wait's end must not free r before the RPC below is sent */
    r->wait = baic_session_wait_start(r->m, r->req, r->ref.session_id,
                                      "SELECT status FROM sessions WHERE id = $1::uuid", 2000,
                                      RESTART_WAIT_MS, restart_decide, restart_timeout,
                                      restart_wait_over, r);
    if (r->wait == NULL) {
        const char *p[2] = {r->ref.session_id, r->ref.kernel_id};
        baic_db_query(r->m->db, UNDO_SQL, 2, p, undo_done, NULL);
        baic_api_internal(r->req, "Out of memory.");
        restart_free(r);
        return;
    }
    char path[128];
    snprintf(path, sizeof path, "/rpc/kernels/%s/restart", r->ref.kernel_id);
    if (baic_agent_rpc(r->m, r->ref.addr, "POST", path, NULL, 30000, restart_acked, r) != 0)
        restart_acked(0, NULL, -EIO, r);
}

static void restart_found(const baic_kref_t *ref, int err, void *arg) {
    restart_t *r = arg;
    if (baic_api_op_gone(r->op)) {
        restart_free(r);
        return;
    }
    if (err != 0) {
        baic_api_unavailable(r->req, "The database is not reachable.");
    } else if (ref == NULL || ref->kernel_id[0] == '\0') {
        baic_api_not_found(r->req, "session", "No such session.");
    } else if (strcmp(ref->status, "RUNNING") != 0 || strcmp(ref->kstatus, "RUNNING") != 0 ||
               ref->addr[0] == '\0') {
        char msg[160];
        snprintf(msg, sizeof msg, "The session is %.32s, not RUNNING.", ref->status);
        baic_http_respond_problem(r->req, 409, "kernel-not-ready", "The kernel is not ready.", msg,
                                  json_pack("{s:s}", "status", ref->status));
    } else {
        r->ref = *ref;
        const char *p[3] = {ref->session_id, ref->kernel_id, r->domain[0] ? r->domain : NULL};
        if (baic_db_query(r->m->db, RESTARTING_SQL, 3, p, restarting_done, r) == 0)
            return;
        baic_api_unavailable(r->req, "The database is not reachable.");
    }
    restart_free(r);
}

static void patch_session(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    const char *key = baic_api_owner_key(req, who);
    if (key == NULL)
        return;
    restart_t *r = calloc(1, sizeof *r);
    if (r == NULL) {
        baic_api_internal(req, "Out of memory.");
        return;
    }
    r->req = req;
    r->m = m;
    const char *scope = baic_session_domain_scope(who, key);
    snprintf(r->domain, sizeof r->domain, "%s", scope ? scope : "");
    r->op = baic_api_op_new(req, m, who);
    if (baic_kernel_lookup(m, baic_http_param(req, "ref"), key, restart_found, r) != 0) {
        baic_api_not_found(req, "session", "No such session.");
        restart_free(r);
    }
}

int baic_api_session_ops_init(baic_manager_t *m) {
    int rc = baic_api_route(m, "PATCH", "/session/{ref}", BAIC_ROUTE_USER, patch_session, 0);
    if (rc == 0)
        rc = baic_api_route(m, "POST", "/session/{ref}/rename", BAIC_ROUTE_USER, post_rename, 0);
    if (rc == 0)
        rc = baic_api_route(m, "GET", "/session/{ref}/logs", BAIC_ROUTE_USER, get_logs, 0);
    return rc;
}
