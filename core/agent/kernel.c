/* SPDX-License-Identifier: Apache-2.0 */
/* Kernel lifecycle: allocate, create and start through the runtime, stop, destroy, free, report. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "log/log.h"
#include "util/strerror.h"

#define STOP_TIMEOUT_MS 5000
/* Console log bytes sent along with kernel_terminated (kept in kernels.container_log). */
#define KERNEL_LOG_KEEP (64u * 1024)

/*
 * A kernel has at most one runtime op with our callback in flight (op_pending).
 * Anything that happens meanwhile (a destroy request, the process exiting) is
 * noted on the kernel and acted on when the op completes, so callbacks never race
 * and a kernel is never freed under a pending callback.
 */

static const char *const kstate_names[] = {"PREPARING", "PULLING", "CREATING", "RUNNING",
                                           "TERMINATING"};

const char *agent_kstate_name(agent_kstate_t s) {
    return kstate_names[s];
}

agent_kernel_t *agent_kernel_find(agent_t *a, const char *id) {
    for (agent_kernel_t *k = a->kernels; k != NULL; k = k->next)
        if (strcmp(k->id, id) == 0)
            return k;
    return NULL;
}

static void kernel_free_allocs(agent_kernel_t *k) {
    agent_t *a = k->a;
    for (size_t p = 0; k->allocs != NULL && p < a->ncompute; p++) {
        if (k->allocs[p] == NULL)
            continue;
        const baic_compute_ops_t *ops = a->compute[p]->ops;
        int rc = ops->free_allocation(a->compute[p]->state, k->allocs[p]);
        if (rc != 0)
            BAIC_LOG_E("free_allocation_failed", "kernel=%s plugin=%s error=\"%s\"", k->id,
                       a->compute[p]->id, baic_strerror(rc));
        k->allocs[p] = NULL;
    }
}

static void kernel_free(agent_kernel_t *k) {
    if (k->runner != NULL)
        agent_runner_detach(k);
    free(k->id);
    free(k->session_id);
    free(k->image);
    json_decref(k->slots);
    json_decref(k->create);
    free(k->allocs);
    free(k);
}

void agent_kernel_discard(agent_kernel_t *k) {
    kernel_free_allocs(k);
    kernel_free(k);
}

static void kernel_unlink(agent_kernel_t *k) {
    for (agent_kernel_t **pp = &k->a->kernels; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == k) {
            *pp = k->next;
            k->a->nkernels--;
            return;
        }
    }
}

void agent_kernels_free_all(agent_t *a) {
    while (a->kernels != NULL) {
        agent_kernel_t *k = a->kernels;
        a->kernels = k->next;
        kernel_free(k); /* allocations die with the plugins; the records stay for recovery */
    }
    a->nkernels = 0;
}

static json_t *kernel_event_body(agent_kernel_t *k) {
    return json_pack("{s:s, s:s}", "kernel_id", k->id, "session_id", k->session_id);
}

/* The end of every kernel: resources back, record gone, the manager told. */
static void kernel_finish(agent_kernel_t *k) {
    agent_t *a = k->a;
    if (k->reason[0] == '\0')
        snprintf(k->reason, sizeof k->reason, "%s", k->oom ? "oom-killed" : "self-terminated");
    json_t *body = kernel_event_body(k);
    /* A batch kernel's result is its startup command's exit code, not the runner's. */
    int known = k->batch_done || k->exited;
    int code = k->batch_done ? k->batch_code : k->exit_code;
    json_object_set_new(body, "exit_code", known ? json_integer(code) : json_null());
    json_object_set_new(body, "reason", json_string(k->reason));
    json_object_set_new(body, "msg", json_string(k->msg));
    /* The console log goes with the runner directory: its last part travels along. */
    char *logs = agent_console_log_tail(a, k->id, KERNEL_LOG_KEEP);
    if (logs != NULL && *logs != '\0')
        json_object_set_new(body, "logs", json_string(logs));
    free(logs);
    BAIC_LOG_I("kernel_terminated", "kernel=%s session=%s reason=%s exit_code=%d", k->id,
               k->session_id, k->reason, known ? code : -1);
    kernel_free_allocs(k);
    agent_cluster_teardown(k); /* cluster_net.c */
    agent_record_remove(a, k->id);
    kernel_unlink(k);
    agent_publish(a, "kernel_terminated", body);
    kernel_free(k);
}

