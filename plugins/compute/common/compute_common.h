/* SPDX-License-Identifier: Apache-2.0 */
/* What the in-tree compute plugins share: amounts, config errors, allocation records, needs. */
#ifndef BAIC_PLUGIN_COMPUTE_COMMON_H
#define BAIC_PLUGIN_COMPUTE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <baic/compute.h>
#include <baic/host.h>

/*
 * Linked statically into each compute plugin with hidden visibility, so every .so
 * keeps a private copy and still exports only its entry points. Everything here
 * runs on the daemon's loop unless it says otherwise.
 */

/* ---- amounts and config (amount.c) ---- */

/* Decimal amount -> slot units at scale (BAIC_SLOT_UNIT or 1): 2, 0.5, "0.25".
 * A fraction finer than the scale allows, a sign or trailing text is refused.
 * Writes *out only on success. Returns 0 or BAIC_EBAD_INPUT. */
int compute_parse_amount(const json_t *v, int64_t scale, int64_t *out);

/* Slot units at scale -> "2", "0.25" (no trailing zeros) into buf of len bytes. */
void compute_format_amount(int64_t v, int64_t scale, char *buf, size_t len);

/* An allocation's parts as {"<device id>": "<amount>"}; a new reference, or NULL
 * when out of memory. */
json_t *compute_parts_to_json(const baic_compute_alloc_t *alloc, int64_t scale);
/* {"<slot>": {"<device id>": "<amount>"}} into *out (caller owns). Returns 0 or
 * UV_ENOMEM. */
int compute_slot_parts_to_json(const char *slot, const baic_compute_alloc_t *alloc,
                               int64_t scale, json_t **out);

/* ---- config and memory ---- */

/* Logs bad_config for key with why, and returns BAIC_ECONFIG_TYPE. */
int compute_conf_fail(const baic_host_t *host, const char *key, const char *why);

/* Copy of s in host memory (host->free it), or NULL. */
char *compute_strdup(const baic_host_t *host, const char *s);

/* ---- allocation records (alloc.c) ---- */

/* The part of an allocation every plugin keeps; a plugin that needs more embeds it
 * as the first member of its own record. pub.priv points at the record. */
typedef struct compute_alloc {
    baic_compute_alloc_t pub;
    baic_compute_alloc_part_t *parts; /* room for max_parts */
    char *kernel_id;
    struct compute_alloc *next;
} compute_alloc_t;

/* Allocates a zeroed record of size bytes (>= sizeof(compute_alloc_t)) with room
 * for max_parts parts and a copy of kernel_id (NULL counts as ""). Returns 0 or
 * UV_ENOMEM; the caller owns *out until compute_alloc_link. */
int compute_alloc_new(const baic_host_t *host, size_t size, size_t max_parts,
                      const char *kernel_id, compute_alloc_t **out);
/* Frees a record made by compute_alloc_new (not the plugin's own extra fields). */
void compute_alloc_release(const baic_host_t *host, compute_alloc_t *a);
/* Puts a at the head of *list and hands out its public part. */
void compute_alloc_link(compute_alloc_t **list, compute_alloc_t *a, baic_compute_alloc_t **out);
/* Takes the record whose public part is pub out of *list; NULL if not there. */
compute_alloc_t *compute_alloc_unlink(compute_alloc_t **list, const baic_compute_alloc_t *pub);

/* 1 when the request names no devices or names id (or alt, when alt is not NULL
 * and not ""). */
int compute_device_allowed(const baic_compute_request_t *req, const char *id, const char *alt);

/* ---- container needs (needs.c) ---- */

/* A comma-separated list built in a caller's buffer. */
typedef struct compute_list {
    char *buf;
    size_t cap;
    size_t len;
    size_t items;
} compute_list_t;

/* Starts an empty list in buf (cap bytes). */
void compute_list_init(compute_list_t *l, char *buf, size_t cap);
/* Appends one printf-formatted item. Returns 0, or BAIC_EBAD_INPUT once it no longer fits. */
int compute_list_add(compute_list_t *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Passes host node dev_root/name into the container at /dev/name when it exists,
 * with a cgroup rule: the node's own numbers when it is a character device,
 * else major/minor as given (tests use plain files), none when major < 0.
 * Returns 0 (also when the node is absent) or the builder's error. */
int compute_add_dev_node(const baic_needs_builder_t *b, const char *dev_root, const char *name,
                         int64_t major, int64_t minor);

/* ---- stats off the loop (stats.c) ---- */

/* Fills s for device i, device_id included; runs on a pool thread. s arrives with
 * its size set and every figure at -1 (unknown). */
typedef void (*compute_stat_fn)(void *ctx, size_t i, baic_device_stat_t *s);

/* Reads n devices' figures with fill on a pool thread and answers cb on the loop.
 * ctx must stay valid until cb. Returns 0 (cb will be called) or UV_ENOMEM or the
 * host's queue_work error (it will not). */
int compute_stats_queue(const baic_host_t *host, size_t n, compute_stat_fn fill, void *ctx,
                        baic_compute_stats_cb cb, void *arg);

#endif
