/* SPDX-License-Identifier: Apache-2.0 */
/* Booking of whole GPUs or fractional GPU shares, shared by compute/cuda and compute/rocm. */
#include "gpu_book.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ---- set-up ---- */

int gpu_book_configure(gpu_book_t *b, const baic_host_t *host, const json_t *conf,
                       const gpu_vendor_t *vendor) {
    b->host = host;
    b->vendor = vendor;
    const json_t *v = json_object_get(conf, "mode");
    const char *mode = json_is_string(v) ? json_string_value(v) : "device";
    if (v != NULL && !json_is_string(v))
        mode = "?";
    if (strcmp(mode, "device") == 0) {
        b->shares = 0;
    } else if (strcmp(mode, "shares") == 0) {
        b->shares = 1;
    } else {
        return compute_conf_fail(host, "mode", "want device or shares");
    }
    snprintf(b->slot, sizeof b->slot, "%s.%s", vendor->prefix, b->shares ? "shares" : "device");
    snprintf(b->metric, sizeof b->metric, "baic_%s_device_booked", vendor->prefix);
    if (b->shares)
        snprintf(b->description, sizeof b->description, "fractional shares of %s GPUs",
                 vendor->name);
    else
        snprintf(b->description, sizeof b->description, "whole %s GPUs", vendor->name);
    b->quantum = b->shares ? BAIC_SLOT_UNIT / 100 : BAIC_SLOT_UNIT;
    v = json_object_get(conf, "quantum");
    if (v != NULL && b->shares) {
        if (compute_parse_amount(v, BAIC_SLOT_UNIT, &b->quantum) != 0 || b->quantum <= 0 ||
            b->quantum > BAIC_SLOT_UNIT || BAIC_SLOT_UNIT % b->quantum != 0)
            return compute_conf_fail(host, "quantum", "want a decimal that divides 1, e.g. 0.1");
    }
    return 0;
}

int gpu_book_reserve(gpu_book_t *b, size_t n) {
    b->devs = b->host->calloc(n + 1, sizeof *b->devs);
    b->ptrs = b->host->calloc(n + 1, sizeof *b->ptrs);
    if (b->devs == NULL || b->ptrs == NULL)
        return UV_ENOMEM;
    b->n = 0;
    return 0;
}

void gpu_book_publish_dev(gpu_book_t *b, size_t i, int64_t memory_bytes) {
    gpu_dev_t *g = &b->devs[i];
    g->d = (baic_device_t){
        .size = sizeof g->d,
        .id = g->id,
        .slot = b->slot,
        .model = g->model,
        .capacity = BAIC_SLOT_UNIT,
        .memory_bytes = memory_bytes,
        .numa_node = -1,
        .device_path = g->path[0] ? g->path : NULL,
    };
    b->ptrs[i] = &g->d;
    if (i + 1 > b->n)
        b->n = i + 1;
}

void gpu_book_declare(gpu_book_t *b) {
    if (b->n == 0)
        return;
    b->decl = (baic_slot_decl_t){
        .size = sizeof b->decl,
        .name = b->slot,
        .type = BAIC_SLOT_COUNT,
        .fractional = b->shares,
        .quantum = b->quantum,
        .display_name = "GPU",
        .description = b->description,
    };
    b->decls[0] = &b->decl;
    b->ndecls = 1;
    b->host->log(b->host, BAIC_LOG_INFO, "devices_found",
                 "slot=%s count=%zu driver=%s library=\"%s\"", b->slot, b->n,
                 b->driver[0] ? b->driver : "-", b->library);
}

void gpu_book_fini(gpu_book_t *b) {
    while (b->allocs != NULL) {
        compute_alloc_t *a = b->allocs;
        b->allocs = a->next;
        compute_alloc_release(b->host, a);
    }
    if (b->host != NULL) {
        b->host->free(b->devs);
        b->host->free(b->ptrs);
    }
    b->devs = NULL;
    b->ptrs = NULL;
    b->n = 0;
}

