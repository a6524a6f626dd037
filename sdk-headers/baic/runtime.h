/* SPDX-License-Identifier: Apache-2.0 */
/* Runtime plugins: create, run and tear down the container of one kernel. */
#ifndef BAIC_RUNTIME_H
#define BAIC_RUNTIME_H

#include "host.h"
#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The agent drives one runtime plugin (oci, docker, dummy). Containers are named
 * by the kernel id the agent chose; the runtime keeps whatever it needs to find
 * them again after the agent restarts (list). Every op that may take time takes a
 * completion callback: it runs later on the loop thread, exactly once, and never
 * when the op itself returned an error.
 */

typedef struct baic_rt_mount {
    const char *source;       /* host path (bind) or fs name (tmpfs) */
    const char *target;       /* absolute path in the container */
    const char *type;         /* "bind" or "tmpfs" */
    const char *options;      /* extra comma-separated options ("size=64m"), or NULL */
    int readonly;
} baic_rt_mount_t;

typedef struct baic_rt_device {
    const char *host_path;       /* "/dev/nvidia0" */
    const char *container_path;  /* usually the same */
    const char *access;          /* "rwm" */
} baic_rt_device_t;

typedef struct baic_rt_cgroup_rule {
    char type;                /* 'c' or 'b' */
    int64_t major, minor;     /* -1 = any */
    const char *access;       /* "rwm" */
} baic_rt_cgroup_rule_t;

typedef enum baic_rt_net_mode {
    BAIC_RT_NET_PRIVATE = 0,  /* a new network namespace the runtime sets up (bridge/NAT) */
    BAIC_RT_NET_NONE = 1,     /* a new namespace with loopback only */
    BAIC_RT_NET_HOST = 2,     /* the host's namespace */
    BAIC_RT_NET_JOIN = 3,     /* join netns_path (cluster sessions share one overlay) */
} baic_rt_net_mode_t;

/*
 * Everything the container is. Borrowed for the create call (the runtime copies
 * what it keeps). Arrays are of pointers, so element structs may grow.
 */
typedef struct baic_container_spec {
    uint32_t size;            /* sizeof at host build time */
    const char *id;           /* kernel id; the container's name */
    const char *image;        /* image reference (docker uses it; oci: informational) */
    const char *rootfs;       /* unpacked image root filesystem (oci); NULL for docker */
    const char *bundle_dir;   /* a directory the runtime owns for this container */
    const char *const *argv;  /* entry command (the kernel runner), NULL-terminated */
    const char *const *env;   /* "NAME=value", NULL-terminated */
    const char *cwd;          /* "/home/work" */
    const char *hostname;     /* e.g. "main1" */
    uint32_t uid, gid;        /* the process's user */
    const uint32_t *extra_gids;
    size_t n_extra_gids;
    const baic_rt_mount_t *const *mounts;
    size_t n_mounts;
    const baic_rt_device_t *const *devices;
    size_t n_devices;
    const baic_rt_cgroup_rule_t *const *cgroup_rules;
    size_t n_cgroup_rules;
    int64_t cpu_limit;        /* CPU quota in 1e-6 cores (BAIC_SLOT_UNIT per core); 0 = none */
    const char *cpuset;       /* "0-3", or NULL */
    int64_t memory_bytes;     /* hard limit; 0 = none */
    int64_t shm_bytes;        /* /dev/shm size; 0 = runtime default */
    int64_t pids_max;         /* 0 = none */
    baic_rt_net_mode_t net_mode;
    const char *netns_path;   /* for BAIC_RT_NET_JOIN */
    const char *const *labels; /* "key=value" (ai.backend.kernel-id=...), NULL-terminated */
    int readonly_rootfs;
} baic_container_spec_t;

typedef enum baic_rt_state {
    BAIC_RT_UNKNOWN = 0,
    BAIC_RT_CREATED = 1,      /* exists, not started */
    BAIC_RT_RUNNING = 2,
    BAIC_RT_EXITED = 3,       /* stopped or exited; exit_code valid */
} baic_rt_state_t;

/* A container the runtime knows of. Owned by the plugin, borrowed for the callback. */
typedef struct baic_rt_info {
    uint32_t size;            /* sizeof at plugin build time */
    const char *id;
    baic_rt_state_t state;
    int pid;                  /* init process on the host; 0 when not running */
    int exit_code;            /* valid when EXITED: 0..255, or 128+signal */
    int oom_killed;           /* 1 when the kernel's memory limit killed it */
    int64_t started_at_ms;    /* wall clock; 0 when never started */
    const char *const *labels; /* as given at create, NULL-terminated */
} baic_rt_info_t;

typedef struct baic_rt_stats {
    uint32_t size;            /* sizeof at plugin build time */
    uint64_t cpu_used_ns;     /* cumulative CPU time */
    int64_t mem_used_bytes;   /* current, -1 when unknown */
    int64_t mem_max_bytes;    /* peak, -1 when unknown */
    int64_t pids;             /* current number of tasks */
    uint64_t net_rx_bytes, net_tx_bytes;
    uint64_t io_read_bytes, io_write_bytes;
} baic_rt_stats_t;

