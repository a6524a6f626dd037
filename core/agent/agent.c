/* SPDX-License-Identifier: Apache-2.0 */
/* Agent start-up and shutdown: config, plugins, Redis bus, heartbeats, RPC server, recovery. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "config/config.h"
#include "config/daemon.h"
#include "log/log.h"
#include "util/strerror.h"

#define OUTBOX_MAX 10000
#define EXIT_WAIT_MS 2000

int64_t agent_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- events ---- */

static void outbox_flush(agent_t *a);
static void agent_finish(agent_t *a);

static void on_published(const char *id, int err, void *arg) {
    agent_t *a = arg;
    (void)id;
    a->outbox_busy = 0;
    if (err != 0) {
        /* Kept in order; the next heartbeat tick tries again. */
        BAIC_LOG_W("publish_failed", "error=\"%s\" queued=%zu", baic_strerror(err),
                   json_array_size(a->outbox));
    } else {
        json_array_remove(a->outbox, 0);
        outbox_flush(a);
    }
    if (a->closing && (json_array_size(a->outbox) == 0 || err != 0))
        agent_finish(a);
}

/*
 * One publish in flight at a time: the manager reads the stream in order, so a
 * kernel_terminated must never overtake the kernel_started before it, even when a
 * publish fails and is retried.
 */
static void outbox_flush(agent_t *a) {
    if (a->outbox_busy || json_array_size(a->outbox) == 0 || a->bus == NULL)
        return;
    json_t *e = json_array_get(a->outbox, 0);
    const char *name = json_string_value(json_array_get(e, 0));
    int rc = baic_bus_publish(a->bus, AGENT_STREAM, name, json_array_get(e, 1), on_published, a);
    if (rc == 0)
        a->outbox_busy = 1;
}

void agent_publish(agent_t *a, const char *name, json_t *body) {
    if (body == NULL)
        return;
    json_object_set_new(body, "agent_id", json_string(a->id));
    json_object_set_new(body, "ts", json_integer(agent_wall_ms()));
    if (json_array_size(a->outbox) >= OUTBOX_MAX) {
        BAIC_LOG_E("event_dropped", "name=%s reason=outbox-full",
                   json_string_value(json_array_get(json_array_get(a->outbox, 0), 0)));
        json_array_remove(a->outbox, 0);
    }
    json_array_append_new(a->outbox, json_pack("[s, o]", name, body));
    outbox_flush(a);
}

static json_t *heartbeat_body(agent_t *a) {
    json_t *avail = json_object(), *types = json_object(), *plugins = json_object();
    json_t *kernels = json_array();
    static const char *const tnames[] = {"count", "bytes", "unique"};
    for (size_t i = 0; i < a->nslots; i++) {
        char v[32];
        agent_slot_format(a->slots[i].capacity, a->slots[i].type, v, sizeof v);
        json_object_set_new(avail, a->slots[i].name, json_string(v));
        json_object_set_new(types, a->slots[i].name,
                            json_string(a->slots[i].type <= BAIC_SLOT_UNIQUE
                                            ? tnames[a->slots[i].type]
                                            : "count"));
    }
    for (size_t p = 0; p < a->ncompute; p++)
        json_object_set_new(plugins, a->compute[p]->name,
                            json_string(a->compute[p]->desc->version
                                            ? a->compute[p]->desc->version
                                            : ""));
    for (agent_kernel_t *k = a->kernels; k != NULL; k = k->next)
        json_array_append_new(kernels, json_pack("{s:s, s:s}", "kernel_id", k->id, "status",
                                                 agent_kstate_name(k->state)));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:[], s:o}", "addr", a->addr,
                     "region", a->region, "scaling_group", a->scaling_group, "architecture",
                     a->arch, "version", AGENT_VERSION, "available_slots", avail, "slot_types",
                     types, "compute_plugins", plugins, "images", "kernels", kernels);
}

static void on_heartbeat_sent(const char *id, int err, void *arg) {
    (void)id;
    (void)arg;
    if (err != 0)
        BAIC_LOG_W("heartbeat_failed", "error=\"%s\"", baic_strerror(err));
}

