/* SPDX-License-Identifier: Apache-2.0 */
/* The manager daemon's shared state and the helpers every API file uses. */
#ifndef BAIC_MANAGER_H
#define BAIC_MANAGER_H

#include <jansson.h>
#include <uv.h>

#include "auth/sign.h"
#include "db/db.h"
#include "events/bus.h"
#include "host/host.h"
#include "http/http.h"
#include "loop/loop.h"
#include "redis/redis.h"
#include "registry/registry.h"

#define BAIC_API_VERSION "v8.20240915"
#define BAIC_MANAGER_VERSION "24.09.0-baic" BAIC_VERSION

typedef struct baic_keycache baic_keycache_t;

typedef struct baic_manager {
    baic_loop_t *loop;
    uv_loop_t *uv;
    json_t *config;
    const char *config_path;
    baic_host_ctx_t *host;
    baic_registry_t *registry;
    baic_http_server_t *http;
    baic_db_pool_t *db;
    baic_redis_t *redis;     /* commands: rate limits, pub/sub publish */
    baic_redis_t *redis_sub; /* pub/sub subscriber connection */
    baic_keycache_t *keys;
    struct baic_ratelimit *ratelimit;
    const baic_plugin_t *auth_plugin;
    unsigned rate_window_s;
    struct api_route *routes;
    uv_timer_t stats_timer;
    baic_bus_t *bus;               /* session and agent events (core/events) */
    struct baic_agents *agents;    /* agents.c: agent registry, RPC, session watchers */
    struct baic_sched *sched;      /* scheduler.c: scheduling rounds and deadlines */
    const char *cluster_secret;    /* [manager] cluster_secret: RPC to agents */
    int ping_inflight;
    uint64_t ping_sent_us;
    int closing;
} baic_manager_t;

/* Who is calling: filled by the auth layer, arena-allocated per request. */
typedef struct baic_caller {
    const char *access_key;
    const char *user_uuid;
    const char *email;
    const char *role;   /* superadmin, admin, user, monitor */
    const char *domain;
    int is_admin;       /* keypair is_admin or role superadmin/admin */
    int is_superadmin;
    const char *api_version; /* negotiated (X-BackendAI-Version) */
} baic_caller_t;

/* Route access levels. */
enum {
    BAIC_ROUTE_PUBLIC = 0,     /* no signature needed */
    BAIC_ROUTE_USER = 1,       /* any active keypair */
    BAIC_ROUTE_ADMIN = 2,      /* domain admin or superadmin */
    BAIC_ROUTE_SUPERADMIN = 3, /* superadmin only */
};

typedef void (*baic_api_fn)(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who);

/* Registers a route whose handler runs after authentication at the given level.
 * max_body 0 = server default. Returns 0 or a negative code. */
int baic_api_route(baic_manager_t *m, const char *method, const char *pattern, int level,
                   baic_api_fn fn, size_t max_body);

/* Frees the route table (after the HTTP server has closed). */
void baic_api_routes_free(baic_manager_t *m);

/* Each API area registers its routes. */
int baic_api_root_init(baic_manager_t *m);
int baic_api_config_init(baic_manager_t *m);
void baic_api_config_fini(void);
int baic_api_resource_init(baic_manager_t *m);
int baic_api_auth_init(baic_manager_t *m);
int baic_api_admin_init(baic_manager_t *m);

/* Problem answers used everywhere (api-contract §7). */
void baic_api_bad_request(baic_http_req_t *req, const char *msg);
void baic_api_invalid_params(baic_http_req_t *req, const char *msg);
void baic_api_not_found(baic_http_req_t *req, const char *what, const char *msg);
void baic_api_forbidden(baic_http_req_t *req, const char *msg);
void baic_api_internal(baic_http_req_t *req, const char *msg);
void baic_api_unavailable(baic_http_req_t *req, const char *msg);
/* Parses the request body as a JSON object (empty body = {}); on failure answers 400
 * invalid-api-params naming the position and returns NULL. Caller decrefs. */
json_t *baic_api_json_body(baic_http_req_t *req);