static void on_destroyed(void *arg, int status) {
    agent_kernel_t *k = arg;
    k->op_pending = 0;
    if (status != 0)
        BAIC_LOG_W("kernel_destroy_failed", "kernel=%s error=\"%s\"", k->id,
                   baic_strerror(status));
    kernel_finish(k);
}

static void kernel_do_destroy(agent_kernel_t *k) {
    agent_t *a = k->a;
    if (!k->created) {
        kernel_finish(k);
        return;
    }
    k->op_pending = 1;
    int rc = a->rt->destroy(a->runtime->state, k->id, on_destroyed, k);
    if (rc != 0) {
        k->op_pending = 0;
        if (rc != BAIC_ENOT_FOUND)
            BAIC_LOG_W("kernel_destroy_failed", "kernel=%s error=\"%s\"", k->id,
                       baic_strerror(rc));
        kernel_finish(k);
    }
}

static void on_stopped(void *arg, int status) {
    agent_kernel_t *k = arg;
    k->op_pending = 0;
    if (status != 0)
        BAIC_LOG_W("kernel_stop_failed", "kernel=%s error=\"%s\"", k->id, baic_strerror(status));
    kernel_do_destroy(k);
}

/* Runs the teardown that stop_wanted or exited asked for, once no op is in flight. */
static void kernel_teardown(agent_kernel_t *k) {
    agent_t *a = k->a;
    k->state = KS_TERMINATING;
    if (k->runner != NULL)
        agent_runner_detach(k); /* pending relayed calls are answered now */
    if (!k->created || k->exited) {
        kernel_do_destroy(k);
        return;
    }
    k->op_pending = 1;
    int rc = a->rt->stop(a->runtime->state, k->id, STOP_TIMEOUT_MS, on_stopped, k);
    if (rc != 0) {
        k->op_pending = 0;
        BAIC_LOG_W("kernel_stop_failed", "kernel=%s error=\"%s\"", k->id, baic_strerror(rc));
        kernel_do_destroy(k);
    }
}

static void kernel_failed(agent_kernel_t *k, const char *msg) {
    snprintf(k->reason, sizeof k->reason, "failed-to-start");
    snprintf(k->msg, sizeof k->msg, "%s", msg);
    BAIC_LOG_E("kernel_failed", "kernel=%s session=%s msg=\"%s\"", k->id, k->session_id, msg);
    kernel_teardown(k);
}

static void kernel_publish_started(agent_kernel_t *k) {
    k->state = KS_RUNNING;
    k->started_sent = 1;
    if (k->restarting)
        BAIC_LOG_I("kernel_restarted", "kernel=%s session=%s", k->id, k->session_id);
    k->restarting = 0;
    agent_record_save(k);
    json_t *body = kernel_event_body(k);
    json_object_set_new(body, "container_id", json_string(k->id));
    json_object_set_new(body, "service_ports", json_array());
    BAIC_LOG_I("kernel_started", "kernel=%s session=%s runner=%d", k->id, k->session_id,
               k->use_runner);
    agent_publish(k->a, "kernel_started", body);
}

static void on_started(void *arg, int status) {
    agent_kernel_t *k = arg;
    k->op_pending = 0;
    if (status != 0 && !k->stop_wanted) {
        char msg[160];
        snprintf(msg, sizeof msg, "runtime start: %s", baic_strerror(status));
        kernel_failed(k, msg);
        return;
    }
    if (status == 0) {
        if (k->use_runner && !k->stop_wanted && !k->exited) {
            /* RUNNING once the runner said hello (agent_kernel_runner_ready). */
            agent_record_save(k);
            int rc = agent_runner_attach(k);
            if (rc != 0) {
                char msg[160];
                snprintf(msg, sizeof msg, "kernel runner: %s", baic_strerror(rc));
                kernel_failed(k, msg);
            }
            return;
        }
        kernel_publish_started(k);
    }
    if (k->stop_wanted || k->exited)
        kernel_teardown(k);
}

void agent_kernel_runner_ready(agent_kernel_t *k) {
    if (k->state != KS_CREATING || k->op_pending || k->stop_wanted)
        return; /* an adopted kernel that was RUNNING already, or one on its way out */
    kernel_publish_started(k);
}

