/* SPDX-License-Identifier: Apache-2.0 */
/* compute/mem: the host's memory as the "mem" slot, booked in exact bytes without over-commit. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <baic/compute.h>
#include <baic/host.h>

#include "compute_common.h"

/*
 * Config ([plugin."compute/mem"]), all optional:
 *   reserve   what the host keeps for itself: bytes (integer), "2g"/"512MiB"/"1024k",
 *             or "10%" of MemTotal. Default: 1 GiB, but never more than 10% of
 *             MemTotal, so small hosts are not left with nothing to offer.
 *   meminfo   the file to read MemTotal from, "/proc/meminfo" (tests give a fake)
 *
 * Capacity is MemTotal minus the reserve, offered as one device "host". Requests
 * are booked to the byte and refused once the sum would pass capacity.
 *
 * The limit the runtime must set (memory.max) has no place in the needs builder
 * of ABI 1.1; it travels as env BACKENDAI_MEM_LIMIT (bytes) and in alloc_to_json
 * ("memory_limit"), for the agent to copy into the container spec's memory_bytes.
 */

#define MEM_GIB (INT64_C(1) << 30)

typedef struct mem_state {
    const baic_host_t *host;
    int64_t total, reserve, capacity, used;
    baic_device_t dev;
    const baic_device_t *devs[1];
    baic_slot_decl_t decl;
    const baic_slot_decl_t *decls[1];
    compute_alloc_t *allocs;
} mem_state_t;

/* Reads MemTotal (kB in the file) into *out bytes. Returns 0 or a code. */
static int mem_read_total(const char *path, int64_t *out) {
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return BAIC_ENOT_FOUND;
    char line[256];
    int rc = BAIC_EBAD_INPUT;
    while (fgets(line, sizeof line, f) != NULL) {
        long long kb;
        if (sscanf(line, "MemTotal: %lld kB", &kb) == 1 && kb > 0) {
            *out = (int64_t)kb * 1024;
            rc = 0;
            break;
        }
    }
    fclose(f);
    return rc;
}

/* 1073741824, "1g", "512M", "10%" -> bytes of total. Returns 0 or BAIC_EBAD_INPUT. */
static int mem_parse_size(const json_t *v, int64_t total, int64_t *out) {
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0)
            return BAIC_EBAD_INPUT;
        *out = json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v))
        return BAIC_EBAD_INPUT;
    const char *s = json_string_value(v);
    char *end;
    if (!isdigit((unsigned char)*s))
        return BAIC_EBAD_INPUT;
    long long n = strtoll(s, &end, 10);
    int64_t mult = 1;
    switch (tolower((unsigned char)*end)) {
    case '%':
        if (n > 100 || end[1] != '\0')
            return BAIC_EBAD_INPUT;
        *out = total * n / 100;
        return 0;
    case 'k':
        mult = INT64_C(1) << 10;
        break;
    case 'm':
        mult = INT64_C(1) << 20;
        break;
    case 'g':
        mult = INT64_C(1) << 30;
        break;
    case 't':
        mult = INT64_C(1) << 40;
        break;
    case '\0':
        break;
    default:
        return BAIC_EBAD_INPUT;
    }
    /* "2g", "2gb", "2GiB" all mean 2 * 2^30, as Backend.AI reads them. */
    if (*end != '\0') {
        const char *rest = end + 1;
        if (tolower((unsigned char)*rest) == 'i')
            rest++;
        if (tolower((unsigned char)*rest) == 'b')
            rest++;
        if (*rest != '\0')
            return BAIC_EBAD_INPUT;
    }
    if (n > INT64_MAX / mult)
        return BAIC_EBAD_INPUT;
    *out = (int64_t)n * mult;
    return 0;
}

static void mem_fini(void *state) {
    mem_state_t *st = state;
    while (st->allocs != NULL) {
        compute_alloc_t *a = st->allocs;
        st->allocs = a->next;
        compute_alloc_release(st->host, a);
    }
    st->host->free(st);
}

static int mem_configure(mem_state_t *st, const json_t *conf) {
    const baic_host_t *h = st->host;
    if (conf != NULL && !json_is_object(conf))
        return compute_conf_fail(h, "plugin", "want a table");
    const json_t *v = json_object_get(conf, "meminfo");
    if (v != NULL && !json_is_string(v))
        return compute_conf_fail(h, "meminfo", "want a path");
    const char *path = v ? json_string_value(v) : "/proc/meminfo";
    int rc = mem_read_total(path, &st->total);
    if (rc != 0) {
        h->log(h, BAIC_LOG_ERROR, "meminfo_unreadable", "path=\"%s\"", path);
        return rc;
    }
    st->reserve = st->total / 10 < MEM_GIB ? st->total / 10 : MEM_GIB;
    v = json_object_get(conf, "reserve");
    if (v != NULL && mem_parse_size(v, st->total, &st->reserve) != 0)
        return compute_conf_fail(h, "reserve", "want bytes, \"2g\" or \"10%\"");
    if (st->reserve >= st->total)
        return compute_conf_fail(h, "reserve", "leaves no memory to offer");
    st->capacity = st->total - st->reserve;
    return 0;
}

