/* SPDX-License-Identifier: Apache-2.0 */
/* compute/mock: fake accelerator devices from config, with exact fractional allocation. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <baic/compute.h>
#include <baic/host.h>

#include "compute_common.h"

/*
 * Config ([plugin."compute/mock"]), all optional:
 *   slot        slot name                       "mock.device"
 *   slot_type   "count" | "bytes" | "unique"    "count"
 *   fractional  shares below one unit allowed   false
 *   quantum     smallest step (decimal string)  "0.01" if fractional, else "1"
 *   count       number of devices               1
 *   capacity    each device's amount (decimal)  "1"
 *   memory      each device's memory in bytes   0
 *   model       model name                      "Mock Accelerator"
 *   devices     [{id, capacity, memory, model}] instead of count/capacity/memory
 *   device_dir  where to write a fake device file per device ("mock<id>"); the file
 *               is bind-mounted read-only at /dev/mock<id> in containers using it
 */

typedef struct mock_dev {
    baic_device_t d;
    char *id;
    char *model;
    char *path; /* fake device file, or NULL */
    int64_t used;
} mock_dev_t;

typedef struct mock_state {
    const baic_host_t *host;
    char *slot;
    baic_slot_type_t type;
    int fractional;
    int64_t quantum;
    baic_slot_decl_t decl;
    const baic_slot_decl_t *decls[1];
    mock_dev_t *devs;
    const baic_device_t **dev_ptrs;
    size_t n_devs;
    compute_alloc_t *allocs;
} mock_state_t;

/* ---- decimal amounts ---- */

static int64_t mock_scale(const mock_state_t *st) {
    return BAIC_SLOT_SCALE(st->type);
}

/* ---- config ---- */

static int mock_write_device_file(mock_state_t *st, mock_dev_t *d, const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/mock%s", dir, d->id);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        int rc = -errno;
        st->host->log(st->host, BAIC_LOG_ERROR, "device_file_failed", "path=\"%s\" error=\"%s\"",
                      path, st->host->strerror(rc));
        return rc;
    }
    fprintf(f, "id=%s\nmodel=%s\nmemory=%" PRId64 "\n", d->id, d->model, d->d.memory_bytes);
    if (fclose(f) != 0)
        return -errno;
    d->path = compute_strdup(st->host, path);
    return d->path ? 0 : UV_ENOMEM;
}

static int mock_add_device(mock_state_t *st, size_t i, const char *id, int64_t cap, int64_t mem,
                           const char *model, const char *dir) {
    mock_dev_t *d = &st->devs[i];
    d->id = compute_strdup(st->host, id);
    d->model = compute_strdup(st->host, model);
    if (d->id == NULL || d->model == NULL)
        return UV_ENOMEM;
    d->d.size = sizeof d->d;
    d->d.id = d->id;
    d->d.slot = st->slot;
    d->d.model = d->model;
    d->d.capacity = cap;
    d->d.memory_bytes = mem;
    d->d.numa_node = -1;
    if (dir != NULL) {
        int rc = mock_write_device_file(st, d, dir);
        if (rc != 0)
            return rc;
    }
    d->d.device_path = d->path;
    st->dev_ptrs[i] = &d->d;
    return 0;
}

