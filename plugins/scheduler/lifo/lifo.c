/* SPDX-License-Identifier: Apache-2.0 */
/* scheduler/lifo: the most recently enqueued session that fits goes first. */
#include <stdlib.h>

#include <baic/host.h>
#include <baic/scheduler.h>

#include "../sched_common.h"

typedef struct lifo_state {
    const baic_host_t *host;
} lifo_state_t;

static int lifo_init(const baic_host_t *host, const json_t *conf, void **state) {
    lifo_state_t *st = host->calloc(1, sizeof *st);
    if (st == NULL)
        return UV_ENOMEM;
    st->host = host;
    *state = st;
    return 0;
}

static void lifo_fini(void *state) {
    lifo_state_t *st = state;
    st->host->free(st);
}

static int lifo_pick(void *state, const baic_sched_context_t *ctx,
                     const baic_sched_session_t *const *cands, size_t n, size_t *picked) {
    sched_ref_t *refs;
    *picked = BAIC_SCHED_NONE;
    int rc = sched_sorted(cands, n, sched_cmp_newest, sched_queue_ordered(ctx), &refs);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (sched_can_start(ctx, sched_at(cands, refs, i)) == 0) {
            *picked = sched_index(refs, i);
            break;
        }
    }
    free(refs);
    return 0;
}

static const baic_scheduler_ops_t lifo_ops = {
    .pick = lifo_pick,
};

BAIC_PLUGIN_DEFINE(scheduler, lifo, "1.0.0", lifo_init, lifo_fini, &lifo_ops)
