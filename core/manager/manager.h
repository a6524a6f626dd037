/* SPDX-License-Identifier: Apache-2.0 */
/* The manager daemon's shared state and the helpers every API file uses. */
#ifndef BAIC_MANAGER_H
#define BAIC_MANAGER_H

#include <jansson.h>
#include <uv.h>

#include "auth/sign.h"
#include "db/db.h"
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

/* Current wall-clock time in milliseconds. */
int64_t baic_wall_ms(void);

#endif
