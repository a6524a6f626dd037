/* SPDX-License-Identifier: Apache-2.0 */
/* The container spec of a kernel: Backend.AI env, compute plugins' needs, limits, and the runtime create call. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "log/log.h"
#include "util/strerror.h"

/* Where runtime/oci puts it too (its kernel_runner_target default): set the path in one place only. */
#define KERNEL_RUNNER_TARGET "/opt/backend.ai/bin/baic-kernel-runner"
#define DEFAULT_PIDS_MAX 4096
/* The per-kernel socket directory inside the container. */
#define RUNNER_RUN_DIR "/opt/backend.ai/run"

/* The needs builder's storage; every string is a copy, freed with the spec. */
struct baic_container_needs {
    char **env;               /* "NAME=value" */
    size_t nenv;
    baic_rt_device_t **devices;
    size_t ndevices;
    baic_rt_mount_t **mounts;
    size_t nmounts;
    baic_rt_cgroup_rule_t **rules;
    size_t nrules;
    int oom;                  /* an allocation failed: the whole spec is void */
};

static int push(void ***arr, size_t *n, void *item) {
    if (item == NULL)
        return UV_ENOMEM;
    /* Grown one at a time: a spec has tens of entries, and it keeps arrays NULL-terminated. */
    void **na = realloc(*arr, (*n + 2) * sizeof *na);
    if (na == NULL)
        return UV_ENOMEM;
    na[(*n)++] = item;
    na[*n] = NULL;
    *arr = na;
    return 0;
}

static int env_name_ok(const char *name) {
    if (name == NULL || !((*name >= 'A' && *name <= 'Z') || (*name >= 'a' && *name <= 'z') ||
                          *name == '_'))
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
              (*p >= '0' && *p <= '9') || *p == '_'))
            return 0;
    return 1;
}

/* The value of NAME, or NULL. */
static const char *needs_env_get(const baic_container_needs_t *n, const char *name) {
    size_t len = strlen(name);
    for (size_t i = 0; i < n->nenv; i++)
        if (strncmp(n->env[i], name, len) == 0 && n->env[i][len] == '=')
            return n->env[i] + len + 1;
    return NULL;
}

static int needs_add_env(baic_container_needs_t *n, const char *name, const char *value) {
    if (!env_name_ok(name) || value == NULL)
        return BAIC_EBAD_INPUT;
    const char *old = needs_env_get(n, name);
    if (old != NULL)
        return strcmp(old, value) == 0 ? 0 : BAIC_EEXISTS;
    size_t len = strlen(name) + strlen(value) + 2;
    char *kv = malloc(len);
    if (kv != NULL)
        snprintf(kv, len, "%s=%s", name, value);
    return push((void ***)&n->env, &n->nenv, kv);
}

static int needs_add_device(baic_container_needs_t *n, const char *host_path,
                            const char *container_path, const char *access) {
    if (host_path == NULL || host_path[0] != '/' ||
        (container_path != NULL && container_path[0] != '/'))
        return BAIC_EBAD_INPUT;
    baic_rt_device_t *d = calloc(1, sizeof *d);
    if (d == NULL)
        return UV_ENOMEM;
    d->host_path = strdup(host_path);
    d->container_path = strdup(container_path ? container_path : host_path);
    d->access = strdup(access ? access : "rwm");
    return push((void ***)&n->devices, &n->ndevices, d);
}

static int needs_add_mount(baic_container_needs_t *n, const char *source, const char *target,
                           int readonly) {
    if (source == NULL || source[0] != '/' || target == NULL || target[0] != '/')
        return BAIC_EBAD_INPUT;
    baic_rt_mount_t *m = calloc(1, sizeof *m);
    if (m == NULL)
        return UV_ENOMEM;
    m->source = strdup(source);
    m->target = strdup(target);
    m->type = "bind";
    m->readonly = readonly;
    return push((void ***)&n->mounts, &n->nmounts, m);
}

static int needs_add_cgroup_rule(baic_container_needs_t *n, char type, int64_t major,
                                 int64_t minor, const char *access) {
    if (type != 'c' && type != 'b')
        return BAIC_EBAD_INPUT;
    baic_rt_cgroup_rule_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return UV_ENOMEM;
    r->type = type;
    r->major = major;
    r->minor = minor;
    r->access = strdup(access ? access : "rwm");
    return push((void ***)&n->rules, &n->nrules, r);
}

