/* SPDX-License-Identifier: Apache-2.0 */
/* Builders for selector plugin tests: four agents in known states and kernels to place. */
#ifndef BAIC_TESTS_SELECTOR_FIXTURE_H
#define BAIC_TESTS_SELECTOR_FIXTURE_H

#include <string.h>

#include <baic/selector.h>

#include "baic_check.h"
#include "plugins/mock_host.h"

#define SX_GIB (INT64_C(1) << 30)
#define SX_CPU(x) ((int64_t)((x) * 1000000.0))

typedef struct sx_agent {
    baic_sel_agent_t a;
    baic_slot_t avail[2], occ[2];
} sx_agent_t;

static inline void sx_agent(sx_agent_t *x, const char *id, const char *arch, double cpu,
                            int64_t mem, double occ_cpu, int64_t occ_mem) {
    memset(x, 0, sizeof *x);
    x->avail[0] = (baic_slot_t){"cpu", SX_CPU(cpu)};
    x->avail[1] = (baic_slot_t){"mem", mem};
    x->occ[0] = (baic_slot_t){"cpu", SX_CPU(occ_cpu)};
    x->occ[1] = (baic_slot_t){"mem", occ_mem};
    x->a.id = id;
    x->a.architecture = arch;
    x->a.resource_group = "default";
    x->a.available = (baic_slots_t){x->avail, 2};
    x->a.occupied = (baic_slots_t){x->occ, 2};
}

typedef struct sx_kernel {
    baic_sel_kernel_t k;
    baic_slot_t req[2];
} sx_kernel_t;

static inline void sx_kernel(sx_kernel_t *x, uint32_t idx, const char *arch, double cpu,
                             int64_t mem) {
    memset(x, 0, sizeof *x);
    x->req[0] = (baic_slot_t){"cpu", SX_CPU(cpu)};
    x->req[1] = (baic_slot_t){"mem", mem};
    x->k.id = idx == 0 ? "k-main" : "k-sub";
    x->k.role = idx == 0 ? "main" : "sub";
    x->k.index = idx;
    x->k.architecture = arch;
    x->k.requested = (baic_slots_t){x->req, 2};
}

/*
 * The standard cluster (cpu, mem; utilisation = sum of occupied/available):
 *   a1  x86_64   8 cpu 32G, holds 6 cpu 8G     -> 1.0
 *   a2  x86_64   8 cpu 32G, holds 2 cpu 4G     -> 0.375
 *   a3  x86_64   8 cpu 32G, holds nothing      -> 0
 *   a4  x86_64   4 cpu 16G, holds 3.5 cpu 1G   -> 0.9375, 0.5 cpu free
 */
typedef struct sx_cluster {
    sx_agent_t ag[4];
    const baic_sel_agent_t *list[4];
} sx_cluster_t;

static inline void sx_cluster(sx_cluster_t *c) {
    sx_agent(&c->ag[0], "a1", "x86_64", 8, 32 * SX_GIB, 6, 8 * SX_GIB);
    sx_agent(&c->ag[1], "a2", "x86_64", 8, 32 * SX_GIB, 2, 4 * SX_GIB);
    sx_agent(&c->ag[2], "a3", "x86_64", 8, 32 * SX_GIB, 0, 0);
    sx_agent(&c->ag[3], "a4", "x86_64", 4, 16 * SX_GIB, 3.5, SX_GIB);
    for (int i = 0; i < 4; i++)
        c->list[i] = &c->ag[i].a;
}

static inline baic_mock_host_t *sx_load(const char *name, const baic_selector_ops_t **ops,
                                        void **state) {
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    const baic_plugin_desc_t *d;
    int rc = baic_mock_host_load_named(m, "selector", name, NULL, &d, state);
    ck_assert_msg(rc == 0, "load: %s", baic_mock_host_last_error(m));
    *ops = d->ops;
    return m;
}

/*
 * Places n kernels (mode as given) and writes the chosen agent ids, comma-separated,
 * into out; returns select's code.
 */
static inline int sx_place(const baic_selector_ops_t *ops, void *st, baic_sel_cluster_mode_t mode,
                           sx_kernel_t *ks, size_t n, const baic_sel_agent_t *const *agents,
                           size_t n_agents, char *out, size_t outlen) {
    const baic_sel_kernel_t *kp[8];
    size_t chosen[8];
    for (size_t i = 0; i < n; i++)
        kp[i] = &ks[i].k;
    baic_sel_request_t req = {.size = sizeof req,
                              .session_id = "s1",
                              .access_key = "AK",
                              .resource_group = "default",
                              .cluster_mode = mode,
                              .kernels = kp,
                              .n_kernels = n};
    int rc = ops->select(st, &req, agents, n_agents, chosen);
    out[0] = '\0';
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_lt(chosen[i], n_agents);
        size_t len = strlen(out);
        snprintf(out + len, outlen - len, "%s%s", i ? "," : "", agents[chosen[i]]->id);
    }
    return 0;
}

/* One kernel of cpu/mem, single node: the chosen id or "none". */
static inline const char *sx_one(const baic_selector_ops_t *ops, void *st, const sx_cluster_t *c,
                                 double cpu, int64_t mem, char *buf, size_t len) {
    sx_kernel_t k;
    sx_kernel(&k, 0, NULL, cpu, mem);
    int rc = sx_place(ops, st, BAIC_SEL_SINGLE_NODE, &k, 1, c->list, 4, buf, len);
    if (rc == BAIC_ENO_RESOURCES)
        return "none";
    ck_assert_int_eq(rc, 0);
    return buf;
}

#endif
