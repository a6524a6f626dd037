/* SPDX-License-Identifier: Apache-2.0 */
/* Scheduling policies: the scheduler's predicates, session dependencies, starts_at, agent drain. */
#ifndef BAIC_MANAGER_POLICY_H
#define BAIC_MANAGER_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <baic/slots.h>

/* ---- pure helpers (policy_util.c: no database, no loop; unit-tested) ---- */

/*
 * Whether used + need stays within limit for every slot need names with a positive
 * amount. A limit entry below 0 is unlimited; a slot the limit does not name is
 * unlimited when unlimited_default, else 0. Returns 1 when it fits; else 0 with
 * *slot (may be NULL) the first slot that does not.
 */
int baic_policy_fits(const baic_slots_t *limit, int unlimited_default, const baic_slots_t *used,
                     const baic_slots_t *need, const char **slot);

/* "90", "30s", "30m", "1h30m", "2d", "1w": milliseconds (at most 366 days). 0 or -1. */
int baic_policy_parse_duration(const char *text, int64_t *out_ms);

/* ISO 8601 ("2026-11-27T15:00:00Z", "...+09:00", "2026-11-27 15:00", no zone = UTC) or a
 * duration after now_ms: the epoch milliseconds. 0 or -1. */
int baic_policy_parse_starts_at(const char *text, int64_t now_ms, int64_t *out_ms);

/* "2026-11-27T15:00:00.000Z" */
void baic_policy_format_iso(int64_t ms, char *buf, size_t n);

/* Dependency state from [[id, name, status, result], ...] (NULL or [] = none). */
enum { BAIC_DEPS_READY = 0, BAIC_DEPS_WAIT = 1, BAIC_DEPS_FAILED = 2 };
/* *which (may be NULL) gets "name (id)" of each dependency that is waited on, or of
 * those that failed when the state is FAILED, joined by ", ". */
int baic_policy_deps_state(const json_t *deps, char *which, size_t n);

/* ---- the scheduler's predicates (predicates.c) ---- */

struct baic_manager;
typedef struct baic_policy baic_policy_t;

/* Which PENDING sessions a round reads (its page): those
 * not held back by a recent denial of their own policies (sessions.sched_retry_at). */
#define BAIC_POLICY_PAGE_DUE "(s.sched_retry_at IS NULL OR s.sched_retry_at <= now())"
/* How many pending sessions a round reads unless manager.scheduler_page says otherwise;
 * the round's queries take it as $1. */
#define BAIC_SCHED_PAGE 1000

/* Columns the scheduler's page query adds for the per-session predicates (its alias for
 * sessions is s): the row is the session's, one read of the page and one lock per row.
 * deps: [[id, name, status, result]] or NULL. */
#define BAIC_POLICY_PAGE_COLS \
    ", CASE WHEN s.starts_at > now() THEN" \
    "   ceil(extract(epoch FROM s.starts_at - now()) * 1000)::bigint END AS wait_ms," \
    " to_char(s.starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS starts_at_text," \
    " (SELECT json_agg(json_build_array(d.depends_on::text, ds.name, ds.status, ds.result))" \
    "   FROM session_dependencies d JOIN sessions ds ON ds.id = d.depends_on" \
    "   WHERE d.session_id = s.id)::text AS deps"

/* The query a scheduling round runs in its transaction once its page is read, with $1 =
 * baic_policy_round_param(page rows): one row per resource-group access, keypair, user,
 * project and domain the page names, and the agent limits (columns kind, id, doc). */
extern const char BAIC_POLICY_ROUND_SQL[];
/* The distinct keypairs, users, projects, domains and (group, domain, project, keypair)
 * of the page's rows, as BAIC_POLICY_ROUND_SQL takes them. */
json_t *baic_policy_round_param(const json_t *pending);

/* What live kernels occupy (columns kind: keypair|user|group|domain, id, slot, total). */
extern const char BAIC_POLICY_OCC_SQL[];

/* Builds the round's view from the round query's rows (array of {"kind","id","doc"}),
 * the page's rows (their dependencies), the slot types ({"cpu": "count", "mem": "bytes", ...}), the occupancy ({kind: {id:
 * {slot: total}}}, from BAIC_POLICY_OCC_SQL) and the live sessions per keypair (array
 * of {"access_key", "n"}). Never NULL. */
