/* SPDX-License-Identifier: Apache-2.0 */
/* compute/rocm: AMD GPUs found through rocm-smi (loaded at run time), booked whole or as shares. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <ltdl.h>

#include <baic/compute.h>
#include <baic/host.h>

#include "gpu_book.h"

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
    gpu_book_t book;       /* first: the gpu_book_op_* ops take the state as a book */
    const baic_host_t *host;
    int ltdl_up;
    lt_dlhandle lib;
    rsmi_api_t rsmi;
    int rsmi_up;
    char dev_root[256];
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
    snprintf(st->book.library, sizeof st->book.library, "%s",
             info && info->filename ? info->filename : tried);
    for (size_t i = 0; i < sizeof rsmi_syms / sizeof rsmi_syms[0]; i++) {
        void *sym = lt_dlsym(st->lib, rsmi_syms[i].sym);
        if (sym == NULL && rsmi_syms[i].required) {
            h->log(h, BAIC_LOG_WARN, "no_gpus",
                   "reason=\"rocm-smi library lacks a symbol\" library=\"%s\" symbol=%s",
                   st->book.library, rsmi_syms[i].sym);
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
        st->rsmi.version(RSMI_SW_COMP_DRIVER, st->book.driver, sizeof st->book.driver) != 0)
        st->book.driver[0] = '\0';
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

/* ---- stats (rocm-smi reads sysfs and can stall: gpu_book runs this off the loop) ---- */

static void rocm_stat(gpu_book_t *b, const gpu_dev_t *g, baic_device_stat_t *s) {
    rocm_state_t *st = (rocm_state_t *)b;
    uint32_t busy;
    uint64_t used, uw;
    int64_t milli_c;
    s->mem_total_bytes = g->d.memory_bytes;
    if (st->rsmi.busy && st->rsmi.busy(g->index, &busy) == 0)
        s->util_pct = busy;
    if (st->rsmi.mem_used && st->rsmi.mem_used(g->index, RSMI_MEM_TYPE_VRAM, &used) == 0)
        s->mem_used_bytes = (int64_t)used;
    if (st->rsmi.power && st->rsmi.power(g->index, 0, &uw) == 0)
        s->power_w = (double)uw / 1e6; /* microwatts */
    if (st->rsmi.temperature &&
        st->rsmi.temperature(g->index, RSMI_TEMP_TYPE_EDGE, RSMI_TEMP_CURRENT, &milli_c) == 0)
        s->temperature_c = (double)milli_c / 1000.0;
}

static const gpu_vendor_t rocm_vendor = {
    .prefix = "rocm",
    .name = "AMD",
    .minor_key = "render_minor",
    .library_key = "rsmi_library",
    .stat = rocm_stat,
};

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

static int rocm_init(const baic_host_t *host, const json_t *conf, void **state) {
    rocm_state_t *st = host->calloc(1, sizeof *st);
    if (st == NULL)
        return UV_ENOMEM;
    st->host = host;
    int rc = 0;
    const json_t *lib = json_object_get(conf, "rsmi_library");
    const json_t *root = json_object_get(conf, "dev_root");
    if (conf != NULL && !json_is_object(conf))
        rc = compute_conf_fail(host, "plugin", "want a table");
    else if (lib != NULL && !json_is_string(lib))
        rc = compute_conf_fail(host, "rsmi_library", "want a path");
    else if (root != NULL && !json_is_string(root))
        rc = compute_conf_fail(host, "dev_root", "want a path");
    else
        rc = gpu_book_configure(&st->book, host, conf, &rocm_vendor);
    if (rc != 0) {
        st->book.host = host;
        rocm_fini(st);
        return rc;
    }
    snprintf(st->dev_root, sizeof st->dev_root, "%s", root ? json_string_value(root) : "/dev");
    if (rocm_open_library(st, lib ? json_string_value(lib) : NULL) == 0 &&
        rocm_discover(st) == 0)
        gpu_book_declare(&st->book);
    *state = st;
    return 0;
}

/* ---- ops ---- */

static int rocm_container_needs(void *state, const baic_compute_alloc_t *alloc,
                                const baic_needs_builder_t *b) {
    rocm_state_t *st = state;
    if (alloc->n_parts == 0)
        return 0;
    char rocr_buf[2048], hip_buf[512], shares_buf[2048];
    compute_list_t rocr, hip, shares;
    compute_list_init(&rocr, rocr_buf, sizeof rocr_buf);
    compute_list_init(&hip, hip_buf, sizeof hip_buf);
    compute_list_init(&shares, shares_buf, sizeof shares_buf);
    int rc = compute_add_dev_node(b, st->dev_root, "kfd", -1, -1);
    for (size_t i = 0; rc == 0 && i < alloc->n_parts; i++) {
        gpu_dev_t *g = gpu_book_find(&st->book, alloc->parts[i].device_id);
        if (g == NULL)
            return BAIC_ENOT_FOUND;
        char amt[32], node[48];
        compute_format_amount(alloc->parts[i].amount, BAIC_SLOT_UNIT, amt, sizeof amt);
        /* ROCR_VISIBLE_DEVICES takes UUIDs, which stay right when only some render
         * nodes are passed in and the runtime renumbers; HIP then counts from 0. */
        int bad = compute_list_add(&rocr, "%s", g->uuid[0] ? g->uuid : g->id);
        bad |= compute_list_add(&hip, "%zu", i);
        bad |= compute_list_add(&shares, "%s:%s", g->id, amt);
        if (bad)
            return BAIC_EBAD_INPUT;
        snprintf(node, sizeof node, "dri/renderD%u", g->minor);
        rc = compute_add_dev_node(b, st->dev_root, node, DRM_MAJOR, g->minor);
    }
    if (rc == 0)
        rc = b->add_env(b->needs, "ROCR_VISIBLE_DEVICES", rocr_buf);
    if (rc == 0)
        rc = b->add_env(b->needs, "HIP_VISIBLE_DEVICES", hip_buf);
    if (rc == 0 && st->book.shares)
        rc = b->add_env(b->needs, "BACKENDAI_ROCM_SHARES", shares_buf);
    return rc;
}

static const baic_compute_ops_t rocm_ops = {
    .list_slots = gpu_book_op_list_slots,
    .list_devices = gpu_book_op_list_devices,
    .allocate = gpu_book_op_allocate,
    .free_allocation = gpu_book_op_free,
    .container_needs = rocm_container_needs,
    .stats = gpu_book_op_stats,
    .alloc_to_json = gpu_book_op_to_json,
    .alloc_from_json = gpu_book_op_from_json,
    .describe_device = gpu_book_op_describe,
};

BAIC_PLUGIN_DEFINE(compute, rocm, "1.0.0", rocm_init, rocm_fini, &rocm_ops)
