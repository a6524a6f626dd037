/* SPDX-License-Identifier: Apache-2.0 */
/* compute/cuda: NVIDIA GPUs found through NVML (loaded at run time), booked whole or as shares. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <ltdl.h>

#include <baic/compute.h>
#include <baic/host.h>

#include "gpu_book.h"

/*
 * Config ([plugin."compute/cuda"]), all optional:
 *   nvml_library  path of libnvidia-ml to load instead of the default search
 *                 ("libnvidia-ml" with the platform extension, then libnvidia-ml.so.1)
 *   mode          "device" (slot cuda.device, whole GPUs) | "shares" (cuda.shares)
 *   quantum       shares mode: smallest step, "0.01" by default
 *   visible       "uuid" (default) | "index": what NVIDIA_/CUDA_VISIBLE_DEVICES list
 *   dev_root      where the device nodes live, "/dev" (tests point it elsewhere)
 *   mounts        ["/path", ...] host files (driver libraries) bind-mounted read-only
 *                 at the same path in every container using a GPU
 *
 * The plugin does not link against NVML: a host without the NVIDIA driver must
 * still load it (it then offers no slots), and one build serves every driver
 * version. The few NVML types used are declared here from NVML's documented ABI.
 */

typedef int nvmlReturn_t;
typedef struct nvml_device_opaque *nvmlDevice_t;
typedef struct {
    unsigned long long total, free, used;
} nvmlMemory_t;
typedef struct {
    unsigned int gpu, memory;
} nvmlUtilization_t;
#define NVML_SUCCESS 0
#define NVML_TEMPERATURE_GPU 0
#define NVML_NAME_LEN 96
#define NVML_UUID_LEN 96
#define NVML_DRIVER_LEN 96

/* NVIDIA's fixed character-device major and the control node's minor. */
#define NVIDIA_MAJOR 195
#define NVIDIACTL_MINOR 255

typedef struct nvml_api {
    nvmlReturn_t (*init)(void);
    nvmlReturn_t (*shutdown)(void);
    nvmlReturn_t (*count)(unsigned int *);
    nvmlReturn_t (*handle)(unsigned int, nvmlDevice_t *);
    nvmlReturn_t (*name)(nvmlDevice_t, char *, unsigned int);
    nvmlReturn_t (*uuid)(nvmlDevice_t, char *, unsigned int);
    nvmlReturn_t (*memory)(nvmlDevice_t, nvmlMemory_t *);
    nvmlReturn_t (*minor_number)(nvmlDevice_t, unsigned int *);
    nvmlReturn_t (*util)(nvmlDevice_t, nvmlUtilization_t *);
    nvmlReturn_t (*temperature)(nvmlDevice_t, int, unsigned int *);
    nvmlReturn_t (*power)(nvmlDevice_t, unsigned int *);
    nvmlReturn_t (*driver)(char *, unsigned int);
    const char *(*error_string)(nvmlReturn_t);
} nvml_api_t;

/* Which symbol fills which member; optional ones only cost a figure in stats. */
static const struct {
    const char *sym;
    size_t off;
    int required;
} nvml_syms[] = {
    {"nvmlInit_v2", offsetof(nvml_api_t, init), 1},
    {"nvmlShutdown", offsetof(nvml_api_t, shutdown), 1},
    {"nvmlDeviceGetCount_v2", offsetof(nvml_api_t, count), 1},
    {"nvmlDeviceGetHandleByIndex_v2", offsetof(nvml_api_t, handle), 1},
    {"nvmlDeviceGetName", offsetof(nvml_api_t, name), 1},
    {"nvmlDeviceGetUUID", offsetof(nvml_api_t, uuid), 1},
    {"nvmlDeviceGetMemoryInfo", offsetof(nvml_api_t, memory), 1},
    {"nvmlDeviceGetMinorNumber", offsetof(nvml_api_t, minor_number), 1},
    {"nvmlDeviceGetUtilizationRates", offsetof(nvml_api_t, util), 0},
    {"nvmlDeviceGetTemperature", offsetof(nvml_api_t, temperature), 0},
    {"nvmlDeviceGetPowerUsage", offsetof(nvml_api_t, power), 0},
    {"nvmlSystemGetDriverVersion", offsetof(nvml_api_t, driver), 0},
    {"nvmlErrorString", offsetof(nvml_api_t, error_string), 0},
};

