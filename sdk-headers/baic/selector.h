/* SPDX-License-Identifier: Apache-2.0 */
/* Agent-selector plugins: which agent(s) a picked session's kernels go to. */
#ifndef BAIC_SELECTOR_H
#define BAIC_SELECTOR_H

#include "host.h"
#include "plugin.h"
#include "slots.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The manager calls select once per session the scheduler picked, with the
 * resource group's schedulable agents (alive, not draining, architecture and
 * designated-agent filters already applied by the host). The selector answers
 * one agent per kernel; the host commits the whole answer in one transaction.
 */

/* A candidate agent. Borrowed for the call; passed by pointer, so it may grow. */
typedef struct baic_sel_agent {
    const char *id;            /* agent id, e.g. "i-node01" */
    const char *architecture;  /* "x86_64", "aarch64" */
    const char *resource_group;
    baic_slots_t available;    /* the agent's total slots */
    baic_slots_t occupied;     /* slots held by its live kernels now */
    uint32_t n_kernels;        /* live kernels on it */
} baic_sel_agent_t;

/* One kernel of the session to place. */
typedef struct baic_sel_kernel {
    const char *id;            /* kernel UUID */
    const char *role;          /* "main" or "sub" */
    uint32_t index;            /* cluster index, 0 for main */
    const char *architecture;  /* the image's architecture; the agent's must match */
    baic_slots_t requested;
} baic_sel_kernel_t;

typedef enum baic_sel_cluster_mode {
    BAIC_SEL_SINGLE_NODE = 0, /* every kernel on the same agent */
    BAIC_SEL_MULTI_NODE = 1,  /* each kernel may go to a different agent */
} baic_sel_cluster_mode_t;

typedef struct baic_sel_request {
    uint32_t size;             /* sizeof at host build time */
    const char *session_id;
    const char *access_key;
    const char *resource_group;
    baic_sel_cluster_mode_t cluster_mode;
    const baic_sel_kernel_t *const *kernels;
    size_t n_kernels;          /* >= 1 */
} baic_sel_request_t;

typedef struct baic_selector_ops {
    /* ---- ABI 1.0 ---- */

    /*
     * select (mandatory): chooses an agent for every kernel.
     *   state     the plugin's state
     *   req       the session and its kernels; borrowed for the call
     *   agents    n_agents pointers to candidate agents; borrowed
     *   chosen    out: req->n_kernels entries (caller's array), chosen[k] = index into
     *             agents for kernel k. In SINGLE_NODE mode all entries are equal and the
     *             agent must fit the sum of the kernels' requests; in MULTI_NODE mode
     *             kernels placed on the same agent must fit together. The architecture
     *             of the agent must equal the kernel's (when the kernel names one).
     * Returns 0, or BAIC_ENO_RESOURCES when no assignment fits (chosen is then
     * unspecified), or another negative code. Loop thread; must not block.
     */
    int (*select)(void *state, const baic_sel_request_t *req,
                  const baic_sel_agent_t *const *agents, size_t n_agents, size_t *chosen);

    /*
     * update_options (optional): new options (the resource group's
     * agent_selector_config) without a restart. opts borrowed. Returns 0 or
     * BAIC_EBAD_INPUT, keeping the old options. Loop thread.
     */
    int (*update_options)(void *state, const json_t *opts);
} baic_selector_ops_t;

#define BAIC_SELECTOR_OPS_MIN_SIZE                                                      \
    (offsetof(baic_selector_ops_t, update_options) +                                   \
     sizeof(((baic_selector_ops_t *)0)->update_options))

#define BAIC_SELECTOR_MANDATORY_OPS(X) X(select)

#ifdef __cplusplus
}
#endif

#endif /* BAIC_SELECTOR_H */
