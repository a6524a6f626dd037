/* SPDX-License-Identifier: Apache-2.0 */
/* compute/cpu: the host's CPU cores as the "cpu" slot, booked as quota or pinned to whole cores. */
#include <ctype.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <baic/compute.h>
#include <baic/host.h>

#include "compute_common.h"

/*
 * Config ([plugin."compute/cpu"]), all optional:
 *   cores    [0, 2, 3] or "0-3,8": only these online cores are offered
 *   count    offer only the first N online cores (ignored when cores is given)
 *   pin      true: whole-core requests get cores of their own (cpuset), chosen on
 *            one NUMA node when they fit; fractional requests always get a quota only
 *   quantum  smallest step, "0.01" (one percent of a core) by default
 *   sysfs    where sysfs is mounted, "/sys" (tests give a fake tree)
 *
 * Each core is a device of capacity 1. A quota allocation books its amount on the
 * cores it would most fill (best fit), so cores with no booking stay free for
 * pinned requests; the cores booked are accounting only, the kernel itself may run
 * on any core the agent's cpuset allows.
 *
 * The limits the runtime must apply (CPU quota, cpuset) have no place in the
 * needs builder of ABI 1.1, so they travel as env vars BACKENDAI_CPU_QUOTA (cores,
 * decimal) and BACKENDAI_CPU_CORES (cpuset list) and in alloc_to_json
 * ("cpu_quota", "cpuset"), for the agent to copy into the container spec's
 * cpu_limit and cpuset.
 */

typedef struct cpu_core {
    baic_device_t d;
    char id[16];
    int cpu;         /* the kernel's CPU number */
    int pinned;      /* held whole by a pinned allocation */
    int64_t used;
} cpu_core_t;

typedef struct cpu_alloc {
    compute_alloc_t base; /* first: base.pub.priv points at the cpu_alloc_t */
    int pinned;
    int64_t quota;   /* slot units (1e-6 cores) */
    char *cpuset;    /* "0-3,8", or NULL */
} cpu_alloc_t;

typedef struct cpu_state {
    const baic_host_t *host;
    cpu_core_t *cores;
    const baic_device_t **ptrs;
    size_t n;
    int pin;
    int limited;     /* cores or count narrowed what the host has */
    char *all_set;   /* cpuset of every offered core */
    int64_t quantum;
    char model[128];
    char sysfs[256];
    baic_slot_decl_t decl;
    const baic_slot_decl_t *decls[1];
    compute_alloc_t *allocs;
} cpu_state_t;

/* ---- small helpers ---- */

/* Parses a kernel cpu list ("0-3,8,10-11") into mark[0..max). Returns 0 or -1. */
static int cpu_parse_list(const char *s, unsigned char *mark, int max) {
    while (*s != '\0' && *s != '\n') {
        char *end;
        long a = strtol(s, &end, 10), b;
        if (end == s || a < 0)
            return -1;
        b = a;
        if (*end == '-') {
            s = end + 1;
            b = strtol(s, &end, 10);
            if (end == s || b < a)
                return -1;
        }
        for (long i = a; i <= b && i < max; i++)
            mark[i] = 1;
        s = end;
        if (*s == ',')
            s++;
        else if (*s != '\0' && *s != '\n')
            return -1;
    }
    return 0;
}

/* Renders sorted CPU numbers as "0-3,8". */
static void cpu_format_list(const int *cpus, size_t n, char *buf, size_t len) {
    size_t l = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && l < len; i++) {
        size_t j = i;
        while (j + 1 < n && cpus[j + 1] == cpus[j] + 1)
            j++;
        if (j > i)
            l += (size_t)snprintf(buf + l, len - l, "%s%d-%d", l ? "," : "", cpus[i], cpus[j]);
        else
            l += (size_t)snprintf(buf + l, len - l, "%s%d", l ? "," : "", cpus[i]);
        i = j;
    }
}

static int cpu_cmp_int(const void *a, const void *b) {
    return *(const int *)a - *(const int *)b;
}

/* ---- discovery (at init: a few small sysfs reads) ---- */

#define CPU_MAX 8192

