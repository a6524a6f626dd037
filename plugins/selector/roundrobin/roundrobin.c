/* SPDX-License-Identifier: Apache-2.0 */
/* selector/roundrobin: the next agent (by id) after the one chosen last that fits. */
#include <stdio.h>
#include <string.h>

#include <baic/host.h>
#include <baic/selector.h>

#include "../select_common.h"

typedef struct roundrobin_state {
    const baic_host_t *host; /* first, as sel_state_fini wants */
    char last[256]; /* id of the agent chosen last; "" before the first choice */
} roundrobin_state_t;

/*
 * Agents are taken in id order, wrapping around: the fitting agent with the
 * smallest id greater than the last chosen, else the fitting agent with the
 * smallest id. Ordering by id (not by list position) keeps the rotation stable
 * when the host lists agents in a different order each time.
 */
static size_t roundrobin_choose(void *pst, const sel_work_t *w, const int64_t *need,
                                const char *arch) {
    roundrobin_state_t *st = pst;
    size_t after = SEL_NONE, first = SEL_NONE;
    for (size_t a = 0; a < w->n_agents; a++) {
        if (!sel_fits(w, a, need, arch))
            continue;
        const char *id = w->agents[a]->id;
        if (first == SEL_NONE || strcmp(id, w->agents[first]->id) < 0)
            first = a;
        if (strcmp(id, st->last) > 0 &&
            (after == SEL_NONE || strcmp(id, w->agents[after]->id) < 0))
            after = a;
    }
    size_t pick = after != SEL_NONE ? after : first;
    if (pick != SEL_NONE)
        snprintf(st->last, sizeof st->last, "%s", w->agents[pick]->id);
    return pick;
}

static int roundrobin_select(void *state, const baic_sel_request_t *req,
                             const baic_sel_agent_t *const *agents, size_t n_agents,
                             size_t *chosen) {
    roundrobin_state_t *st = state;
    char saved[sizeof st->last];
    memcpy(saved, st->last, sizeof saved);
    int rc = sel_assign(req, agents, n_agents, chosen, roundrobin_choose, st);
    if (rc != 0)
        memcpy(st->last, saved, sizeof saved); /* nothing was placed: no turn taken */
    return rc;
}

static int roundrobin_init(const baic_host_t *host, const json_t *conf, void **state) {
    return sel_state_init(host, sizeof(roundrobin_state_t), state);
}

static const baic_selector_ops_t roundrobin_ops = {
    .select = roundrobin_select,
};

BAIC_PLUGIN_DEFINE(selector, roundrobin, "1.0.0", roundrobin_init, sel_state_fini,
                   &roundrobin_ops)