/* A pending asynchronous step: remembers whether the client went away meanwhile. */
typedef struct baic_api_op {
    baic_http_req_t *req;
    baic_manager_t *m;
    const baic_caller_t *who;
    int aborted;
    void *data;
} baic_api_op_t;
/* Allocates op in req's arena and registers the abort callback. */
baic_api_op_t *baic_api_op_new(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who);
/* True (and releases the request) when the client went away: callbacks return at once. */
int baic_api_op_gone(baic_api_op_t *op);

/* Keypair cache (core/manager/keycache.c). */
typedef struct baic_keypair {
    char *access_key, *secret_key, *user_uuid, *email, *role, *domain, *status;
    int is_active, is_admin;
    long long rate_limit;
    uint64_t loaded_ms;
    baic_auth_kcache_t kc; /* derived signing key, reused while day and host hold */
} baic_keypair_t;
/* kp is owned by the cache and valid for the call only. */
typedef void (*baic_keycache_cb)(baic_keypair_t *kp /*NULL: not found*/, int err, void *arg);
int baic_keycache_new(baic_manager_t *m, unsigned ttl_ms, baic_keycache_t **out);
void baic_keycache_free(baic_keycache_t *c);
/* Looks access_key up (cache, then database); cb may run synchronously on a hit. */
void baic_keycache_get(baic_keycache_t *c, const char *access_key, baic_keycache_cb cb, void *arg);
/* Drops one key (NULL: all) here and tells the other managers over Redis pub/sub. */
void baic_keycache_invalidate(baic_keycache_t *c, const char *access_key);
/* Drops locally only (called for pub/sub messages). */
void baic_keycache_drop(baic_keycache_t *c, const char *access_key);

/* Redis pub/sub channel carrying keypair invalidations between managers. */
#define BAIC_KEYCACHE_CHANNEL "baic:keypair-invalidate"

/* ---- Kernel lifecycle (agents.c, scheduler.c, images.c, api/session.c) ---- */

/* Streams and channels of docs/agent-protocol.md and the session events for SSE. */
#define BAIC_AGENT_EVENTS "baic:agent-events"
#define BAIC_SESSION_EVENTS "baic:session-events"
#define BAIC_SCHED_WAKE_CHANNEL "baic:scheduler-wake"

/* SQL lists of kernel/session statuses: holding resources, and final. */
#define BAIC_LIVE_STATUSES "('SCHEDULED','PREPARING','PULLING','PREPARED','CREATING','RUNNING'," \
                           "'RESTARTING','RUNNING_DEGRADED','TERMINATING')"
#define BAIC_FINAL_STATUSES "('TERMINATED','ERROR','CANCELLED')"

/* Starts the agent-event consumer, the LOST timer and the session-event reader. */
int baic_agents_init(baic_manager_t *m);
void baic_agents_fini(baic_manager_t *m);
/* Starts the scheduler (wake-ups, safety tick, deadline sweep). */
int baic_scheduler_init(baic_manager_t *m);
void baic_scheduler_fini(baic_manager_t *m);
/* Asks for a scheduling round soon, here and (via pub/sub) on the other managers. */
void baic_scheduler_wake(baic_manager_t *m);
int baic_api_session_init(baic_manager_t *m);
int baic_api_images_init(baic_manager_t *m);
/* Execution and files (api/execute.c), websocket streams (api/stream.c), SSE (api/events.c). */
int baic_api_execute_init(baic_manager_t *m);
int baic_api_stream_init(baic_manager_t *m);
int baic_api_events_init(baic_manager_t *m);

/* The main kernel of a caller's live session (api/execute.c). */
typedef struct baic_kref {
    char session_id[40], session_name[72], status[32];
    char kernel_id[40], kstatus[32], addr[256]; /* kernel fields "" when none */
} baic_kref_t;
/* k NULL: no live session by that name or id for access_key (err 0) or a database error. */
typedef void (*baic_kref_cb)(const baic_kref_t *k, int err, void *arg);
int baic_kernel_lookup(baic_manager_t *m, const char *ref, const char *access_key,
                       baic_kref_cb cb, void *arg);
