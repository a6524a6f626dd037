/* SPDX-License-Identifier: Apache-2.0 */
/* Manager start-up and shutdown: plugins, database, Redis, HTTP routes, metrics. */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include <baic/monitor.h>

#include "config/config.h"
#include "config/daemon.h"
#include "storage_client.h"
#include "vfolder_mounts.h"
#include "events/bus.h"
#include "log/log.h"
#include "policy.h"
#include "ratelimit.h"
#include "reconcile.h"
#include "util/strerror.h"

/* ---- request metrics ---- */

static void observe(const baic_http_req_t *req, const char *pattern, int status,
                    uint64_t duration_us, void *arg) {
    baic_manager_t *m = arg;
    baic_metrics_t *mx = baic_host_ctx_metrics(m->host);
    char labels[256];
    snprintf(labels, sizeof labels, "route=\"%s\",method=\"%s\",status=\"%d\"",
             pattern ? pattern : "unmatched", baic_http_method(req), status);
    baic_metrics_add(mx, "baic_http_requests_total", "HTTP requests answered", labels, 1);
    snprintf(labels, sizeof labels, "route=\"%s\"", pattern ? pattern : "unmatched");
    baic_metrics_observe(mx, "baic_http_request_duration_seconds",
                         "HTTP request latency from first byte to last byte written", labels,
                         (double)duration_us / 1e6);
}

static void on_ping(redisReply *reply, int err, const char *errmsg, void *arg) {
    baic_manager_t *m = arg;
    (void)reply;
    (void)errmsg;
    m->ping_inflight = 0;
    if (err == 0)
        baic_metrics_observe(baic_host_ctx_metrics(m->host), "baic_redis_roundtrip_seconds",
                             "Redis PING round trip, sampled every second", NULL,
                             (double)(uv_hrtime() / 1000 - m->ping_sent_us) / 1e6);
}

static void stats_tick(uv_timer_t *t) {
    baic_manager_t *m = t->data;
    baic_metrics_t *mx = baic_host_ctx_metrics(m->host);
    baic_db_stats_t st;
    baic_db_pool_stats(m->db, &st);
    baic_metrics_set(mx, "baic_db_pool_connections", "Database connections by state",
                     "state=\"busy\"", st.in_use);
    baic_metrics_set(mx, "baic_db_pool_connections", "Database connections by state",
                     "state=\"idle\"", st.idle);
    baic_metrics_set(mx, "baic_db_pool_waiting", "Queries waiting for a connection", NULL,
                     st.waiting);
    /* Cumulative figures from the pool, exported as gauges that only grow: divide
     * the sum by the count over a scrape interval for the mean query latency. */
    baic_metrics_set(mx, "baic_db_query_count", "Queries completed since start", NULL,
                     (double)st.queries);
    baic_metrics_set(mx, "baic_db_query_seconds_sum", "Total query latency since start", NULL,
                     (double)st.latency_us_sum / 1e6);
    baic_metrics_set(mx, "baic_db_errors", "Queries failed since start", NULL, (double)st.errors);
    baic_metrics_set(mx, "baic_db_reconnects", "Database reconnections since start", NULL,
                     (double)st.reconnects);
    baic_metrics_set(mx, "baic_redis_connected", "1 when the Redis connection is up", NULL,
                     baic_redis_connected(m->redis) ? 1 : 0);
    /* Redis round trip, measured with a PING each tick: what every rate-limited
     * request and every bus event waits for on top of its own work. */
    if (baic_redis_connected(m->redis) && !m->ping_inflight) {
        const char *argv[1] = {"PING"};
        m->ping_inflight = 1;
        m->ping_sent_us = uv_hrtime() / 1000;
        if (baic_redis_cmd_argv(m->redis, 1, argv, NULL, on_ping, m) != 0)
            m->ping_inflight = 0;
    }
    baic_metrics_set(mx, "baic_http_open_connections", "Open client connections", NULL,
                     baic_http_server_connections(m->http));
}

/* ---- events seen on the bus ---- */

void baic_manager_observe_event(baic_manager_t *m, const baic_bus_event_t *ev) {
    /* A stream entry id starts with the Redis server's clock in ms at XADD. */
    long long added = strtoll(ev->id, NULL, 10);
    if (added > 0) {
        char labels[160];
        snprintf(labels, sizeof labels, "stream=\"%.100s\"", ev->stream);
        double lag = (double)(baic_wall_ms() - added) / 1000.0;
        baic_metrics_observe(baic_host_ctx_metrics(m->host), "baic_bus_lag_seconds",
                             "Time from an event's XADD to this manager handling it", labels,
                             lag < 0 ? 0 : lag);
    }
    if (m->registry == NULL)
        return;
    for (size_t i = 0; i < baic_registry_count(m->registry); i++) {
        const baic_plugin_t *p = baic_registry_at(m->registry, i);
        if (p->kind != BAIC_KIND_MONITOR)
            continue;
        const baic_monitor_ops_t *ops = p->ops;
        if (ops->on_event != NULL)
            ops->on_event(p->state, ev->name, ev->body);
    }
}