typedef enum baic_rt_event_type {
    BAIC_RT_EV_EXIT = 1,      /* the init process exited */
    BAIC_RT_EV_OOM = 2,       /* an OOM kill happened in the container (it may live on) */
} baic_rt_event_type_t;

typedef struct baic_rt_event {
    uint32_t size;            /* sizeof at plugin build time */
    baic_rt_event_type_t type;
    const char *id;
    int exit_code;            /* EXIT: 0..255 or 128+signal */
} baic_rt_event_t;

typedef struct baic_rt_exec {
    uint32_t size;            /* sizeof at host build time */
    const char *const *argv;  /* NULL-terminated */
    const char *const *env;   /* extra "NAME=value", NULL-terminated, or NULL */
    const char *cwd;          /* NULL = the container's */
    uint32_t uid, gid;
    size_t max_output;        /* bytes of stdout+stderr to keep; the rest is dropped */
    uint64_t timeout_ms;      /* 0 = none; on expiry the process is killed, status BAIC_ETIMEOUT */
} baic_rt_exec_t;

/* Completion of create/start/stop/destroy. Loop thread. */
typedef void (*baic_rt_done_cb)(void *arg, int status);
/* Completion of exec: output (stdout then stderr, at most max_output) borrowed for the call. */
typedef void (*baic_rt_exec_cb)(void *arg, int status, int exit_code, const char *output,
                                size_t len);
typedef void (*baic_rt_stats_cb)(void *arg, int status, const baic_rt_stats_t *st);
typedef void (*baic_rt_list_cb)(void *arg, int status, const baic_rt_info_t *const *items,
                                size_t n);
/* Exit and OOM notifications. Loop thread; ev borrowed for the call. */
typedef void (*baic_rt_event_cb)(void *arg, const baic_rt_event_t *ev);

typedef struct baic_runtime_ops {
    /* ---- ABI 1.0 ---- */

    /*
     * create (mandatory): prepares what the container needs from spec (image,
     * root filesystem, bundle, limits it can set ahead) and leaves nothing running:
     * no process of the container exists when cb runs. Whether namespaces and the
     * cgroup the process will live in exist yet is the runtime's choice (oci makes
     * only its parent cgroup with the memory limit here; the runtime binary makes
     * the namespaces and its own cgroup at start). Returns 0 and later cb(arg, 0) or
     * cb(arg, code); or returns BAIC_EEXISTS / BAIC_EBAD_INPUT / another code at
     * once and cb never runs. A failed create leaves nothing behind. Loop thread;
     * the work runs off the loop.
     */
    int (*create)(void *state, const baic_container_spec_t *spec, baic_rt_done_cb cb,
                  void *arg);

    /*
     * start (mandatory): runs the created container's process, creating whatever
     * create left to it (namespaces, the process's cgroup with the cpu and pids
     * limits). cb(arg, 0) once the process runs or has already ended (its EXIT event
     * follows). Same return contract as create; BAIC_ENOT_FOUND for an unknown id.
     */
    int (*start)(void *state, const char *id, baic_rt_done_cb cb, void *arg);

    /*
     * stop (mandatory): SIGTERM, then SIGKILL after timeout_ms; cb once the process
     * is gone (an EXIT event is delivered too). Stopping an exited container
     * succeeds at once (cb still runs later).
     */
    int (*stop)(void *state, const char *id, uint64_t timeout_ms, baic_rt_done_cb cb,
                void *arg);

    /* destroy (mandatory): removes a non-running container and everything the
     * runtime kept for it (the bundle_dir contents it wrote, its mounts, its cgroups
     * in every hierarchy, device access, state); UV_EBUSY while it runs. */
    int (*destroy)(void *state, const char *id, baic_rt_done_cb cb, void *arg);

    /*
     * list (mandatory): every container this runtime manages on the node (for
     * recovery after an agent restart). cb runs once, later; items borrowed for it.
     */
    int (*list)(void *state, baic_rt_list_cb cb, void *arg);

    /*
     * watch (mandatory): sets the one listener for EXIT and OOM events of every
     * container (cb NULL removes it). Events for containers found by list after a
     * restart are delivered too. Returns 0 or a code. Loop thread.
     */
    int (*watch)(void *state, baic_rt_event_cb cb, void *arg);

    /* exec (optional): runs a process inside a running container and collects its
     * exit code and output. */
    int (*exec)(void *state, const char *id, const baic_rt_exec_t *spec, baic_rt_exec_cb cb,
                void *arg);

    /* stats (optional): one sample of the container's usage; cb runs once, later. */
    int (*stats)(void *state, const char *id, baic_rt_stats_cb cb, void *arg);
} baic_runtime_ops_t;

#define BAIC_RUNTIME_OPS_MIN_SIZE                                                       \
    (offsetof(baic_runtime_ops_t, stats) + sizeof(((baic_runtime_ops_t *)0)->stats))

#define BAIC_RUNTIME_MANDATORY_OPS(X)                                                   \
    X(create) X(start) X(stop) X(destroy) X(list) X(watch)

#ifdef __cplusplus
}
#endif

#endif /* BAIC_RUNTIME_H */