typedef struct cuda_state {
    const baic_host_t *host;
    gpu_book_t book;
    int ltdl_up;
    lt_dlhandle lib;
    nvml_api_t nvml;
    int nvml_up;
    char library[512];     /* the file that loaded, for describe_device */
    char driver[NVML_DRIVER_LEN];
    char dev_root[256];
    int visible_uuid;
    baic_slot_decl_t decl;
    const baic_slot_decl_t *decls[1];
    size_t ndecls;         /* 0 when NVML or devices are missing */
    json_t *mounts;        /* array of strings, or NULL */
} cuda_state_t;

static const char *cuda_nvml_error(cuda_state_t *st, nvmlReturn_t r) {
    return st->nvml.error_string ? st->nvml.error_string(r) : "NVML error";
}

/* ---- loading NVML ---- */

static int cuda_open_library(cuda_state_t *st, const char *configured) {
    const baic_host_t *h = st->host;
    if (lt_dlinit() != 0) {
        h->log(h, BAIC_LOG_WARN, "no_gpus", "reason=\"lt_dlinit: %s\"", lt_dlerror());
        return BAIC_EPLUGIN_OPEN;
    }
    st->ltdl_up = 1;
    if (configured != NULL) {
        /* A file name with a version suffix (.so.1) must be opened as given: libltdl
         * only tries appending extensions to names that have none. */
        st->lib = lt_dlopen(configured);
        if (st->lib == NULL)
            st->lib = lt_dlopenext(configured);
        snprintf(st->library, sizeof st->library, "%s", configured);
    } else {
        st->lib = lt_dlopenext("libnvidia-ml");
        snprintf(st->library, sizeof st->library, "libnvidia-ml");
        if (st->lib == NULL) {
            st->lib = lt_dlopen("libnvidia-ml.so.1");
            snprintf(st->library, sizeof st->library, "libnvidia-ml.so.1");
        }
    }
    if (st->lib == NULL) {
        const char *why = lt_dlerror();
        h->log(h, BAIC_LOG_INFO, "no_gpus",
               "reason=\"NVML library not loadable\" library=\"%s\" error=\"%s\"",
               configured ? configured : "libnvidia-ml.so.1", why ? why : "-");
        return BAIC_EPLUGIN_OPEN;
    }
    const lt_dlinfo *info = lt_dlgetinfo(st->lib);
    if (info != NULL && info->filename != NULL)
        snprintf(st->library, sizeof st->library, "%s", info->filename);
    for (size_t i = 0; i < sizeof nvml_syms / sizeof nvml_syms[0]; i++) {
        void *sym = lt_dlsym(st->lib, nvml_syms[i].sym);
        if (sym == NULL && nvml_syms[i].required) {
            h->log(h, BAIC_LOG_WARN, "no_gpus",
                   "reason=\"NVML library lacks a symbol\" library=\"%s\" symbol=%s",
                   st->library, nvml_syms[i].sym);
            return BAIC_EPLUGIN_OPEN;
        }
        /* Function pointers stored through their object representation (POSIX dlsym). */
        memcpy((char *)&st->nvml + nvml_syms[i].off, &sym, sizeof sym);
    }
    return 0;
}