void agent_kernel_runner_failed(agent_kernel_t *k, const char *msg) {
    if (k->started_sent) {
        BAIC_LOG_W("runner_unreachable", "kernel=%s msg=\"%s\"", k->id, msg);
        return;
    }
    if (k->state != KS_CREATING || k->op_pending || k->stop_wanted)
        return;
    kernel_failed(k, msg);
}

static void kernel_start(agent_kernel_t *k) {
    agent_t *a = k->a;
    k->op_pending = 1;
    int rc = a->rt->start(a->runtime->state, k->id, on_started, k);
    if (rc != 0) {
        k->op_pending = 0;
        char msg[160];
        snprintf(msg, sizeof msg, "runtime start: %s", baic_strerror(rc));
        kernel_failed(k, msg);
    }
}

static void on_created(void *arg, int status) {
    agent_kernel_t *k = arg;
    k->op_pending = 0;
    if (status != 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "runtime create: %s", baic_strerror(status));
        if (k->stop_wanted)
            kernel_teardown(k);
        else
            kernel_failed(k, msg);
        return;
    }
    k->created = 1;
    agent_record_save(k);
    if (k->stop_wanted) {
        kernel_teardown(k);
        return;
    }
    kernel_start(k);
}

/* Creation begins on a later loop turn, after the 202 went out. */
static void kernel_begin(agent_kernel_t *k) {
    agent_t *a = k->a;
    char msg[160];
    if (k->stop_wanted) {
        kernel_teardown(k);
        return;
    }
    /* The runtime pulls a missing image inside create; PULLING is reported first so
     * the manager's deadline for the slow part starts now. */
    k->state = KS_PULLING;
    json_t *body = kernel_event_body(k);
    json_object_set_new(body, "image", json_string(k->image));
    agent_publish(a, "kernel_pulling", body);
    k->state = KS_CREATING;
    agent_publish(a, "kernel_creating", kernel_event_body(k));
    agent_record_save(k);
    k->op_pending = 1;
    int rc = agent_spec_create(k, on_created, msg, sizeof msg);
    if (rc != 0) {
        k->op_pending = 0;
        kernel_failed(k, msg);
    }
}

static void on_begin_timer(uv_timer_t *t) {
    agent_t *a = t->data;
    /* Every kernel still PREPARING and not yet handed over gets its turn; finished
     * batch kernels end (here, not inside the runner's read callback). */
    for (agent_kernel_t *k = a->kernels, *next; k != NULL; k = next) {
        next = k->next;
        if (k->state == KS_PREPARING && !k->op_pending)
            kernel_begin(k);
        else if (k->batch_done && !k->stop_wanted && k->state != KS_TERMINATING)
            agent_kernel_destroy(k, "task-finished");
    }
}

void agent_kernel_launch(agent_kernel_t *k) {
    agent_t *a = k->a;
    k->next = a->kernels;
    a->kernels = k;
    a->nkernels++;
    agent_record_save(k);
    BAIC_LOG_I("kernel_accepted", "kernel=%s session=%s image=%s", k->id, k->session_id,
               k->image);
    a->begin_timer.data = a;
    uv_timer_start(&a->begin_timer, on_begin_timer, 0, 0);
}

void agent_kernel_destroy(agent_kernel_t *k, const char *reason) {
    if (k->state == KS_TERMINATING || k->stop_wanted)
        return; /* already on its way out */
    snprintf(k->reason, sizeof k->reason, "%s", reason);
    k->stop_wanted = 1;
    BAIC_LOG_I("kernel_destroying", "kernel=%s session=%s reason=%s", k->id, k->session_id,
               reason);
    if (k->op_pending || k->state == KS_PREPARING)
        return; /* the completion (or kernel_begin) sees stop_wanted */
    kernel_teardown(k);
}