static void needs_free(baic_container_needs_t *n) {
    for (size_t i = 0; i < n->nenv; i++)
        free(n->env[i]);
    for (size_t i = 0; i < n->ndevices; i++) {
        free((char *)n->devices[i]->host_path);
        free((char *)n->devices[i]->container_path);
        free((char *)n->devices[i]->access);
        free(n->devices[i]);
    }
    for (size_t i = 0; i < n->nmounts; i++) {
        free((char *)n->mounts[i]->source);
        free((char *)n->mounts[i]->target);
        free(n->mounts[i]);
    }
    for (size_t i = 0; i < n->nrules; i++) {
        free((char *)n->rules[i]->access);
        free(n->rules[i]);
    }
    free(n->env);
    free(n->devices);
    free(n->mounts);
    free(n->rules);
}

/* Backend.AI's variables that the agent knows (api-contract §11). */
static int add_backendai_env(agent_kernel_t *k, baic_container_needs_t *n) {
    const json_t *c = k->create, *ks = json_object_get(c, "kernel");
    char num[32];
    const char *role = json_string_value(json_object_get(ks, "cluster_role"));
    const char *host = json_string_value(json_object_get(ks, "cluster_hostname"));
    json_int_t idx = json_integer_value(json_object_get(ks, "cluster_idx"));
    int rc = needs_add_env(n, "BACKENDAI_SESSION_ID", k->session_id);
    if (rc == 0)
        rc = needs_add_env(n, "BACKENDAI_SESSION_NAME",
                           json_string_value(json_object_get(c, "session_name")));
    if (rc == 0)
        rc = needs_add_env(n, "BACKENDAI_KERNEL_ID", k->id);
    if (rc == 0)
        rc = needs_add_env(n, "BACKENDAI_KERNEL_IMAGE", k->image);
    if (rc == 0)
        rc = needs_add_env(n, "BACKENDAI_ACCESS_KEY",
                           json_string_value(json_object_get(c, "access_key")));
    if (rc == 0)
        rc = needs_add_env(n, "BACKENDAI_CLUSTER_ROLE", role);
    snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, idx);
    if (rc == 0)
        rc = needs_add_env(n, "BACKENDAI_CLUSTER_IDX", num);
    snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT,
             json_integer_value(json_object_get(c, "local_rank")));
    if (rc == 0)
        rc = needs_add_env(n, "BACKENDAI_CLUSTER_LOCAL_RANK", num);
    if (rc == 0)
        rc = needs_add_env(n, "BACKENDAI_CLUSTER_HOST", host);
    snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT,
             json_integer_value(json_object_get(c, "cluster_size")));
    if (rc == 0)
        rc = needs_add_env(n, "BACKENDAI_CLUSTER_SIZE", num);
    if (rc == 0)
        rc = needs_add_env(n, "BACKENDAI_CLUSTER_HOSTS",
                           json_string_value(json_object_get(c, "cluster_hosts")));
    if (rc == 0)
        rc = needs_add_env(n, "BACKENDAI_CLUSTER_REPLICAS",
                           json_string_value(json_object_get(c, "cluster_replicas")));
    const char *opt[][2] = {{"user_uuid", "BACKENDAI_USER_UUID"},
                            {"user_name", "BACKENDAI_USER_NAME"},
                            {"user_email", "BACKENDAI_USER_EMAIL"}};
    for (size_t i = 0; rc == 0 && i < sizeof opt / sizeof opt[0]; i++) {
        const char *v = json_string_value(json_object_get(c, opt[i][0]));
        if (v != NULL)
            rc = needs_add_env(n, opt[i][1], v);
    }
    return rc;
}

/* What the kernel runner reads (docs/kernel-runner.md): its socket, the image's runtime
 * labels, and the startup command and bootstrap script of the request. */