static void heartbeat_tick(uv_timer_t *t) {
    agent_t *a = t->data;
    json_t *body = heartbeat_body(a);
    json_object_set_new(body, "agent_id", json_string(a->id));
    json_object_set_new(body, "ts", json_integer(agent_wall_ms()));
    /* Heartbeats are not queued: a missed one is replaced by the next. */
    int rc = baic_bus_publish(a->bus, AGENT_STREAM, "agent_heartbeat", body, on_heartbeat_sent, a);
    if (rc != 0)
        BAIC_LOG_W("heartbeat_failed", "error=\"%s\"", baic_strerror(rc));
    json_decref(body);
    outbox_flush(a);
}

/* ---- start and stop ---- */

static void on_recovered(agent_t *a, int status) {
    if (status != 0) {
        BAIC_LOG_E("recover_failed", "error=\"%s\"", baic_strerror(status));
        baic_loop_stop(a->loop);
        return;
    }
    a->recovering = 0;
    if (a->closing)
        return;
    uv_timer_start(&a->hb_timer, heartbeat_tick, 0, a->hb_ms);
    BAIC_LOG_I("agent_ready", "agent=%s listen=%s port=%d kernels=%zu", a->id, a->listen,
               baic_http_server_port(a->http), a->nkernels);
}

/* Everything closes here, once agent_terminated was taken by Redis (or the wait ran out). */
static void agent_finish(agent_t *a) {
    if (a->closing != 1)
        return;
    a->closing = 2;
    uv_timer_stop(&a->exit_timer);
    if (a->http)
        baic_http_server_close(a->http, NULL, NULL);
    a->http = NULL;
    /* Plugins cancel their pending work in fini; containers and records stay, so the
     * next start adopts the kernels. */
    if (a->runtime != NULL)
        a->rt->watch(a->runtime->state, NULL, NULL);
    baic_registry_free(a->reg);
    a->reg = NULL;
    agent_kernels_free_all(a);
    if (a->bus)
        baic_bus_close(a->bus, NULL, NULL);
    a->bus = NULL;
}

static void exit_wait_expired(uv_timer_t *t) {
    agent_t *a = t->data;
    BAIC_LOG_W("terminate_event_unsent", "queued=%zu", json_array_size(a->outbox));
    agent_finish(a);
}

static void shutdown_cb(baic_loop_t *loop, int signum, void *arg) {
    agent_t *a = arg;
    (void)loop;
    if (a->closing)
        return;
    a->closing = 1;
    BAIC_LOG_I("agent_stopping", "agent=%s signal=%d kernels=%zu", a->id, signum, a->nkernels);
    uv_timer_stop(&a->hb_timer);
    uv_timer_stop(&a->begin_timer);
    if (a->bus == NULL) {
        agent_finish(a);
        return;
    }
    agent_publish(a, "agent_terminated",
                  json_pack("{s:s}", "reason", signum ? "shutdown" : "error"));
    uv_timer_start(&a->exit_timer, exit_wait_expired, EXIT_WAIT_MS, 0);
    if (!a->outbox_busy)
        agent_finish(a); /* Redis is away: publishing cannot start now */
}

static int read_config(agent_t *a, const char **redis_host, long long *redis_port,
                       const char **redis_pw) {
    const json_t *c = a->config;
    const char *id = NULL;
    long long hb = 0;
    char addr[512];
    if (baic_cfg_str(c, "agent.id", NULL, &id) || baic_cfg_str(c, "agent.listen", "127.0.0.1:6011",
                                                      &a->listen) ||
        baic_cfg_str(c, "agent.addr", NULL, &a->addr) || baic_cfg_str(c, "agent.region", "local", &a->region) ||
        baic_cfg_str(c, "agent.scaling_group", "default", &a->scaling_group) ||
        baic_cfg_str(c, "agent.cluster_secret", NULL, &a->secret) ||
        baic_cfg_str(c, "agent.data_dir", "/var/lib/baic/agent", &a->data_dir) ||
        baic_cfg_str(c, "agent.kernel_runner", NULL, &a->kernel_runner) ||
        baic_cfg_int(c, "agent.heartbeat_interval_ms", 3000, &hb) ||
        baic_cfg_str(c, "redis.host", "127.0.0.1", redis_host) ||
        baic_cfg_int(c, "redis.port", 6379, redis_port) || baic_cfg_str(c, "redis.password", NULL, redis_pw))
        return BAIC_ECONFIG_TYPE;
    if (a->secret == NULL || strlen(a->secret) < 16) {
        BAIC_LOG_E("config_error", "msg=\"[agent] cluster_secret is required (16 characters "
                                   "or more), the same as the manager's\"");
        return BAIC_ECONFIG_TYPE;
    }
    if (hb < 100 || hb > 60000 || *redis_port <= 0 || *redis_port > 65535) {
        BAIC_LOG_E("config_error", "msg=\"heartbeat_interval_ms must be 100..60000 and "
                                   "redis.port 1..65535\"");
        return BAIC_ECONFIG_TYPE;
    }
    a->hb_ms = (uint64_t)hb;
    if (id == NULL) {
        if (gethostname(a->id, sizeof a->id) != 0)
            snprintf(a->id, sizeof a->id, "agent");
        a->id[sizeof a->id - 1] = '\0';
    } else {
        snprintf(a->id, sizeof a->id, "%s", id);
    }
    if (a->addr == NULL) {
        snprintf(addr, sizeof addr, "http://%s", a->listen);
        json_object_set_new(json_object_get(a->config, "agent"), "addr", json_string(addr));
        a->addr = json_string_value(json_object_get(json_object_get(a->config, "agent"), "addr"));
    }
    struct utsname u;
    snprintf(a->arch, sizeof a->arch, "%s", uname(&u) == 0 ? u.machine : "unknown");
    return 0;
}

