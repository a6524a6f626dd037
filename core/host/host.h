/* SPDX-License-Identifier: Apache-2.0 */
/* The daemon side of the host table: one context per daemon, one table per plugin. */
#ifndef BAIC_CORE_HOST_H
#define BAIC_CORE_HOST_H

#include <uv.h>

#include <baic/host.h>

#include "host/metrics.h"
#include "registry/registry.h"

typedef struct baic_host_ctx baic_host_ctx_t;

/*
 * Forwards events a plugin publishes to the daemon's bus (Redis Streams in the
 * manager). Without a sink, events are only delivered to local subscribers.
 */
typedef int (*baic_event_sink)(void *arg, const char *name, const json_t *body);

/* config: the daemon's whole config tree (borrowed; must outlive ctx). */
int baic_host_ctx_new(uv_loop_t *loop, const json_t *config, baic_host_ctx_t **out);
/* Stops timers still running and frees subscriptions. Call after the registry is freed. */
void baic_host_ctx_free(baic_host_ctx_t *ctx);
baic_metrics_t *baic_host_ctx_metrics(baic_host_ctx_t *ctx);
uv_loop_t *baic_host_ctx_loop(baic_host_ctx_t *ctx);
void baic_host_ctx_set_event_sink(baic_host_ctx_t *ctx, baic_event_sink sink, void *arg);
/* Delivers an event to local subscribers (also used for events arriving from the bus). */
void baic_host_ctx_dispatch(baic_host_ctx_t *ctx, const char *name, const json_t *body);

/* A host table for plugin_id ("kind/name"); free with baic_host_table_free. */
baic_host_t *baic_host_table_new(baic_host_ctx_t *ctx, const char *plugin_id);
void baic_host_table_free(baic_host_t *host);

/* Creates a registry whose plugins get host tables from ctx, with the default paths. */
int baic_host_registry_new(baic_host_ctx_t *ctx, baic_registry_t **out);

#endif