static int mock_configure(mock_state_t *st, const json_t *conf) {
    const baic_host_t *h = st->host;
    const json_t *v;
    if (conf != NULL && !json_is_object(conf))
        return compute_conf_fail(h, "plugin", "want a table");
    v = json_object_get(conf, "slot");
    st->slot = compute_strdup(h, json_is_string(v) ? json_string_value(v) : "mock.device");
    if (st->slot == NULL)
        return UV_ENOMEM;
    v = json_object_get(conf, "slot_type");
    const char *type = json_is_string(v) ? json_string_value(v) : "count";
    if (strcmp(type, "count") == 0)
        st->type = BAIC_SLOT_COUNT;
    else if (strcmp(type, "bytes") == 0)
        st->type = BAIC_SLOT_BYTES;
    else if (strcmp(type, "unique") == 0)
        st->type = BAIC_SLOT_UNIQUE;
    else
        return compute_conf_fail(h, "slot_type", "want count, bytes or unique");
    v = json_object_get(conf, "fractional");
    st->fractional = json_is_true(v) && st->type == BAIC_SLOT_COUNT;
    int64_t scale = mock_scale(st);
    st->quantum = st->fractional ? scale / 100 : scale;
    v = json_object_get(conf, "quantum");
    if (v != NULL && (compute_parse_amount(v, scale, &st->quantum) != 0 || st->quantum <= 0))
        return compute_conf_fail(h, "quantum", "want a positive decimal");
    if (!st->fractional && st->quantum % scale != 0)
        return compute_conf_fail(h, "quantum", "a fraction needs fractional = true");

    v = json_object_get(conf, "model");
    const char *model = json_is_string(v) ? json_string_value(v) : "Mock Accelerator";
    v = json_object_get(conf, "device_dir");
    const char *dir = json_is_string(v) ? json_string_value(v) : NULL;
    const json_t *list = json_object_get(conf, "devices");
    int64_t cap = scale, mem = 0;
    v = json_object_get(conf, "capacity");
    if (v != NULL && (compute_parse_amount(v, scale, &cap) != 0 || cap <= 0))
        return compute_conf_fail(h, "capacity", "want a positive decimal");
    v = json_object_get(conf, "memory");
    if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < 0))
        return compute_conf_fail(h, "memory", "want bytes as an integer");
    mem = v ? json_integer_value(v) : 0;
    size_t n = 1;
    if (list != NULL) {
        if (!json_is_array(list) || json_array_size(list) == 0)
            return compute_conf_fail(h, "devices", "want a non-empty array");
        n = json_array_size(list);
    } else if ((v = json_object_get(conf, "count")) != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1024)
            return compute_conf_fail(h, "count", "want an integer 0..1024");
        n = (size_t)json_integer_value(v);
    }
    st->devs = h->calloc(n + 1, sizeof *st->devs);
    st->dev_ptrs = h->calloc(n + 1, sizeof *st->dev_ptrs);
    if (st->devs == NULL || st->dev_ptrs == NULL)
        return UV_ENOMEM;
    st->n_devs = n;
    for (size_t i = 0; i < n; i++) {
        char idbuf[32];
        snprintf(idbuf, sizeof idbuf, "%zu", i);
        const char *id = idbuf, *dmodel = model;
        int64_t dcap = cap, dmem = mem;
        if (list != NULL) {
            const json_t *e = json_array_get(list, i);
            if (!json_is_object(e))
                return compute_conf_fail(h, "devices", "want tables");
            if (json_is_string(json_object_get(e, "id")))
                id = json_string_value(json_object_get(e, "id"));
            if (json_is_string(json_object_get(e, "model")))
                dmodel = json_string_value(json_object_get(e, "model"));
            if ((v = json_object_get(e, "capacity")) != NULL &&
                (compute_parse_amount(v, scale, &dcap) != 0 || dcap <= 0))
                return compute_conf_fail(h, "devices.capacity", "want a positive decimal");
            if ((v = json_object_get(e, "memory")) != NULL) {
                if (!json_is_integer(v) || json_integer_value(v) < 0)
                    return compute_conf_fail(h, "devices.memory", "want bytes as an integer");
                dmem = json_integer_value(v);
            }
        }
        if (dcap % st->quantum != 0)
            return compute_conf_fail(h, "capacity", "not a multiple of the quantum");
        for (size_t j = 0; j < i; j++)
            if (strcmp(st->devs[j].id, id) == 0)
                return compute_conf_fail(h, "devices.id", "duplicate device id");
        int rc = mock_add_device(st, i, id, dcap, dmem, dmodel, dir);
        if (rc != 0)
            return rc;
    }
    st->decl = (baic_slot_decl_t){
        .size = sizeof st->decl,
        .name = st->slot,
        .type = st->type,
        .fractional = st->fractional,
        .quantum = st->quantum,
        .display_name = "Mock",
        .description = "fake accelerator for tests",
    };
    st->decls[0] = &st->decl;
    return 0;
}

/* ---- life cycle ---- */

static void mock_fini(void *state) {
    mock_state_t *st = state;
    const baic_host_t *h = st->host;
    while (st->allocs != NULL) {
        compute_alloc_t *a = st->allocs;
        st->allocs = a->next;
        compute_alloc_release(h, a);
    }
    for (size_t i = 0; st->devs != NULL && i < st->n_devs; i++) {
        if (st->devs[i].path != NULL)
            unlink(st->devs[i].path);
        h->free(st->devs[i].id);
        h->free(st->devs[i].model);
        h->free(st->devs[i].path);
    }
    h->free(st->devs);
    h->free(st->dev_ptrs);
    h->free(st->slot);
    h->free(st);
}

