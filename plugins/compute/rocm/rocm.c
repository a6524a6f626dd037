/* SPDX-License-Identifier: Apache-2.0 */
/* compute/rocm: AMD GPUs found through rocm-smi (loaded at run time), booked whole or as shares. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <ltdl.h>

#include <baic/compute.h>
#include <baic/host.h>

#include "../cuda/gpu_book.h"

/*
 * Config ([plugin."compute/rocm"]), all optional:
 *   rsmi_library  path of librocm_smi64 to load instead of the default search
 *                 ("librocm_smi64" with the platform extension, then
 *                 /opt/rocm/lib/librocm_smi64.so, then the versioned sonames)
 *   mode          "device" (slot rocm.device, whole GPUs) | "shares" (rocm.shares)
 *   quantum       shares mode: smallest step, "0.01" by default
 *   dev_root      where the device nodes live, "/dev" (tests point it elsewhere)
 *
 * Like compute/cuda it never links against the vendor library, and a host without
 * it (or without devices) loads the plugin with no slots.
 */

typedef int rsmi_status_t;
#define RSMI_STATUS_SUCCESS 0
#define RSMI_MEM_TYPE_VRAM 0
#define RSMI_TEMP_TYPE_EDGE 0
#define RSMI_TEMP_CURRENT 0
#define RSMI_SW_COMP_DRIVER 0

/* The DRM character-device major (render nodes). */
#define DRM_MAJOR 226
#define RENDER_MINOR_BASE 128

typedef struct rsmi_api {
    rsmi_status_t (*init)(uint64_t);
    rsmi_status_t (*shut_down)(void);
    rsmi_status_t (*count)(uint32_t *);
    rsmi_status_t (*name)(uint32_t, char *, size_t);
    rsmi_status_t (*unique_id)(uint32_t, uint64_t *);
    rsmi_status_t (*mem_total)(uint32_t, int, uint64_t *);
    rsmi_status_t (*mem_used)(uint32_t, int, uint64_t *);
    rsmi_status_t (*busy)(uint32_t, uint32_t *);
    rsmi_status_t (*temperature)(uint32_t, uint32_t, int, int64_t *);
    rsmi_status_t (*power)(uint32_t, uint32_t, uint64_t *);
    rsmi_status_t (*render_minor)(uint32_t, uint32_t *);
    rsmi_status_t (*version)(int, char *, uint32_t);
    rsmi_status_t (*status_string)(rsmi_status_t, const char **);
} rsmi_api_t;

static const struct {
    const char *sym;
    size_t off;
    int required;
} rsmi_syms[] = {
    {"rsmi_init", offsetof(rsmi_api_t, init), 1},
    {"rsmi_shut_down", offsetof(rsmi_api_t, shut_down), 1},
    {"rsmi_num_monitor_devices", offsetof(rsmi_api_t, count), 1},
    {"rsmi_dev_name_get", offsetof(rsmi_api_t, name), 1},
    {"rsmi_dev_unique_id_get", offsetof(rsmi_api_t, unique_id), 0},
    {"rsmi_dev_memory_total_get", offsetof(rsmi_api_t, mem_total), 1},
    {"rsmi_dev_memory_usage_get", offsetof(rsmi_api_t, mem_used), 0},
    {"rsmi_dev_busy_percent_get", offsetof(rsmi_api_t, busy), 0},
    {"rsmi_dev_temp_metric_get", offsetof(rsmi_api_t, temperature), 0},
    {"rsmi_dev_power_ave_get", offsetof(rsmi_api_t, power), 0},
    {"rsmi_dev_drm_render_minor_get", offsetof(rsmi_api_t, render_minor), 0},
    {"rsmi_version_str_get", offsetof(rsmi_api_t, version), 0},
    {"rsmi_status_string", offsetof(rsmi_api_t, status_string), 0},
};

typedef struct rocm_state {
    const baic_host_t *host;
    gpu_book_t book;
    int ltdl_up;
    lt_dlhandle lib;
    rsmi_api_t rsmi;
    int rsmi_up;
    char library[512];
    char driver[96];
    char dev_root[256];
    baic_slot_decl_t decl;
    const baic_slot_decl_t *decls[1];
    size_t ndecls;
} rocm_state_t;

