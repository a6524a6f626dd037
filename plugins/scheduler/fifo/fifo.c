/* SPDX-License-Identifier: Apache-2.0 */
/* scheduler/fifo: oldest first, a head that does not fit may be skipped at most max_skips times. */
#include <stdlib.h>

#include <baic/host.h>
#include <baic/scheduler.h>

#include "../sched_common.h"

#define FIFO_DEFAULT_MAX_SKIPS 10

typedef struct fifo_state {
    const baic_host_t *host;
    uint32_t max_skips;
} fifo_state_t;

/* Reads max_skips from opts (absent keeps *out). */
static int fifo_parse(const baic_host_t *host, const json_t *opts, uint32_t *out) {
    if (opts == NULL)
        return 0;
    if (!json_is_object(opts))
        return BAIC_ECONFIG_TYPE;
    const json_t *v = json_object_get(opts, "max_skips");
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > (json_int_t)UINT32_MAX) {
        host->log(host, BAIC_LOG_ERROR, "bad_option", "key=max_skips reason=\"want an integer >= 0\"");
        return BAIC_ECONFIG_TYPE;
    }
    *out = (uint32_t)json_integer_value(v);
    return 0;
}

static int fifo_init(const baic_host_t *host, const json_t *conf, void **state) {
    fifo_state_t *st = host->calloc(1, sizeof *st);
    if (st == NULL)
        return UV_ENOMEM;
    st->host = host;
    st->max_skips = FIFO_DEFAULT_MAX_SKIPS;
    int rc = fifo_parse(host, conf, &st->max_skips);
    if (rc != 0) {
        host->free(st);
        return rc;
    }
    *state = st;
    return 0;
}

static void fifo_fini(void *state) {
    fifo_state_t *st = state;
    st->host->free(st);
}

/*
 * Walk the queue oldest first and take the first session that fits. One that does
 * not fit is skipped, unless it has already been skipped max_skips times: then it
 * holds the queue until it is placed, so a stream of small sessions cannot starve
 * a large one for ever.
 */
static int fifo_pick(void *state, const baic_sched_context_t *ctx,
                     const baic_sched_session_t *const *cands, size_t n, size_t *picked) {
    fifo_state_t *st = state;
    sched_ref_t *refs;
    *picked = BAIC_SCHED_NONE;
    int rc = sched_sorted(cands, n, sched_cmp_oldest, sched_queue_ordered(ctx), &refs);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const baic_sched_session_t *s = sched_at(cands, refs, i);
        if (sched_can_start(ctx, s) == 0) {
            *picked = sched_index(refs, i);
            break;
        }
        if (s->times_skipped >= st->max_skips) {
            st->host->log(st->host, BAIC_LOG_DEBUG, "queue_blocked",
                          "session=%s times_skipped=%u max_skips=%u", s->id, s->times_skipped,
                          st->max_skips);
            break;
        }
    }
    free(refs);
    return 0;
}

static int fifo_update_options(void *state, const json_t *opts) {
    fifo_state_t *st = state;
    uint32_t v = st->max_skips;
    int rc = fifo_parse(st->host, opts, &v);
    if (rc == 0)
        st->max_skips = v;
    return rc;
}

static const baic_scheduler_ops_t fifo_ops = {
    .pick = fifo_pick,
    .update_options = fifo_update_options,
};

BAIC_PLUGIN_DEFINE(scheduler, fifo, "1.0.0", fifo_init, fifo_fini, &fifo_ops)