void agent_kernel_on_rt_event(void *arg, const baic_rt_event_t *ev) {
    agent_t *a = arg;
    agent_kernel_t *k = ev->id ? agent_kernel_find(a, ev->id) : NULL;
    if (k == NULL)
        return;
    if (ev->type == BAIC_RT_EV_OOM) {
        k->oom = 1;
        BAIC_LOG_W("kernel_oom", "kernel=%s session=%s", k->id, k->session_id);
        return;
    }
    if (ev->type != BAIC_RT_EV_EXIT || k->exited)
        return;
    k->exited = 1;
    k->exit_code = ev->exit_code;
    if (k->use_runner && !k->started_sent && k->reason[0] == '\0' && !k->stop_wanted) {
        snprintf(k->reason, sizeof k->reason, "failed-to-start");
        snprintf(k->msg, sizeof k->msg, "the container exited before its kernel runner said hello");
    }
    BAIC_LOG_I("kernel_exited", "kernel=%s session=%s exit_code=%d", k->id, k->session_id,
               ev->exit_code);
    if (k->op_pending || k->state == KS_TERMINATING)
        return; /* our own stop, or the op's completion handles it */
    kernel_teardown(k);
}

/* ---- restart ---- */

/*
 * A restart runs stop, destroy, create and start as one chain of runtime ops with
 * op_pending held throughout, so an EXIT event or a destroy request meanwhile is only
 * noted (exited, stop_wanted) and acted on between the steps.
 */

static void on_restart_destroyed(void *arg, int status) {
    agent_kernel_t *k = arg;
    k->op_pending = 0;
    if (status != 0)
        BAIC_LOG_W("kernel_restart_destroy_failed", "kernel=%s error=\"%s\"", k->id,
                   baic_strerror(status));
    /* A fresh container: nothing of the old one counts any more. */
    k->created = 0;
    k->exited = 0;
    k->exit_code = 0;
    k->oom = 0;
    k->started_sent = 0;
    if (k->stop_wanted) {
        k->restarting = 0;
        kernel_teardown(k);
        return;
    }
    agent_record_save(k);
    char msg[160];
    k->op_pending = 1;
    int rc = agent_spec_create(k, on_created, msg, sizeof msg);
    if (rc != 0) {
        k->op_pending = 0;
        k->restarting = 0;
        kernel_failed(k, msg);
    }
}

static void on_restart_stopped(void *arg, int status) {
    agent_kernel_t *k = arg;
    agent_t *a = k->a;
    k->op_pending = 0;
    if (status != 0)
        BAIC_LOG_W("kernel_restart_stop_failed", "kernel=%s error=\"%s\"", k->id,
                   baic_strerror(status));
    if (k->stop_wanted) {
        k->restarting = 0;
        kernel_teardown(k);
        return;
    }
    k->op_pending = 1;
    int rc = a->rt->destroy(a->runtime->state, k->id, on_restart_destroyed, k);
    if (rc != 0) {
        k->op_pending = 0;
        if (rc == BAIC_ENOT_FOUND) {
            on_restart_destroyed(k, 0);
            return;
        }
        char msg[160];
        snprintf(msg, sizeof msg, "restart: runtime destroy: %s", baic_strerror(rc));
        k->restarting = 0;
        kernel_failed(k, msg);
    }
}

int agent_kernel_restart(agent_kernel_t *k, char *msg, size_t msglen) {
    agent_t *a = k->a;
    if (k->state != KS_RUNNING || k->op_pending || k->stop_wanted || k->restarting ||
        k->batch_done) {
        snprintf(msg, msglen, "kernel %s is %s%s", k->id, agent_kstate_name(k->state),
                 k->restarting ? " (restarting)" : k->op_pending ? " (busy)" : "");
        return UV_EBUSY;
    }
    if (k->create == NULL || !k->created) {
        snprintf(msg, msglen, "kernel %s was adopted without its creation request", k->id);
        return BAIC_ENOT_SUPPORTED;
    }
    BAIC_LOG_I("kernel_restarting", "kernel=%s session=%s", k->id, k->session_id);
    k->restarting = 1;
    k->state = KS_CREATING; /* RUNNING again once the new runner says hello */
    if (k->runner != NULL)
        agent_runner_detach(k); /* relayed calls in flight are answered now */
    agent_record_save(k);
    k->op_pending = 1;
    int rc = k->exited ? UV_EALREADY
                       : a->rt->stop(a->runtime->state, k->id, STOP_TIMEOUT_MS,
                                     on_restart_stopped, k);
    if (rc != 0) {
        k->op_pending = 0;
        on_restart_stopped(k, rc == UV_EALREADY ? 0 : rc);
    }
    return 0;
}