static int mock_init(const baic_host_t *host, const json_t *conf, void **state) {
    mock_state_t *st = host->calloc(1, sizeof *st);
    if (st == NULL)
        return UV_ENOMEM;
    st->host = host;
    int rc = mock_configure(st, conf);
    if (rc != 0) {
        mock_fini(st);
        return rc;
    }
    host->log(host, BAIC_LOG_INFO, "devices_found", "slot=%s count=%zu fractional=%d", st->slot,
              st->n_devs, st->fractional);
    *state = st;
    return 0;
}

/* ---- ops ---- */

static int mock_list_slots(void *state, const baic_slot_decl_t *const **decls, size_t *n) {
    mock_state_t *st = state;
    *decls = st->decls;
    *n = 1;
    return 0;
}

static int mock_list_devices(void *state, const baic_device_t *const **devs, size_t *n) {
    mock_state_t *st = state;
    *devs = st->dev_ptrs;
    *n = st->n_devs;
    return 0;
}

static mock_dev_t *mock_find_dev(mock_state_t *st, const char *id) {
    for (size_t i = 0; i < st->n_devs; i++)
        if (strcmp(st->devs[i].id, id) == 0)
            return &st->devs[i];
    return NULL;
}

static void mock_publish_usage(mock_state_t *st, const mock_dev_t *d) {
    char labels[128];
    snprintf(labels, sizeof labels, "device=\"%s\"", d->id);
    st->host->metric_set(st->host, "baic_mock_device_used", "Allocated share of a mock device",
                         labels, (double)d->used / (double)mock_scale(st));
}

/* Books amount on st's devices into parts (room for n_devs), as *nparts entries.
 * An amount no larger than one device's capacity goes to a single device, the
 * fullest one it fits on (best fit keeps whole devices free for whole requests);
 * a larger one spans devices, emptiest first. Nothing is booked on failure. */
static int mock_book(mock_state_t *st, const baic_compute_request_t *req, int64_t amount,
                     baic_compute_alloc_part_t *parts, size_t *nparts) {
    *nparts = 0;
    if (amount == 0)
        return 0;
    int64_t max_cap = 0, total_free = 0;
    mock_dev_t *best = NULL;
    for (size_t i = 0; i < st->n_devs; i++) {
        mock_dev_t *d = &st->devs[i];
        if (!compute_device_allowed(req, d->id, NULL))
            continue;
        int64_t free_ = d->d.capacity - d->used;
        if (d->d.capacity > max_cap)
            max_cap = d->d.capacity;
        total_free += free_;
        if (free_ >= amount && (best == NULL || free_ < best->d.capacity - best->used))
            best = d;
    }
    if (amount <= max_cap) {
        if (best == NULL)
            return BAIC_ENO_RESOURCES;
        best->used += amount;
        parts[(*nparts)++] = (baic_compute_alloc_part_t){best->id, st->slot, amount};
        return 0;
    }
    if (total_free < amount)
        return BAIC_ENO_RESOURCES;
    int64_t left = amount;
    while (left > 0) {
        mock_dev_t *emptiest = NULL;
        for (size_t i = 0; i < st->n_devs; i++) {
            mock_dev_t *d = &st->devs[i];
            int taken = 0;
            for (size_t j = 0; j < *nparts; j++)
                if (parts[j].device_id == d->id)
                    taken = 1;
            if (taken || !compute_device_allowed(req, d->id, NULL) || d->used >= d->d.capacity)
                continue;
            if (emptiest == NULL ||
                d->d.capacity - d->used > emptiest->d.capacity - emptiest->used)
                emptiest = d;
        }
        int64_t take = emptiest->d.capacity - emptiest->used;
        if (take > left)
            take = left;
        emptiest->used += take;
        parts[(*nparts)++] = (baic_compute_alloc_part_t){emptiest->id, st->slot, take};
        left -= take;
    }
    return 0;
}

static int mock_new_alloc(mock_state_t *st, const char *kernel_id, compute_alloc_t **out) {
    return compute_alloc_new(st->host, sizeof **out, st->n_devs, kernel_id, out);
}