static int cpu_numa_node(const cpu_state_t *st, int cpu) {
    char path[384];
    snprintf(path, sizeof path, "%s/devices/system/cpu/cpu%d", st->sysfs, cpu);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int node = -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "node", 4) == 0 && isdigit((unsigned char)e->d_name[4]))
            node = atoi(e->d_name + 4);
    closedir(d);
    return node;
}

static void cpu_read_model(cpu_state_t *st) {
    snprintf(st->model, sizeof st->model, "CPU core");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon != NULL) {
            colon++;
            while (*colon == ' ' || *colon == '\t')
                colon++;
            colon[strcspn(colon, "\n")] = '\0';
            snprintf(st->model, sizeof st->model, "%s", colon);
            break;
        }
    }
    if (f != NULL)
        fclose(f);
}

static int cpu_discover(cpu_state_t *st, const json_t *conf) {
    const baic_host_t *h = st->host;
    unsigned char *online = h->calloc(CPU_MAX, 1), *want = h->calloc(CPU_MAX, 1);
    int rc = 0;
    if (online == NULL || want == NULL) {
        rc = UV_ENOMEM;
        goto out;
    }
    char path[384], buf[4096];
    snprintf(path, sizeof path, "%s/devices/system/cpu/online", st->sysfs);
    FILE *f = fopen(path, "r");
    if (f != NULL && fgets(buf, sizeof buf, f) != NULL && cpu_parse_list(buf, online, CPU_MAX) == 0) {
        fclose(f);
    } else {
        if (f != NULL)
            fclose(f);
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        for (long i = 0; i < n && i < CPU_MAX; i++)
            online[i] = 1;
    }
    const json_t *cores = json_object_get(conf, "cores");
    const json_t *count = json_object_get(conf, "count");
    if (cores != NULL) {
        st->limited = 1;
        if (json_is_string(cores)) {
            if (cpu_parse_list(json_string_value(cores), want, CPU_MAX) != 0) {
                rc = compute_conf_fail(h, "cores", "want a cpu list like \"0-3,8\"");
                goto out;
            }
        } else if (json_is_array(cores)) {
            size_t i;
            json_t *e;
            json_array_foreach(cores, i, e) {
                if (!json_is_integer(e) || json_integer_value(e) < 0 ||
                    json_integer_value(e) >= CPU_MAX) {
                    rc = compute_conf_fail(h, "cores", "want core numbers");
                    goto out;
                }
                want[json_integer_value(e)] = 1;
            }
        } else {
            rc = compute_conf_fail(h, "cores", "want an array or a cpu list string");
            goto out;
        }
        for (int i = 0; i < CPU_MAX; i++) {
            if (want[i] && !online[i]) {
                h->log(h, BAIC_LOG_WARN, "core_offline", "core=%d", i);
                want[i] = 0;
            }
        }
    } else {
        long limit = CPU_MAX;
        if (count != NULL) {
            if (!json_is_integer(count) || json_integer_value(count) < 1) {
                rc = compute_conf_fail(h, "count", "want a positive integer");
                goto out;
            }
            limit = (long)json_integer_value(count);
            st->limited = 1;
        }
        for (int i = 0; i < CPU_MAX && limit > 0; i++)
            if (online[i]) {
                want[i] = 1;
                limit--;
            }
    }
    size_t n = 0;
    for (int i = 0; i < CPU_MAX; i++)
        n += want[i];
    if (n == 0) {
        rc = compute_conf_fail(h, "cores", "no online core left to offer");
        goto out;
    }
    st->cores = h->calloc(n, sizeof *st->cores);
    st->ptrs = h->calloc(n, sizeof *st->ptrs);
    int *nums = h->calloc(n, sizeof *nums);
    char *set = h->alloc(n * 12 + 1);
    if (st->cores == NULL || st->ptrs == NULL || nums == NULL || set == NULL) {
        h->free(nums);
        h->free(set);
        rc = UV_ENOMEM;
        goto out;
    }
    cpu_read_model(st);
    for (int i = 0; i < CPU_MAX; i++) {
        if (!want[i])
            continue;
        cpu_core_t *c = &st->cores[st->n];
        c->cpu = i;
        nums[st->n] = i;
        snprintf(c->id, sizeof c->id, "%d", i);
        c->d = (baic_device_t){
            .size = sizeof c->d,
            .id = c->id,
            .slot = "cpu",
            .model = st->model,
            .capacity = BAIC_SLOT_UNIT,
            .memory_bytes = 0,
            .numa_node = cpu_numa_node(st, i),
            .device_path = NULL,
        };
        st->ptrs[st->n] = &c->d;
        st->n++;
    }
    cpu_format_list(nums, st->n, set, n * 12 + 1);
    st->all_set = set;
    h->free(nums);
out:
    h->free(online);
    h->free(want);
    return rc;
}

