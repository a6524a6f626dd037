/* SPDX-License-Identifier: Apache-2.0 */
/* Per-kind facts the registry checks: ops table sizes and mandatory ops. */
#ifndef BAIC_CORE_KINDS_H
#define BAIC_CORE_KINDS_H

#include <stddef.h>

#include <baic/plugin.h>

typedef struct baic_op_ref {
    const char *name;
    size_t offset;
} baic_op_ref_t;

typedef struct baic_kind_info {
    baic_plugin_kind_t kind;
    const char *name;
    size_t full_size; /* sizeof the ops table in this host */
    size_t min_size;  /* smallest table accepted (the 1.0 table) */
    const baic_op_ref_t *mandatory;
    size_t nmandatory;
} baic_kind_info_t;

/* Facts for kind, or NULL when the kind number is unknown. */
const baic_kind_info_t *baic__kind_info(baic_plugin_kind_t kind);

#endif