static int add_runner_env(agent_kernel_t *k, baic_container_needs_t *n) {
    const json_t *ks = json_object_get(k->create, "kernel");
    const json_t *labels = json_object_get(json_object_get(ks, "image"), "labels");
    const char *map[][2] = {{"ai.backend.runtime-type", "BACKENDAI_RUNTIME_TYPE"},
                            {"ai.backend.runtime-path", "BACKENDAI_RUNTIME_PATH"},
                            {"ai.backend.service-ports", "BACKENDAI_SERVICE_PORTS"}};
    int rc = needs_add_env(n, "BACKENDAI_RUNNER_SOCKET", RUNNER_RUN_DIR "/runner.sock");
    if (rc == 0) /* read back by the agent's logs RPC (logs.c) */
        rc = needs_add_env(n, "BAIC_RUNNER_CONSOLE_LOG", RUNNER_RUN_DIR "/console.log");
    for (size_t i = 0; rc == 0 && i < sizeof map / sizeof map[0]; i++) {
        const char *v = json_string_value(json_object_get(labels, map[i][0]));
        if (v != NULL && *v != '\0')
            rc = needs_add_env(n, map[i][1], v);
    }
    const char *startup = json_string_value(json_object_get(ks, "startup_command"));
    const char *boot = json_string_value(json_object_get(ks, "bootstrap_script"));
    if (rc == 0 && startup != NULL && *startup != '\0')
        rc = needs_add_env(n, "BACKENDAI_STARTUP_COMMAND", startup);
    if (rc == 0 && boot != NULL && *boot != '\0')
        rc = needs_add_env(n, "BACKENDAI_BOOTSTRAP_SCRIPT", boot);
    return rc;
}

/* Where vfolders may appear in a container: below the work directory, never on it. */
#define MOUNT_ROOT "/home/work"
#define MOUNT_PATH_MAX 1024

/* 1 when path (absolute) has no empty, "." or ".." component and no trailing slash. */
static int path_clean(const char *path) {
    if (path[0] != '/' || path[1] == '\0')
        return 0;
    for (const char *c = path + 1;;) {
        const char *e = strchr(c, '/');
        size_t len = e ? (size_t)(e - c) : strlen(c);
        if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
            return 0;
        if (e == NULL)
            return 1;
        c = e + 1;
    }
}

typedef struct vmount {
    const char *name, *host, *permission;
    char target[MOUNT_PATH_MAX + 16];
} vmount_t;

/* Shorter targets first, so that /home/work/a is mounted before /home/work/a/b. */
static int vmount_cmp(const void *x, const void *y) {
    size_t a = strlen(((const vmount_t *)x)->target), b = strlen(((const vmount_t *)y)->target);
    return a < b ? -1 : a > b;
}

/* The manager's kernel.mounts (vfolders): [{"name","vfid","host_path","kernel_path",
 * "permission":"ro|rw|wd"}] as bind mounts, read-only for "ro". An entry that is not
 * right fails the whole kernel, with the reason in msg. */