static void mock_commit_alloc(mock_state_t *st, compute_alloc_t *a, baic_compute_alloc_t **out) {
    compute_alloc_link(&st->allocs, a, out);
    for (size_t i = 0; i < a->pub.n_parts; i++)
        mock_publish_usage(st, mock_find_dev(st, a->parts[i].device_id));
}

static int mock_allocate(void *state, const baic_compute_request_t *req,
                         baic_compute_alloc_t **out) {
    mock_state_t *st = state;
    int64_t amount;
    baic_slots_get(&req->requested, st->slot, &amount);
    if (amount < 0 || amount % st->quantum != 0) {
        st->host->log(st->host, BAIC_LOG_WARN, "bad_amount", "kernel=%s amount=%" PRId64,
                      req->kernel_id ? req->kernel_id : "-", amount);
        return BAIC_EBAD_INPUT;
    }
    compute_alloc_t *a;
    int rc = mock_new_alloc(st, req->kernel_id, &a);
    if (rc != 0)
        return rc;
    rc = mock_book(st, req, amount, a->parts, &a->pub.n_parts);
    if (rc != 0) {
        compute_alloc_release(st->host, a);
        return rc;
    }
    mock_commit_alloc(st, a, out);
    return 0;
}

static int mock_free_allocation(void *state, baic_compute_alloc_t *alloc) {
    mock_state_t *st = state;
    compute_alloc_t *a = compute_alloc_unlink(&st->allocs, alloc);
    if (a == NULL)
        return BAIC_ENOT_FOUND;
    for (size_t i = 0; i < a->pub.n_parts; i++) {
        mock_dev_t *d = mock_find_dev(st, a->parts[i].device_id);
        d->used -= a->parts[i].amount;
        mock_publish_usage(st, d);
    }
    compute_alloc_release(st->host, a);
    return 0;
}

/* BACKENDAI_MOCK_DEVICES=0,1  BACKENDAI_MOCK_SHARES=0:0.5,1:1  plus the fake device files. */
static int mock_container_needs(void *state, const baic_compute_alloc_t *alloc,
                                const baic_needs_builder_t *b) {
    mock_state_t *st = state;
    char devs[1024] = "", shares[2048] = "";
    size_t dl = 0, sl = 0;
    for (size_t i = 0; i < alloc->n_parts; i++) {
        const baic_compute_alloc_part_t *p = &alloc->parts[i];
        char amt[32];
        compute_format_amount(p->amount, mock_scale(st), amt, sizeof amt);
        dl += (size_t)snprintf(devs + dl, sizeof devs - dl, "%s%s", i ? "," : "", p->device_id);
        sl += (size_t)snprintf(shares + sl, sizeof shares - sl, "%s%s:%s", i ? "," : "",
                               p->device_id, amt);
        if (dl >= sizeof devs || sl >= sizeof shares)
            return BAIC_EBAD_INPUT;
        const mock_dev_t *d = mock_find_dev(st, p->device_id);
        if (d != NULL && d->path != NULL) {
            char target[256];
            snprintf(target, sizeof target, "/dev/mock%s", d->id);
            int rc = b->add_mount(b->needs, d->path, target, 1);
            if (rc != 0)
                return rc;
        }
    }
    int rc = b->add_env(b->needs, "BACKENDAI_MOCK_DEVICES", devs);
    if (rc == 0)
        rc = b->add_env(b->needs, "BACKENDAI_MOCK_SHARES", shares);
    return rc;
}

typedef struct mock_stats_req {
    mock_state_t *st;
    baic_compute_stats_cb cb;
    void *arg;
} mock_stats_req_t;

static void mock_stats_work(void *arg) {
    /* A real plugin queries the hardware here; the mock's figures live on the loop. */
}