static const char *rocm_error(rocm_state_t *st, rsmi_status_t r) {
    const char *s = NULL;
    if (st->rsmi.status_string == NULL || st->rsmi.status_string(r, &s) != 0 || s == NULL)
        return "rocm-smi error";
    return s;
}

/* ---- loading rocm-smi ---- */

static int rocm_open_library(rocm_state_t *st, const char *configured) {
    const baic_host_t *h = st->host;
    if (lt_dlinit() != 0) {
        h->log(h, BAIC_LOG_WARN, "no_gpus", "reason=\"lt_dlinit: %s\"", lt_dlerror());
        return BAIC_EPLUGIN_OPEN;
    }
    st->ltdl_up = 1;
    const char *tried = configured;
    if (configured != NULL) {
        st->lib = lt_dlopen(configured);
        if (st->lib == NULL)
            st->lib = lt_dlopenext(configured);
    } else {
        /* ROCm installs under /opt/rocm without touching the loader's path, and the
         * soname's number moves between releases, hence the short list. */
        static const char *const names[] = {"/opt/rocm/lib/librocm_smi64.so",
                                            "librocm_smi64.so.7", "librocm_smi64.so.6",
                                            "librocm_smi64.so.5", "librocm_smi64.so.1"};
        tried = "librocm_smi64";
        st->lib = lt_dlopenext("librocm_smi64");
        for (size_t i = 0; st->lib == NULL && i < sizeof names / sizeof names[0]; i++)
            st->lib = lt_dlopen(names[i]);
    }
    if (st->lib == NULL) {
        const char *why = lt_dlerror();
        h->log(h, BAIC_LOG_INFO, "no_gpus",
               "reason=\"rocm-smi library not loadable\" library=\"%s\" error=\"%s\"", tried,
               why ? why : "-");
        return BAIC_EPLUGIN_OPEN;
    }
    const lt_dlinfo *info = lt_dlgetinfo(st->lib);
    snprintf(st->library, sizeof st->library, "%s",
             info && info->filename ? info->filename : tried);
    for (size_t i = 0; i < sizeof rsmi_syms / sizeof rsmi_syms[0]; i++) {
        void *sym = lt_dlsym(st->lib, rsmi_syms[i].sym);
        if (sym == NULL && rsmi_syms[i].required) {
            h->log(h, BAIC_LOG_WARN, "no_gpus",
                   "reason=\"rocm-smi library lacks a symbol\" library=\"%s\" symbol=%s",
                   st->library, rsmi_syms[i].sym);
            return BAIC_EPLUGIN_OPEN;
        }
        memcpy((char *)&st->rsmi + rsmi_syms[i].off, &sym, sizeof sym);
    }
    return 0;
}

static int rocm_discover(rocm_state_t *st) {
    const baic_host_t *h = st->host;
    rsmi_status_t r = st->rsmi.init(0);
    if (r != RSMI_STATUS_SUCCESS) {
        h->log(h, BAIC_LOG_WARN, "no_gpus", "reason=\"rsmi_init failed\" rsmi=%d error=\"%s\"", r,
               rocm_error(st, r));
        return BAIC_EBACKEND;
    }
    st->rsmi_up = 1;
    if (st->rsmi.version == NULL ||
        st->rsmi.version(RSMI_SW_COMP_DRIVER, st->driver, sizeof st->driver) != 0)
        st->driver[0] = '\0';
    uint32_t n = 0;
    r = st->rsmi.count(&n);
    if (r != RSMI_STATUS_SUCCESS) {
        h->log(h, BAIC_LOG_WARN, "no_gpus",
               "reason=\"rsmi_num_monitor_devices failed\" rsmi=%d error=\"%s\"", r,
               rocm_error(st, r));
        return BAIC_EBACKEND;
    }
    if (n == 0) {
        h->log(h, BAIC_LOG_INFO, "no_gpus", "reason=\"rocm-smi reports 0 devices\"");
        return 0;
    }
    int rc = gpu_book_reserve(&st->book, n);
    if (rc != 0)
        return rc;
    for (uint32_t i = 0; i < n; i++) {
        gpu_dev_t *g = &st->book.devs[i];
        uint64_t total = 0, uid = 0;
        g->index = i;
        snprintf(g->id, sizeof g->id, "%u", i);
        if (st->rsmi.name(i, g->model, sizeof g->model) != 0)
            snprintf(g->model, sizeof g->model, "AMD GPU");
        if (st->rsmi.unique_id != NULL && st->rsmi.unique_id(i, &uid) == 0 && uid != 0)
            snprintf(g->uuid, sizeof g->uuid, "GPU-%016" PRIx64, uid);
        if (st->rsmi.mem_total(i, RSMI_MEM_TYPE_VRAM, &total) != 0)
            total = 0;
        /* Render minors usually are 128 + index, but not when a display-only GPU
         * sits in between: ask when the library can say. */
        if (st->rsmi.render_minor == NULL || st->rsmi.render_minor(i, &g->minor) != 0)
            g->minor = RENDER_MINOR_BASE + i;
        snprintf(g->path, sizeof g->path, "%s/dri/renderD%u", st->dev_root, g->minor);
        gpu_book_publish_dev(&st->book, i, (int64_t)total);
        h->log(h, BAIC_LOG_INFO, "device_found", "id=%s model=\"%s\" uuid=%s memory=%" PRIu64
               " render_minor=%u", g->id, g->model, g->uuid[0] ? g->uuid : "-", total, g->minor);
    }
    return 0;
}

