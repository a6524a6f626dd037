/* SPDX-License-Identifier: Apache-2.0 */
/* Booking of whole GPUs or fractional GPU shares, shared by compute/cuda and compute/rocm. */
#ifndef BAIC_PLUGIN_GPU_BOOK_H
#define BAIC_PLUGIN_GPU_BOOK_H

#include <baic/compute.h>
#include <baic/host.h>

#include "compute_common.h"

/*
 * compute/cuda and compute/rocm discover devices differently (NVML, rocm-smi) but
 * book, describe and report them the same way, so that lives here. A plugin's
 * state begins with its gpu_book_t, which lets the gpu_book_op_* functions serve
 * directly as the plugin's compute ops.
 *
 * Two modes, chosen by the plugin's config:
 *   whole devices  slot "<vendor>.device", amounts in whole units; N takes N idle devices
 *   shares         slot "<vendor>.shares", fractional; an amount up to one device goes
 *                  to one device (the fullest it fits on, to keep idle devices whole),
 *                  a larger one takes idle devices for the whole part plus one more
 *                  device for the remainder.
 */

typedef struct gpu_dev {
    baic_device_t d;      /* what list_devices hands out; d.id points at id */
    char id[16];          /* the host index as a string: "0", "1" ... */
    char model[128];
    char uuid[96];        /* "GPU-..." or "" when the library gave none */
    char path[320];       /* main device node on the host */
    unsigned index;       /* the library's device index */
    unsigned minor;       /* device node minor */
    void *handle;         /* the library's handle (NVML), or NULL */
    int64_t used;         /* slot units booked on this device */
} gpu_dev_t;

typedef struct gpu_book gpu_book_t;

/* What differs between vendors once devices are found. */
typedef struct gpu_vendor {
    const char *prefix;      /* "cuda": slot "cuda.device"/"cuda.shares", gauge baic_cuda_device_booked */
    const char *name;        /* "NVIDIA": describe_device's vendor and the slot description */
    const char *minor_key;   /* describe_device's key for gpu_dev_t.minor */
    const char *library_key; /* describe_device's key for the library that loaded */
    /* Fills s (already {size, id, -1 ...}) for g; runs on a pool thread. */
    void (*stat)(gpu_book_t *b, const gpu_dev_t *g, baic_device_stat_t *s);
} gpu_vendor_t;

struct gpu_book {
    const baic_host_t *host;
    const gpu_vendor_t *vendor;
    char slot[64];        /* "cuda.device" / "cuda.shares" */
    int shares;           /* 1: fractional shares mode */
    int64_t quantum;      /* slot units */
    gpu_dev_t *devs;
    const baic_device_t **ptrs;
    size_t n;
    compute_alloc_t *allocs;
    char metric[64];      /* gauge name for per-device booked share */
    char driver[96];      /* driver version, "" when unknown */
    char library[512];    /* the vendor library that loaded */
    char description[64];
    baic_slot_decl_t decl;
    const baic_slot_decl_t *decls[1];
    size_t ndecls;        /* 0 until gpu_book_declare found devices */
};

/* Reads config keys "mode" ("device" | "shares") and "quantum" into b. Logs and
 * returns BAIC_ECONFIG_TYPE on a bad value. */
int gpu_book_configure(gpu_book_t *b, const baic_host_t *host, const json_t *conf,
                       const gpu_vendor_t *vendor);
/* Makes room for n devices in b->devs, which the caller then fills. Returns 0 or
 * UV_ENOMEM. */
int gpu_book_reserve(gpu_book_t *b, size_t n);
/* Finishes device i after the caller filled id/model/uuid/path: sets the public
 * baic_device_t. */
void gpu_book_publish_dev(gpu_book_t *b, size_t i, int64_t memory_bytes);
/* Declares the slot and logs devices_found when any device was published. */
void gpu_book_declare(gpu_book_t *b);
/* Frees every allocation and the device arrays. */
void gpu_book_fini(gpu_book_t *b);

gpu_dev_t *gpu_book_find(gpu_book_t *b, const char *id);

/* Compute ops; state is the plugin's state, which begins with its gpu_book_t. */
int gpu_book_op_list_slots(void *state, const baic_slot_decl_t *const **decls, size_t *n);
int gpu_book_op_list_devices(void *state, const baic_device_t *const **devs, size_t *n);
int gpu_book_op_allocate(void *state, const baic_compute_request_t *req,
                         baic_compute_alloc_t **out);
int gpu_book_op_free(void *state, baic_compute_alloc_t *alloc);
int gpu_book_op_stats(void *state, baic_compute_stats_cb cb, void *arg);
/* {"<slot>": {"<device id>": "<amount>"}} */
int gpu_book_op_to_json(void *state, const baic_compute_alloc_t *alloc, json_t **out);
int gpu_book_op_from_json(void *state, const char *kernel_id, const json_t *desc,
                          baic_compute_alloc_t **out);
int gpu_book_op_describe(void *state, const char *device_id, json_t **out);

#endif
