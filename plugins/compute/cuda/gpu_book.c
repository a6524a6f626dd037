/* SPDX-License-Identifier: Apache-2.0 */
/* Booking of whole GPUs or fractional GPU shares, shared by compute/cuda and compute/rocm. */
#include "gpu_book.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

struct gpu_alloc {
    baic_compute_alloc_t pub;
    baic_compute_alloc_part_t *parts;
    char *kernel_id;
    gpu_alloc_t *next;
};

/* ---- amounts ---- */

int gpu_parse_amount(const json_t *v, int64_t *out) {
    char buf[64];
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0 || i > INT64_MAX / BAIC_SLOT_UNIT)
            return BAIC_EBAD_INPUT;
        *out = (int64_t)i * BAIC_SLOT_UNIT;
        return 0;
    }
    if (json_is_real(v))
        snprintf(buf, sizeof buf, "%.6f", json_real_value(v));
    else if (json_is_string(v))
        snprintf(buf, sizeof buf, "%s", json_string_value(v));
    else
        return BAIC_EBAD_INPUT;
    const char *p = buf;
    int64_t whole = 0, frac = 0, step = BAIC_SLOT_UNIT;
    if (*p < '0' || *p > '9')
        return BAIC_EBAD_INPUT;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (whole > INT64_MAX / BAIC_SLOT_UNIT / 10 - 1)
            return BAIC_EBAD_INPUT;
        whole = whole * 10 + (*p - '0');
    }
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++) {
            step /= 10;
            if (step == 0 && *p != '0')
                return BAIC_EBAD_INPUT; /* finer than a millionth */
            frac += (*p - '0') * step;
        }
    }
    if (*p != '\0')
        return BAIC_EBAD_INPUT;
    *out = whole * BAIC_SLOT_UNIT + frac;
    return 0;
}

void gpu_format_amount(int64_t v, char *buf, size_t len) {
    int64_t whole = v / BAIC_SLOT_UNIT, frac = v % BAIC_SLOT_UNIT;
    if (frac == 0) {
        snprintf(buf, len, "%" PRId64, whole);
        return;
    }
    char fr[16];
    snprintf(fr, sizeof fr, "%06" PRId64, frac);
    for (size_t n = strlen(fr); n > 0 && fr[n - 1] == '0'; n--)
        fr[n - 1] = '\0';
    snprintf(buf, len, "%" PRId64 ".%s", whole, fr);
}

/* ---- set-up ---- */

