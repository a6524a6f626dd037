/* SPDX-License-Identifier: Apache-2.0 */
/* Shared declarations of baic-agent's files: the agent, its kernels, and the calls between them. */
#ifndef BAIC_AGENT_H
#define BAIC_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include <baic/compute.h>
#include <baic/runtime.h>

#include "events/bus.h"
#include "host/host.h"
#include "http/http.h"
#include "loop/loop.h"

#define AGENT_STREAM "baic:agent-events"
#define AGENT_VERSION BAIC_VERSION
#define AGENT_ID_MAX 128

/* One slot the agent offers, summed over the devices of the plugin declaring it. */
typedef struct agent_slot {
    const char *name;         /* borrowed from the plugin's declaration */
    baic_slot_type_t type;
    int64_t capacity;         /* slot units (see slots.h) */
    size_t plugin;            /* index into agent_t.compute */
} agent_slot_t;

typedef enum agent_kstate {
    KS_PREPARING = 0,         /* allocated, creation not started yet */
    KS_PULLING,
    KS_CREATING,              /* runtime create or start in flight */
    KS_RUNNING,
    KS_TERMINATING,           /* stop or destroy in flight */
} agent_kstate_t;

typedef struct agent agent_t;

/*
 * A kernel the agent holds. Its compute allocations live as long as it does; the
 * record on disk mirrors it so a restarted agent can adopt the container again.
 */
typedef struct agent_kernel {
    agent_t *a;
    struct agent_kernel *next;
    char *id;
    char *session_id;
    char *image;              /* canonical reference */
    json_t *slots;            /* {slot: decimal string} as requested */
    json_t *create;           /* what the spec is built from (request fields); kept for restart */
    baic_compute_alloc_t **allocs; /* one per compute plugin, NULL where nothing was taken */
    agent_kstate_t state;
    int op_pending;           /* a runtime op with our callback is in flight */
    int created;              /* the runtime holds a container for it */
    int stop_wanted;          /* destroy asked for while an op was in flight */
    int exited;               /* the container's process is gone */
    int exit_code;
    int oom;
    char reason[32];          /* kernel_terminated reason once decided */
    char msg[160];
    int use_runner;           /* the container's command is the kernel runner */
    int started_sent;         /* kernel_started was published (or recovery found it RUNNING) */
    struct agent_runner *runner; /* the connection to its runner, NULL without one */
    int restarting;           /* restart in flight: stop, destroy, create, start again */
    int batch_done;           /* a batch session's startup command finished (batch_code) */
    int batch_code;
} agent_kernel_t;

struct agent {
    json_t *config;
    baic_loop_t *loop;
    uv_loop_t *uv;
    baic_host_ctx_t *host;
    baic_registry_t *reg;
    const baic_plugin_t *runtime;
    const baic_runtime_ops_t *rt;
    const baic_plugin_t **compute;
    size_t ncompute;
    agent_slot_t *slots;      /* sorted by name */
    size_t nslots;

    char id[AGENT_ID_MAX];
    const char *listen, *addr, *region, *scaling_group, *secret, *data_dir, *kernel_runner;
    char runner_path[4096];   /* resolved kernel runner host path, kernel_runner points here */
    char arch[72];
    uint64_t hb_ms;

    baic_bus_t *bus;
    json_t *outbox;           /* [[name, body], ...] events Redis did not take yet */
    int outbox_busy;
    baic_http_server_t *http;
    uv_timer_t hb_timer;
    uv_timer_t exit_timer;
    uv_timer_t begin_timer;   /* starts accepted kernels on the loop turn after the 202 */    /* bounds the wait for agent_terminated at shutdown */
    int recovering;           /* RPCs answer 503 until recovery is done */
    int closing;

    agent_kernel_t *kernels;
    size_t nkernels;
};

/* ---- agent.c ---- */
int agent_serve(json_t *config);
/* Publishes an event with agent_id and ts added to body (stolen). Failed publishes
 * are kept and retried with the next heartbeat, so kernel events survive a Redis
 * outage. */
void agent_publish(agent_t *a, const char *name, json_t *body);
int64_t agent_wall_ms(void);

/* ---- slots.c ---- */
/* "1.5" -> 1500000 (count), "1073741824" -> bytes. Returns 0 or BAIC_EBAD_INPUT. */
int agent_slot_parse(const char *s, baic_slot_type_t type, int64_t *out);
void agent_slot_format(int64_t v, baic_slot_type_t type, char *buf, size_t len);
const agent_slot_t *agent_slot_find(const agent_t *a, const char *name);
/* Reads every compute plugin's slots and devices into a->slots. */
int agent_slots_collect(agent_t *a);

/* ---- auth.c ---- */
/* Checks the cluster HMAC of req; 0 when good, else a short reason in *why. */
int agent_auth_check(const agent_t *a, baic_http_req_t *req, const char **why);

/* ---- rpc.c ---- */
int agent_rpc_init(agent_t *a);

/* ---- hostmount.c ---- */
/* Routes POST /rpc/mounts, POST /rpc/umounts and GET /rpc/mounts ([agent] mount_prefix,
 * fstab_path). */
int agent_hostmount_routes(agent_t *a);