/* ---- life cycle ---- */

static void cpu_alloc_release(cpu_state_t *st, cpu_alloc_t *a) {
    st->host->free(a->cpuset);
    compute_alloc_release(st->host, &a->base);
}

static void cpu_fini(void *state) {
    cpu_state_t *st = state;
    while (st->allocs != NULL) {
        cpu_alloc_t *a = (cpu_alloc_t *)st->allocs;
        st->allocs = a->base.next;
        cpu_alloc_release(st, a);
    }
    st->host->free(st->cores);
    st->host->free(st->ptrs);
    st->host->free(st->all_set);
    st->host->free(st);
}

static int cpu_init(const baic_host_t *host, const json_t *conf, void **state) {
    cpu_state_t *st = host->calloc(1, sizeof *st);
    if (st == NULL)
        return UV_ENOMEM;
    st->host = host;
    int rc = 0;
    const json_t *v;
    if (conf != NULL && !json_is_object(conf))
        rc = compute_conf_fail(host, "plugin", "want a table");
    v = json_object_get(conf, "pin");
    if (rc == 0 && v != NULL && !json_is_boolean(v))
        rc = compute_conf_fail(host, "pin", "want true or false");
    st->pin = json_is_true(v);
    st->quantum = BAIC_SLOT_UNIT / 100;
    v = json_object_get(conf, "quantum");
    if (rc == 0 && v != NULL &&
        (compute_parse_amount(v, BAIC_SLOT_UNIT, &st->quantum) != 0 || st->quantum <= 0 ||
         BAIC_SLOT_UNIT % st->quantum != 0))
        rc = compute_conf_fail(host, "quantum", "want a decimal that divides 1, e.g. 0.1");
    v = json_object_get(conf, "sysfs");
    if (rc == 0 && v != NULL && !json_is_string(v))
        rc = compute_conf_fail(host, "sysfs", "want a path");
    snprintf(st->sysfs, sizeof st->sysfs, "%s", v ? json_string_value(v) : "/sys");
    if (rc == 0)
        rc = cpu_discover(st, conf);
    if (rc != 0) {
        cpu_fini(st);
        return rc;
    }
    st->decl = (baic_slot_decl_t){
        .size = sizeof st->decl,
        .name = "cpu",
        .type = BAIC_SLOT_COUNT,
        .fractional = 1,
        .quantum = st->quantum,
        .display_name = "CPU",
        .description = "CPU cores",
    };
    st->decls[0] = &st->decl;
    host->log(host, BAIC_LOG_INFO, "devices_found", "slot=cpu count=%zu cores=%s pin=%d", st->n,
              st->all_set, st->pin);
    *state = st;
    return 0;
}

/* ---- ops ---- */

static int cpu_list_slots(void *state, const baic_slot_decl_t *const **decls, size_t *n) {
    cpu_state_t *st = state;
    *decls = st->decls;
    *n = 1;
    return 0;
}

static int cpu_list_devices(void *state, const baic_device_t *const **devs, size_t *n) {
    cpu_state_t *st = state;
    *devs = st->ptrs;
    *n = st->n;
    return 0;
}

static cpu_core_t *cpu_find(cpu_state_t *st, const char *id) {
    for (size_t i = 0; id != NULL && i < st->n; i++)
        if (strcmp(st->cores[i].id, id) == 0)
            return &st->cores[i];
    return NULL;
}