/* ---- life cycle ---- */

static void rocm_fini(void *state) {
    rocm_state_t *st = state;
    gpu_book_fini(&st->book);
    if (st->rsmi_up)
        st->rsmi.shut_down();
    if (st->lib != NULL)
        lt_dlclose(st->lib);
    if (st->ltdl_up)
        lt_dlexit();
    st->host->free(st);
}

static int rocm_conf_fail(const baic_host_t *h, const char *key, const char *why) {
    h->log(h, BAIC_LOG_ERROR, "bad_config", "key=%s reason=\"%s\"", key, why);
    return BAIC_ECONFIG_TYPE;
}

static int rocm_init(const baic_host_t *host, const json_t *conf, void **state) {
    rocm_state_t *st = host->calloc(1, sizeof *st);
    if (st == NULL)
        return UV_ENOMEM;
    st->host = host;
    int rc = 0;
    const json_t *lib = json_object_get(conf, "rsmi_library");
    const json_t *root = json_object_get(conf, "dev_root");
    if (conf != NULL && !json_is_object(conf))
        rc = rocm_conf_fail(host, "plugin", "want a table");
    else if (lib != NULL && !json_is_string(lib))
        rc = rocm_conf_fail(host, "rsmi_library", "want a path");
    else if (root != NULL && !json_is_string(root))
        rc = rocm_conf_fail(host, "dev_root", "want a path");
    else
        rc = gpu_book_configure(&st->book, host, conf, "rocm");
    if (rc != 0) {
        st->book.host = host;
        rocm_fini(st);
        return rc;
    }
    snprintf(st->dev_root, sizeof st->dev_root, "%s", root ? json_string_value(root) : "/dev");
    if (rocm_open_library(st, lib ? json_string_value(lib) : NULL) == 0 &&
        rocm_discover(st) == 0 && st->book.n > 0) {
        st->decl = (baic_slot_decl_t){
            .size = sizeof st->decl,
            .name = st->book.slot,
            .type = BAIC_SLOT_COUNT,
            .fractional = st->book.shares,
            .quantum = st->book.quantum,
            .display_name = "GPU",
            .description = st->book.shares ? "fractional shares of AMD GPUs" : "whole AMD GPUs",
        };
        st->decls[0] = &st->decl;
        st->ndecls = 1;
        host->log(host, BAIC_LOG_INFO, "devices_found", "slot=%s count=%zu driver=%s library=\"%s\"",
                  st->book.slot, st->book.n, st->driver[0] ? st->driver : "-", st->library);
    }
    *state = st;
    return 0;
}

/* ---- ops ---- */

static int rocm_list_slots(void *state, const baic_slot_decl_t *const **decls, size_t *n) {
    rocm_state_t *st = state;
    *decls = st->decls;
    *n = st->ndecls;
    return 0;
}

static int rocm_list_devices(void *state, const baic_device_t *const **devs, size_t *n) {
    rocm_state_t *st = state;
    *devs = st->book.ptrs;
    *n = st->book.n;
    return 0;
}

