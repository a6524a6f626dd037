/* SPDX-License-Identifier: Apache-2.0 */
/* Compute plugins: the slots and devices an agent offers, and what a kernel needs to use them. */
#ifndef BAIC_COMPUTE_H
#define BAIC_COMPUTE_H

#include "host.h"
#include "plugin.h"
#include "slots.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The agent loads every compute plugin named in agent.toml. At start it asks each
 * for its slot declarations and devices and reports the sum to the manager. For
 * each kernel it calls allocate on every plugin whose slots the kernel requests,
 * then container_needs to learn the env vars, device nodes, mounts and cgroup
 * rules to put in the container spec, and free_allocation when the kernel is gone.
 * Structs a plugin hands to the host start with size = sizeof at plugin build time,
 * so the host never reads past what the plugin knew.
 */

/* A slot the plugin provides. */
typedef struct baic_slot_decl {
    uint32_t size;            /* sizeof(baic_slot_decl_t) at plugin build time */
    const char *name;         /* "<plugin>.<what>", e.g. "cuda.shares"; [a-z0-9_.-]+ */
    baic_slot_type_t type;
    int fractional;           /* 1: amounts below one whole unit may be requested */
    int64_t quantum;          /* smallest step in slot units (e.g. 0.01 = 10000); 0 = any */
    const char *display_name; /* short human name, e.g. "GPU" */
    const char *description;  /* one line */
} baic_slot_decl_t;

/* A device, as discovered. Strings owned by the plugin. */
typedef struct baic_device {
    uint32_t size;            /* sizeof(baic_device_t) at plugin build time */
    const char *id;           /* stable on this node: "0", "GPU-8f3c..." */
    const char *slot;         /* the slot this device contributes to, e.g. "cuda.shares" */
    const char *model;        /* e.g. "Mock Accelerator M1" */
    int64_t capacity;         /* its contribution to the slot, in slot units */
    int64_t memory_bytes;     /* device memory; 0 when it has none */
    int32_t numa_node;        /* -1 when unknown */
    const char *device_path;  /* main device node, e.g. "/dev/nvidia0"; NULL if none */
} baic_device_t;

/* What a kernel asks of this plugin. Borrowed for the call. */
typedef struct baic_compute_request {
    uint32_t size;            /* sizeof at host build time */
    const char *kernel_id;
    const char *session_id;
    baic_slots_t requested;   /* only slots this plugin declared; others are ignored */
    const char *const *device_ids; /* optional pinning to these devices; NULL = any */
    size_t n_device_ids;
} baic_compute_request_t;

/*
 * An allocation: owned by the plugin, released only by free_allocation. The host
 * reads the public members; priv is the plugin's.
 */
typedef struct baic_compute_alloc_part {
    const char *device_id;
    const char *slot;
    int64_t amount;           /* slot units taken from this device */
} baic_compute_alloc_part_t;

typedef struct baic_compute_alloc {
    uint32_t size;            /* sizeof at plugin build time */
    const char *kernel_id;
    const baic_compute_alloc_part_t *parts; /* one per (device, slot) touched */
    size_t n_parts;
    void *priv;
} baic_compute_alloc_t;

/*
 * The container-needs builder: the host owns it and copies every string. Each
 * add returns 0, BAIC_EBAD_INPUT (bad name/path), BAIC_EEXISTS (an env var set
 * twice with different values) or UV_ENOMEM. Loop thread, during container_needs.
 */
typedef struct baic_container_needs baic_container_needs_t;
typedef struct baic_needs_builder {
    uint32_t size;            /* sizeof at host build time */
    baic_container_needs_t *needs;
    /* NAME=value in the container's environment. */
    int (*add_env)(baic_container_needs_t *n, const char *name, const char *value);
    /* A device node: host_path appears at container_path with "rwm"-style access. */
    int (*add_device)(baic_container_needs_t *n, const char *host_path,
                      const char *container_path, const char *access);
    /* A bind mount (files the device needs, e.g. driver libraries). */
    int (*add_mount)(baic_container_needs_t *n, const char *source, const char *target,
                     int readonly);
    /* A device cgroup rule: type 'c' or 'b', major/minor (-1 = any), access "rwm". */
    int (*add_cgroup_rule)(baic_container_needs_t *n, char type, int64_t major,
                           int64_t minor, const char *access);
} baic_needs_builder_t;