static int cpu_allowed(const baic_compute_request_t *req, const cpu_core_t *c) {
    return compute_device_allowed(req, c->id, NULL);
}

/*
 * Picks want idle cores for a pinned allocation into parts: the NUMA node with the
 * fewest idle cores that still holds them all (keeps big nodes whole), else nodes
 * with the most idle cores first. Returns the number picked (== want on success).
 */
static size_t cpu_pick_pinned(cpu_state_t *st, const baic_compute_request_t *req, size_t want,
                              baic_compute_alloc_part_t *parts) {
    size_t picked = 0;
    int best_node = -2;
    size_t best_free = 0;
    for (size_t i = 0; i < st->n; i++) {
        int node = st->cores[i].d.numa_node;
        int seen = 0;
        for (size_t j = 0; j < i; j++)
            if (st->cores[j].d.numa_node == node)
                seen = 1;
        if (seen)
            continue;
        size_t idle = 0;
        for (size_t j = 0; j < st->n; j++)
            idle += st->cores[j].d.numa_node == node && st->cores[j].used == 0 &&
                    cpu_allowed(req, &st->cores[j]);
        if (idle >= want && (best_node == -2 || idle < best_free)) {
            best_node = node;
            best_free = idle;
        }
    }
    while (picked < want) {
        int node = best_node;
        if (node == -2) {
            /* No single node fits: take the node with the most idle cores left. */
            size_t most = 0;
            for (size_t i = 0; i < st->n; i++) {
                size_t idle = 0;
                for (size_t j = 0; j < st->n; j++)
                    idle += st->cores[j].d.numa_node == st->cores[i].d.numa_node &&
                            st->cores[j].used == 0 && cpu_allowed(req, &st->cores[j]);
                if (idle > most) {
                    most = idle;
                    node = st->cores[i].d.numa_node;
                }
            }
            if (most == 0)
                break;
        }
        for (size_t i = 0; i < st->n && picked < want; i++) {
            cpu_core_t *c = &st->cores[i];
            if (c->d.numa_node != node || c->used != 0 || !cpu_allowed(req, c))
                continue;
            c->used = BAIC_SLOT_UNIT; /* marks it taken while picking; undone by caller */
            parts[picked++] = (baic_compute_alloc_part_t){c->id, "cpu", BAIC_SLOT_UNIT};
        }
        best_node = -2;
    }
    for (size_t i = 0; i < picked; i++)
        cpu_find(st, parts[i].device_id)->used = 0;
    return picked;
}

/* Books a quota: up to one core on the fullest core it fits on, more spread over the
 * emptiest cores. Returns the part count, or 0 when it does not fit. */
static size_t cpu_pick_quota(cpu_state_t *st, const baic_compute_request_t *req, int64_t amount,
                             baic_compute_alloc_part_t *parts) {
    int64_t total = 0;
    cpu_core_t *best = NULL;
    for (size_t i = 0; i < st->n; i++) {
        cpu_core_t *c = &st->cores[i];
        if (c->pinned || !cpu_allowed(req, c))
            continue;
        int64_t free_ = BAIC_SLOT_UNIT - c->used;
        total += free_;
        if (free_ >= amount && (best == NULL || free_ < BAIC_SLOT_UNIT - best->used))
            best = c;
    }
    if (amount <= BAIC_SLOT_UNIT) {
        if (best == NULL)
            return 0;
        parts[0] = (baic_compute_alloc_part_t){best->id, "cpu", amount};
        return 1;
    }
    if (total < amount)
        return 0;
    size_t k = 0;
    for (int64_t left = amount; left > 0;) {
        cpu_core_t *emptiest = NULL;
        for (size_t i = 0; i < st->n; i++) {
            cpu_core_t *c = &st->cores[i];
            int taken = 0;
            for (size_t j = 0; j < k; j++)
                taken |= parts[j].device_id == c->id;
            if (taken || c->pinned || c->used >= BAIC_SLOT_UNIT || !cpu_allowed(req, c))
                continue;
            if (emptiest == NULL || c->used < emptiest->used)
                emptiest = c;
        }
        int64_t take = BAIC_SLOT_UNIT - emptiest->used;
        if (take > left)
            take = left;
        parts[k++] = (baic_compute_alloc_part_t){emptiest->id, "cpu", take};
        left -= take;
    }
    return k;
}

