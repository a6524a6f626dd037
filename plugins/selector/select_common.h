/* SPDX-License-Identifier: Apache-2.0 */
/* What the in-tree selectors share: fit tests that count kernels placed in the same call. */
#ifndef BAIC_PLUGINS_SELECT_COMMON_H
#define BAIC_PLUGINS_SELECT_COMMON_H

#include <stdlib.h>
#include <string.h>

#include <baic/host.h>
#include <baic/selector.h>

#define SEL_NONE ((size_t)-1)

/* One select call's scratch: the slot names any kernel asks for, and per agent the
 * amounts already given to kernels earlier in this call. */
typedef struct sel_work {
    const baic_sel_agent_t *const *agents;
    size_t n_agents;
    const char **names;
    size_t n_names;
    int64_t *extra; /* n_agents * n_names; NULL while nothing was given (one agent for all) */
} sel_work_t;

static inline int64_t sel_extra(const sel_work_t *w, size_t a, size_t j) {
    return w->extra != NULL ? w->extra[a * w->n_names + j] : 0;
}

/* Chooses among the agents that fit need (n_names values) and arch; SEL_NONE if none. */
typedef size_t (*sel_choose_fn)(void *pst, const sel_work_t *w, const int64_t *need,
                                const char *arch);

/* Whether need fits on agent a (arch matching; what this call gave it counted) and, when
 * util is not NULL, how full the agent is in the slots this session asks for: the sum of
 * occupied/available over them (each in 0..1). One lookup per slot for both. */
static inline int sel_fit_util(const sel_work_t *w, size_t a, const int64_t *need,
                               const char *arch, double *util) {
    const baic_sel_agent_t *ag = w->agents[a];
    if (arch != NULL && *arch != '\0' && ag->architecture != arch &&
        (ag->architecture == NULL || strcmp(ag->architecture, arch) != 0))
        return 0;
    double u = 0;
    for (size_t j = 0; j < w->n_names; j++) {
        if (need[j] <= 0 && util == NULL)
            continue;
        int64_t cap, used;
        baic_slots_get(&ag->available, w->names[j], &cap);
        baic_slots_get(&ag->occupied, w->names[j], &used);
        used += sel_extra(w, a, j);
        if (need[j] > 0 && (used > cap || need[j] > cap - used))
            return 0;
        if (cap > 0)
            u += (double)used / (double)cap;
    }
    if (util != NULL)
        *util = u;
    return 1;
}

static inline int sel_fits(const sel_work_t *w, size_t a, const int64_t *need, const char *arch) {
    return sel_fit_util(w, a, need, arch, NULL);
}

/* The fitting agent whose utilisation is highest (most > 0) or lowest (most == 0);
 * ties go to the earlier agent in the list. SEL_NONE if none fits. */
static inline size_t sel_by_utilisation(const sel_work_t *w, const int64_t *need,
                                        const char *arch, int most) {
    size_t best = SEL_NONE;
    double best_u = 0;
    for (size_t a = 0; a < w->n_agents; a++) {
        double u;
        if (!sel_fit_util(w, a, need, arch, &u))
            continue;
        if (best == SEL_NONE || (most ? u > best_u : u < best_u)) {
            best = a;
            best_u = u;
        }
    }
    return best;
}

/* A selector's state begins with the host pointer; one that keeps nothing else
 * uses sel_plain_init and sel_state_fini as its init and fini. */
typedef struct sel_plain_state {
    const baic_host_t *host;
} sel_plain_state_t;

/* Allocates a zeroed state of size bytes (>= sizeof(sel_plain_state_t)) that
 * remembers host. Returns 0 or UV_ENOMEM. */
static inline int sel_state_init(const baic_host_t *host, size_t size, void **state) {
    sel_plain_state_t *st = host->calloc(1, size);
    if (st == NULL)
        return UV_ENOMEM;
    st->host = host;
    *state = st;
    return 0;
}

static inline int sel_plain_init(const baic_host_t *host, const json_t *conf, void **state) {
    return sel_state_init(host, sizeof(sel_plain_state_t), state);
}