int gpu_book_configure(gpu_book_t *b, const baic_host_t *host, const json_t *conf,
                       const char *vendor) {
    b->host = host;
    const json_t *v = json_object_get(conf, "mode");
    const char *mode = json_is_string(v) ? json_string_value(v) : "device";
    if (v != NULL && !json_is_string(v))
        mode = "?";
    if (strcmp(mode, "device") == 0) {
        b->shares = 0;
    } else if (strcmp(mode, "shares") == 0) {
        b->shares = 1;
    } else {
        host->log(host, BAIC_LOG_ERROR, "bad_config", "key=mode reason=\"want device or shares\"");
        return BAIC_ECONFIG_TYPE;
    }
    snprintf(b->slot, sizeof b->slot, "%s.%s", vendor, b->shares ? "shares" : "device");
    snprintf(b->metric, sizeof b->metric, "baic_%s_device_booked", vendor);
    b->quantum = b->shares ? BAIC_SLOT_UNIT / 100 : BAIC_SLOT_UNIT;
    v = json_object_get(conf, "quantum");
    if (v != NULL && b->shares) {
        if (gpu_parse_amount(v, &b->quantum) != 0 || b->quantum <= 0 ||
            b->quantum > BAIC_SLOT_UNIT || BAIC_SLOT_UNIT % b->quantum != 0) {
            host->log(host, BAIC_LOG_ERROR, "bad_config",
                      "key=quantum reason=\"want a decimal that divides 1, e.g. 0.1\"");
            return BAIC_ECONFIG_TYPE;
        }
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

static void gpu_alloc_release(gpu_book_t *b, gpu_alloc_t *a) {
    b->host->free(a->parts);
    b->host->free(a->kernel_id);
    b->host->free(a);
}

void gpu_book_fini(gpu_book_t *b) {
    while (b->allocs != NULL) {
        gpu_alloc_t *a = b->allocs;
        b->allocs = a->next;
        gpu_alloc_release(b, a);
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
    if (req->device_ids == NULL)
        return 1;
    for (size_t i = 0; i < req->n_device_ids; i++)
        if (req->device_ids[i] != NULL &&
            (strcmp(req->device_ids[i], g->id) == 0 ||
             (g->uuid[0] && strcmp(req->device_ids[i], g->uuid) == 0)))
            return 1;
    return 0;
}

static void gpu_publish_usage(gpu_book_t *b, const gpu_dev_t *g) {
    char labels[64];
    snprintf(labels, sizeof labels, "device=\"%s\"", g->id);
    b->host->metric_set(b->host, b->metric, "Booked share of a GPU (1 = whole device)", labels,
                        (double)g->used / (double)BAIC_SLOT_UNIT);
}

static int gpu_new_alloc(gpu_book_t *b, const char *kernel_id, gpu_alloc_t **out) {
    gpu_alloc_t *a = b->host->calloc(1, sizeof *a);
    if (a == NULL)
        return UV_ENOMEM;
    size_t len = strlen(kernel_id ? kernel_id : "") + 1;
    a->parts = b->host->calloc(b->n + 1, sizeof *a->parts);
    a->kernel_id = b->host->alloc(len);
    if (a->parts == NULL || a->kernel_id == NULL) {
        gpu_alloc_release(b, a);
        return UV_ENOMEM;
    }
    memcpy(a->kernel_id, kernel_id ? kernel_id : "", len);
    a->pub.size = sizeof a->pub;
    a->pub.kernel_id = a->kernel_id;
    a->pub.parts = a->parts;
    a->pub.priv = a;
    *out = a;
    return 0;
}

static void gpu_commit(gpu_book_t *b, gpu_alloc_t *a, baic_compute_alloc_t **out) {
    for (size_t i = 0; i < a->pub.n_parts; i++) {
        gpu_dev_t *g = gpu_book_find(b, a->parts[i].device_id);
        g->used += a->parts[i].amount;
        gpu_publish_usage(b, g);
    }
    a->next = b->allocs;
    b->allocs = a;
    *out = &a->pub;
}

/* Chooses devices for amount into a->parts without booking them yet. */
static int gpu_choose(gpu_book_t *b, const baic_compute_request_t *req, int64_t amount,
                      gpu_alloc_t *a) {
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

int gpu_book_allocate(gpu_book_t *b, const baic_compute_request_t *req,
                      baic_compute_alloc_t **out) {
    int64_t amount;
    baic_slots_get(&req->requested, b->slot, &amount);
    if (amount < 0 || amount % b->quantum != 0) {
        b->host->log(b->host, BAIC_LOG_WARN, "bad_amount", "kernel=%s slot=%s amount=%" PRId64,
                     req->kernel_id ? req->kernel_id : "-", b->slot, amount);
        return BAIC_EBAD_INPUT;
    }
    gpu_alloc_t *a;
    int rc = gpu_new_alloc(b, req->kernel_id, &a);
    if (rc != 0)
        return rc;
    rc = amount > 0 ? gpu_choose(b, req, amount, a) : 0;
    if (rc != 0) {
        gpu_alloc_release(b, a);
        return rc;
    }
    gpu_commit(b, a, out);
    return 0;
}

int gpu_book_free(gpu_book_t *b, baic_compute_alloc_t *alloc) {
    for (gpu_alloc_t **pp = &b->allocs; *pp != NULL; pp = &(*pp)->next) {
        gpu_alloc_t *a = *pp;
        if (&a->pub != alloc)
            continue;
        *pp = a->next;
        for (size_t i = 0; i < a->pub.n_parts; i++) {
            gpu_dev_t *g = gpu_book_find(b, a->parts[i].device_id);
            g->used -= a->parts[i].amount;
            gpu_publish_usage(b, g);
        }
        gpu_alloc_release(b, a);
        return 0;
    }
    return BAIC_ENOT_FOUND;
}

int gpu_book_to_json(gpu_book_t *b, const baic_compute_alloc_t *alloc, json_t **out) {
    json_t *per = json_object(), *root = json_object();
    if (per == NULL || root == NULL)
        goto nomem;
    for (size_t i = 0; i < alloc->n_parts; i++) {
        char amt[32];
        gpu_format_amount(alloc->parts[i].amount, amt, sizeof amt);
        if (json_object_set_new(per, alloc->parts[i].device_id, json_string(amt)) != 0)
            goto nomem;
    }
    if (json_object_set_new(root, b->slot, per) != 0) {
        per = NULL;
        goto nomem;
    }
    *out = root;
    return 0;
nomem:
    json_decref(per);
    json_decref(root);
    return UV_ENOMEM;
}

int gpu_book_from_json(gpu_book_t *b, const char *kernel_id, const json_t *desc,
                       baic_compute_alloc_t **out) {
    const json_t *per = json_object_get(desc, b->slot);
    if (!json_is_object(per))
        return BAIC_EBAD_INPUT;
    gpu_alloc_t *a;
    int rc = gpu_new_alloc(b, kernel_id, &a);
    if (rc != 0)
        return rc;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)per, key, v) {
        gpu_dev_t *g = gpu_book_find(b, key);
        int64_t amount;
        if (g == NULL || a->pub.n_parts >= b->n || gpu_parse_amount(v, &amount) != 0 ||
            amount <= 0 || amount > BAIC_SLOT_UNIT || amount % b->quantum != 0) {
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
        gpu_alloc_release(b, a);
        return rc;
    }
    gpu_commit(b, a, out);
    return 0;
}
