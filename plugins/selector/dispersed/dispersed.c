/* SPDX-License-Identifier: Apache-2.0 */
/* selector/dispersed: the least occupied agent that fits, to spread load. */
#include <baic/host.h>
#include <baic/selector.h>

#include "../select_common.h"

/* Lowest utilisation among agents that fit; ties go to the earlier agent in the list. */
static size_t dispersed_choose(void *pst, const sel_work_t *w, const int64_t *need,
                               const char *arch) {
    return sel_by_utilisation(w, need, arch, 0);
}

static int dispersed_select(void *state, const baic_sel_request_t *req,
                            const baic_sel_agent_t *const *agents, size_t n_agents,
                            size_t *chosen) {
    return sel_assign(req, agents, n_agents, chosen, dispersed_choose, state);
}

static const baic_selector_ops_t dispersed_ops = {
    .select = dispersed_select,
};

BAIC_PLUGIN_DEFINE(selector, dispersed, "1.0.0", sel_plain_init, sel_state_fini,
                   &dispersed_ops)