static inline void sel_state_fini(void *state) {
    sel_plain_state_t *st = state;
    st->host->free(st);
}

static inline int sel_add_name(sel_work_t *w, const char *name) {
    for (size_t j = 0; j < w->n_names; j++)
        if (strcmp(w->names[j], name) == 0)
            return 0;
    w->names[w->n_names++] = name;
    return 0;
}

static inline void sel_need_add(const sel_work_t *w, int64_t *need, const baic_slots_t *req) {
    for (size_t j = 0; j < w->n_names; j++) {
        int64_t v;
        baic_slots_get(req, w->names[j], &v);
        need[j] += v;
    }
}

/*
 * Places every kernel of req with choose: in SINGLE_NODE mode one agent for the sum,
 * in MULTI_NODE mode kernel by kernel, each seeing what the earlier ones took.
 * Returns 0, BAIC_ENO_RESOURCES, BAIC_EBAD_INPUT or UV_ENOMEM.
 */
static inline int sel_assign(const baic_sel_request_t *req, const baic_sel_agent_t *const *agents,
                             size_t n_agents, size_t *chosen, sel_choose_fn choose, void *pst) {
    if (req == NULL || req->n_kernels == 0 || chosen == NULL)
        return BAIC_EBAD_INPUT;
    size_t max_names = 0;
    for (size_t k = 0; k < req->n_kernels; k++)
        max_names += req->kernels[k]->requested.count;
    sel_work_t w = {agents, n_agents, NULL, 0, NULL};
    /* Called once per session placed, over every agent: no allocation when few names. */
    const char *names_here[16];
    int64_t need_here[16] = {0};
    int small = max_names < 16;
    w.names = small ? names_here : calloc(max_names + 1, sizeof *w.names);
    int64_t *need = small ? need_here : calloc(max_names + 1, sizeof *need);
    int rc = 0;
    if (w.names == NULL || need == NULL) {
        rc = UV_ENOMEM;
        goto out;
    }
    const char *arch = NULL;
    for (size_t k = 0; k < req->n_kernels; k++) {
        const baic_sel_kernel_t *kn = req->kernels[k];
        for (size_t i = 0; i < kn->requested.count; i++)
            if (kn->requested.v[i].value > 0)
                sel_add_name(&w, kn->requested.v[i].name);
        if (kn->architecture != NULL && *kn->architecture != '\0') {
            if (arch != NULL && strcmp(arch, kn->architecture) != 0 &&
                req->cluster_mode == BAIC_SEL_SINGLE_NODE) {
                rc = BAIC_EBAD_INPUT; /* one agent cannot have two architectures */
                goto out;
            }
            arch = kn->architecture;
        }
    }
    if (req->cluster_mode == BAIC_SEL_SINGLE_NODE) {
        for (size_t k = 0; k < req->n_kernels; k++)
            sel_need_add(&w, need, &req->kernels[k]->requested);
        size_t a = choose(pst, &w, need, arch);
        if (a == SEL_NONE) {
            rc = BAIC_ENO_RESOURCES;
            goto out;
        }
        for (size_t k = 0; k < req->n_kernels; k++)
            chosen[k] = a;
    } else {
        w.extra = calloc(n_agents * (w.n_names + 1) + 1, sizeof *w.extra);
        if (w.extra == NULL) {
            rc = UV_ENOMEM;
            goto out;
        }
        for (size_t k = 0; k < req->n_kernels; k++) {
            memset(need, 0, w.n_names * sizeof *need);
            sel_need_add(&w, need, &req->kernels[k]->requested);
            size_t a = choose(pst, &w, need, req->kernels[k]->architecture);
            if (a == SEL_NONE) {
                rc = BAIC_ENO_RESOURCES;
                goto out;
            }
            chosen[k] = a;
            for (size_t j = 0; j < w.n_names; j++)
                w.extra[a * w.n_names + j] += need[j];
        }
    }
out:
    if (!small) {
        free(w.names);
        free(need);
    }
    free(w.extra);
    return rc;
}

#endif