static int find_plugins(agent_t *a) {
    size_t n = baic_registry_count(a->reg);
    a->compute = calloc(n ? n : 1, sizeof *a->compute);
    if (a->compute == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const baic_plugin_t *p = baic_registry_at(a->reg, i);
        if (p->kind == BAIC_KIND_COMPUTE) {
            a->compute[a->ncompute++] = p;
        } else if (p->kind == BAIC_KIND_RUNTIME) {
            if (a->runtime != NULL) {
                BAIC_LOG_E("config_error", "msg=\"exactly one runtime plugin: %s and %s "
                                           "are both loaded\"", a->runtime->id, p->id);
                return BAIC_ECONFIG_TYPE;
            }
            a->runtime = p;
            a->rt = p->ops;
        }
    }
    if (a->runtime == NULL) {
        BAIC_LOG_E("config_error", "msg=\"no runtime plugin: add runtime/oci (or runtime/dummy) "
                                   "to [plugins] load\"");
        return BAIC_ECONFIG_TYPE;
    }
    return 0;
}

/* 1 for an ELF executable without an interpreter (static), 0 for a dynamic one, -1 when
 * unreadable or not ELF. Only a static runner works in every image. */
static int elf_static(const char *path) {
    unsigned char buf[4096];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n < (ssize_t)sizeof(Elf64_Ehdr) || memcmp(buf, ELFMAG, SELFMAG) != 0 ||
        buf[EI_CLASS] != ELFCLASS64)
        return -1;
    Elf64_Ehdr eh;
    memcpy(&eh, buf, sizeof eh);
    for (size_t i = 0; i < eh.e_phnum; i++) {
        size_t off = (size_t)eh.e_phoff + i * eh.e_phentsize;
        Elf64_Phdr ph;
        if (eh.e_phentsize < sizeof ph || off + sizeof ph > (size_t)n)
            return -1;
        memcpy(&ph, buf + off, sizeof ph);
        if (ph.p_type == PT_INTERP)
            return 0;
    }
    return 1;
}

/*
 * [agent] kernel_runner: a configured path is used when the file is there ("" turns the
 * runner off); without the key, a static baic-kernel-runner next to baic-agent (install)
 * or in the build tree (core/kernel-runner/) is used, for runtimes that run containers.
 */
static void resolve_runner(agent_t *a) {
    const char *conf = a->kernel_runner;
    a->kernel_runner = NULL;
    if (conf != NULL) {
        if (*conf == '\0')
            return;
        if (access(conf, R_OK) != 0) {
            BAIC_LOG_W("kernel_runner_missing", "path=%s msg=\"containers run an idle command\"",
                       conf);
            return;
        }
        snprintf(a->runner_path, sizeof a->runner_path, "%s", conf);
        a->kernel_runner = a->runner_path;
        return;
    }
    if (strcmp(a->runtime->id, "runtime/dummy") == 0)
        return;
    char exe[2048];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == NULL)
        return;
    *slash = '\0';
    const char *rel[] = {"baic-kernel-runner", "../kernel-runner/baic-kernel-runner"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", exe, rel[i]);
        if (access(p, X_OK) != 0)
            continue;
        if (elf_static(p) != 1) {
            BAIC_LOG_I("kernel_runner_skipped", "path=%s reason=not-static", p);
            continue;
        }
        char *real = realpath(p, NULL);
        snprintf(a->runner_path, sizeof a->runner_path, "%s", real ? real : p);
        free(real);
        a->kernel_runner = a->runner_path;
        return;
    }
}