static int add_vfolder_mounts(agent_kernel_t *k, baic_container_needs_t *n, char *msg,
                              size_t msglen) {
    const json_t *list = json_object_get(json_object_get(k->create, "kernel"), "mounts");
    if (list == NULL || json_is_null(list))
        return 0;
    if (!json_is_array(list)) {
        snprintf(msg, msglen, "kernel.mounts must be an array");
        return BAIC_EBAD_INPUT;
    }
    size_t count = json_array_size(list);
    if (count == 0)
        return 0;
    if (count > 64) {
        snprintf(msg, msglen, "kernel.mounts: %zu entries, at most 64", count);
        return BAIC_EBAD_INPUT;
    }
    vmount_t *v = calloc(count, sizeof *v);
    if (v == NULL)
        return UV_ENOMEM;
    int rc = 0;
    size_t i;
    json_t *m;
    json_array_foreach(list, i, m) {
        const json_t *jname = json_object_get(m, "name");
        const char *name = json_is_string(jname) ? json_string_value(jname) : "?";
        const json_t *jh = json_object_get(m, "host_path"), *jk = json_object_get(m, "kernel_path");
        const json_t *jp = json_object_get(m, "permission");
        const char *host = json_string_value(jh), *kp = json_string_value(jk);
        const char *perm = jp == NULL || json_is_null(jp) ? "rw" : json_string_value(jp);
        struct stat sb;
        rc = BAIC_EBAD_INPUT;
        if (!json_is_object(m)) {
            snprintf(msg, msglen, "mount %zu: not an object", i);
        } else if (jname != NULL && !json_is_string(jname)) {
            snprintf(msg, msglen, "mount %zu: name must be a string", i);
        } else if (host == NULL || strlen(host) > MOUNT_PATH_MAX || !path_clean(host)) {
            snprintf(msg, msglen, "mount %.40s: host_path must be a clean absolute path", name);
        } else if (stat(host, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            snprintf(msg, msglen, "mount %.40s: host_path %.80s is not a directory on this agent",
                     name, host);
        } else if (kp == NULL || *kp == '\0' || strlen(kp) > MOUNT_PATH_MAX) {
            snprintf(msg, msglen, "mount %.40s: kernel_path missing", name);
        } else if (perm == NULL || (strcmp(perm, "ro") != 0 && strcmp(perm, "rw") != 0 &&
                                    strcmp(perm, "wd") != 0)) {
            snprintf(msg, msglen, "mount %.40s: permission must be ro, rw or wd", name);
        } else {
            /* A relative kernel_path is relative to the work directory. */
            snprintf(v[i].target, sizeof v[i].target, "%s%s", kp[0] == '/' ? "" : MOUNT_ROOT "/",
                     kp);
            if (strncmp(v[i].target, MOUNT_ROOT "/", sizeof MOUNT_ROOT) != 0 ||
                !path_clean(v[i].target)) {
                snprintf(msg, msglen, "mount %.40s: kernel_path %.80s is not below " MOUNT_ROOT
                         " (no '..')", name, kp);
            } else {
                rc = 0;
                v[i].name = name;
                v[i].host = host;
                v[i].permission = perm;
            }
        }
        if (rc != 0)
            break;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(v[j].target, v[i].target) == 0) {
                snprintf(msg, msglen, "mount %.40s: kernel_path %.80s is used twice", name,
                         v[i].target);
                rc = BAIC_EBAD_INPUT;
                break;
            }
        }
        if (rc != 0)
            break;
    }
    if (rc == 0)
        qsort(v, count, sizeof *v, vmount_cmp);
    for (i = 0; rc == 0 && i < count; i++) {
        rc = needs_add_mount(n, v[i].host, v[i].target, strcmp(v[i].permission, "ro") == 0);
        if (rc != 0)
            snprintf(msg, msglen, "mount %.40s: %s", v[i].name, baic_strerror(rc));
        else
            BAIC_LOG_I("vfolder_mount", "kernel=%s name=%s target=%s permission=%s", k->id,
                       v[i].name, v[i].target, v[i].permission);
    }
    free(v);
    return rc;
}