/* The access key a session call acts for (owner_access_key for admins); NULL after 403. */
const char *baic_api_owner_key(baic_http_req_t *req, const baic_caller_t *who);
/* Answers a failed agent RPC as problem JSON (transport error, agent without relay, ...). */
void baic_api_agent_error(baic_http_req_t *req, int status, const json_t *answer, int err);
/* The api-contract §3 execute result from an agent's execute answer. */
json_t *baic_exec_result(const json_t *answer, const char *run_id);

/* Publishes a session or kernel event on BAIC_SESSION_EVENTS (SSE body keys of
 * api-contract §3). kernel_id NULL for session events; reason may be NULL. */
void baic_session_event(baic_manager_t *m, const char *name, const char *session_id,
                        const char *session_name, const char *access_key, const char *reason,
                        const char *kernel_id, int exit_code);

/* Manager -> agent RPC (docs/agent-protocol.md, cluster HMAC). body may be NULL (GET).
 * cb gets the HTTP status (0 on transport error), the parsed JSON answer (borrowed,
 * may be NULL) and err < 0 on transport failure. Returns 0 or a negative code (no cb). */
typedef void (*baic_agent_rpc_cb)(int status, json_t *answer, int err, void *arg);
int baic_agent_rpc(baic_manager_t *m, const char *addr, const char *method, const char *path,
                   json_t *body, unsigned timeout_ms, baic_agent_rpc_cb cb, void *arg);
/* Whether a create_kernels answer means the agent has the kernels: 202, or 409
 * kernel-already-exists when a launch is sent again (scheduler relaunch). */
int baic_agent_create_accepted(int status, const json_t *answer, int err);
/* The cluster-auth header values (Date, X-BaiC-Cluster-Auth) of one RPC request. */
void baic_agent_auth(baic_manager_t *m, const char *method, const char *path, const void *body,
                     size_t len, char date[32], char mac_hex[65]);
/* Sends destroy_kernel and forgets the answer (recovery paths). */
void baic_agent_destroy_kernel(baic_manager_t *m, const char *addr, const char *kernel_id,
                               const char *reason);

/* Moves one kernel forward to status if it is in one of from ("{A,B}"), the session
 * following when it is in one of them too (RUNNING: once all its kernels run); publishes
 * kname and, when the session moved, sname. Batched with the agents' kernel events: the
 * update goes out on the next loop turn. 0, or a negative error (nothing sent). */
int baic_kernel_forward(baic_manager_t *m, const char *kernel_id, const char *status,
                        const char *from, const char *kname, const char *sname);

/* Moves one kernel to a final status (TERMINATED or ERROR) with the session following
 * when all its kernels are final; publishes the events and wakes the scheduler. */
void baic_kernel_finish(baic_manager_t *m, const char *kernel_id, const char *status,
                        const char *reason, int exit_code);

/* Watches a session's status changes (from BAIC_SESSION_EVENTS, so changes made by
 * any manager count). cb may run many times until baic_session_unwatch. */
typedef struct baic_session_watch baic_session_watch_t;
typedef void (*baic_session_watch_cb)(void *arg);
baic_session_watch_t *baic_session_watch(baic_manager_t *m, const char *session_id,
                                         baic_session_watch_cb cb, void *arg);
void baic_session_unwatch(baic_session_watch_t *w);

/* A request waiting for a session (session_wait.c): reads the session with sql ($1 = its id)
 * on every change of it and every tick_ms, and hands each row to decide, which returns 1 once
 * it answered req. After max_ms (0 = never) timeout answers req instead. A client that goes
 * away ends the wait too. end(arg) runs once when it is over, after any query in flight; arg
 * may be freed there. NULL when out of memory (nothing started). */
typedef struct baic_session_wait baic_session_wait_t;
typedef int (*baic_session_wait_decide_fn)(baic_http_req_t *req, const baic_db_result_t *res,
                                           void *arg);
