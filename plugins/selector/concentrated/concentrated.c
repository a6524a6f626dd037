/* SPDX-License-Identifier: Apache-2.0 */
/* selector/concentrated: the most occupied agent that fits, to keep other agents free. */
#include <baic/host.h>
#include <baic/selector.h>

#include "../select_common.h"

typedef struct concentrated_state {
    const baic_host_t *host;
} concentrated_state_t;

/* Highest utilisation among agents that fit; ties go to the earlier agent in the list. */
static size_t concentrated_choose(void *pst, const sel_work_t *w, const int64_t *need,
                                  const char *arch) {
    size_t best = SEL_NONE;
    double best_u = 0;
    for (size_t a = 0; a < w->n_agents; a++) {
        if (!sel_fits(w, a, need, arch))
            continue;
        double u = sel_utilisation(w, a);
        if (best == SEL_NONE || u > best_u) {
            best = a;
            best_u = u;
        }
    }
    return best;
}

static int concentrated_select(void *state, const baic_sel_request_t *req,
                               const baic_sel_agent_t *const *agents, size_t n_agents,
                               size_t *chosen) {
    return sel_assign(req, agents, n_agents, chosen, concentrated_choose, state);
}

static int concentrated_init(const baic_host_t *host, const json_t *conf, void **state) {
    concentrated_state_t *st = host->calloc(1, sizeof *st);
    if (st == NULL)
        return UV_ENOMEM;
    st->host = host;
    *state = st;
    return 0;
}

static void concentrated_fini(void *state) {
    concentrated_state_t *st = state;
    st->host->free(st);
}

static const baic_selector_ops_t concentrated_ops = {
    .select = concentrated_select,
};

BAIC_PLUGIN_DEFINE(selector, concentrated, "1.0.0", concentrated_init, concentrated_fini,
                   &concentrated_ops)