baic_policy_t *baic_policy_new(struct baic_manager *m, const json_t *rows, const json_t *pending,
                               const json_t *types, const json_t *occ, const json_t *live);
/* Frees it; cancels, outside the round, the pending sessions whose dependencies failed. */
void baic_policy_free(baic_policy_t *p);

/*
 * Every predicate for one pending session (row: the scheduler's pending row with id,
 * access_key, user_id, group_id, domain_name, sgroup, image_resources, cluster_size and
 * BAIC_POLICY_PAGE_COLS; need: its
 * requested slots). NULL when all pass, else the denial to record:
 * {"info": "predicate-checks-failed", "msg": first failure, "failed": [{"name","msg"}],
 *  "passed": [{"name"}]}. Caller owns it.
 */
json_t *baic_policy_check(baic_policy_t *p, const json_t *row, const baic_slots_t *need);
/* Books a placed session's slots to its keypair, user, project and domain. */
void baic_policy_place(baic_policy_t *p, const json_t *row, const baic_slots_t *need);
/* Whether an agent already running n_kernels kernels may take one more
 * (shared_config 'config/agent/max-container-count'). */
int baic_policy_agent_ok(const baic_policy_t *p, uint32_t n_kernels);

/* Cancels every PENDING session one of whose dependencies (directly or through
 * another cancelled session) ended other than TERMINATED with result SUCCESS. */
void baic_policy_cancel_dependants(struct baic_manager *m);

/* ---- session creation (api/session_policy.c) ---- */

typedef struct baic_create_policy {
    json_t *deps;       /* array of the references given, NULL when none */
    char starts_at[40]; /* ISO UTC, "" when none */
    char *dep_ids;      /* JSON array of resolved session ids for the insert, or NULL */
} baic_create_policy_t;

/* Reads dependencies and starts_at|startsAt from the create body. Answers 400 and
 * returns -1 on bad input. */
struct baic_http_req;
int baic_create_policy_parse(struct baic_http_req *req, const json_t *body, const char *type,
                             baic_create_policy_t *out);
void baic_create_policy_clear(baic_create_policy_t *p);
/* The parameter the create context query takes for the dependency references. */
const char *baic_create_policy_refs(const baic_create_policy_t *p, char **owned);
/* Extra columns of the create context query ($5 access key, $9 references as JSON):
 * deps, pending_slots, max_pending_slots, max_containers. */
#define BAIC_CREATE_POLICY_COLUMNS                                                             \
    " (SELECT json_agg(json_build_object('ref', r.ref, 'id', (SELECT s.id::text FROM sessions s" \
    "   WHERE s.access_key = $5 AND (s.name = r.ref OR s.id::text = lower(r.ref))"              \
    "   ORDER BY (s.status NOT IN ('TERMINATED','ERROR','CANCELLED')) DESC, s.created_at DESC"   \
    "   LIMIT 1)))::text FROM json_array_elements_text(COALESCE($9::json, '[]')) r(ref))"        \
    "   AS deps,"                                                                              \
    " (SELECT COALESCE(jsonb_object_agg(key, total), '{}')::text FROM (SELECT e.key,"           \
    "   sum((e.value #>> '{}')::numeric)::text AS total FROM sessions s,"                       \
    "   jsonb_each(s.requested_slots) e WHERE s.access_key = $5 AND s.status = 'PENDING'"       \
    "   GROUP BY e.key) x) AS pending_slots,"                                                  \
    " (SELECT p.max_pending_session_resource_slots::text FROM keypairs k"                       \
    "   JOIN keypair_resource_policies p ON p.name = k.resource_policy WHERE k.access_key = $5)" \
    "   AS max_pending_slots,"                                                                 \
    " (SELECT p.max_containers_per_session FROM keypairs k JOIN keypair_resource_policies p"    \
    "   ON p.name = k.resource_policy WHERE k.access_key = $5) AS max_containers"
/* Checks the context row (dependencies resolved, pending-slot and container limits);
 * answers 404/412 and returns -1 when refused; fills p->dep_ids. */
struct baic_db_result;
int baic_create_policy_check(struct baic_http_req *req, const struct baic_db_result *res,
                             const json_t *req_slots, const json_t *types, int cluster_size,
                             baic_create_policy_t *p);

/* ---- admin: agent drain (api/agent_admin.c) ---- */
int baic_api_agent_admin_init(struct baic_manager *m);

#endif
