/* SPDX-License-Identifier: Apache-2.0 */
/* Hook plugins: admission policy before a session is enqueued, notice of its status changes. */
#ifndef BAIC_HOOK_H
#define BAIC_HOOK_H

#include "host.h"
#include "plugin.h"
#include "slots.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The manager runs every loaded hook, in load order. A session is admitted only
 * when every hook that has admit admits it; the first denial's reason is the
 * message of the API's 4xx answer. A hook implements any subset of the ops.
 */

/* The session as a hook sees it. Borrowed for the call; may grow (passed by pointer). */
typedef struct baic_hook_session {
    uint32_t size;            /* sizeof at host build time */
    const char *id;           /* session UUID */
    const char *name;
    const char *access_key;
    const char *user_id;      /* user UUID */
    const char *user_email;
    const char *group_id;     /* project UUID */
    const char *domain;
    const char *resource_group;
    const char *image;        /* canonical image reference */
    const char *session_type; /* "interactive", "batch", "inference" */
    uint32_t cluster_size;
    baic_slots_t requested;   /* sum over kernels */
    const char *status;       /* current status, e.g. "PENDING" */
    const char *status_info;  /* e.g. "user-requested", may be NULL */
    const json_t *detail;     /* the creation request body (admit) or NULL */
} baic_hook_session_t;

/*
 * Admission verdict. Loop thread; reason borrowed for the call.
 *   verdict 0                              admit
 *   BAIC_EPERMISSION, BAIC_EQUOTA,
 *   BAIC_ENO_RESOURCES, BAIC_EBAD_INPUT    deny; reason is shown to the user
 *   any other negative code                the hook failed; the manager applies its
 *                                          on_error policy (deny by default) and logs it
 */
typedef void (*baic_hook_admit_cb)(void *arg, int verdict, const char *reason);

typedef struct baic_hook_ops {
    /* ---- ABI 1.0 ---- */

    /*
     * admit (optional): decides whether a new session may be enqueued. cb runs
     * exactly once, later or inside this call, on the loop thread (a hook that
     * asks an external service does so without blocking, e.g. queue_work).
     * Returns 0 (cb will run) or a code (cb never runs; treated like a failed hook).
     */
    int (*admit)(void *state, const baic_hook_session_t *s, baic_hook_admit_cb cb, void *arg);

    /*
     * status_changed (optional): told after a session's status changed and was
     * committed (e.g. PENDING -> SCHEDULED, RUNNING -> TERMINATED).
     *   old_status, new_status  e.g. "RUNNING", "TERMINATED"
     * The return value is only logged: a notification cannot undo the change.
     * Loop thread; must not block.
     */
    int (*status_changed)(void *state, const baic_hook_session_t *s, const char *old_status,
                          const char *new_status);
} baic_hook_ops_t;

#define BAIC_HOOK_OPS_MIN_SIZE                                                          \
    (offsetof(baic_hook_ops_t, status_changed) + sizeof(((baic_hook_ops_t *)0)->status_changed))

/* No single op is mandatory: a hook implements what it needs. */
#define BAIC_HOOK_MANDATORY_OPS(X)

#ifdef __cplusplus
}
#endif

#endif /* BAIC_HOOK_H */