static int cpu_new_alloc(cpu_state_t *st, const char *kernel_id, cpu_alloc_t **out) {
    compute_alloc_t *base;
    int rc = compute_alloc_new(st->host, sizeof **out, st->n, kernel_id, &base);
    if (rc == 0)
        *out = (cpu_alloc_t *)base;
    return rc;
}

/* Books a's parts, sets its cpuset and links it in. */
static int cpu_commit(cpu_state_t *st, cpu_alloc_t *a, baic_compute_alloc_t **out) {
    if (a->pinned) {
        int nums[a->base.pub.n_parts + 1];
        for (size_t i = 0; i < a->base.pub.n_parts; i++)
            nums[i] = cpu_find(st, a->base.parts[i].device_id)->cpu;
        qsort(nums, a->base.pub.n_parts, sizeof nums[0], cpu_cmp_int);
        char set[a->base.pub.n_parts * 12 + 1];
        cpu_format_list(nums, a->base.pub.n_parts, set, sizeof set);
        a->cpuset = compute_strdup(st->host, set);
    } else if (st->limited && a->base.pub.n_parts > 0) {
        /* Quota kernels float, but never onto cores the operator kept out. */
        a->cpuset = compute_strdup(st->host, st->all_set);
    }
    if ((a->pinned || (st->limited && a->base.pub.n_parts > 0)) && a->cpuset == NULL)
        return UV_ENOMEM;
    for (size_t i = 0; i < a->base.pub.n_parts; i++) {
        cpu_core_t *c = cpu_find(st, a->base.parts[i].device_id);
        c->used += a->base.parts[i].amount;
        c->pinned |= a->pinned;
        a->quota += a->base.parts[i].amount;
    }
    compute_alloc_link(&st->allocs, &a->base, out);
    return 0;
}

static int cpu_allocate(void *state, const baic_compute_request_t *req,
                        baic_compute_alloc_t **out) {
    cpu_state_t *st = state;
    int64_t amount;
    baic_slots_get(&req->requested, "cpu", &amount);
    if (amount < 0 || amount % st->quantum != 0) {
        st->host->log(st->host, BAIC_LOG_WARN, "bad_amount", "kernel=%s amount=%" PRId64,
                      req->kernel_id ? req->kernel_id : "-", amount);
        return BAIC_EBAD_INPUT;
    }
    cpu_alloc_t *a;
    int rc = cpu_new_alloc(st, req->kernel_id, &a);
    if (rc != 0)
        return rc;
    if (amount > 0) {
        if (st->pin && amount % BAIC_SLOT_UNIT == 0) {
            size_t want = (size_t)(amount / BAIC_SLOT_UNIT);
            a->pinned = 1;
            a->base.pub.n_parts = want <= st->n ? cpu_pick_pinned(st, req, want, a->base.parts) : 0;
            if (a->base.pub.n_parts != want)
                a->base.pub.n_parts = 0;
        } else {
            a->base.pub.n_parts = cpu_pick_quota(st, req, amount, a->base.parts);
        }
        if (a->base.pub.n_parts == 0) {
            cpu_alloc_release(st, a);
            return BAIC_ENO_RESOURCES;
        }
    }
    rc = cpu_commit(st, a, out);
    if (rc != 0)
        cpu_alloc_release(st, a);
    return rc;
}

static int cpu_free_allocation(void *state, baic_compute_alloc_t *alloc) {
    cpu_state_t *st = state;
    cpu_alloc_t *a = (cpu_alloc_t *)compute_alloc_unlink(&st->allocs, alloc);
    if (a == NULL)
        return BAIC_ENOT_FOUND;
    for (size_t i = 0; i < alloc->n_parts; i++) {
        cpu_core_t *c = cpu_find(st, alloc->parts[i].device_id);
        c->used -= alloc->parts[i].amount;
        if (a->pinned)
            c->pinned = 0;
    }
    cpu_alloc_release(st, a);
    return 0;
}