/* ---- kernel.c ---- */
agent_kernel_t *agent_kernel_find(agent_t *a, const char *id);
/* Validates and allocates one kernel of a create_kernels request; on success the
 * kernel is not yet linked into a->kernels. Returns 0, BAIC_EBAD_INPUT (msg says
 * why) or BAIC_ENO_RESOURCES. */
int agent_kernel_prepare(agent_t *a, const json_t *session, const json_t *kspec, size_t idx,
                         agent_kernel_t **out, char *msg, size_t msglen);
/* Frees allocations and memory of a kernel that was never linked. */
void agent_kernel_discard(agent_kernel_t *k);
/* Links k, persists it and starts creating its container in the background. */
void agent_kernel_launch(agent_kernel_t *k);
/* Stops and destroys; kernel_terminated follows. */
void agent_kernel_destroy(agent_kernel_t *k, const char *reason);
const char *agent_kstate_name(agent_kstate_t s);
/* Runtime watch callback. */
void agent_kernel_on_rt_event(void *arg, const baic_rt_event_t *ev);
/* Frees every kernel struct (shutdown: containers and records stay). */
void agent_kernels_free_all(agent_t *a);
/* Adopts a recovered container (state from the runtime) for record rec. */
int agent_kernel_adopt(agent_t *a, const json_t *rec, const baic_rt_info_t *info);
/* A kernel with resources re-booked but whose fate is decided by recovery. */

/* The runner of k said hello: kernel_started goes out if it has not yet. */
void agent_kernel_runner_ready(agent_kernel_t *k);
/* The runner never said hello: the kernel fails to start (msg says why). */
void agent_kernel_runner_failed(agent_kernel_t *k, const char *msg);

/* Restarts a running kernel: its container is stopped, destroyed and created again from
 * the same spec; kernel_started follows once its runner says hello again. Returns 0,
 * UV_EBUSY (not RUNNING or an op in flight; msg says why) or BAIC_ENOT_SUPPORTED. */
int agent_kernel_restart(agent_kernel_t *k, char *msg, size_t msglen);
/* The runner reported that the startup command ended: a batch kernel ends with its
 * exit code (reason task-finished) on a later loop turn. */
void agent_kernel_startup_finished(agent_kernel_t *k, int exit_code);
/* The session type the kernel was created for ("interactive" when unknown). */
const char *agent_kernel_session_type(const agent_kernel_t *k);

/* ---- logs.c ---- */
/* data_dir/kernels/<id>/sock/console.log: what the runner copies of the container's
 * console (the startup command's output), written inside the container. */
void agent_console_log_path(const agent_t *a, const char *id, char *buf, size_t len);
/* The last max_bytes of a kernel's console log as valid UTF-8 (invalid bytes become
 * U+FFFD); "" when there is none. Caller frees. NULL only without memory. */
char *agent_console_log_tail(const agent_t *a, const char *id, size_t max_bytes);
/* Routes GET /rpc/kernels/{id}/logs and POST /rpc/kernels/{id}/restart. */
int agent_ops_routes(agent_t *a);

/* ---- runner.c ---- */
/* data_dir/kernels/<id>/sock, the directory mounted at /opt/backend.ai/run. */
void agent_runner_dir(const agent_t *a, const char *id, char *buf, size_t len);
/* Creates the socket directory of a kernel. Returns 0 or a negative errno. */
int agent_runner_dir_make(const agent_t *a, const char *id);
/* Removes the socket directory of a kernel (its socket file included). */
void agent_runner_dir_remove(const agent_t *a, const char *id);
/* Starts connecting to k's runner (retrying until 10 s have passed) and waits for its
 * hello; agent_kernel_runner_ready or _failed follows. */
int agent_runner_attach(agent_kernel_t *k);
/* Drops the connection: pending calls are answered 502, the memory goes once the
 * handles are closed. k->runner is NULL afterwards. */
void agent_runner_detach(agent_kernel_t *k);
/* Routes of the execution relay. */
int agent_runner_routes(agent_t *a);

/* ---- spec.c ---- */
/* Builds the spec for k and calls rt->create with cb. Returns what create returned,
 * or a code from building (msg says why). */
int agent_spec_create(agent_kernel_t *k, baic_rt_done_cb cb, char *msg, size_t msglen);
/* Cluster kernels (cluster_net.c): /etc/hosts, the SSH keypair and the netns on the
 * session's bridge; netns gets its path ("" for a kernel of no cluster). */
struct baic_needs_builder;
int agent_cluster_prepare(agent_kernel_t *k, const struct baic_needs_builder *b, char *netns,
                          size_t netns_len, char *msg, size_t msglen);
void agent_cluster_teardown(agent_kernel_t *k);

/* ---- record.c ---- */
int agent_record_save(agent_kernel_t *k);
void agent_record_remove(agent_t *a, const char *id);
/* Loads every record: {id: record}. Unreadable files are logged and removed. */
json_t *agent_record_load_all(agent_t *a);
int agent_record_dirs(agent_t *a);
/* data_dir/bundles/<id> */
void agent_bundle_path(const agent_t *a, const char *id, char *buf, size_t len);

/* ---- recover.c ---- */
/* Lists the runtime's containers, reconciles them with the records, then calls done. */
int agent_recover(agent_t *a, void (*done)(agent_t *a, int status));

#endif
