/* SPDX-License-Identifier: Apache-2.0 */
/* baic-nvml-probe: loads compute_cuda.so with a minimal host and checks it against the real driver. */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <baic/compute.h>
#include <baic/host.h>

/*
 * Usage: baic-nvml-probe [--plugin PATH] [--nvml PATH] [--mode device|shares]
 *                        [--dev-root DIR] [--expect-none]
 *
 * Prints the slots, devices, describe_device JSON, one stats sample, and a test
 * allocation's env, device nodes and cgroup rules; then books every device and
 * checks that one more is refused. Exits 0 when all of that worked, 1 on the first
 * failure (with a FAIL line), 2 on bad usage. With --expect-none it instead
 * succeeds only when the plugin loads and offers no slots (a machine without GPUs).
 *
 * The host here is deliberately small: a libuv loop for timers and the work queue,
 * logs to stdout, everything else a no-op. It is not the daemon's host.
 */

static uv_loop_t probe_loop;
static int probe_failures;

#define FAIL(...)                                                                       \
    do {                                                                                \
        printf("FAIL: " __VA_ARGS__);                                                   \
        printf("\n");                                                                   \
        probe_failures++;                                                               \
    } while (0)

/* ---- the minimal host ---- */

static void probe_log(const baic_host_t *host, baic_log_level_t level, const char *event,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void probe_log(const baic_host_t *host, baic_log_level_t level, const char *event,
                      const char *fmt, ...) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    printf("  log level=%s plugin=compute/cuda event=%s", names[level & 3], event);
    if (fmt != NULL && *fmt) {
        va_list ap;
        va_start(ap, fmt);
        putchar(' ');
        vprintf(fmt, ap);
        va_end(ap);
    }
    putchar('\n');
}

static const json_t *probe_config(const baic_host_t *host, const char *path) {
    return NULL;
}

struct baic_timer {
    uv_timer_t t;
    baic_timer_cb cb;
    void *arg;
};

static void probe_timer_fire(uv_timer_t *t) {
    baic_timer_t *bt = t->data;
    bt->cb(bt, bt->arg);
}

static int probe_timer_start(const baic_host_t *host, uint64_t timeout_ms, uint64_t repeat_ms,
                             baic_timer_cb cb, void *arg, baic_timer_t **out) {
    baic_timer_t *bt = calloc(1, sizeof *bt);
    if (bt == NULL)
        return UV_ENOMEM;
    uv_timer_init(&probe_loop, &bt->t);
    bt->t.data = bt;
    bt->cb = cb;
    bt->arg = arg;
    uv_timer_start(&bt->t, probe_timer_fire, timeout_ms, repeat_ms);
    *out = bt;
    return 0;
}

static void probe_timer_closed(uv_handle_t *h) {
    free(h->data);
}

static int probe_timer_stop(const baic_host_t *host, baic_timer_t *timer) {
    uv_close((uv_handle_t *)&timer->t, probe_timer_closed);
    return 0;
}

typedef struct probe_work {
    uv_work_t req;
    baic_work_cb work;
    baic_work_done_cb done;
    void *arg;
} probe_work_t;

static void probe_work_run(uv_work_t *req) {
    probe_work_t *w = req->data;
    w->work(w->arg);
}

static void probe_work_after(uv_work_t *req, int status) {
    probe_work_t *w = req->data;
    if (w->done)
        w->done(w->arg, status);
    free(w);
}

static int probe_queue_work(const baic_host_t *host, baic_work_cb work, baic_work_done_cb done,
                            void *arg) {
    probe_work_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return UV_ENOMEM;
    w->req.data = w;
    w->work = work;
    w->done = done;
    w->arg = arg;
    int rc = uv_queue_work(&probe_loop, &w->req, probe_work_run, probe_work_after);
    if (rc != 0)
        free(w);
    return rc;
}

static int probe_metric(const baic_host_t *host, const char *name, const char *help,
                        const char *labels, double v) {
    return 0;
}

static void probe_metric_walk(const baic_host_t *host, baic_metric_walk_cb cb, void *arg) {
}

static int probe_publish(const baic_host_t *host, const char *name, const json_t *body) {
    return 0;
}

