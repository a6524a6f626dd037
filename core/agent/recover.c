/* SPDX-License-Identifier: Apache-2.0 */
/* Recovery at start: the runtime's containers against the records on disk, so nothing is lost or leaked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "log/log.h"
#include "util/strerror.h"

typedef struct recover {
    agent_t *a;
    void (*done)(agent_t *a, int status);
    json_t *records;
} recover_t;

/* A container nobody has a record of: stopped, then destroyed, with no event (the
 * manager never heard of it, or already saw it terminated). */
typedef struct leak {
    agent_t *a;
    char id[256];
} leak_t;

static void leak_destroyed(void *arg, int status) {
    leak_t *l = arg;
    BAIC_LOG_I("leak_destroyed", "container=%s status=\"%s\"", l->id,
               status ? baic_strerror(status) : "ok");
    free(l);
}

static void leak_stopped(void *arg, int status) {
    leak_t *l = arg;
    (void)status;
    int rc = l->a->rt->destroy(l->a->runtime->state, l->id, leak_destroyed, l);
    if (rc != 0) {
        BAIC_LOG_E("leak_destroy_failed", "container=%s error=\"%s\"", l->id, baic_strerror(rc));
        free(l);
    }
}

static void leak_cleanup(agent_t *a, const baic_rt_info_t *info) {
    leak_t *l = calloc(1, sizeof *l);
    if (l == NULL)
        return;
    l->a = a;
    snprintf(l->id, sizeof l->id, "%s", info->id);
    BAIC_LOG_W("container_leaked", "container=%s state=%d action=destroy", l->id,
               (int)info->state);
    int rc = info->state == BAIC_RT_RUNNING
                 ? a->rt->stop(a->runtime->state, l->id, 5000, leak_stopped, l)
                 : a->rt->destroy(a->runtime->state, l->id, leak_destroyed, l);
    if (rc != 0) {
        BAIC_LOG_E("leak_destroy_failed", "container=%s error=\"%s\"", l->id, baic_strerror(rc));
        free(l);
    }
}

static void on_list(void *arg, int status, const baic_rt_info_t *const *items, size_t n) {
    recover_t *r = arg;
    agent_t *a = r->a;
    size_t adopted = 0, leaked = 0, lost = 0;
    if (status != 0) {
        BAIC_LOG_E("recover_list_failed", "error=\"%s\"", baic_strerror(status));
        json_decref(r->records);
        void (*done)(agent_t *, int) = r->done;
        free(r);
        done(a, status);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *rec = items[i]->id ? json_object_get(r->records, items[i]->id) : NULL;
        if (rec == NULL) {
            leak_cleanup(a, items[i]);
            leaked++;
            continue;
        }
        if (agent_kernel_adopt(a, rec, items[i]) == 0)
            adopted++;
        json_object_del(r->records, items[i]->id);
    }
    /* Records whose container is gone: the kernel died with (or while) the agent was away. */
    const char *id;
    json_t *rec;
    json_object_foreach(r->records, id, rec) {
        const char *sid = json_string_value(json_object_get(rec, "session_id"));
        BAIC_LOG_W("kernel_lost", "kernel=%s session=%s last_status=%s", id, sid,
                   json_string_value(json_object_get(rec, "status")));
        agent_record_remove(a, id);
        agent_publish(a, "kernel_terminated",
                      json_pack("{s:s, s:s, s:n, s:s, s:s}", "kernel_id", id, "session_id", sid,
                                "exit_code", "reason", "agent-lost", "msg",
                                "container not found after agent restart"));
        lost++;
    }
    BAIC_LOG_I("recovered", "containers=%zu adopted=%zu leaked=%zu lost=%zu", n, adopted, leaked,
               lost);
    json_decref(r->records);
    void (*done)(agent_t *, int) = r->done;
    free(r);
    done(a, 0);
}

int agent_recover(agent_t *a, void (*done)(agent_t *a, int status)) {
    recover_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return UV_ENOMEM;
    r->a = a;
    r->done = done;
    r->records = agent_record_load_all(a);
    int rc = a->rt->list(a->runtime->state, on_list, r);
    if (rc != 0) {
        json_decref(r->records);
        free(r);
    }
    return rc;
}