typedef void (*baic_session_wait_timeout_fn)(baic_http_req_t *req, void *arg);
typedef void (*baic_session_wait_end_fn)(void *arg);
baic_session_wait_t *baic_session_wait_start(baic_manager_t *m, baic_http_req_t *req,
                                             const char *session_id, const char *sql,
                                             uint64_t tick_ms, uint64_t max_ms,
                                             baic_session_wait_decide_fn decide,
                                             baic_session_wait_timeout_fn timeout,
                                             baic_session_wait_end_fn end, void *arg);
/* Reads the session again now. */
void baic_session_wait_poke(baic_session_wait_t *w);
/* Ends the wait without answering: the caller answers req itself. */
void baic_session_wait_cancel(baic_session_wait_t *w);

/* Slot amounts: "1", "0.5", "256m", "1g" -> fixed point (count slots, BAIC_SLOT_UNIT
 * per unit) or bytes (bytes slots; k/m/g/t/p binary suffixes). 0 or -EINVAL. */
int baic_slot_parse(const char *text, int bytes, int64_t *out);
/* The decimal string the API and the database use ("1", "0.5", "268435456"). */
void baic_slot_format(int64_t v, int bytes, char *buf, size_t n);

/* Resolves an image reference (alias, canonical name, name without registry) to
 * one images row: id, name, registry, tag, architecture, labels, resources.
 * $1 = reference, $2 = architecture or NULL. */
extern const char BAIC_IMAGE_RESOLVE_SQL[];

/* Called for every event the manager consumes from the bus: records the bus lag
 * (Redis entry id time to now) and hands the event to monitor plugins (on_event). */
struct baic_bus_event;
void baic_manager_observe_event(baic_manager_t *m, const struct baic_bus_event *ev);

/* ---- Session control (api/session_ops.c) ---- */
/* PATCH /session/{ref} (restart), POST /session/{ref}/rename, GET /session/{ref}/logs. */
int baic_api_session_ops_init(baic_manager_t *m);
/* ^(?=.{4,64}$)\w[\w.-]*\w$ over ASCII, the rule for session names (api/session.c). */
int baic_session_name_ok(const char *s);
/* POST /session with an owner_access_key other than the caller's: 403 for non-admins;
 * otherwise looks the keypair up (same domain unless superadmin) and calls again with
 * a caller standing for the owner, so the session is created as the owner's. */
void baic_session_create_for_owner(baic_http_req_t *req, baic_manager_t *m,
                                   const baic_caller_t *who, const char *owner_key,
                                   baic_api_fn again);
/* The domain a session lookup is confined to: NULL for the caller's own key or a
 * superadmin, else the caller's domain (a domain admin's owner_access_key reaches only
 * sessions of that domain; others are not found). */
const char *baic_session_domain_scope(const baic_caller_t *who, const char *key);
/* Keeps a kernel's last console output (kernels.container_log) for GET .../logs. */
void baic_kernel_store_log(baic_manager_t *m, const char *kernel_id, const char *text);

/* ---- Cluster sessions (cluster.c, docs/cluster-sessions.md) ---- */
/* clusterMode of POST /session: NULL/absent = single-node. 0, or -1 answered. */
int baic_cluster_mode_arg(baic_http_req_t *req, const json_t *v, char *out, size_t n);
/* The session's requested slots: one kernel's times n (new reference). */
json_t *baic_cluster_total_slots(const json_t *per_kernel, const json_t *types, int n);
/* After the allocation commit: create every kernel of a cluster session (row: the
 * scheduler's pending row of its main kernel); any refusal ends all of them. */
void baic_cluster_launch(baic_manager_t *m, const json_t *row);
/* A kernel of the session ended while others live: in a cluster session the others are
 * destroyed too (a cluster runs whole or not at all). */
void baic_cluster_member_ended(baic_manager_t *m, const char *session_id);
/* The create_kernels entry of a scheduler row's kernel (scheduler.c). */
json_t *baic_sched_kernel_spec(const json_t *row);

/* Current wall-clock time in milliseconds. */
int64_t baic_wall_ms(void);

#endif