static int mem_init(const baic_host_t *host, const json_t *conf, void **state) {
    mem_state_t *st = host->calloc(1, sizeof *st);
    if (st == NULL)
        return UV_ENOMEM;
    st->host = host;
    int rc = mem_configure(st, conf);
    if (rc != 0) {
        mem_fini(st);
        return rc;
    }
    st->dev = (baic_device_t){
        .size = sizeof st->dev,
        .id = "host",
        .slot = "mem",
        .model = "host memory",
        .capacity = st->capacity,
        .memory_bytes = st->total,
        .numa_node = -1,
        .device_path = NULL,
    };
    st->devs[0] = &st->dev;
    st->decl = (baic_slot_decl_t){
        .size = sizeof st->decl,
        .name = "mem",
        .type = BAIC_SLOT_BYTES,
        .fractional = 0,
        .quantum = 0,
        .display_name = "RAM",
        .description = "memory in bytes",
    };
    st->decls[0] = &st->decl;
    host->log(host, BAIC_LOG_INFO, "devices_found",
              "slot=mem total=%" PRId64 " reserve=%" PRId64 " capacity=%" PRId64, st->total,
              st->reserve, st->capacity);
    *state = st;
    return 0;
}

static int mem_list_slots(void *state, const baic_slot_decl_t *const **decls, size_t *n) {
    mem_state_t *st = state;
    *decls = st->decls;
    *n = 1;
    return 0;
}

static int mem_list_devices(void *state, const baic_device_t *const **devs, size_t *n) {
    mem_state_t *st = state;
    *devs = st->devs;
    *n = 1;
    return 0;
}

static void mem_publish(mem_state_t *st) {
    st->host->metric_set(st->host, "baic_mem_booked_bytes", "Memory booked by kernels", NULL,
                         (double)st->used);
}

static int mem_book(mem_state_t *st, const char *kernel_id, int64_t amount,
                    baic_compute_alloc_t **out) {
    if (amount < 0)
        return BAIC_EBAD_INPUT;
    if (amount > st->capacity - st->used) {
        st->host->log(st->host, BAIC_LOG_INFO, "refused",
                      "kernel=%s want=%" PRId64 " free=%" PRId64, kernel_id ? kernel_id : "-",
                      amount, st->capacity - st->used);
        return BAIC_ENO_RESOURCES;
    }
    compute_alloc_t *a;
    int rc = compute_alloc_new(st->host, sizeof *a, 1, kernel_id, &a);
    if (rc != 0)
        return rc;
    a->parts[0] = (baic_compute_alloc_part_t){"host", "mem", amount};
    a->pub.n_parts = amount > 0 ? 1 : 0;
    st->used += amount;
    compute_alloc_link(&st->allocs, a, out);
    mem_publish(st);
    return 0;
}

static int mem_allocate(void *state, const baic_compute_request_t *req,
                        baic_compute_alloc_t **out) {
    mem_state_t *st = state;
    int64_t amount;
    baic_slots_get(&req->requested, "mem", &amount);
    if (amount > 0 && !compute_device_allowed(req, "host", NULL))
        return BAIC_ENO_RESOURCES;
    return mem_book(st, req->kernel_id, amount, out);
}

static int mem_free_allocation(void *state, baic_compute_alloc_t *alloc) {
    mem_state_t *st = state;
    compute_alloc_t *a = compute_alloc_unlink(&st->allocs, alloc);
    if (a == NULL)
        return BAIC_ENOT_FOUND;
    st->used -= a->parts[0].amount;
    mem_publish(st);
    compute_alloc_release(st->host, a);
    return 0;
}

static int mem_container_needs(void *state, const baic_compute_alloc_t *alloc,
                               const baic_needs_builder_t *b) {
    if (alloc->n_parts == 0)
        return 0;
    char v[32];
    snprintf(v, sizeof v, "%" PRId64, alloc->parts[0].amount);
    return b->add_env(b->needs, "BACKENDAI_MEM_LIMIT", v);
}

/* {"mem": "<bytes>", "memory_limit": <bytes>} */
static int mem_alloc_to_json(void *state, const baic_compute_alloc_t *alloc, json_t **out) {
    int64_t amount = alloc->n_parts ? alloc->parts[0].amount : 0;
    char v[32];
    snprintf(v, sizeof v, "%" PRId64, amount);
    *out = json_pack("{s:s, s:I}", "mem", v, "memory_limit", (json_int_t)amount);
    return *out ? 0 : UV_ENOMEM;
}

static int mem_alloc_from_json(void *state, const char *kernel_id, const json_t *desc,
                               baic_compute_alloc_t **out) {
    mem_state_t *st = state;
    const json_t *v = json_object_get(desc, "mem");
    char *end;
    if (!json_is_string(v) || !isdigit((unsigned char)json_string_value(v)[0]))
        return BAIC_EBAD_INPUT;
    long long amount = strtoll(json_string_value(v), &end, 10);
    if (*end != '\0')
        return BAIC_EBAD_INPUT;
    return mem_book(st, kernel_id, amount, out);
}

static int mem_describe_device(void *state, const char *device_id, json_t **out) {
    mem_state_t *st = state;
    if (strcmp(device_id, "host") != 0)
        return BAIC_ENOT_FOUND;
    *out = json_pack("{s:s, s:I, s:I, s:I, s:I}", "id", "host", "total_bytes",
                     (json_int_t)st->total, "reserved_bytes", (json_int_t)st->reserve,
                     "capacity_bytes", (json_int_t)st->capacity, "booked_bytes",
                     (json_int_t)st->used);
    return *out ? 0 : UV_ENOMEM;
}

static const baic_compute_ops_t mem_ops = {
    .list_slots = mem_list_slots,
    .list_devices = mem_list_devices,
    .allocate = mem_allocate,
    .free_allocation = mem_free_allocation,
    .container_needs = mem_container_needs,
    .alloc_to_json = mem_alloc_to_json,
    .alloc_from_json = mem_alloc_from_json,
    .describe_device = mem_describe_device,
};

BAIC_PLUGIN_DEFINE(compute, mem, "1.0.0", mem_init, mem_fini, &mem_ops)