/* ---- start and stop ---- */

/* Pub/sub messages arrive as ["message", channel, payload]. A lost message only
 * delays an invalidation until the cache entry's TTL runs out. */
static void on_pubsub(redisReply *reply, int err, const char *errmsg, void *arg) {
    baic_manager_t *m = arg;
    (void)errmsg;
    if (err != 0 || reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3)
        return;
    redisReply *kind = reply->element[0], *chan = reply->element[1], *msg = reply->element[2];
    if (kind->type != REDIS_REPLY_STRING || strcmp(kind->str, "message") != 0 ||
        chan->type != REDIS_REPLY_STRING || msg->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(chan->str, BAIC_KEYCACHE_CHANNEL) == 0 && m->keys != NULL)
        baic_keycache_drop(m->keys, strcmp(msg->str, "*") == 0 ? NULL : msg->str);
}

/* (Re)subscribes after every connect; anything missed while down is covered by
 * dropping the whole cache, since invalidations may have been lost. */
static void on_sub_connect(baic_redis_t *r, void *arg) {
    baic_manager_t *m = arg;
    const char *argv[2] = {"SUBSCRIBE", BAIC_KEYCACHE_CHANNEL};
    size_t lens[2] = {9, strlen(BAIC_KEYCACHE_CHANNEL)};
    if (m->keys != NULL)
        baic_keycache_drop(m->keys, NULL);
    baic_redis_cmd_argv(r, 2, argv, lens, on_pubsub, m);
}

static void shutdown_cb(baic_loop_t *loop, int signum, void *arg) {
    baic_manager_t *m = arg;
    (void)loop;
    (void)signum;
    if (m->closing++)
        return;
    baic_scheduler_fini(m);
    baic_agents_fini(m);
    /* Start-up may have failed before the timer existed. */
    if (m->stats_timer.data != NULL) {
        uv_timer_stop(&m->stats_timer);
        uv_close((uv_handle_t *)&m->stats_timer, NULL);
    }
    if (m->http)
        baic_http_server_close(m->http, NULL, NULL);
    /* Plugins stop their own listeners and timers in fini. */
    baic_registry_free(m->registry);
    m->registry = NULL;
    baic_ratelimit_close(m->ratelimit);
    m->ratelimit = NULL;
    if (m->bus)
        baic_bus_close(m->bus, NULL, NULL);
    if (m->redis_sub)
        baic_redis_close(m->redis_sub, NULL, NULL);
    if (m->redis)
        baic_redis_close(m->redis, NULL, NULL);
    if (m->db)
        baic_db_pool_close(m->db, NULL, NULL);
}

const char *baic_manager_dsn(const json_t *config) {
    const char *env = getenv("BAIC_DB_DSN");
    if (env != NULL && *env != '\0')
        return env;
    const char *dsn = NULL;
    if (baic_cfg_str(config, "db.dsn", "dbname=baic", &dsn) != 0)
        return NULL;
    return dsn;
}