gpu_dev_t *gpu_book_find(gpu_book_t *b, const char *id) {
    for (size_t i = 0; id != NULL && i < b->n; i++)
        if (strcmp(b->devs[i].id, id) == 0)
            return &b->devs[i];
    return NULL;
}

/* ---- booking ---- */

static int gpu_allowed(const baic_compute_request_t *req, const gpu_dev_t *g) {
    return compute_device_allowed(req, g->id, g->uuid);
}

static void gpu_publish_usage(gpu_book_t *b, const gpu_dev_t *g) {
    char labels[64];
    snprintf(labels, sizeof labels, "device=\"%s\"", g->id);
    b->host->metric_set(b->host, b->metric, "Booked share of a GPU (1 = whole device)", labels,
                        (double)g->used / (double)BAIC_SLOT_UNIT);
}

static int gpu_new_alloc(gpu_book_t *b, const char *kernel_id, compute_alloc_t **out) {
    return compute_alloc_new(b->host, sizeof **out, b->n, kernel_id, out);
}

static void gpu_commit(gpu_book_t *b, compute_alloc_t *a, baic_compute_alloc_t **out) {
    for (size_t i = 0; i < a->pub.n_parts; i++) {
        gpu_dev_t *g = gpu_book_find(b, a->parts[i].device_id);
        g->used += a->parts[i].amount;
        gpu_publish_usage(b, g);
    }
    compute_alloc_link(&b->allocs, a, out);
}

/* Chooses devices for amount into a->parts without booking them yet. */
static int gpu_choose(gpu_book_t *b, const baic_compute_request_t *req, int64_t amount,
                      compute_alloc_t *a) {
    int64_t whole = amount / BAIC_SLOT_UNIT, rest = amount % BAIC_SLOT_UNIT;
    /* The remainder first: with shares the fullest device it fits on, so that idle
     * devices stay whole for whole requests. */
    gpu_dev_t *part_dev = NULL;
    if (rest > 0) {
        for (size_t i = 0; i < b->n; i++) {
            gpu_dev_t *g = &b->devs[i];
            int64_t free_ = BAIC_SLOT_UNIT - g->used;
            if (!gpu_allowed(req, g) || free_ < rest)
                continue;
            if (part_dev == NULL || free_ < BAIC_SLOT_UNIT - part_dev->used)
                part_dev = g;
        }
        if (part_dev == NULL)
            return BAIC_ENO_RESOURCES;
    }
    /* Whole devices: idle ones in index order, skipping the remainder's device. */
    for (size_t i = 0; i < b->n && whole > 0; i++) {
        gpu_dev_t *g = &b->devs[i];
        if (g == part_dev || g->used != 0 || !gpu_allowed(req, g))
            continue;
        a->parts[a->pub.n_parts++] = (baic_compute_alloc_part_t){g->id, b->slot, BAIC_SLOT_UNIT};
        whole--;
    }
    if (whole > 0) {
        a->pub.n_parts = 0;
        return BAIC_ENO_RESOURCES;
    }
    if (part_dev != NULL)
        a->parts[a->pub.n_parts++] = (baic_compute_alloc_part_t){part_dev->id, b->slot, rest};
    return 0;
}

/* ---- ops ---- */

int gpu_book_op_list_slots(void *state, const baic_slot_decl_t *const **decls, size_t *n) {
    gpu_book_t *b = state;
    *decls = b->decls;
    *n = b->ndecls;
    return 0;
}

int gpu_book_op_list_devices(void *state, const baic_device_t *const **devs, size_t *n) {
    gpu_book_t *b = state;
    *devs = b->ptrs;
    *n = b->n;
    return 0;
}