static int probe_subscribe(const baic_host_t *host, const char *prefix, baic_event_cb cb,
                           void *arg, baic_subscription_t **out) {
    return BAIC_ENOT_SUPPORTED;
}

static int probe_unsubscribe(const baic_host_t *host, baic_subscription_t *sub) {
    return BAIC_ENOT_SUPPORTED;
}

static uint64_t probe_now_ms(const baic_host_t *host) {
    return uv_now(&probe_loop);
}

static const char *probe_strerror(int code) {
    static char buf[64];
    if (code > BAIC__ERR_BASE - 100 && code <= BAIC__ERR_BASE)
        snprintf(buf, sizeof buf, "baic error %d", code - BAIC__ERR_BASE);
    else
        return uv_strerror(code);
    return buf;
}

static int probe_http_serve(const baic_host_t *host, const char *addr,
                            baic_http_simple_handler handler, void *arg,
                            baic_http_listener_t **out) {
    return BAIC_ENOT_SUPPORTED;
}

static int probe_http_stop(const baic_host_t *host, baic_http_listener_t *l) {
    return BAIC_ENOT_SUPPORTED;
}

static const baic_host_t probe_host = {
    .size = sizeof(baic_host_t),
    .abi_major = BAIC_ABI_MAJOR,
    .abi_minor = BAIC_ABI_MINOR,
    .log = probe_log,
    .config = probe_config,
    .alloc = malloc,
    .calloc = calloc,
    .realloc = realloc,
    .free = free,
    .timer_start = probe_timer_start,
    .timer_stop = probe_timer_stop,
    .queue_work = probe_queue_work,
    .metric_add = probe_metric,
    .metric_set = probe_metric,
    .metric_observe = probe_metric,
    .metric_walk = probe_metric_walk,
    .event_publish = probe_publish,
    .event_subscribe = probe_subscribe,
    .event_unsubscribe = probe_unsubscribe,
    .now_ms = probe_now_ms,
    .strerror = probe_strerror,
    .http_serve = probe_http_serve,
    .http_stop = probe_http_stop,
};

/* ---- a needs builder that prints ---- */

static int probe_env(baic_container_needs_t *n, const char *name, const char *value) {
    printf("  env     %s=%s\n", name, value);
    return 0;
}

static int probe_device(baic_container_needs_t *n, const char *h, const char *c, const char *a) {
    printf("  device  %s -> %s (%s)\n", h, c, a);
    if (access(h, F_OK) != 0)
        FAIL("device node %s does not exist", h);
    (*(int *)n)++;
    return 0;
}

static int probe_mount(baic_container_needs_t *n, const char *s, const char *t, int ro) {
    printf("  mount   %s -> %s (%s)\n", s, t, ro ? "ro" : "rw");
    return 0;
}

static int probe_rule(baic_container_needs_t *n, char type, int64_t ma, int64_t mi,
                      const char *a) {
    printf("  cgroup  %c %lld:%lld %s\n", type, (long long)ma, (long long)mi, a);
    return 0;
}

/* ---- stats ---- */

static int probe_stats_seen;

static void probe_on_stats(void *arg, int status, const baic_device_stat_t *const *s, size_t n) {
    probe_stats_seen = 1;
    if (status != 0) {
        FAIL("stats: %s", probe_strerror(status));
        return;
    }
    for (size_t i = 0; i < n; i++)
        printf("  device %s: util=%.0f%% mem=%lld/%lld bytes power=%.1fW temp=%.0fC\n",
               s[i]->device_id, s[i]->util_pct, (long long)s[i]->mem_used_bytes,
               (long long)s[i]->mem_total_bytes, s[i]->power_w, s[i]->temperature_c);
}

/* ---- the checks ---- */

static const char *probe_plugin_path(const char *given, char *buf, size_t len) {
    if (given != NULL)
        return given;
    const char *dir = getenv("BAIC_PLUGIN_DIR");
    const char *dirs[] = {dir, BAIC_PROBE_BUILD_PLUGIN_DIR, BAIC_PROBE_INSTALL_PLUGIN_DIR};
    for (size_t i = 0; i < 3; i++) {
        if (dirs[i] == NULL || *dirs[i] == '\0')
            continue;
        snprintf(buf, len, "%s/compute_cuda.so", dirs[i]);
        if (access(buf, R_OK) == 0)
            return buf;
    }
    snprintf(buf, len, "%s/compute_cuda.so", BAIC_PROBE_BUILD_PLUGIN_DIR);
    return buf;
}