/* Per-device live figures. */
typedef struct baic_device_stat {
    uint32_t size;            /* sizeof at plugin build time */
    const char *device_id;
    double util_pct;          /* 0..100; < 0 when unknown */
    int64_t mem_used_bytes;   /* -1 when unknown */
    int64_t mem_total_bytes;  /* -1 when unknown */
    double power_w;           /* < 0 when unknown */
    double temperature_c;     /* < 0 when unknown */
} baic_device_stat_t;

/* stats completion: loop thread. stats borrowed for the call; on status != 0, n == 0. */
typedef void (*baic_compute_stats_cb)(void *arg, int status,
                                      const baic_device_stat_t *const *stats, size_t n);

typedef struct baic_compute_ops {
    /* ---- ABI 1.0 ---- */

    /*
     * list_slots (mandatory): the slots this plugin provides.
     *   decls  out: n pointers, owned by the plugin, valid until fini
     * Returns 0 or a code. Loop thread; must not block (discover at init, or in
     * init's queue_work).
     */
    int (*list_slots)(void *state, const baic_slot_decl_t *const **decls, size_t *n);

    /*
     * list_devices (mandatory): the devices found. devs: out, n pointers owned by
     * the plugin, valid until the next list_devices or fini. Loop thread; must not
     * block (return the last discovered set).
     */
    int (*list_devices)(void *state, const baic_device_t *const **devs, size_t *n);

    /*
     * allocate (mandatory): reserves req->requested on this plugin's devices for a
     * kernel. Fractional amounts are booked exactly (slot units are integers).
     *   out  the allocation, owned by the plugin until free_allocation
     * Returns 0, BAIC_ENO_RESOURCES (nothing is reserved then), BAIC_EBAD_INPUT
     * (e.g. an amount below the quantum, or a fraction of a non-fractional slot),
     * or another code. Loop thread; must not block.
     */
    int (*allocate)(void *state, const baic_compute_request_t *req, baic_compute_alloc_t **out);

    /* free_allocation (mandatory): returns the allocation's amounts and frees it.
     * Returns 0 or BAIC_ENOT_FOUND for an allocation this plugin did not make. */
    int (*free_allocation)(void *state, baic_compute_alloc_t *alloc);

    /*
     * container_needs (mandatory): tells the builder what a container using alloc
     * needs (env vars, device nodes, mounts, cgroup rules). b borrowed for the call.
     * Returns 0 or a code (the kernel's creation then fails). Loop thread.
     */
    int (*container_needs)(void *state, const baic_compute_alloc_t *alloc,
                           const baic_needs_builder_t *b);

    /*
     * stats (optional): samples every device. cb runs once on the loop thread
     * later (never inside this call); the plugin queries devices through
     * host->queue_work. Returns 0, or a code and cb never runs.
     */
    int (*stats)(void *state, baic_compute_stats_cb cb, void *arg);

    /*
     * alloc_to_json / alloc_from_json (optional): let the agent keep allocations
     * across its own restart. to_json returns a new reference (caller decrefs);
     * from_json re-books the amounts described (taken from a to_json output) and
     * returns a fresh allocation as allocate would. Loop thread.
     */
    int (*alloc_to_json)(void *state, const baic_compute_alloc_t *alloc, json_t **out);
    int (*alloc_from_json)(void *state, const char *kernel_id, const json_t *desc,
                           baic_compute_alloc_t **out);

    /* ---- ABI 1.1 ---- */

    /*
     * describe_device (optional): a JSON object with whatever the plugin knows of
     * one device (model, driver, firmware, memory, links ...), for the agent's
     * hardware-info API. out: new reference, caller decrefs. Returns 0 or
     * BAIC_ENOT_FOUND. Loop thread; must not block (use cached facts).
     */
    int (*describe_device)(void *state, const char *device_id, json_t **out);
} baic_compute_ops_t;

/* The smallest table the host accepts: the 1.0 group (a 1.0 plugin's table). */
#define BAIC_COMPUTE_OPS_MIN_SIZE                                                       \
    (offsetof(baic_compute_ops_t, alloc_from_json) +                                   \
     sizeof(((baic_compute_ops_t *)0)->alloc_from_json))

#define BAIC_COMPUTE_MANDATORY_OPS(X)                                                   \
    X(list_slots) X(list_devices) X(allocate) X(free_allocation) X(container_needs)

#ifdef __cplusplus
}
#endif

#endif /* BAIC_COMPUTE_H */
