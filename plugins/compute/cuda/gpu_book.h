/* SPDX-License-Identifier: Apache-2.0 */
/* Booking of whole GPUs or fractional GPU shares, shared by compute/cuda and compute/rocm. */
#ifndef BAIC_PLUGIN_GPU_BOOK_H
#define BAIC_PLUGIN_GPU_BOOK_H

#include <baic/compute.h>
#include <baic/host.h>

/*
 * compute/cuda and compute/rocm discover devices differently (NVML, rocm-smi) but
 * book them the same way, so the booking lives here and both plugins compile it in
 * (it is not a library of its own: each .so gets a private copy).
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

typedef struct gpu_alloc gpu_alloc_t;

typedef struct gpu_book {
    const baic_host_t *host;
    char slot[64];        /* "cuda.device" / "cuda.shares" */
    int shares;           /* 1: fractional shares mode */
    int64_t quantum;      /* slot units */
    gpu_dev_t *devs;
    const baic_device_t **ptrs;
    size_t n;
    gpu_alloc_t *allocs;
    char metric[64];      /* gauge name for per-device booked share */
} gpu_book_t;

/* Sets the slot name and mode; devs must be filled (n entries) by the caller with
 * gpu_book_reserve first. Returns 0 or UV_ENOMEM. */
int gpu_book_reserve(gpu_book_t *b, size_t n);
/* Finishes device i after the caller filled id/model/uuid/path/memory: sets the
 * public baic_device_t. */
void gpu_book_publish_dev(gpu_book_t *b, size_t i, int64_t memory_bytes);
/* Frees every allocation and the device arrays. */
void gpu_book_fini(gpu_book_t *b);

gpu_dev_t *gpu_book_find(gpu_book_t *b, const char *id);

int gpu_book_allocate(gpu_book_t *b, const baic_compute_request_t *req,
                      baic_compute_alloc_t **out);
int gpu_book_free(gpu_book_t *b, baic_compute_alloc_t *alloc);
/* {"<slot>": {"<device id>": "<amount>"}} */
int gpu_book_to_json(gpu_book_t *b, const baic_compute_alloc_t *alloc, json_t **out);
int gpu_book_from_json(gpu_book_t *b, const char *kernel_id, const json_t *desc,
                       baic_compute_alloc_t **out);

/* Decimal amounts: "0.25", 2, 0.5 -> slot units (1e-6); units -> "0.25". */
int gpu_parse_amount(const json_t *v, int64_t *out);
void gpu_format_amount(int64_t v, char *buf, size_t len);

/* Reads config key "mode" ("device" | "shares") and "quantum" into b; vendor is
 * "cuda" or "rocm". Logs and returns BAIC_ECONFIG_TYPE on a bad value. */
int gpu_book_configure(gpu_book_t *b, const baic_host_t *host, const json_t *conf,
                       const char *vendor);

#endif