static int rocm_allocate(void *state, const baic_compute_request_t *req,
                         baic_compute_alloc_t **out) {
    rocm_state_t *st = state;
    return gpu_book_allocate(&st->book, req, out);
}

static int rocm_free_allocation(void *state, baic_compute_alloc_t *alloc) {
    rocm_state_t *st = state;
    return gpu_book_free(&st->book, alloc);
}

/* Adds dev_root/name at /dev/name when it exists, with a cgroup rule taken from the
 * node (or the fixed DRM major for a render node that is a plain file in tests;
 * /dev/kfd's major is dynamic, so a plain file gets no rule). */
static int rocm_add_node(rocm_state_t *st, const baic_needs_builder_t *b, const char *name,
                         int64_t major, int64_t minor) {
    char host_path[384], ctr_path[128];
    struct stat sb;
    snprintf(host_path, sizeof host_path, "%s/%s", st->dev_root, name);
    snprintf(ctr_path, sizeof ctr_path, "/dev/%s", name);
    if (stat(host_path, &sb) != 0)
        return 0;
    int rc = b->add_device(b->needs, host_path, ctr_path, "rwm");
    if (rc != 0)
        return rc;
    if (S_ISCHR(sb.st_mode)) {
        major = major(sb.st_rdev);
        minor = minor(sb.st_rdev);
    }
    return major < 0 ? 0 : b->add_cgroup_rule(b->needs, 'c', major, minor, "rwm");
}

static int rocm_container_needs(void *state, const baic_compute_alloc_t *alloc,
                                const baic_needs_builder_t *b) {
    rocm_state_t *st = state;
    if (alloc->n_parts == 0)
        return 0;
    char rocr[2048] = "", hip[512] = "", shares[2048] = "";
    size_t rl = 0, hl = 0, sl = 0;
    int rc = rocm_add_node(st, b, "kfd", -1, -1);
    for (size_t i = 0; rc == 0 && i < alloc->n_parts; i++) {
        gpu_dev_t *g = gpu_book_find(&st->book, alloc->parts[i].device_id);
        if (g == NULL)
            return BAIC_ENOT_FOUND;
        char amt[32], node[48];
        gpu_format_amount(alloc->parts[i].amount, amt, sizeof amt);
        /* ROCR_VISIBLE_DEVICES takes UUIDs, which stay right when only some render
         * nodes are passed in and the runtime renumbers; HIP then counts from 0. */
        rl += (size_t)snprintf(rocr + rl, sizeof rocr - rl, "%s%s", i ? "," : "",
                               g->uuid[0] ? g->uuid : g->id);
        hl += (size_t)snprintf(hip + hl, sizeof hip - hl, "%s%zu", i ? "," : "", i);
        sl += (size_t)snprintf(shares + sl, sizeof shares - sl, "%s%s:%s", i ? "," : "", g->id,
                               amt);
        if (rl >= sizeof rocr || hl >= sizeof hip || sl >= sizeof shares)
            return BAIC_EBAD_INPUT;
        snprintf(node, sizeof node, "dri/renderD%u", g->minor);
        rc = rocm_add_node(st, b, node, DRM_MAJOR, g->minor);
    }
    if (rc == 0)
        rc = b->add_env(b->needs, "ROCR_VISIBLE_DEVICES", rocr);
    if (rc == 0)
        rc = b->add_env(b->needs, "HIP_VISIBLE_DEVICES", hip);
    if (rc == 0 && st->book.shares)
        rc = b->add_env(b->needs, "BACKENDAI_ROCM_SHARES", shares);
    return rc;
}

/* ---- stats (rocm-smi reads sysfs and can stall: off the loop) ---- */

typedef struct rocm_stats_req {
    rocm_state_t *st;
    baic_compute_stats_cb cb;
    void *arg;
    baic_device_stat_t *stats;
    const baic_device_stat_t **ptrs;
} rocm_stats_req_t;