int gpu_book_op_allocate(void *state, const baic_compute_request_t *req,
                         baic_compute_alloc_t **out) {
    gpu_book_t *b = state;
    int64_t amount;
    baic_slots_get(&req->requested, b->slot, &amount);
    if (amount < 0 || amount % b->quantum != 0) {
        b->host->log(b->host, BAIC_LOG_WARN, "bad_amount", "kernel=%s slot=%s amount=%" PRId64,
                     req->kernel_id ? req->kernel_id : "-", b->slot, amount);
        return BAIC_EBAD_INPUT;
    }
    compute_alloc_t *a;
    int rc = gpu_new_alloc(b, req->kernel_id, &a);
    if (rc != 0)
        return rc;
    rc = amount > 0 ? gpu_choose(b, req, amount, a) : 0;
    if (rc != 0) {
        compute_alloc_release(b->host, a);
        return rc;
    }
    gpu_commit(b, a, out);
    return 0;
}

int gpu_book_op_free(void *state, baic_compute_alloc_t *alloc) {
    gpu_book_t *b = state;
    compute_alloc_t *a = compute_alloc_unlink(&b->allocs, alloc);
    if (a == NULL)
        return BAIC_ENOT_FOUND;
    for (size_t i = 0; i < a->pub.n_parts; i++) {
        gpu_dev_t *g = gpu_book_find(b, a->parts[i].device_id);
        g->used -= a->parts[i].amount;
        gpu_publish_usage(b, g);
    }
    compute_alloc_release(b->host, a);
    return 0;
}

static void gpu_stat(void *ctx, size_t i, baic_device_stat_t *s) {
    gpu_book_t *b = ctx;
    s->device_id = b->devs[i].id;
    b->vendor->stat(b, &b->devs[i], s);
}

int gpu_book_op_stats(void *state, baic_compute_stats_cb cb, void *arg) {
    gpu_book_t *b = state;
    return compute_stats_queue(b->host, b->n, gpu_stat, b, cb, arg);
}

int gpu_book_op_to_json(void *state, const baic_compute_alloc_t *alloc, json_t **out) {
    gpu_book_t *b = state;
    return compute_slot_parts_to_json(b->slot, alloc, BAIC_SLOT_UNIT, out);
}

int gpu_book_op_from_json(void *state, const char *kernel_id, const json_t *desc,
                          baic_compute_alloc_t **out) {
    gpu_book_t *b = state;
    const json_t *per = json_object_get(desc, b->slot);
    if (!json_is_object(per))
        return BAIC_EBAD_INPUT;
    compute_alloc_t *a;
    int rc = gpu_new_alloc(b, kernel_id, &a);
    if (rc != 0)
        return rc;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)per, key, v) {
        gpu_dev_t *g = gpu_book_find(b, key);
        int64_t amount;
        if (g == NULL || a->pub.n_parts >= b->n ||
            compute_parse_amount(v, BAIC_SLOT_UNIT, &amount) != 0 || amount <= 0 ||
            amount > BAIC_SLOT_UNIT || amount % b->quantum != 0) {
            rc = BAIC_EBAD_INPUT;
            break;
        }
        if (amount > BAIC_SLOT_UNIT - g->used) {
            rc = BAIC_ENO_RESOURCES;
            break;
        }
        a->parts[a->pub.n_parts++] = (baic_compute_alloc_part_t){g->id, b->slot, amount};
    }
    if (rc != 0) {
        compute_alloc_release(b->host, a);
        return rc;
    }
    gpu_commit(b, a, out);
    return 0;
}

int gpu_book_op_describe(void *state, const char *device_id, json_t **out) {
    gpu_book_t *b = state;
    gpu_dev_t *g = gpu_book_find(b, device_id);
    if (g == NULL)
        return BAIC_ENOT_FOUND;
    char booked[32];
    compute_format_amount(g->used, BAIC_SLOT_UNIT, booked, sizeof booked);
    *out = json_pack("{s:s, s:s, s:s, s:s, s:I, s:i, s:i, s:s, s:s, s:s, s:s}", "id", g->id,
                     "vendor", b->vendor->name, "model", g->model, "uuid", g->uuid,
                     "memory_bytes", (json_int_t)g->d.memory_bytes, "index", (int)g->index,
                     b->vendor->minor_key, (int)g->minor, "device_path", g->path,
                     "driver_version", b->driver, "booked", booked, b->vendor->library_key,
                     b->library);
    return *out ? 0 : UV_ENOMEM;
}