static int probe_alloc(const baic_compute_ops_t *ops, void *st, const char *slot, int64_t amount,
                       const char *kernel, baic_compute_alloc_t **out) {
    baic_slot_t s = {slot, amount};
    baic_compute_request_t req = {.size = sizeof req,
                                  .kernel_id = kernel,
                                  .session_id = "probe",
                                  .requested = {&s, 1}};
    return ops->allocate(st, &req, out);
}

static void probe_usage(void) {
    fprintf(stderr, "usage: baic-nvml-probe [--plugin PATH] [--nvml PATH] "
                    "[--mode device|shares] [--dev-root DIR] [--expect-none]\n");
}

int main(int argc, char **argv) {
    const char *plugin = NULL;
    int expect_none = 0;
    json_t *conf = json_object();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--expect-none") == 0) {
            expect_none = 1;
        } else if (i + 1 < argc && strcmp(a, "--plugin") == 0) {
            plugin = argv[++i];
        } else if (i + 1 < argc && strcmp(a, "--nvml") == 0) {
            json_object_set_new(conf, "nvml_library", json_string(argv[++i]));
        } else if (i + 1 < argc && strcmp(a, "--mode") == 0) {
            json_object_set_new(conf, "mode", json_string(argv[++i]));
        } else if (i + 1 < argc && strcmp(a, "--dev-root") == 0) {
            json_object_set_new(conf, "dev_root", json_string(argv[++i]));
        } else {
            probe_usage();
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    uv_loop_init(&probe_loop);

    char pathbuf[1024];
    const char *path = probe_plugin_path(plugin, pathbuf, sizeof pathbuf);
    printf("== plugin %s\n", path);
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        printf("FAIL: dlopen: %s\n", dlerror());
        return 1;
    }
    void *sym = dlsym(dl, "baic_plugin_entry");
    baic_plugin_entry_fn entry;
    if (sym == NULL) {
        printf("FAIL: %s is not a baic plugin\n", path);
        return 1;
    }
    memcpy(&entry, &sym, sizeof entry);
    const baic_plugin_desc_t *d = entry();
    if (d->magic != BAIC_PLUGIN_MAGIC || d->abi_major != BAIC_ABI_MAJOR ||
        d->abi_minor > BAIC_ABI_MINOR || d->build_sig != BAIC_BUILD_SIG ||
        d->kind != BAIC_KIND_COMPUTE || strcmp(d->name, "cuda") != 0) {
        printf("FAIL: descriptor does not match this probe (abi %u.%u kind %u name %s)\n",
               d->abi_major, d->abi_minor, d->kind, d->name);
        return 1;
    }
    baic_compute_ops_t ops;
    memset(&ops, 0, sizeof ops);
    memcpy(&ops, d->ops, d->ops_size < sizeof ops ? d->ops_size : sizeof ops);
    printf("   version %s, ABI %u.%u\n", d->version, d->abi_major, d->abi_minor);

    printf("== init\n");
    void *st = NULL;
    int rc = d->init(&probe_host, conf, &st);
    if (rc != 0) {
        printf("FAIL: init returned %d (%s)\n", rc, probe_strerror(rc));
        return 1;
    }

    printf("== slots\n");
    const baic_slot_decl_t *const *decls;
    size_t ndecls = 0;
    if (ops.list_slots(st, &decls, &ndecls) != 0)
        FAIL("list_slots");
    for (size_t i = 0; i < ndecls; i++)
        printf("  %s (fractional=%d quantum=%lld) %s\n", decls[i]->name, decls[i]->fractional,
               (long long)decls[i]->quantum, decls[i]->description);
    if (expect_none) {
        if (ndecls != 0)
            FAIL("--expect-none, but the plugin offers %zu slot(s)", ndecls);
        d->fini(st);
        printf(probe_failures ? "RESULT: FAIL\n" : "RESULT: OK (no GPUs, as expected)\n");
        return probe_failures ? 1 : 0;
    }
    if (ndecls == 0) {
        printf("FAIL: no slots: NVML missing, failing or without devices (see the log "
               "lines above)\n");
        d->fini(st);
        return 1;
    }
    const char *slot = decls[0]->name;
    int shares = decls[0]->fractional;

    printf("== devices\n");
    const baic_device_t *const *devs;
    size_t ndevs = 0;
    ops.list_devices(st, &devs, &ndevs);
    for (size_t i = 0; i < ndevs; i++) {
        printf("  %s: %s memory=%lld bytes node=%s\n", devs[i]->id, devs[i]->model,
               (long long)devs[i]->memory_bytes,
               devs[i]->device_path ? devs[i]->device_path : "-");
        json_t *j = NULL;
        if (ops.describe_device == NULL || ops.describe_device(st, devs[i]->id, &j) != 0) {
            FAIL("describe_device %s", devs[i]->id);
            continue;
        }
        char *txt = json_dumps(j, JSON_SORT_KEYS);
        printf("  describe: %s\n", txt);
        free(txt);
        if (json_integer_value(json_object_get(j, "memory_bytes")) <= 0)
            FAIL("device %s reports no memory", devs[i]->id);
        json_decref(j);
    }

    printf("== stats\n");
    if (ops.stats == NULL || ops.stats(st, probe_on_stats, NULL) != 0)
        FAIL("stats could not start");
    else
        uv_run(&probe_loop, UV_RUN_DEFAULT);
    if (!probe_stats_seen)
        FAIL("stats callback never ran");

    printf("== allocate %s of %s\n", shares ? "0.5" : "1", slot);
    baic_compute_alloc_t *a = NULL;
    rc = probe_alloc(&ops, st, slot, shares ? BAIC_SLOT_UNIT / 2 : BAIC_SLOT_UNIT, "probe-1", &a);
    if (rc != 0) {
        FAIL("allocate: %d (%s)", rc, probe_strerror(rc));
    } else {
        for (size_t i = 0; i < a->n_parts; i++)
            printf("  part device=%s amount=%lld\n", a->parts[i].device_id,
                   (long long)a->parts[i].amount);
        int ndev_nodes = 0;
        baic_needs_builder_t b = {sizeof b, (baic_container_needs_t *)&ndev_nodes, probe_env,
                                  probe_device, probe_mount, probe_rule};
        rc = ops.container_needs(st, a, &b);
        if (rc != 0)
            FAIL("container_needs: %d", rc);
        if (ndev_nodes == 0)
            FAIL("no device nodes for the allocation (is /dev/nvidia<minor> missing?)");
        json_t *j = NULL;
        if (ops.alloc_to_json(st, a, &j) == 0) {
            char *txt = json_dumps(j, JSON_SORT_KEYS);
            printf("  alloc_to_json: %s\n", txt);
            free(txt);
            json_decref(j);
        }
        ops.free_allocation(st, a);
    }

    printf("== exhaustion\n");
    baic_compute_alloc_t *all = NULL, *extra = NULL;
    rc = probe_alloc(&ops, st, slot, (int64_t)ndevs * BAIC_SLOT_UNIT, "probe-all", &all);
    if (rc != 0)
        FAIL("allocating all %zu devices: %d", ndevs, rc);
    rc = probe_alloc(&ops, st, slot, shares ? BAIC_SLOT_UNIT / 100 : BAIC_SLOT_UNIT, "probe-x",
                     &extra);
    if (rc != BAIC_ENO_RESOURCES)
        FAIL("one more after all devices: got %d, want %d (no resources)", rc,
             BAIC_ENO_RESOURCES);
    else
        printf("  refused as expected once all %zu device(s) are booked\n", ndevs);
    if (all != NULL)
        ops.free_allocation(st, all);

    d->fini(st);
    uv_run(&probe_loop, UV_RUN_DEFAULT);
    uv_loop_close(&probe_loop);
    json_decref(conf);
    printf(probe_failures ? "RESULT: FAIL (%d check(s))\n" : "RESULT: OK\n", probe_failures);
    return probe_failures ? 1 : 0;
}