/* Finds every device. A failure here leaves the plugin loaded with no slots. */
static int cuda_discover(cuda_state_t *st) {
    const baic_host_t *h = st->host;
    nvmlReturn_t r = st->nvml.init();
    if (r != NVML_SUCCESS) {
        h->log(h, BAIC_LOG_WARN, "no_gpus", "reason=\"nvmlInit failed\" nvml=%d error=\"%s\"", r,
               cuda_nvml_error(st, r));
        return BAIC_EBACKEND;
    }
    st->nvml_up = 1;
    if (st->nvml.driver != NULL &&
        st->nvml.driver(st->driver, sizeof st->driver) != NVML_SUCCESS)
        st->driver[0] = '\0';
    unsigned int n = 0;
    r = st->nvml.count(&n);
    if (r != NVML_SUCCESS) {
        h->log(h, BAIC_LOG_WARN, "no_gpus", "reason=\"nvmlDeviceGetCount failed\" nvml=%d error=\"%s\"",
               r, cuda_nvml_error(st, r));
        return BAIC_EBACKEND;
    }
    if (n == 0) {
        h->log(h, BAIC_LOG_INFO, "no_gpus", "reason=\"NVML reports 0 devices\" driver=%s",
               st->driver[0] ? st->driver : "-");
        return 0;
    }
    int rc = gpu_book_reserve(&st->book, n);
    if (rc != 0)
        return rc;
    size_t k = 0;
    for (unsigned int i = 0; i < n; i++) {
        gpu_dev_t *g = &st->book.devs[k];
        nvmlDevice_t dev;
        nvmlMemory_t mem = {0, 0, 0};
        r = st->nvml.handle(i, &dev);
        if (r == NVML_SUCCESS)
            r = st->nvml.minor_number(dev, &g->minor);
        if (r != NVML_SUCCESS) {
            /* A GPU NVML cannot talk to (fallen off the bus, no permission) is skipped,
             * not fatal: the others are still usable. */
            h->log(h, BAIC_LOG_WARN, "device_skipped", "index=%u nvml=%d error=\"%s\"", i, r,
                   cuda_nvml_error(st, r));
            continue;
        }
        g->handle = dev;
        g->index = i;
        snprintf(g->id, sizeof g->id, "%u", i);
        if (st->nvml.name(dev, g->model, sizeof g->model) != NVML_SUCCESS)
            snprintf(g->model, sizeof g->model, "NVIDIA GPU");
        if (st->nvml.uuid(dev, g->uuid, sizeof g->uuid) != NVML_SUCCESS)
            g->uuid[0] = '\0';
        if (st->nvml.memory(dev, &mem) != NVML_SUCCESS)
            mem.total = 0;
        snprintf(g->path, sizeof g->path, "%s/nvidia%u", st->dev_root, g->minor);
        gpu_book_publish_dev(&st->book, k, (int64_t)mem.total);
        h->log(h, BAIC_LOG_INFO, "device_found",
               "id=%s model=\"%s\" uuid=%s memory=%llu minor=%u", g->id, g->model,
               g->uuid[0] ? g->uuid : "-", mem.total, g->minor);
        k++;
    }
    return 0;
}

/* ---- life cycle ---- */

static void cuda_fini(void *state) {
    cuda_state_t *st = state;
    gpu_book_fini(&st->book);
    if (st->nvml_up)
        st->nvml.shutdown();
    if (st->lib != NULL)
        lt_dlclose(st->lib);
    if (st->ltdl_up)
        lt_dlexit();
    json_decref(st->mounts);
    st->host->free(st);
}

static int cuda_conf_fail(const baic_host_t *h, const char *key, const char *why) {
    h->log(h, BAIC_LOG_ERROR, "bad_config", "key=%s reason=\"%s\"", key, why);
    return BAIC_ECONFIG_TYPE;
}

static int cuda_configure(cuda_state_t *st, const json_t *conf, const char **library) {
    const baic_host_t *h = st->host;
    if (conf != NULL && !json_is_object(conf))
        return cuda_conf_fail(h, "plugin", "want a table");
    int rc = gpu_book_configure(&st->book, h, conf, "cuda");
    if (rc != 0)
        return rc;
    const json_t *v = json_object_get(conf, "nvml_library");
    if (v != NULL && !json_is_string(v))
        return cuda_conf_fail(h, "nvml_library", "want a path");
    *library = v ? json_string_value(v) : NULL;
    v = json_object_get(conf, "dev_root");
    if (v != NULL && !json_is_string(v))
        return cuda_conf_fail(h, "dev_root", "want a path");
    snprintf(st->dev_root, sizeof st->dev_root, "%s", v ? json_string_value(v) : "/dev");
    v = json_object_get(conf, "visible");
    const char *vis = v && json_is_string(v) ? json_string_value(v) : "uuid";
    if (v != NULL && !json_is_string(v))
        vis = "?";
    if (strcmp(vis, "uuid") == 0)
        st->visible_uuid = 1;
    else if (strcmp(vis, "index") == 0)
        st->visible_uuid = 0;
    else
        return cuda_conf_fail(h, "visible", "want uuid or index");
    v = json_object_get(conf, "mounts");
    if (v != NULL) {
        size_t i;
        json_t *e;
        if (!json_is_array(v))
            return cuda_conf_fail(h, "mounts", "want an array of paths");
        json_array_foreach(v, i, e) {
            if (!json_is_string(e) || json_string_value(e)[0] != '/')
                return cuda_conf_fail(h, "mounts", "want absolute paths");
        }
        st->mounts = json_incref((json_t *)v);
    }
    return 0;
}

