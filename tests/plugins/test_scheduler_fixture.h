/* SPDX-License-Identifier: Apache-2.0 */
/* Builders for scheduler plugin tests: candidate sessions and group contexts. */
#ifndef BAIC_TESTS_SCHED_FIXTURE_H
#define BAIC_TESTS_SCHED_FIXTURE_H

#include <baic/scheduler.h>

#include "baic_check.h"
#include "plugins/mock_host.h"

#define SF_CPU(x) ((int64_t)((x) * 1000000.0))

/* A session with "cpu" (whole cores) and "mem" (bytes). */
typedef struct sf_session {
    baic_sched_session_t s;
    baic_slot_t slots[2];
} sf_session_t;

static inline void sf_session(sf_session_t *f, const char *id, const char *key, double cpu,
                              int64_t mem, int64_t enqueued) {
    memset(f, 0, sizeof *f);
    f->slots[0] = (baic_slot_t){"cpu", SF_CPU(cpu)};
    f->slots[1] = (baic_slot_t){"mem", mem};
    f->s.id = id;
    f->s.access_key = key;
    f->s.requested = (baic_slots_t){f->slots, 2};
    f->s.enqueued_at_ms = enqueued;
    f->s.created_at_ms = enqueued;
    f->s.priority = 10;
    f->s.cluster_size = 1;
}

typedef struct sf_keypair {
    baic_sched_occupancy_t o;
    baic_slot_t slots[2];
} sf_keypair_t;

static inline void sf_keypair(sf_keypair_t *k, const char *key, double cpu, int64_t mem) {
    k->slots[0] = (baic_slot_t){"cpu", SF_CPU(cpu)};
    k->slots[1] = (baic_slot_t){"mem", mem};
    k->o.access_key = key;
    k->o.occupied = (baic_slots_t){k->slots, 2};
}

typedef struct sf_context {
    baic_sched_context_t c;
    baic_slot_t cap[2], occ[2];
} sf_context_t;

static inline void sf_context(sf_context_t *x, double cap_cpu, int64_t cap_mem, double occ_cpu,
                              int64_t occ_mem) {
    memset(x, 0, sizeof *x);
    x->cap[0] = (baic_slot_t){"cpu", SF_CPU(cap_cpu)};
    x->cap[1] = (baic_slot_t){"mem", cap_mem};
    x->occ[0] = (baic_slot_t){"cpu", SF_CPU(occ_cpu)};
    x->occ[1] = (baic_slot_t){"mem", occ_mem};
    x->c.size = sizeof x->c;
    x->c.resource_group = "default";
    x->c.capacity = (baic_slots_t){x->cap, 2};
    x->c.occupied = (baic_slots_t){x->occ, 2};
}

/* Loads scheduler/<name> into a fresh mock host; conf may be NULL. */
static inline baic_mock_host_t *sf_load(const char *name, const json_t *conf,
                                        const baic_scheduler_ops_t **ops, void **state) {
    baic_mock_host_t *m = baic_mock_host_new(NULL);
    const baic_plugin_desc_t *d;
    ck_assert_ptr_nonnull(m);
    int rc = baic_mock_host_load_named(m, "scheduler", name, conf, &d, state);
    ck_assert_msg(rc == 0, "load: %s", baic_mock_host_last_error(m));
    *ops = d->ops;
    return m;
}

/* Runs pick and returns the picked id, or "none". */
static inline const char *sf_pick(const baic_scheduler_ops_t *ops, void *state,
                                  const sf_context_t *ctx, const baic_sched_session_t *const *c,
                                  size_t n) {
    size_t picked = 12345;
    ck_assert_int_eq(ops->pick(state, &ctx->c, c, n, &picked), 0);
    if (picked == BAIC_SCHED_NONE)
        return "none";
    ck_assert_uint_lt(picked, n);
    return c[picked]->id;
}

#endif
