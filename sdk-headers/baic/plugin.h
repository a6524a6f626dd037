/* SPDX-License-Identifier: Apache-2.0 */
/* The plugin descriptor: the one thing a baic .so exports, and how it is declared. */
#ifndef BAIC_PLUGIN_H
#define BAIC_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <uv.h>

#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * ABI numbers. The major changes when anything is removed, reordered or has its
 * signature changed; the minor grows when members are appended to the descriptor,
 * the host table or an ops table. A plugin built for minor N loads in any host
 * with the same major and minor >= N (see docs/plugin-abi.md).
 *
 *   1.0  first table set
 *   1.1  host: now_ms, strerror, http_serve/http_stop; compute: describe_device
 *   1.2  storage: health
 *   1.3  scheduler context: queue_order
 */
#define BAIC_PLUGIN_MAGIC 0x43494142u /* "BAIC" read as little-endian bytes */
#define BAIC_ABI_MAJOR 1
#define BAIC_ABI_MINOR 3

typedef enum baic_plugin_kind {
    BAIC_KIND_SCHEDULER = 1,
    BAIC_KIND_SELECTOR = 2,
    BAIC_KIND_COMPUTE = 3,
    BAIC_KIND_RUNTIME = 4,
    BAIC_KIND_STORAGE = 5,
    BAIC_KIND_AUTH = 6,
    BAIC_KIND_MONITOR = 7,
    BAIC_KIND_HOOK = 8,
} baic_plugin_kind_t;

/* Lower-case spellings so BAIC_PLUGIN_DEFINE can take the kind as a bare word. */
#define BAIC__KIND_scheduler BAIC_KIND_SCHEDULER
#define BAIC__KIND_selector BAIC_KIND_SELECTOR
#define BAIC__KIND_compute BAIC_KIND_COMPUTE
#define BAIC__KIND_runtime BAIC_KIND_RUNTIME
#define BAIC__KIND_storage BAIC_KIND_STORAGE
#define BAIC__KIND_auth BAIC_KIND_AUTH
#define BAIC__KIND_monitor BAIC_KIND_MONITOR
#define BAIC__KIND_hook BAIC_KIND_HOOK

/*
 * Build facts that make two builds binary-incompatible even when the ABI numbers
 * agree. Packed into one 32-bit word: pointer size, off_t size, libuv major and
 * jansson major, one byte each.
 */
#define BAIC_BUILD_SIG                                                                  \
    ((uint32_t)sizeof(void *) << 24 | (uint32_t)sizeof(off_t) << 16 |                   \
     (uint32_t)(UV_VERSION_MAJOR & 0xff) << 8 | (uint32_t)(JANSSON_MAJOR_VERSION & 0xff))

typedef struct baic_host baic_host_t;

/*
 * The descriptor. Never fill it by hand: use BAIC_PLUGIN_DEFINE. Members are only
 * ever appended; desc_size tells the host how much of it this plugin knows.
 */
typedef struct baic_plugin_desc {
    uint32_t magic;     /* BAIC_PLUGIN_MAGIC */
    uint16_t abi_major; /* BAIC_ABI_MAJOR at plugin build time */
    uint16_t abi_minor; /* BAIC_ABI_MINOR at plugin build time */
    uint32_t desc_size; /* sizeof(baic_plugin_desc_t) at plugin build time */
    uint32_t kind;      /* baic_plugin_kind_t */
    const char *name;   /* e.g. "fifo"; [a-z0-9_-]+ */
    const char *version; /* informational, e.g. "1.2.0" */
    uint32_t build_sig;  /* BAIC_BUILD_SIG at plugin build time */
    /*
     * init: called once on the loop thread after every check passed.
     *   host  the host table for this plugin; valid until fini returns.
     *   conf  the plugin's own config table ([plugin."kind/name"] in the daemon's
     *         TOML) or NULL; borrowed, valid until fini returns.
     *   state out: the plugin's private state, handed back to every op.
     * Returns 0, or a negative code; on failure fini is NOT called and the plugin
     * must have freed whatever it allocated.
     */
    int (*init)(const baic_host_t *host, const json_t *conf, void **state);
    /* fini: releases state. Called on the loop thread, in reverse load order. */
    void (*fini)(void *state);
    const void *ops;   /* the kind's ops table, e.g. const baic_scheduler_ops_t * */
    uint32_t ops_size; /* sizeof(*ops) at plugin build time */
} baic_plugin_desc_t;

/* The smallest descriptor the host accepts: everything up to and including ops_size. */
#define BAIC_PLUGIN_DESC_MIN_SIZE                                                       \
    (offsetof(baic_plugin_desc_t, ops_size) + sizeof(uint32_t))

typedef const baic_plugin_desc_t *(*baic_plugin_entry_fn)(void);

#if defined(__GNUC__)
#define BAIC_EXPORT __attribute__((visibility("default")))
#else
#define BAIC_EXPORT
#endif

/*
 * BAIC_PLUGIN_DEFINE(kind, name, version, init, fini, ops)
 *   kind     bare word: scheduler, selector, compute, runtime, storage, auth, monitor, hook
 *   name     bare word, the plugin's name; the file must be <kind>_<name>.so
 *   version  string literal
 *   init     int (*)(const baic_host_t *, const json_t *, void **)
 *   fini     void (*)(void *)
 *   ops      pointer to the plugin's static ops table of the kind's type
 *
 * Defines baic_plugin_entry() and its libltdl-prefixed alias
 * <kind>_<name>_LTX_baic_plugin_entry(). Define BAIC_PLUGIN_STATIC before including
 * this header to get only the prefixed alias (for linking several plugins into one
 * executable).
 */
#ifdef BAIC_PLUGIN_STATIC
#define BAIC__PLUGIN_PLAIN_ENTRY(kind, name)
#else
#define BAIC__PLUGIN_PLAIN_ENTRY(kind, name)                                            \
    BAIC_EXPORT const baic_plugin_desc_t *baic_plugin_entry(void);                      \
    BAIC_EXPORT const baic_plugin_desc_t *baic_plugin_entry(void) {                     \
        return &baic__plugin_desc_##kind##_##name;                                      \
    }
#endif

#define BAIC_PLUGIN_DEFINE(kind, name, version_str, init_fn, fini_fn, ops_ptr)          \
    static const baic_plugin_desc_t baic__plugin_desc_##kind##_##name = {               \
        BAIC_PLUGIN_MAGIC,                                                              \
        BAIC_ABI_MAJOR,                                                                 \
        BAIC_ABI_MINOR,                                                                 \
        (uint32_t)sizeof(baic_plugin_desc_t),                                           \
        (uint32_t)BAIC__KIND_##kind,                                                    \
        #name,                                                                          \
        version_str,                                                                    \
        BAIC_BUILD_SIG,                                                                 \
        init_fn,                                                                        \
        fini_fn,                                                                        \
        ops_ptr,                                                                        \
        (uint32_t)sizeof(*(ops_ptr)),                                                   \
    };                                                                                  \
    BAIC_EXPORT const baic_plugin_desc_t *kind##_##name##_LTX_baic_plugin_entry(void);  \
    BAIC_EXPORT const baic_plugin_desc_t *kind##_##name##_LTX_baic_plugin_entry(void) { \
        return &baic__plugin_desc_##kind##_##name;                                      \
    }                                                                                   \
    BAIC__PLUGIN_PLAIN_ENTRY(kind, name)

#ifdef __cplusplus
}
#endif

#endif /* BAIC_PLUGIN_H */