const char *agent_kernel_session_type(const agent_kernel_t *k) {
    const char *t = json_string_value(
        json_object_get(json_object_get(k->create, "kernel"), "session_type"));
    return t != NULL ? t : "interactive";
}

void agent_kernel_startup_finished(agent_kernel_t *k, int exit_code) {
    if (k->batch_done || strcmp(agent_kernel_session_type(k), "batch") != 0)
        return;
    k->batch_done = 1;
    k->batch_code = exit_code;
    BAIC_LOG_I("batch_finished", "kernel=%s session=%s exit_code=%d", k->id, k->session_id,
               exit_code);
    agent_t *a = k->a;
    a->begin_timer.data = a;
    uv_timer_start(&a->begin_timer, on_begin_timer, 0, 0);
}

/* ---- accepting a kernel ---- */

static int kernel_id_ok(const char *id) {
    size_t n = strlen(id);
    if (n == 0 || n > 64 || id[0] == '.' || id[0] == '-')
        return 0;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
            return 0;
    return 1;
}

/* Books k->slots on every compute plugin that declares one of them; all or nothing. */
static int kernel_allocate(agent_kernel_t *k, char *msg, size_t msglen) {
    agent_t *a = k->a;
    baic_slot_t *v = calloc(a->nslots ? a->nslots : 1, sizeof *v);
    if (v == NULL)
        return UV_ENOMEM;
    int rc = 0;
    for (size_t p = 0; rc == 0 && p < a->ncompute; p++) {
        size_t n = 0;
        for (size_t i = 0; i < a->nslots; i++) { /* a->slots is sorted: so is v */
            const char *s = json_string_value(json_object_get(k->slots, a->slots[i].name));
            int64_t amount = 0;
            if (a->slots[i].plugin != p || s == NULL)
                continue;
            agent_slot_parse(s, a->slots[i].type, &amount);
            if (amount > 0)
                v[n++] = (baic_slot_t){a->slots[i].name, amount};
        }
        if (n == 0)
            continue;
        baic_compute_request_t req = {sizeof req, k->id, k->session_id, {v, n}, NULL, 0};
        const baic_compute_ops_t *ops = a->compute[p]->ops;
        rc = ops->allocate(a->compute[p]->state, &req, &k->allocs[p]);
        if (rc != 0) {
            k->allocs[p] = NULL;
            snprintf(msg, msglen, "%s: %s", a->compute[p]->id, baic_strerror(rc));
        }
    }
    free(v);
    if (rc != 0)
        kernel_free_allocs(k);
    return rc;
}

/* One cluster member's view of the whole request, for the BACKENDAI_CLUSTER_* vars. */
static json_t *cluster_facts(const json_t *session, size_t idx) {
    const json_t *kernels = json_object_get(session, "kernels");
    size_t n = json_array_size(kernels), subs = 0;
    char hosts[2048] = "", replicas[64];
    for (size_t i = 0; i < n; i++) {
        const json_t *ks = json_array_get(kernels, i);
        const char *h = json_string_value(json_object_get(ks, "cluster_hostname"));
        const char *role = json_string_value(json_object_get(ks, "cluster_role"));
        size_t used = strlen(hosts);
        snprintf(hosts + used, sizeof hosts - used, "%s%s", i ? "," : "", h ? h : "");
        subs += role != NULL && strcmp(role, "main") != 0;
    }
    snprintf(replicas, sizeof replicas, "main:%zu,sub:%zu", n - subs, subs);
    json_t *c = json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?, s:I, s:I, s:s, s:s}", "session_name",
                          json_object_get(session, "session_name"), "access_key",
                          json_object_get(session, "access_key"), "user_uuid",
                          json_object_get(session, "user_uuid"), "user_name",
                          json_object_get(session, "user_name"), "user_email",
                          json_object_get(session, "user_email"), "cluster_size", (json_int_t)n,
                          "local_rank", (json_int_t)idx, "cluster_hosts", hosts,
                          "cluster_replicas", replicas);
    if (c != NULL && json_is_integer(json_object_get(session, "cluster_size")))
        json_object_set(c, "cluster_size", json_object_get(session, "cluster_size"));
    /* A cluster spread over agents: the manager's list names every member. */
    const json_t *cl = json_object_get(session, "cluster");
    if (c != NULL && json_is_object(cl) && json_is_array(json_object_get(cl, "hosts"))) {
        size_t i, m = 0;
        const json_t *h;
        hosts[0] = '\0';
        subs = 0;
        json_array_foreach(json_object_get(cl, "hosts"), i, h) {
            const char *hn = json_string_value(json_object_get(h, "hostname"));
            const char *role = json_string_value(json_object_get(h, "role"));
            size_t used = strlen(hosts);
            snprintf(hosts + used, sizeof hosts - used, "%s%s", m++ ? "," : "", hn ? hn : "");
            subs += role != NULL && strcmp(role, "main") != 0;
        }
        snprintf(replicas, sizeof replicas, "main:%zu,sub:%zu", m - subs, subs);
        json_object_set_new(c, "cluster_hosts", json_string(hosts));
        json_object_set_new(c, "cluster_replicas", json_string(replicas));
        json_object_set_new(c, "cluster_size", json_integer((json_int_t)m));
        json_object_set(c, "cluster", (json_t *)cl);
    }
    return c;
}

