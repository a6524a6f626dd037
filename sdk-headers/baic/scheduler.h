/* SPDX-License-Identifier: Apache-2.0 */
/* Scheduler plugins: which pending session of a resource group goes next. */
#ifndef BAIC_SCHEDULER_H
#define BAIC_SCHEDULER_H

#include "host.h"
#include "plugin.h"
#include "slots.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * How the manager uses a scheduler (one plugin instance per resource group that
 * names it): on every wake-up (session enqueued, kernel terminated, agent joined)
 * it gathers the group's PENDING sessions, calls pick, checks the picked session's
 * predicates, asks the selector for agents, and commits. If the picked session
 * cannot be placed it is flagged BAIC_SCHED_CAND_TRIED and pick is called again
 * with the same list, until pick answers BAIC_SCHED_NONE or a session is placed.
 */

/* Candidate flags. */
#define BAIC_SCHED_CAND_TRIED 0x1u /* picked earlier in this pass and could not be placed */

/*
 * A pending session as the scheduler sees it. Filled by the host; everything is
 * borrowed for the duration of the call. New members are appended (candidates
 * are passed as an array of pointers, so a plugin built against an older header
 * reads a valid prefix).
 */
typedef struct baic_sched_session {
    const char *id;          /* session UUID */
    const char *access_key;  /* the keypair that created it */
    const char *user_id;     /* user UUID */
    const char *group_id;    /* project (group) UUID */
    const char *domain;      /* domain name */
    baic_slots_t requested;  /* sum over all its kernels */
    int64_t created_at_ms;   /* wall clock, ms since the epoch */
    int64_t enqueued_at_ms;  /* wall clock, when it became PENDING (last time) */
    int32_t priority;        /* higher runs first; Backend.AI's default is 10 */
    /*
     * How many times the manager placed another session of this group that was
     * enqueued after this one while this one stayed pending. Kept by the host,
     * persistent across restarts; a scheduler may use it to bound starvation.
     */
    uint32_t times_skipped;
    uint32_t cluster_size;   /* number of kernels */
    uint32_t flags;          /* BAIC_SCHED_CAND_* */
} baic_sched_session_t;

/* Slots held by the RUNNING (and SCHEDULED..CREATING) sessions of one keypair in the group. */
typedef struct baic_sched_occupancy {
    const char *access_key;
    baic_slots_t occupied;
} baic_sched_occupancy_t;

/*
 * The group's state at the moment of the call. size is sizeof at host build time;
 * a plugin reading a member added after its own ABI minor tests size first.
 */
typedef struct baic_sched_context {
    uint32_t size;
    const char *resource_group;
    baic_slots_t capacity;  /* sum of available slots of the group's schedulable agents */
    baic_slots_t occupied;  /* sum of occupied slots on those agents */
    const baic_sched_occupancy_t *const *keypairs; /* one per keypair with occupancy > 0 */
    size_t n_keypairs;
    int64_t now_ms;         /* wall clock, ms since the epoch */
    /* ---- ABI 1.3 ---- */
    /*
     * 1 when cands come in queue order: priority high to low, then enqueue time,
     * creation time and id ascending, compared at the host's precision (finer than
     * the _ms members), so that a plugin need not sort or check them on every call;
     * 0 for no promise.
     */
    uint32_t queue_order;
} baic_sched_context_t;

/* "Nothing should start now" from pick. */
#define BAIC_SCHED_NONE ((size_t)-1)

typedef struct baic_scheduler_ops {
    /* ---- ABI 1.0 ---- */

    /*
     * pick (mandatory): chooses the next session to place.
     *   state   the plugin's state from init
     *   ctx     the group's capacity and occupancy; borrowed for the call
     *   cands   n pointers to pending sessions, in no promised order unless
     *           ctx->queue_order says so; borrowed
     *   picked  out: an index into cands, or BAIC_SCHED_NONE; must not name a
     *           candidate flagged BAIC_SCHED_CAND_TRIED
     * Returns 0 (with *picked set), or a negative code (the host logs it and
     * retries on the next wake-up). Loop thread; must not block: it is pure policy
     * over the arrays it is given. May be called with n == 0.
     */
    int (*pick)(void *state, const baic_sched_context_t *ctx,
                const baic_sched_session_t *const *cands, size_t n, size_t *picked);

    /*
     * update_options (optional): applies a changed options object (the resource
     * group's scheduler_opts, or the plugin's config table) without a restart.
     *   opts  borrowed for the call; copy what you keep
     * Returns 0, or BAIC_EBAD_INPUT / BAIC_ECONFIG_TYPE leaving the old options in
     * force. Loop thread.
     */
    int (*update_options)(void *state, const json_t *opts);
} baic_scheduler_ops_t;

/* The smallest table the host accepts: the 1.0 group. */
#define BAIC_SCHEDULER_OPS_MIN_SIZE                                                     \
    (offsetof(baic_scheduler_ops_t, update_options) +                                  \
     sizeof(((baic_scheduler_ops_t *)0)->update_options))

/* Ops that must be non-NULL, as an X-macro: X(member) for each. */
#define BAIC_SCHEDULER_MANDATORY_OPS(X) X(pick)

#ifdef __cplusplus
}
#endif

#endif /* BAIC_SCHEDULER_H */
