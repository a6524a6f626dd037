/* SPDX-License-Identifier: Apache-2.0 */
/* compute/cuda: NVIDIA GPUs found through NVML (loaded at run time), booked whole or as shares. */
#include <stdio.h>
#include <string.h>

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
    gpu_book_t book;       /* first: the gpu_book_op_* ops take the state as a book */
    const baic_host_t *host;
    int ltdl_up;
    lt_dlhandle lib;
    nvml_api_t nvml;
    int nvml_up;
    char dev_root[256];
    int visible_uuid;
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
        snprintf(st->book.library, sizeof st->book.library, "%s", configured);
    } else {
        st->lib = lt_dlopenext("libnvidia-ml");
        snprintf(st->book.library, sizeof st->book.library, "libnvidia-ml");
        if (st->lib == NULL) {
            st->lib = lt_dlopen("libnvidia-ml.so.1");
            snprintf(st->book.library, sizeof st->book.library, "libnvidia-ml.so.1");
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
        snprintf(st->book.library, sizeof st->book.library, "%s", info->filename);
    for (size_t i = 0; i < sizeof nvml_syms / sizeof nvml_syms[0]; i++) {
        void *sym = lt_dlsym(st->lib, nvml_syms[i].sym);
        if (sym == NULL && nvml_syms[i].required) {
            h->log(h, BAIC_LOG_WARN, "no_gpus",
                   "reason=\"NVML library lacks a symbol\" library=\"%s\" symbol=%s",
                   st->book.library, nvml_syms[i].sym);
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
        st->nvml.driver(st->book.driver, sizeof st->book.driver) != NVML_SUCCESS)
        st->book.driver[0] = '\0';
    unsigned int n = 0;
    r = st->nvml.count(&n);
    if (r != NVML_SUCCESS) {
        h->log(h, BAIC_LOG_WARN, "no_gpus", "reason=\"nvmlDeviceGetCount failed\" nvml=%d error=\"%s\"",
               r, cuda_nvml_error(st, r));
        return BAIC_EBACKEND;
    }
    if (n == 0) {
        h->log(h, BAIC_LOG_INFO, "no_gpus", "reason=\"NVML reports 0 devices\" driver=%s",
               st->book.driver[0] ? st->book.driver : "-");
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

/* ---- stats (NVML can block for hundreds of ms: gpu_book runs this off the loop) ---- */

static void cuda_stat(gpu_book_t *b, const gpu_dev_t *g, baic_device_stat_t *s) {
    cuda_state_t *st = (cuda_state_t *)b;
    nvmlUtilization_t u;
    nvmlMemory_t mem;
    unsigned int v;
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
}

static const gpu_vendor_t cuda_vendor = {
    .prefix = "cuda",
    .name = "NVIDIA",
    .minor_key = "minor",
    .library_key = "nvml_library",
    .stat = cuda_stat,
};

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

static int cuda_configure(cuda_state_t *st, const json_t *conf, const char **library) {
    const baic_host_t *h = st->host;
    if (conf != NULL && !json_is_object(conf))
        return compute_conf_fail(h, "plugin", "want a table");
    int rc = gpu_book_configure(&st->book, h, conf, &cuda_vendor);
    if (rc != 0)
        return rc;
    const json_t *v = json_object_get(conf, "nvml_library");
    if (v != NULL && !json_is_string(v))
        return compute_conf_fail(h, "nvml_library", "want a path");
    *library = v ? json_string_value(v) : NULL;
    v = json_object_get(conf, "dev_root");
    if (v != NULL && !json_is_string(v))
        return compute_conf_fail(h, "dev_root", "want a path");
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
        return compute_conf_fail(h, "visible", "want uuid or index");
    v = json_object_get(conf, "mounts");
    if (v != NULL) {
        size_t i;
        json_t *e;
        if (!json_is_array(v))
            return compute_conf_fail(h, "mounts", "want an array of paths");
        json_array_foreach(v, i, e) {
            if (!json_is_string(e) || json_string_value(e)[0] != '/')
                return compute_conf_fail(h, "mounts", "want absolute paths");
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
    if (cuda_open_library(st, library) == 0 && cuda_discover(st) == 0)
        gpu_book_declare(&st->book);
    *state = st;
    return 0;
}

/* ---- ops ---- */

static int cuda_container_needs(void *state, const baic_compute_alloc_t *alloc,
                                const baic_needs_builder_t *b) {
    cuda_state_t *st = state;
    if (alloc->n_parts == 0)
        return 0;
    char visible_buf[2048], shares_buf[2048];
    compute_list_t visible, shares;
    compute_list_init(&visible, visible_buf, sizeof visible_buf);
    compute_list_init(&shares, shares_buf, sizeof shares_buf);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < alloc->n_parts; i++) {
        gpu_dev_t *g = gpu_book_find(&st->book, alloc->parts[i].device_id);
        if (g == NULL)
            return BAIC_ENOT_FOUND;
        char amt[32], node[32];
        compute_format_amount(alloc->parts[i].amount, BAIC_SLOT_UNIT, amt, sizeof amt);
        rc = compute_list_add(&visible, "%s", st->visible_uuid && g->uuid[0] ? g->uuid : g->id);
        if (compute_list_add(&shares, "%s:%s", g->id, amt) != 0 || rc != 0)
            return BAIC_EBAD_INPUT;
        snprintf(node, sizeof node, "nvidia%u", g->minor);
        rc = compute_add_dev_node(b, st->dev_root, node, NVIDIA_MAJOR, g->minor);
    }
    static const char *const common[] = {"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"};
    for (size_t i = 0; rc == 0 && i < sizeof common / sizeof common[0]; i++)
        rc = compute_add_dev_node(b, st->dev_root, common[i], i == 0 ? NVIDIA_MAJOR : -1,
                                  i == 0 ? NVIDIACTL_MINOR : -1);
    /* UUIDs name the same GPUs whether the runtime renumbers them in the container
     * (nvidia-container-runtime) or passes the host's nodes through (crun + nodes). */
    if (rc == 0)
        rc = b->add_env(b->needs, "NVIDIA_VISIBLE_DEVICES", visible_buf);
    if (rc == 0)
        rc = b->add_env(b->needs, "CUDA_VISIBLE_DEVICES", visible_buf);
    if (rc == 0)
        rc = b->add_env(b->needs, "NVIDIA_DRIVER_CAPABILITIES", "compute,utility");
    if (rc == 0 && st->book.shares)
        rc = b->add_env(b->needs, "BACKENDAI_CUDA_SHARES", shares_buf);
    size_t i;
    json_t *m;
    json_array_foreach(st->mounts, i, m) {
        if (rc != 0)
            break;
        rc = b->add_mount(b->needs, json_string_value(m), json_string_value(m), 1);
    }
    return rc;
}

static const baic_compute_ops_t cuda_ops = {
    .list_slots = gpu_book_op_list_slots,
    .list_devices = gpu_book_op_list_devices,
    .allocate = gpu_book_op_allocate,
    .free_allocation = gpu_book_op_free,
    .container_needs = cuda_container_needs,
    .stats = gpu_book_op_stats,
    .alloc_to_json = gpu_book_op_to_json,
    .alloc_from_json = gpu_book_op_from_json,
    .describe_device = gpu_book_op_describe,
};

BAIC_PLUGIN_DEFINE(compute, cuda, "1.0.0", cuda_init, cuda_fini, &cuda_ops)
