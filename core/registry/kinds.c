/* SPDX-License-Identifier: Apache-2.0 */
/* The kind table, generated from each kind header's size and mandatory-op macros. */
#include "registry/kinds.h"
#include "registry/registry.h"

#include <string.h>

#include <baic/auth.h>
#include <baic/compute.h>
#include <baic/hook.h>
#include <baic/monitor.h>
#include <baic/runtime.h>
#include <baic/scheduler.h>
#include <baic/selector.h>
#include <baic/storage.h>

#define OPREF(type, member) {#member, offsetof(type, member)},
#define MANDATORY(kind, TYPE, MACRO)                                                    \
    static const baic_op_ref_t kind##_mandatory[] = {MACRO(TYPE##_OPREF){NULL, 0}};

#define baic_scheduler_ops_t_OPREF(m) OPREF(baic_scheduler_ops_t, m)
#define baic_selector_ops_t_OPREF(m) OPREF(baic_selector_ops_t, m)
#define baic_compute_ops_t_OPREF(m) OPREF(baic_compute_ops_t, m)
#define baic_runtime_ops_t_OPREF(m) OPREF(baic_runtime_ops_t, m)
#define baic_storage_ops_t_OPREF(m) OPREF(baic_storage_ops_t, m)
#define baic_auth_ops_t_OPREF(m) OPREF(baic_auth_ops_t, m)
#define baic_monitor_ops_t_OPREF(m) OPREF(baic_monitor_ops_t, m)
#define baic_hook_ops_t_OPREF(m) OPREF(baic_hook_ops_t, m)

MANDATORY(scheduler, baic_scheduler_ops_t, BAIC_SCHEDULER_MANDATORY_OPS)
MANDATORY(selector, baic_selector_ops_t, BAIC_SELECTOR_MANDATORY_OPS)
MANDATORY(compute, baic_compute_ops_t, BAIC_COMPUTE_MANDATORY_OPS)
MANDATORY(runtime, baic_runtime_ops_t, BAIC_RUNTIME_MANDATORY_OPS)
MANDATORY(storage, baic_storage_ops_t, BAIC_STORAGE_MANDATORY_OPS)
MANDATORY(auth, baic_auth_ops_t, BAIC_AUTH_MANDATORY_OPS)
MANDATORY(monitor, baic_monitor_ops_t, BAIC_MONITOR_MANDATORY_OPS)
MANDATORY(hook, baic_hook_ops_t, BAIC_HOOK_MANDATORY_OPS)

#define KIND(K, k, type, MIN)                                                           \
    {K, #k, sizeof(type), MIN, k##_mandatory,                                           \
     sizeof k##_mandatory / sizeof k##_mandatory[0] - 1}

static const baic_kind_info_t kinds[] = {
    KIND(BAIC_KIND_SCHEDULER, scheduler, baic_scheduler_ops_t, BAIC_SCHEDULER_OPS_MIN_SIZE),
    KIND(BAIC_KIND_SELECTOR, selector, baic_selector_ops_t, BAIC_SELECTOR_OPS_MIN_SIZE),
    KIND(BAIC_KIND_COMPUTE, compute, baic_compute_ops_t, BAIC_COMPUTE_OPS_MIN_SIZE),
    KIND(BAIC_KIND_RUNTIME, runtime, baic_runtime_ops_t, BAIC_RUNTIME_OPS_MIN_SIZE),
    KIND(BAIC_KIND_STORAGE, storage, baic_storage_ops_t, BAIC_STORAGE_OPS_MIN_SIZE),
    KIND(BAIC_KIND_AUTH, auth, baic_auth_ops_t, BAIC_AUTH_OPS_MIN_SIZE),
    KIND(BAIC_KIND_MONITOR, monitor, baic_monitor_ops_t, BAIC_MONITOR_OPS_MIN_SIZE),
    KIND(BAIC_KIND_HOOK, hook, baic_hook_ops_t, BAIC_HOOK_OPS_MIN_SIZE),
};

const baic_kind_info_t *baic__kind_info(baic_plugin_kind_t kind) {
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kinds[i].kind == kind)
            return &kinds[i];
    return NULL;
}

const char *baic_plugin_kind_name(baic_plugin_kind_t kind) {
    const baic_kind_info_t *k = baic__kind_info(kind);
    return k ? k->name : NULL;
}

int baic_plugin_kind_parse(const char *s, size_t len, baic_plugin_kind_t *out) {
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strlen(kinds[i].name) == len && strncmp(kinds[i].name, s, len) == 0) {
            *out = kinds[i].kind;
            return 0;
        }
    }
    return BAIC_EPLUGIN_BAD_KIND;
}