static void rocm_stats_work(void *arg) {
    rocm_stats_req_t *r = arg;
    rocm_state_t *st = r->st;
    for (size_t i = 0; i < st->book.n; i++) {
        gpu_dev_t *g = &st->book.devs[i];
        baic_device_stat_t *s = &r->stats[i];
        uint32_t busy;
        uint64_t used, uw;
        int64_t milli_c;
        *s = (baic_device_stat_t){sizeof *s, g->id, -1, -1, g->d.memory_bytes, -1, -1};
        if (st->rsmi.busy && st->rsmi.busy(g->index, &busy) == 0)
            s->util_pct = busy;
        if (st->rsmi.mem_used && st->rsmi.mem_used(g->index, RSMI_MEM_TYPE_VRAM, &used) == 0)
            s->mem_used_bytes = (int64_t)used;
        if (st->rsmi.power && st->rsmi.power(g->index, 0, &uw) == 0)
            s->power_w = (double)uw / 1e6; /* microwatts */
        if (st->rsmi.temperature &&
            st->rsmi.temperature(g->index, RSMI_TEMP_TYPE_EDGE, RSMI_TEMP_CURRENT, &milli_c) == 0)
            s->temperature_c = (double)milli_c / 1000.0;
        r->ptrs[i] = s;
    }
}

static void rocm_stats_done(void *arg, int status) {
    rocm_stats_req_t *r = arg;
    const baic_host_t *h = r->st->host;
    if (status == 0)
        r->cb(r->arg, 0, r->ptrs, r->st->book.n);
    else
        r->cb(r->arg, status, NULL, 0);
    h->free(r->stats);
    h->free(r->ptrs);
    h->free(r);
}

static int rocm_stats(void *state, baic_compute_stats_cb cb, void *arg) {
    rocm_state_t *st = state;
    const baic_host_t *h = st->host;
    rocm_stats_req_t *r = h->calloc(1, sizeof *r);
    if (r == NULL)
        return UV_ENOMEM;
    r->st = st;
    r->cb = cb;
    r->arg = arg;
    r->stats = h->calloc(st->book.n + 1, sizeof *r->stats);
    r->ptrs = h->calloc(st->book.n + 1, sizeof *r->ptrs);
    int rc = r->stats && r->ptrs ? h->queue_work(h, rocm_stats_work, rocm_stats_done, r)
                                 : UV_ENOMEM;
    if (rc != 0) {
        h->free(r->stats);
        h->free(r->ptrs);
        h->free(r);
    }
    return rc;
}

static int rocm_alloc_to_json(void *state, const baic_compute_alloc_t *alloc, json_t **out) {
    rocm_state_t *st = state;
    return gpu_book_to_json(&st->book, alloc, out);
}

static int rocm_alloc_from_json(void *state, const char *kernel_id, const json_t *desc,
                                baic_compute_alloc_t **out) {
    rocm_state_t *st = state;
    return gpu_book_from_json(&st->book, kernel_id, desc, out);
}

static int rocm_describe_device(void *state, const char *device_id, json_t **out) {
    rocm_state_t *st = state;
    gpu_dev_t *g = gpu_book_find(&st->book, device_id);
    if (g == NULL)
        return BAIC_ENOT_FOUND;
    char booked[32];
    gpu_format_amount(g->used, booked, sizeof booked);
    *out = json_pack("{s:s, s:s, s:s, s:s, s:I, s:i, s:i, s:s, s:s, s:s, s:s}", "id", g->id,
                     "vendor", "AMD", "model", g->model, "uuid", g->uuid, "memory_bytes",
                     (json_int_t)g->d.memory_bytes, "index", (int)g->index, "render_minor",
                     (int)g->minor, "device_path", g->path, "driver_version", st->driver,
                     "booked", booked, "rsmi_library", st->library);
    return *out ? 0 : UV_ENOMEM;
}

static const baic_compute_ops_t rocm_ops = {
    .list_slots = rocm_list_slots,
    .list_devices = rocm_list_devices,
    .allocate = rocm_allocate,
    .free_allocation = rocm_free_allocation,
    .container_needs = rocm_container_needs,
    .stats = rocm_stats,
    .alloc_to_json = rocm_alloc_to_json,
    .alloc_from_json = rocm_alloc_from_json,
    .describe_device = rocm_describe_device,
};

BAIC_PLUGIN_DEFINE(compute, rocm, "1.0.0", rocm_init, rocm_fini, &rocm_ops)