static void mock_stats_done(void *arg, int status) {
    mock_stats_req_t *r = arg;
    mock_state_t *st = r->st;
    const baic_host_t *h = st->host;
    baic_device_stat_t *stats = NULL;
    const baic_device_stat_t **ptrs = NULL;
    if (status == 0) {
        stats = h->calloc(st->n_devs + 1, sizeof *stats);
        ptrs = h->calloc(st->n_devs + 1, sizeof *ptrs);
        if (stats == NULL || ptrs == NULL)
            status = UV_ENOMEM;
    }
    if (status == 0) {
        for (size_t i = 0; i < st->n_devs; i++) {
            const mock_dev_t *d = &st->devs[i];
            double frac = (double)d->used / (double)d->d.capacity;
            stats[i] = (baic_device_stat_t){
                .size = sizeof stats[i],
                .device_id = d->id,
                .util_pct = 100.0 * frac,
                .mem_used_bytes = (int64_t)(frac * (double)d->d.memory_bytes),
                .mem_total_bytes = d->d.memory_bytes,
                .power_w = -1,
                .temperature_c = -1,
            };
            ptrs[i] = &stats[i];
        }
        r->cb(r->arg, 0, ptrs, st->n_devs);
    } else {
        r->cb(r->arg, status, NULL, 0);
    }
    h->free(stats);
    h->free(ptrs);
    h->free(r);
}

static int mock_stats(void *state, baic_compute_stats_cb cb, void *arg) {
    mock_state_t *st = state;
    mock_stats_req_t *r = st->host->calloc(1, sizeof *r);
    if (r == NULL)
        return UV_ENOMEM;
    *r = (mock_stats_req_t){st, cb, arg};
    int rc = st->host->queue_work(st->host, mock_stats_work, mock_stats_done, r);
    if (rc != 0)
        st->host->free(r);
    return rc;
}

/* {"<slot>": {"<device>": "<amount>"}} */
static int mock_alloc_to_json(void *state, const baic_compute_alloc_t *alloc, json_t **out) {
    mock_state_t *st = state;
    return compute_slot_parts_to_json(st->slot, alloc, mock_scale(st), out);
}

static int mock_alloc_from_json(void *state, const char *kernel_id, const json_t *desc,
                                baic_compute_alloc_t **out) {
    mock_state_t *st = state;
    const json_t *per_dev = json_object_get(desc, st->slot);
    if (!json_is_object(per_dev))
        return BAIC_EBAD_INPUT;
    compute_alloc_t *a;
    int rc = mock_new_alloc(st, kernel_id, &a);
    if (rc != 0)
        return rc;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)per_dev, key, v) {
        mock_dev_t *d = mock_find_dev(st, key);
        int64_t amount;
        if (d == NULL || a->pub.n_parts >= st->n_devs ||
            compute_parse_amount(v, mock_scale(st), &amount) != 0) {
            rc = BAIC_EBAD_INPUT;
            break;
        }
        if (amount > d->d.capacity - d->used) {
            rc = BAIC_ENO_RESOURCES;
            break;
        }
        d->used += amount;
        a->parts[a->pub.n_parts++] = (baic_compute_alloc_part_t){d->id, st->slot, amount};
    }
    if (rc != 0) {
        for (size_t i = 0; i < a->pub.n_parts; i++)
            mock_find_dev(st, a->parts[i].device_id)->used -= a->parts[i].amount;
        compute_alloc_release(st->host, a);
        return rc;
    }
    mock_commit_alloc(st, a, out);
    return 0;
}

static int mock_describe_device(void *state, const char *device_id, json_t **out) {
    mock_state_t *st = state;
    const mock_dev_t *d = mock_find_dev(st, device_id);
    if (d == NULL)
        return BAIC_ENOT_FOUND;
    char cap[32], used[32];
    compute_format_amount(d->d.capacity, mock_scale(st), cap, sizeof cap);
    compute_format_amount(d->used, mock_scale(st), used, sizeof used);
    *out = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s?}", "id", d->id, "model", d->model,
                     "slot", st->slot, "memory_bytes", (json_int_t)d->d.memory_bytes,
                     "capacity", cap, "allocated", used, "device_file", d->path);
    return *out ? 0 : UV_ENOMEM;
}

static const baic_compute_ops_t mock_ops = {
    .list_slots = mock_list_slots,
    .list_devices = mock_list_devices,
    .allocate = mock_allocate,
    .free_allocation = mock_free_allocation,
    .container_needs = mock_container_needs,
    .stats = mock_stats,
    .alloc_to_json = mock_alloc_to_json,
    .alloc_from_json = mock_alloc_from_json,
    .describe_device = mock_describe_device,
};

BAIC_PLUGIN_DEFINE(compute, mock, "1.0.0", mock_init, mock_fini, &mock_ops)