int baic_manager_serve(json_t *config) {
    baic_manager_t mgr, *m = &mgr;
    memset(m, 0, sizeof *m);
    m->config = config;
    char err[1024];
    int rc;

    const char *listen, *redis_host, *redis_pw, *tls_cert, *tls_key, *auth_name;
    long long pool_size, redis_port, max_body, max_conns, key_ttl, rate_window;
    if (baic_cfg_str(config, "manager.listen", "127.0.0.1:8081", &listen) ||
        baic_cfg_str(config, "manager.tls_cert", NULL, &tls_cert) ||
        baic_cfg_str(config, "manager.tls_key", NULL, &tls_key) ||
        baic_cfg_str(config, "manager.auth", "password", &auth_name) ||
        baic_cfg_int(config, "manager.max_body_bytes", 1 << 20, &max_body) ||
        baic_cfg_int(config, "manager.max_connections", 4096, &max_conns) ||
        baic_cfg_int(config, "manager.keypair_cache_ttl_ms", 30000, &key_ttl) ||
        baic_cfg_int(config, "manager.rate_limit_window_s", 900, &rate_window) ||
        baic_cfg_int(config, "db.pool_size", 8, &pool_size) ||
        baic_cfg_str(config, "redis.host", "127.0.0.1", &redis_host) ||
        baic_cfg_int(config, "redis.port", 6379, &redis_port) ||
        baic_cfg_str(config, "redis.password", NULL, &redis_pw) ||
        baic_cfg_str(config, "manager.cluster_secret", getenv("BAIC_CLUSTER_SECRET"),
                &m->cluster_secret))
        return 2;
    if (m->cluster_secret == NULL || *m->cluster_secret == '\0')
        BAIC_LOG_W("no_cluster_secret", "hint=\"set [manager] cluster_secret as in agent.toml; "
                   "agents refuse RPC meanwhile\"");
    const char *dsn = baic_manager_dsn(config);
    if (dsn == NULL)
        return 2;
    if (rate_window < 1 || rate_window > 86400) {
        BAIC_LOG_E("config_error", "msg=\"manager.rate_limit_window_s must be 1..86400\"");
        return 2;
    }
    m->rate_window_s = (unsigned)rate_window;

    if ((rc = baic_loop_new(shutdown_cb, m, &m->loop)) != 0) {
        BAIC_LOG_E("loop_init_failed", "error=\"%s\"", baic_strerror(rc));
        return 1;
    }
    m->uv = baic_loop_uv(m->loop);
    if ((rc = baic_host_ctx_new(m->uv, config, &m->host)) != 0)
        goto fail;
    if ((rc = baic_host_registry_new(m->host, &m->registry)) != 0)
        goto fail;
    if ((rc = baic_registry_load_config(m->registry, config, err, sizeof err)) != 0) {
        BAIC_LOG_E("plugin_load_failed", "msg=\"%s\"", err);
        goto fail;
    }
    m->auth_plugin = baic_registry_find(m->registry, BAIC_KIND_AUTH, auth_name);
    if (m->auth_plugin == NULL)
        BAIC_LOG_W("no_auth_plugin", "plugin=auth/%s hint=\"add it to [plugins] load; "
                   "POST /auth/authorize answers not-implemented meanwhile\"", auth_name);

    if ((rc = baic_db_pool_new(m->uv, dsn, (int)pool_size, &m->db)) != 0) {
        BAIC_LOG_E("db_init_failed", "error=\"%s\"", baic_strerror(rc));
        goto fail;
    }
    if ((rc = baic_redis_new(m->uv, redis_host, (int)redis_port, redis_pw, &m->redis)) != 0 ||
        (rc = baic_redis_new(m->uv, redis_host, (int)redis_port, redis_pw, &m->redis_sub)) != 0) {
        BAIC_LOG_E("redis_init_failed", "error=\"%s\"", baic_strerror(rc));
        goto fail;
    }
    if ((rc = baic_keycache_new(m, (unsigned)key_ttl, &m->keys)) != 0 ||
        (rc = baic_ratelimit_new(m, &m->ratelimit)) != 0)
        goto fail;
    baic_redis_set_connect_cb(m->redis_sub, on_sub_connect, m);
    if ((rc = baic_bus_new(m->uv, redis_host, (int)redis_port, redis_pw, &m->bus)) != 0) {
        BAIC_LOG_E("bus_init_failed", "error=\"%s\"", baic_strerror(rc));
        goto fail;
    }

    baic_http_config_t hc = {
        .listen = listen,
        .max_body_bytes = (size_t)max_body,
        .max_connections = (unsigned)max_conns,
        .server_name = "BackendAI",
        .tls_cert_file = tls_cert,
        .tls_key_file = tls_key,
    };
    if ((rc = baic_http_server_new(m->uv, &hc, &m->http)) != 0) {
        BAIC_LOG_E("listen_failed", "addr=%s error=\"%s\"", listen, baic_strerror(rc));
        goto fail;
    }
    baic_http_set_observer(m->http, observe, m);
    if ((rc = baic_api_root_init(m)) || (rc = baic_api_config_init(m)) ||
        (rc = baic_api_resource_init(m)) || (rc = baic_api_auth_init(m)) ||
        (rc = baic_api_admin_init(m)) || (rc = baic_api_session_init(m)) ||
        (rc = baic_api_images_init(m)) || (rc = baic_api_execute_init(m)) ||
        (rc = baic_api_stream_init(m)) || (rc = baic_api_events_init(m)) ||
        (rc = baic_api_agent_admin_init(m)) || (rc = baic_api_vfolder_init(m)) ||
        (rc = baic_api_reconcile_init(m))) {
        BAIC_LOG_E("route_init_failed", "error=\"%s\"", baic_strerror(rc));
        goto fail;
    }
    uv_timer_init(m->uv, &m->stats_timer);
    m->stats_timer.data = m;
    uv_timer_start(&m->stats_timer, stats_tick, 0, 1000);
    if ((rc = baic_agents_init(m)) != 0 || (rc = baic_scheduler_init(m)) != 0) {
        BAIC_LOG_E("lifecycle_init_failed", "error=\"%s\"", baic_strerror(rc));
        goto fail;
    }

    BAIC_LOG_I("manager_started", "listen=%s port=%d api_version=%s version=%s pid=%d", listen,
               baic_http_server_port(m->http), BAIC_API_VERSION, BAIC_MANAGER_VERSION,
               (int)getpid());
    baic_loop_run(m->loop);
    rc = 0;
    goto done;

fail:
    if (m->loop != NULL)
        shutdown_cb(m->loop, 0, m);
    rc = rc ? rc : 1;
done:
    if (m->loop != NULL)
        baic_loop_free(m->loop);
    baic_api_routes_free(m);
    baic_api_config_fini();
    baic_storage_fini();
    baic_keycache_free(m->keys);
    baic_host_ctx_free(m->host);
    BAIC_LOG_I("manager_stopped", NULL);
    return rc == 0 ? 0 : 1;
}