int agent_serve(json_t *config) {
    agent_t agent, *a = &agent;
    memset(a, 0, sizeof *a);
    a->config = config;
    a->recovering = 1;
    a->outbox = json_array();
    const char *redis_host = NULL, *redis_pw = NULL;
    long long redis_port = 0;
    char err[1024];
    int rc = read_config(a, &redis_host, &redis_port, &redis_pw);
    if (rc != 0) {
        json_decref(a->outbox);
        return 2;
    }
    if ((rc = agent_record_dirs(a)) != 0) {
        BAIC_LOG_E("data_dir_failed", "path=%s error=\"%s\"", a->data_dir, baic_strerror(rc));
        json_decref(a->outbox);
        return 1;
    }
    if ((rc = baic_loop_new(shutdown_cb, a, &a->loop)) != 0) {
        BAIC_LOG_E("loop_init_failed", "error=\"%s\"", baic_strerror(rc));
        json_decref(a->outbox);
        return 1;
    }
    a->uv = baic_loop_uv(a->loop);
    uv_timer_init(a->uv, &a->hb_timer);
    uv_timer_init(a->uv, &a->exit_timer);
    uv_timer_init(a->uv, &a->begin_timer);
    a->hb_timer.data = a->exit_timer.data = a->begin_timer.data = a;

    if ((rc = baic_host_ctx_new(a->uv, config, &a->host)) != 0)
        goto fail;
    if ((rc = baic_host_registry_new(a->host, &a->reg)) != 0)
        goto fail;
    if ((rc = baic_registry_load_config(a->reg, config, err, sizeof err)) != 0) {
        BAIC_LOG_E("plugin_load_failed", "msg=\"%s\"", err);
        goto fail;
    }
    if ((rc = find_plugins(a)) != 0 || (rc = agent_slots_collect(a)) != 0)
        goto fail;
    resolve_runner(a);
    if ((rc = baic_bus_new(a->uv, redis_host, (int)redis_port, redis_pw, &a->bus)) != 0) {
        BAIC_LOG_E("redis_init_failed", "error=\"%s\"", baic_strerror(rc));
        goto fail;
    }
    baic_http_config_t hc = {.listen = a->listen, .max_connections = 256,
                             .server_name = "baic-agent"};
    if ((rc = baic_http_server_new(a->uv, &hc, &a->http)) != 0) {
        BAIC_LOG_E("listen_failed", "addr=%s error=\"%s\"", a->listen, baic_strerror(rc));
        goto fail;
    }
    if ((rc = agent_rpc_init(a)) != 0) {
        BAIC_LOG_E("route_init_failed", "error=\"%s\"", baic_strerror(rc));
        goto fail;
    }
    if ((rc = a->rt->watch(a->runtime->state, agent_kernel_on_rt_event, a)) != 0) {
        BAIC_LOG_E("runtime_watch_failed", "error=\"%s\"", baic_strerror(rc));
        goto fail;
    }
    if ((rc = agent_recover(a, on_recovered)) != 0) {
        BAIC_LOG_E("recover_failed", "error=\"%s\"", baic_strerror(rc));
        goto fail;
    }
    BAIC_LOG_I("agent_started", "agent=%s listen=%s runtime=%s compute=%zu slots=%zu "
               "data_dir=%s kernel_runner=%s redis=%s:%lld pid=%d version=%s", a->id, a->listen,
               a->runtime->id, a->ncompute, a->nslots, a->data_dir,
               a->kernel_runner ? a->kernel_runner : "none", redis_host, redis_port, (int)getpid(),
               AGENT_VERSION);
    baic_loop_run(a->loop);
    rc = 0;
    goto done;

fail:
    if (a->loop != NULL) {
        a->closing = 1;
        agent_finish(a);
    }
    rc = rc ? rc : 1;
done:
    if (a->loop != NULL)
        baic_loop_free(a->loop);
    baic_host_ctx_free(a->host);
    free(a->compute);
    free(a->slots);
    json_decref(a->outbox);
    BAIC_LOG_I("agent_stopped", "agent=%s", a->id);
    return rc == 0 ? 0 : 1;
}
