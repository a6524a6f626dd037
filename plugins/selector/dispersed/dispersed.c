/* SPDX-License-Identifier: Apache-2.0 */
/* selector/dispersed: the least occupied agent that fits, to spread load. */
#include <baic/host.h>
#include <baic/selector.h>

#include "../select_common.h"

typedef struct dispersed_state {
    const baic_host_t *host;
} dispersed_state_t;

/* Lowest utilisation among agents that fit; ties go to the earlier agent in the list. */
static size_t dispersed_choose(void *pst, const sel_work_t *w, const int64_t *need,
                                  const char *arch) {
    size_t best = SEL_NONE;
    double best_u = 0;
    for (size_t a = 0; a < w->n_agents; a++) {
        if (!sel_fits(w, a, need, arch))
            continue;
        double u = sel_utilisation(w, a);
        if (best == SEL_NONE || u < best_u) {
            best = a;
            best_u = u;
        }
    }
    return best;
}

static int dispersed_select(void *state, const baic_sel_request_t *req,
                               const baic_sel_agent_t *const *agents, size_t n_agents,
                               size_t *chosen) {
    return sel_assign(req, agents, n_agents, chosen, dispersed_choose, state);
}

static int dispersed_init(const baic_host_t *host, const json_t *conf, void **state) {
    dispersed_state_t *st = host->calloc(1, sizeof *st);
    if (st == NULL)
        return UV_ENOMEM;
    st->host = host;
    *state = st;
    return 0;
}

static void dispersed_fini(void *state) {
    dispersed_state_t *st = state;
    st->host->free(st);
}

static const baic_selector_ops_t dispersed_ops = {
    .select = dispersed_select,
};

BAIC_PLUGIN_DEFINE(selector, dispersed, "1.0.0", dispersed_init, dispersed_fini,
                   &dispersed_ops)