static int cuda_init(const baic_host_t *host, const json_t *conf, void **state) {
    cuda_state_t *st = host->calloc(1, sizeof *st);
    if (st == NULL)
        return UV_ENOMEM;
    st->host = host;
    const char *library = NULL;
    int rc = cuda_configure(st, conf, &library);
    if (rc != 0) {
        cuda_fini(st);
        return rc;
    }
    /* No library, no driver, no device: the agent still starts, without GPU slots. */
    if (cuda_open_library(st, library) == 0 && cuda_discover(st) == 0 && st->book.n > 0) {
        st->decl = (baic_slot_decl_t){
            .size = sizeof st->decl,
            .name = st->book.slot,
            .type = BAIC_SLOT_COUNT,
            .fractional = st->book.shares,
            .quantum = st->book.quantum,
            .display_name = "GPU",
            .description = st->book.shares ? "fractional shares of NVIDIA GPUs"
                                           : "whole NVIDIA GPUs",
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

static int cuda_list_slots(void *state, const baic_slot_decl_t *const **decls, size_t *n) {
    cuda_state_t *st = state;
    *decls = st->decls;
    *n = st->ndecls;
    return 0;
}

static int cuda_list_devices(void *state, const baic_device_t *const **devs, size_t *n) {
    cuda_state_t *st = state;
    *devs = st->book.ptrs;
    *n = st->book.n;
    return 0;
}

static int cuda_allocate(void *state, const baic_compute_request_t *req,
                         baic_compute_alloc_t **out) {
    cuda_state_t *st = state;
    return gpu_book_allocate(&st->book, req, out);
}

static int cuda_free_allocation(void *state, baic_compute_alloc_t *alloc) {
    cuda_state_t *st = state;
    return gpu_book_free(&st->book, alloc);
}

/* Adds host node dev_root/name at /dev/name when it exists, with its cgroup rule.
 * The rule comes from the node itself when it is a character device; for a plain
 * file (tests) the documented fixed numbers are used, and nodes without fixed
 * numbers (nvidia-uvm's major is dynamic) get none. */
static int cuda_add_node(cuda_state_t *st, const baic_needs_builder_t *b, const char *name,
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
    if (major < 0)
        return 0;
    return b->add_cgroup_rule(b->needs, 'c', major, minor, "rwm");
}

static int cuda_container_needs(void *state, const baic_compute_alloc_t *alloc,
                                const baic_needs_builder_t *b) {
    cuda_state_t *st = state;
    if (alloc->n_parts == 0)
        return 0;
    char visible[2048] = "", shares[2048] = "";
    size_t vl = 0, sl = 0;
    for (size_t i = 0; i < alloc->n_parts; i++) {
        gpu_dev_t *g = gpu_book_find(&st->book, alloc->parts[i].device_id);
        if (g == NULL)
            return BAIC_ENOT_FOUND;
        char amt[32], node[32];
        gpu_format_amount(alloc->parts[i].amount, amt, sizeof amt);
        const char *name = st->visible_uuid && g->uuid[0] ? g->uuid : g->id;
        vl += (size_t)snprintf(visible + vl, sizeof visible - vl, "%s%s", i ? "," : "", name);
        sl += (size_t)snprintf(shares + sl, sizeof shares - sl, "%s%s:%s", i ? "," : "", g->id,
                               amt);
        if (vl >= sizeof visible || sl >= sizeof shares)
            return BAIC_EBAD_INPUT;
        snprintf(node, sizeof node, "nvidia%u", g->minor);
        int rc = cuda_add_node(st, b, node, NVIDIA_MAJOR, g->minor);
        if (rc != 0)
            return rc;
    }
    static const char *const common[] = {"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"};
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++) {
        int rc = cuda_add_node(st, b, common[i], i == 0 ? NVIDIA_MAJOR : -1,
                               i == 0 ? NVIDIACTL_MINOR : -1);
        if (rc != 0)
            return rc;
    }
    /* UUIDs name the same GPUs whether the runtime renumbers them in the container
     * (nvidia-container-runtime) or passes the host's nodes through (crun + nodes). */
    int rc = b->add_env(b->needs, "NVIDIA_VISIBLE_DEVICES", visible);
    if (rc == 0)
        rc = b->add_env(b->needs, "CUDA_VISIBLE_DEVICES", visible);
    if (rc == 0)
        rc = b->add_env(b->needs, "NVIDIA_DRIVER_CAPABILITIES", "compute,utility");
    if (rc == 0 && st->book.shares)
        rc = b->add_env(b->needs, "BACKENDAI_CUDA_SHARES", shares);
    size_t i;
    json_t *m;
    json_array_foreach(st->mounts, i, m) {
        if (rc != 0)
            break;
        rc = b->add_mount(b->needs, json_string_value(m), json_string_value(m), 1);
    }
    return rc;
}

/* ---- stats (NVML can block for hundreds of ms: always off the loop) ---- */

typedef struct cuda_stats_req {
    cuda_state_t *st;
    baic_compute_stats_cb cb;
    void *arg;
    baic_device_stat_t *stats;
    const baic_device_stat_t **ptrs;
} cuda_stats_req_t;

static void cuda_stats_work(void *arg) {
    cuda_stats_req_t *r = arg;
    cuda_state_t *st = r->st;
    for (size_t i = 0; i < st->book.n; i++) {
        gpu_dev_t *g = &st->book.devs[i];
        baic_device_stat_t *s = &r->stats[i];
        nvmlUtilization_t u;
        nvmlMemory_t mem;
        unsigned int v;
        *s = (baic_device_stat_t){sizeof *s, g->id, -1, -1, -1, -1, -1};
        if (st->nvml.util && st->nvml.util(g->handle, &u) == NVML_SUCCESS)
            s->util_pct = u.gpu;
        if (st->nvml.memory(g->handle, &mem) == NVML_SUCCESS) {
            s->mem_used_bytes = (int64_t)mem.used;
            s->mem_total_bytes = (int64_t)mem.total;
        }
        if (st->nvml.power && st->nvml.power(g->handle, &v) == NVML_SUCCESS)
            s->power_w = v / 1000.0; /* NVML reports milliwatts */
        if (st->nvml.temperature &&
            st->nvml.temperature(g->handle, NVML_TEMPERATURE_GPU, &v) == NVML_SUCCESS)
            s->temperature_c = v;
        r->ptrs[i] = s;
    }
}

static void cuda_stats_done(void *arg, int status) {
    cuda_stats_req_t *r = arg;
    const baic_host_t *h = r->st->host;
    if (status == 0)
        r->cb(r->arg, 0, r->ptrs, r->st->book.n);
    else
        r->cb(r->arg, status, NULL, 0);
    h->free(r->stats);
    h->free(r->ptrs);
    h->free(r);
}

static int cuda_stats(void *state, baic_compute_stats_cb cb, void *arg) {
    cuda_state_t *st = state;
    const baic_host_t *h = st->host;
    cuda_stats_req_t *r = h->calloc(1, sizeof *r);
    if (r == NULL)
        return UV_ENOMEM;
    r->st = st;
    r->cb = cb;
    r->arg = arg;
    r->stats = h->calloc(st->book.n + 1, sizeof *r->stats);
    r->ptrs = h->calloc(st->book.n + 1, sizeof *r->ptrs);
    int rc = r->stats && r->ptrs ? h->queue_work(h, cuda_stats_work, cuda_stats_done, r)
                                 : UV_ENOMEM;
    if (rc != 0) {
        h->free(r->stats);
        h->free(r->ptrs);
        h->free(r);
    }
    return rc;
}

static int cuda_alloc_to_json(void *state, const baic_compute_alloc_t *alloc, json_t **out) {
    cuda_state_t *st = state;
    return gpu_book_to_json(&st->book, alloc, out);
}

static int cuda_alloc_from_json(void *state, const char *kernel_id, const json_t *desc,
                                baic_compute_alloc_t **out) {
    cuda_state_t *st = state;
    return gpu_book_from_json(&st->book, kernel_id, desc, out);
}

static int cuda_describe_device(void *state, const char *device_id, json_t **out) {
    cuda_state_t *st = state;
    gpu_dev_t *g = gpu_book_find(&st->book, device_id);
    if (g == NULL)
        return BAIC_ENOT_FOUND;
    char booked[32];
    gpu_format_amount(g->used, booked, sizeof booked);
    *out = json_pack("{s:s, s:s, s:s, s:s, s:I, s:i, s:i, s:s, s:s, s:s, s:s}", "id", g->id,
                     "vendor", "NVIDIA", "model", g->model, "uuid", g->uuid, "memory_bytes",
                     (json_int_t)g->d.memory_bytes, "index", (int)g->index, "minor",
                     (int)g->minor, "device_path", g->path, "driver_version", st->driver,
                     "booked", booked, "nvml_library", st->library);
    return *out ? 0 : UV_ENOMEM;
}

static const baic_compute_ops_t cuda_ops = {
    .list_slots = cuda_list_slots,
    .list_devices = cuda_list_devices,
    .allocate = cuda_allocate,
    .free_allocation = cuda_free_allocation,
    .container_needs = cuda_container_needs,
    .stats = cuda_stats,
    .alloc_to_json = cuda_alloc_to_json,
    .alloc_from_json = cuda_alloc_from_json,
    .describe_device = cuda_describe_device,
};

BAIC_PLUGIN_DEFINE(compute, cuda, "1.0.0", cuda_init, cuda_fini, &cuda_ops)
