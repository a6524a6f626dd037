/* SPDX-License-Identifier: Apache-2.0 */
/* The event bus: session, kernel and agent events on Redis Streams; pub/sub for best-effort notices. */
#ifndef BAIC_CORE_EVENTS_BUS_H
#define BAIC_CORE_EVENTS_BUS_H

#include <jansson.h>
#include <uv.h>

#include <baic/errors.h>

/*
 * Each event is one stream entry with two fields: `name` (e.g. "session_started") and
 * `body` (compact JSON). Streams are capped with XADD MAXLEN ~ (default 100000 entries).
 *
 * Delivery:
 *  - consumer groups (baic_bus_consume): at-least-once. On every (re)connect the group
 *    is created if missing (XGROUP CREATE ... $ MKSTREAM), this consumer's pending
 *    entries (delivered, never acknowledged, e.g. before a crash) are handed over
 *    again, then new entries are read with XREADGROUP BLOCK. An entry is XACKed after
 *    the handler returns 0; a non-zero return leaves it pending for redelivery at the
 *    next reconnect. Entries another consumer of the group left unacknowledged for 30 s
 *    (a process that died; consumers are named per process) are taken over (XAUTOCLAIM,
 *    checked every 10 s between reads) and handled here.
 *  - resumable readers (baic_bus_read_from): every entry after a given id, in order,
 *    with the id to remember (SSE's Last-Event-ID). Resuming across a Redis restart
 *    needs a Redis that persists its data (AOF/RDB).
 *  - pub/sub (baic_bus_notify/baic_bus_listen): fire and forget; a message sent while
 *    a listener is reconnecting is lost. Only for hints whose loss does no harm
 *    (e.g. "wake up, there may be work").
 * Every reader holds a Redis connection of its own (blocking reads).
 *
 * Threading: the loop thread that created the bus, for all calls and callbacks.
 */

typedef struct baic_bus baic_bus_t;
typedef struct baic_bus_sub baic_bus_sub_t;

typedef struct baic_bus_event {
    const char *stream;
    const char *id;    /* stream entry id, "1700000000000-0" */
    const char *name;  /* "" when the entry has no name field */
    json_t *body;      /* borrowed: json_incref() to keep it; JSON null if unparsable */
} baic_bus_event_t;

/* Returns 0 to acknowledge (consumer groups), non-zero to leave it pending: refused, or
 * to be acknowledged with baic_bus_ack once the handler's work is durable (unacknowledged,
 * it is handled again: at the next reconnect, or claimed after 30 s idle).
 * Ignored for resumable readers. ev and its strings live only during the call. */
typedef int (*baic_bus_handler)(const baic_bus_event_t *ev, void *arg);
/* Publish result: id of the new entry on success (err 0), else NULL and err < 0. */
typedef void (*baic_bus_pub_cb)(const char *id, int err, void *arg);
/* Pub/sub message. */
typedef void (*baic_bus_notify_cb)(const char *channel, const char *msg, size_t len, void *arg);
typedef void (*baic_bus_close_cb)(void *arg);

/* Connects the bus's publishing connection. host/port/password as baic_redis_new().
 * Returns 0 with *out owned by the caller until baic_bus_close(), -EINVAL, -ENOMEM. */
int baic_bus_new(uv_loop_t *loop, const char *host, int port, const char *password,
                 baic_bus_t **out);
/* Approximate cap per stream for later publishes (0 = uncapped). */
void baic_bus_set_maxlen(baic_bus_t *bus, long maxlen);
/* Consumer groups: how often a consumer takes over the entries other consumers left
 * unacknowledged (a crashed process's), and how long such an entry must have been idle
 * (defaults 10 s and 30 s; every_ms 0 turns it off). For subscriptions started later. */
void baic_bus_set_claim(baic_bus_t *bus, unsigned every_ms, unsigned idle_ms);
/* Acknowledges entry id of a consumer group (XACK) on the publishing connection. 0 (sent),
 * BAIC_ECANCELLED once the bus is closing, or a negative code. */
int baic_bus_ack(baic_bus_t *bus, const char *stream, const char *group, const char *id);
/* Stops every subscription of the bus, closes its connections, frees it, then cb. */
void baic_bus_close(baic_bus_t *bus, baic_bus_close_cb cb, void *arg);

/* XADD stream MAXLEN ~ n * name <name> body <json>. body is serialised before return
 * (not stolen; may be NULL for {}). cb may be NULL. Returns 0 (cb fires later),
 * -ENOTCONN while Redis is unreachable, -EINVAL, -ENOMEM. */
int baic_bus_publish(baic_bus_t *bus, const char *stream, const char *name, json_t *body,
                     baic_bus_pub_cb cb, void *arg);

/* Consumes `stream` as `consumer` of `group` (see above). The subscription lives until
 * baic_bus_unsubscribe() or baic_bus_close(); *out may be NULL. Returns 0, -EINVAL,
 * -ENOMEM. */
int baic_bus_consume(baic_bus_t *bus, const char *stream, const char *group,
                     const char *consumer, baic_bus_handler h, void *arg, baic_bus_sub_t **out);

/* Delivers every entry of `stream` after last_id ("0" = from the start, "$" = only
 * entries published from now on, or an id previously delivered). */
int baic_bus_read_from(baic_bus_t *bus, const char *stream, const char *last_id,
                       baic_bus_handler h, void *arg, baic_bus_sub_t **out);

/* PUBLISH channel msg, best effort; returns 0 or -ENOTCONN/-EINVAL/-ENOMEM. */
int baic_bus_notify(baic_bus_t *bus, const char *channel, const char *msg);
/* SUBSCRIBE channel (again after every reconnect). */
int baic_bus_listen(baic_bus_t *bus, const char *channel, baic_bus_notify_cb cb, void *arg,
                    baic_bus_sub_t **out);

/* Ends a subscription; its handler is not called again. Safe inside that handler. */
void baic_bus_unsubscribe(baic_bus_sub_t *sub);

#endif