static int cpu_container_needs(void *state, const baic_compute_alloc_t *alloc,
                               const baic_needs_builder_t *b) {
    const cpu_alloc_t *a = alloc->priv;
    if (alloc->n_parts == 0)
        return 0;
    char quota[32];
    compute_format_amount(a->quota, BAIC_SLOT_UNIT, quota, sizeof quota);
    int rc = b->add_env(b->needs, "BACKENDAI_CPU_QUOTA", quota);
    if (rc == 0 && a->cpuset != NULL)
        rc = b->add_env(b->needs, "BACKENDAI_CPU_CORES", a->cpuset);
    return rc;
}

/* {"cpu": {"<core>": "<amount>"}, "pinned": b, "cpu_quota": "<cores>", "cpuset": s|null} */
static int cpu_alloc_to_json(void *state, const baic_compute_alloc_t *alloc, json_t **out) {
    const cpu_alloc_t *a = alloc->priv;
    char quota[32];
    json_t *per = compute_parts_to_json(alloc, BAIC_SLOT_UNIT);
    compute_format_amount(a->quota, BAIC_SLOT_UNIT, quota, sizeof quota);
    *out = json_pack("{s:o, s:b, s:s, s:s?}", "cpu", per, "pinned", a->pinned, "cpu_quota", quota,
                     "cpuset", a->cpuset);
    return *out ? 0 : UV_ENOMEM;
}

static int cpu_alloc_from_json(void *state, const char *kernel_id, const json_t *desc,
                               baic_compute_alloc_t **out) {
    cpu_state_t *st = state;
    const json_t *per = json_object_get(desc, "cpu");
    if (!json_is_object(per))
        return BAIC_EBAD_INPUT;
    cpu_alloc_t *a;
    int rc = cpu_new_alloc(st, kernel_id, &a);
    if (rc != 0)
        return rc;
    a->pinned = json_is_true(json_object_get(desc, "pinned"));
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)per, key, v) {
        cpu_core_t *c = cpu_find(st, key);
        int64_t amount;
        if (c == NULL || a->base.pub.n_parts >= st->n || compute_parse_amount(v, BAIC_SLOT_UNIT, &amount) != 0 ||
            amount <= 0 || amount > BAIC_SLOT_UNIT || (a->pinned && amount != BAIC_SLOT_UNIT)) {
            rc = BAIC_EBAD_INPUT;
            break;
        }
        if (amount > BAIC_SLOT_UNIT - c->used || c->pinned || (a->pinned && c->used != 0)) {
            rc = BAIC_ENO_RESOURCES;
            break;
        }
        a->base.parts[a->base.pub.n_parts++] = (baic_compute_alloc_part_t){c->id, "cpu", amount};
    }
    if (rc == 0)
        rc = cpu_commit(st, a, out);
    if (rc != 0)
        cpu_alloc_release(st, a);
    return rc;
}

static int cpu_describe_device(void *state, const char *device_id, json_t **out) {
    cpu_state_t *st = state;
    const cpu_core_t *c = cpu_find(st, device_id);
    if (c == NULL)
        return BAIC_ENOT_FOUND;
    char booked[32];
    compute_format_amount(c->used, BAIC_SLOT_UNIT, booked, sizeof booked);
    *out = json_pack("{s:s, s:s, s:i, s:s, s:b}", "id", c->id, "model", st->model, "numa_node",
                     c->d.numa_node, "booked", booked, "pinned", c->pinned);
    return *out ? 0 : UV_ENOMEM;
}

static const baic_compute_ops_t cpu_ops = {
    .list_slots = cpu_list_slots,
    .list_devices = cpu_list_devices,
    .allocate = cpu_allocate,
    .free_allocation = cpu_free_allocation,
    .container_needs = cpu_container_needs,
    .alloc_to_json = cpu_alloc_to_json,
    .alloc_from_json = cpu_alloc_from_json,
    .describe_device = cpu_describe_device,
};

BAIC_PLUGIN_DEFINE(compute, cpu, "1.0.0", cpu_init, cpu_fini, &cpu_ops)