int agent_spec_create(agent_kernel_t *k, baic_rt_done_cb cb, char *msg, size_t msglen) {
    agent_t *a = k->a;
    const json_t *ks = json_object_get(k->create, "kernel");
    baic_container_needs_t needs = {0};
    baic_needs_builder_t b = {sizeof b,          &needs,          needs_add_env,
                              needs_add_device, needs_add_mount, needs_add_cgroup_rule};
    const char *where = "env";
    int rc = add_backendai_env(k, &needs);
    for (size_t p = 0; rc == 0 && p < a->ncompute; p++) {
        if (k->allocs[p] == NULL)
            continue;
        const baic_compute_ops_t *ops = a->compute[p]->ops;
        rc = ops->container_needs(a->compute[p]->state, k->allocs[p], &b);
        where = a->compute[p]->id;
    }
    /* The user's environ comes last and cannot override what the platform set. */
    const char *name;
    json_t *v;
    json_object_foreach(json_object_get(ks, "environ"), name, v) {
        if (rc != 0)
            break;
        where = "environ";
        if (needs_env_get(&needs, name) != NULL) {
            BAIC_LOG_W("environ_ignored", "kernel=%s name=%s reason=reserved", k->id, name);
            continue;
        }
        rc = needs_add_env(&needs, name, json_string_value(v));
    }
    struct stat sb;
    char sockdir[4096];
    k->use_runner = 0;
    if (rc == 0 && a->kernel_runner != NULL && stat(a->kernel_runner, &sb) == 0) {
        where = "kernel runner";
        rc = agent_runner_dir_make(a, k->id);
        agent_runner_dir(a, k->id, sockdir, sizeof sockdir);
        if (rc == 0)
            rc = needs_add_mount(&needs, a->kernel_runner, KERNEL_RUNNER_TARGET, 1);
        if (rc == 0)
            rc = needs_add_mount(&needs, sockdir, RUNNER_RUN_DIR, 0);
        if (rc == 0)
            rc = add_runner_env(k, &needs);
        k->use_runner = rc == 0;
    }
    if (rc != 0) {
        snprintf(msg, msglen, "container needs (%s): %s", where, baic_strerror(rc));
        needs_free(&needs);
        return rc;
    }
    rc = add_vfolder_mounts(k, &needs, msg, msglen);
    char netns[128];
    if (rc == 0)
        rc = agent_cluster_prepare(k, &b, netns, sizeof netns, msg, msglen); /* cluster_net.c */
    if (rc != 0) {
        needs_free(&needs);
        return rc;
    }

    /* Until the kernel runner exists, an idle process that ends on SIGTERM keeps the
     * container alive; a startup command runs through the image's shell. */
    const char *startup = json_string_value(json_object_get(ks, "startup_command"));
    const char *argv[4] = {"/bin/sh", "-c",
                           "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done", NULL};
    if (startup != NULL && *startup != '\0')
        argv[2] = startup;
    if (k->use_runner) {
        argv[0] = KERNEL_RUNNER_TARGET; /* the startup command went in as its variable */
        argv[1] = NULL;
    }

    int64_t cpu = 0, mem = 0;
    const char *sv = json_string_value(json_object_get(k->slots, "cpu"));
    if (sv != NULL)
        agent_slot_parse(sv, BAIC_SLOT_COUNT, &cpu);
    sv = json_string_value(json_object_get(k->slots, "mem"));
    if (sv != NULL)
        agent_slot_parse(sv, BAIC_SLOT_BYTES, &mem);

    char l_kernel[200], l_session[200], l_agent[200], bundle[4096];
    snprintf(l_kernel, sizeof l_kernel, "ai.backend.kernel-id=%s", k->id);
    snprintf(l_session, sizeof l_session, "ai.backend.session-id=%s", k->session_id);
    snprintf(l_agent, sizeof l_agent, "ai.backend.agent-id=%s", a->id);
    const char *labels[4] = {l_kernel, l_session, l_agent, NULL};
    agent_bundle_path(a, k->id, bundle, sizeof bundle);
    if (mkdir(bundle, 0700) != 0 && errno != EEXIST) {
        rc = -errno;
        snprintf(msg, msglen, "bundle dir %s: %s", bundle, baic_strerror(rc));
        needs_free(&needs);
        return rc;
    }
    const char *host = json_string_value(json_object_get(ks, "cluster_hostname"));
    baic_container_spec_t spec = {
        .size = sizeof spec,
        .id = k->id,
        .image = k->image,
        .rootfs = NULL, /* the runtime pulls and unpacks image itself */
        .bundle_dir = bundle,
        .argv = argv,
        .env = (const char *const *)needs.env,
        .cwd = "/home/work",
        .hostname = host,
        .mounts = (const baic_rt_mount_t *const *)needs.mounts,
        .n_mounts = needs.nmounts,
        .devices = (const baic_rt_device_t *const *)needs.devices,
        .n_devices = needs.ndevices,
        .cgroup_rules = (const baic_rt_cgroup_rule_t *const *)needs.rules,
        .n_cgroup_rules = needs.nrules,
        .cpu_limit = cpu,
        .cpuset = needs_env_get(&needs, "BACKENDAI_CPU_CORES"),
        .memory_bytes = mem,
        .pids_max = DEFAULT_PIDS_MAX,
        .net_mode = netns[0] ? BAIC_RT_NET_JOIN : BAIC_RT_NET_PRIVATE,
        .netns_path = netns[0] ? netns : NULL,
        .labels = labels,
    };
    static const char *const no_env[1] = {NULL};
    if (spec.env == NULL)
        spec.env = no_env;
    rc = a->rt->create(a->runtime->state, &spec, cb, k);
    if (rc != 0)
        snprintf(msg, msglen, "runtime create: %s", baic_strerror(rc));
    needs_free(&needs);
    return rc;
}
