/* SPDX-License-Identifier: Apache-2.0 */
/* selector/concentrated: the most occupied agent that fits, to keep other agents free. */
#include <baic/host.h>
#include <baic/selector.h>

#include "../select_common.h"

/* Highest utilisation among agents that fit; ties go to the earlier agent in the list. */
static size_t concentrated_choose(void *pst, const sel_work_t *w, const int64_t *need,
                                  const char *arch) {
    return sel_by_utilisation(w, need, arch, 1);
}

static int concentrated_select(void *state, const baic_sel_request_t *req,
                               const baic_sel_agent_t *const *agents, size_t n_agents,
                               size_t *chosen) {
    return sel_assign(req, agents, n_agents, chosen, concentrated_choose, state);
}

static const baic_selector_ops_t concentrated_ops = {
    .select = concentrated_select,
};

BAIC_PLUGIN_DEFINE(selector, concentrated, "1.0.0", sel_plain_init, sel_state_fini,
                   &concentrated_ops)