int agent_kernel_prepare(agent_t *a, const json_t *session, const json_t *kspec, size_t idx,
                         agent_kernel_t **out, char *msg, size_t msglen) {
    const char *kid = NULL, *canonical = NULL, *role = NULL, *host = NULL, *startup = NULL,
               *bootstrap = NULL;
    json_t *slots = NULL, *environ = NULL;
    json_int_t cidx = 0;
    json_error_t jerr;
    /* Unknown members are tolerated, so a newer manager can add fields. */
    if (json_unpack_ex((json_t *)kspec, &jerr, 0,
                       "{s:s, s:{s:s}, s:o, s?o, s:s, s:I, s:s, s?s, s?s}", "kernel_id", &kid,
                       "image", "canonical", &canonical, "resource_slots", &slots, "environ",
                       &environ, "cluster_role", &role, "cluster_idx", &cidx,
                       "cluster_hostname", &host, "startup_command", &startup,
                       "bootstrap_script", &bootstrap) != 0) {
        snprintf(msg, msglen, "kernels[%zu]: %s", idx, jerr.text);
        return BAIC_EBAD_INPUT;
    }
    if (!kernel_id_ok(kid)) {
        snprintf(msg, msglen, "kernels[%zu].kernel_id: not a valid id", idx);
        return BAIC_EBAD_INPUT;
    }
    if (agent_kernel_find(a, kid) != NULL) {
        snprintf(msg, msglen, "kernel %s exists on this agent", kid);
        return BAIC_EEXISTS;
    }
    if (!json_is_object(slots) || (environ != NULL && !json_is_object(environ))) {
        snprintf(msg, msglen, "kernels[%zu]: resource_slots and environ must be objects", idx);
        return BAIC_EBAD_INPUT;
    }
    const char *name;
    json_t *v;
    json_object_foreach(environ, name, v) {
        if (!json_is_string(v)) {
            snprintf(msg, msglen, "kernels[%zu].environ.%s: expected string", idx, name);
            return BAIC_EBAD_INPUT;
        }
    }
    /* Amounts are normalised to decimal strings in the slot's own scale. */
    json_t *norm = json_object();
    int enores = 0;
    json_object_foreach(slots, name, v) {
        const agent_slot_t *s = agent_slot_find(a, name);
        int64_t amount = 0;
        char buf[64];
        const char *str = json_string_value(v);
        if (json_is_integer(v)) {
            snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            str = buf;
        }
        if (str == NULL ||
            agent_slot_parse(str, s ? s->type : BAIC_SLOT_COUNT, &amount) != 0) {
            snprintf(msg, msglen, "kernels[%zu].resource_slots.%s: expected a decimal string",
                     idx, name);
            json_decref(norm);
            return BAIC_EBAD_INPUT;
        }
        if (s == NULL) {
            if (amount > 0 && !enores) {
                snprintf(msg, msglen, "slot %s is not offered by this agent", name);
                enores = 1;
            }
            continue;
        }
        agent_slot_format(amount, s->type, buf, sizeof buf);
        json_object_set_new(norm, name, json_string(buf));
    }
    if (enores) {
        json_decref(norm);
        return BAIC_ENO_RESOURCES;
    }
    agent_kernel_t *k = calloc(1, sizeof *k);
    if (k == NULL) {
        json_decref(norm);
        return UV_ENOMEM;
    }
    k->a = a;
    k->id = strdup(kid);
    k->session_id = strdup(json_string_value(json_object_get(session, "session_id")));
    k->image = strdup(canonical);
    k->slots = norm;
    k->allocs = calloc(a->ncompute ? a->ncompute : 1, sizeof *k->allocs);
    k->create = cluster_facts(session, idx);
    if (k->id == NULL || k->session_id == NULL || k->image == NULL || k->allocs == NULL ||
        k->create == NULL) {
        kernel_free(k);
        return UV_ENOMEM;
    }
    json_object_set(k->create, "kernel", (json_t *)kspec);
    int rc = kernel_allocate(k, msg, msglen);
    if (rc != 0) {
        kernel_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

/* ---- recovery ---- */

int agent_kernel_adopt(agent_t *a, const json_t *rec, const baic_rt_info_t *info) {
    agent_kernel_t *k = calloc(1, sizeof *k);
    if (k == NULL)
        return UV_ENOMEM;
    k->a = a;
    k->id = strdup(json_string_value(json_object_get(rec, "kernel_id")));
    k->session_id = strdup(json_string_value(json_object_get(rec, "session_id")));
    const char *img = json_string_value(json_object_get(rec, "image"));
    k->image = strdup(img ? img : "");
    k->slots = json_object_get(rec, "resource_slots");
    k->slots = json_is_object(k->slots) ? json_incref(k->slots) : json_object();
    k->allocs = calloc(a->ncompute ? a->ncompute : 1, sizeof *k->allocs);
    k->created = 1;
    json_t *create = json_object_get(rec, "create");
    k->create = json_is_object(create) ? json_incref(create) : NULL;
    k->use_runner = json_is_true(json_object_get(rec, "runner"));
    k->started_sent = json_is_true(json_object_get(rec, "started")) ||
                      !k->use_runner; /* older records: RUNNING meant started */
    if (k->id == NULL || k->session_id == NULL || k->image == NULL || k->allocs == NULL) {
        kernel_free(k);
        return UV_ENOMEM;
    }
    /* Re-book what the kernel held, so the devices are not handed out twice. */
    const json_t *allocs = json_object_get(rec, "allocs");
    for (size_t p = 0; p < a->ncompute; p++) {
        const json_t *desc = json_object_get(allocs, a->compute[p]->id);
        const baic_compute_ops_t *ops = a->compute[p]->ops;
        int rc;
        if (desc == NULL)
            continue;
        if (!json_is_null(desc) && ops->alloc_from_json != NULL) {
            rc = ops->alloc_from_json(a->compute[p]->state, k->id, desc, &k->allocs[p]);
        } else {
            rc = BAIC_ENOT_SUPPORTED;
        }
        if (rc != 0) {
            k->allocs[p] = NULL;
            BAIC_LOG_E("rebook_failed", "kernel=%s plugin=%s error=\"%s\"", k->id,
                       a->compute[p]->id, baic_strerror(rc));
        }
    }
    k->next = a->kernels;
    a->kernels = k;
    a->nkernels++;
    BAIC_LOG_I("kernel_adopted", "kernel=%s session=%s runtime_state=%d", k->id, k->session_id,
               (int)info->state);
    switch (info->state) {
    case BAIC_RT_RUNNING:
        k->state = k->started_sent ? KS_RUNNING : KS_CREATING;
        agent_record_save(k);
        if (k->use_runner) {
            /* Connect again and wait for hello; kernel_started follows if it never went. */
            int rc = agent_runner_attach(k);
            if (rc != 0)
                BAIC_LOG_W("runner_attach_failed", "kernel=%s error=\"%s\"", k->id,
                           baic_strerror(rc));
        }
        break;
    case BAIC_RT_CREATED:
        /* The agent died between create and start: finish what it began. */
        k->state = KS_CREATING;
        agent_record_save(k);
        kernel_start(k);
        break;
    default:
        k->exited = 1;
        k->exit_code = info->exit_code;
        k->oom = info->oom_killed;
        kernel_teardown(k);
        break;
    }
    return 0;
}
