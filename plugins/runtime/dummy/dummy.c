/* SPDX-License-Identifier: Apache-2.0 */
/* runtime/dummy: containers that exist only in memory, with configurable delays, for scale tests. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <baic/host.h>
#include <baic/runtime.h>

/*
 * Config ([plugin."runtime/dummy"]), all optional, delays in milliseconds:
 *   create_delay_ms, start_delay_ms, stop_delay_ms, destroy_delay_ms   0
 *   run_ms          a started container exits on its own after this long; 0 = never
 *   exit_code       the code of such an exit                            0
 * A container's env may override per kernel:
 *   BAIC_DUMMY_RUN_MS=<ms>, BAIC_DUMMY_EXIT_CODE=<n>,
 *   BAIC_DUMMY_FAIL=create|start|stop|destroy   (that op completes with BAIC_EBACKEND)
 *
 * Nothing runs and nothing sleeps: every delay is a host timer, and even a zero
 * delay completes on a later loop turn, as the runtime contract requires. A
 * container costs one small record in a hash table plus a timer only while an
 * op or a timed exit is pending, so tens of thousands are cheap. Stop sends no
 * signal: a stop slower than its timeout ends "killed" (exit 137) at the timeout,
 * otherwise "terminated" (143). State lives in this process only; list reports it
 * for the agent's recovery path within one plugin lifetime.
 */

enum dummy_op { OP_NONE, OP_CREATE, OP_START, OP_STOP, OP_DESTROY };
static const char *const dummy_op_names[] = {"none", "create", "start", "stop", "destroy"};

typedef struct dummy_state dummy_state_t;

typedef struct dummy_ctr {
    dummy_state_t *st;
    struct dummy_ctr *next;   /* hash chain */
    char *id;
    char **labels;            /* NULL-terminated copy of spec->labels */
    baic_rt_info_t info;
    int created;              /* create completed: list shows it */
    int fail_op;              /* enum dummy_op that must fail, or OP_NONE */
    uint64_t run_ms;
    int exit_code;
    /* the one pending op */
    int op;
    baic_timer_t *op_timer;
    baic_rt_done_cb op_cb;
    void *op_arg;
    int op_exit;              /* stop: the exit code it ends with */
    baic_rt_done_cb cancel_cb; /* a start a stop overtook: told BAIC_ECANCELLED first */
    void *cancel_arg;
    baic_timer_t *run_timer;  /* timed exit */
} dummy_ctr_t;

/* list/stats/exec completions waiting for their loop turn. */
enum dummy_later_kind { LATER_LIST, LATER_STATS, LATER_EXEC };
typedef struct dummy_later {
    dummy_state_t *st;
    struct dummy_later *prev, *next;
    int kind;
    baic_timer_t *timer;
    void *arg;
    baic_rt_list_cb list_cb;
    baic_rt_stats_cb stats_cb;
    baic_rt_exec_cb exec_cb;
} dummy_later_t;

struct dummy_state {
    const baic_host_t *host;
    uint64_t delay[5];        /* per enum dummy_op */
    uint64_t run_ms;
    int exit_code;
    dummy_ctr_t **buckets;
    size_t nbuckets, count;
    dummy_later_t *laters;
    baic_rt_event_cb watch_cb;
    void *watch_arg;
};

/* ---- the table ---- */

static size_t dummy_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)h;
}

static dummy_ctr_t *dummy_find(dummy_state_t *st, const char *id) {
    if (id == NULL)
        return NULL;
    for (dummy_ctr_t *c = st->buckets[dummy_hash(id) & (st->nbuckets - 1)]; c; c = c->next)
        if (strcmp(c->id, id) == 0)
            return c;
    return NULL;
}

static int dummy_grow(dummy_state_t *st) {
    size_t n = st->nbuckets * 2;
    dummy_ctr_t **b = st->host->calloc(n, sizeof *b);
    if (b == NULL)
        return UV_ENOMEM;
    for (size_t i = 0; i < st->nbuckets; i++) {
        while (st->buckets[i] != NULL) {
            dummy_ctr_t *c = st->buckets[i];
            st->buckets[i] = c->next;
            size_t k = dummy_hash(c->id) & (n - 1);
            c->next = b[k];
            b[k] = c;
        }
    }
    st->host->free(st->buckets);
    st->buckets = b;
    st->nbuckets = n;
    return 0;
}

static void dummy_publish_count(dummy_state_t *st) {
    st->host->metric_set(st->host, "baic_dummy_containers", "Containers the dummy runtime holds",
                         NULL, (double)st->count);
}

static void dummy_ctr_free(dummy_state_t *st, dummy_ctr_t *c) {
    const baic_host_t *h = st->host;
    if (c->op_timer != NULL)
        h->timer_stop(h, c->op_timer);
    if (c->run_timer != NULL)
        h->timer_stop(h, c->run_timer);
    for (size_t i = 0; c->labels != NULL && c->labels[i] != NULL; i++)
        h->free(c->labels[i]);
    h->free(c->labels);
    h->free(c->id);
    h->free(c);
}

static void dummy_remove(dummy_state_t *st, dummy_ctr_t *c) {
    for (dummy_ctr_t **pp = &st->buckets[dummy_hash(c->id) & (st->nbuckets - 1)]; *pp;
         pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    st->count--;
    dummy_ctr_free(st, c);
    dummy_publish_count(st);
}

/* ---- events and timers ---- */

static void dummy_emit(dummy_state_t *st, const char *id, int exit_code) {
    if (st->watch_cb == NULL)
        return;
    baic_rt_event_t ev = {sizeof ev, BAIC_RT_EV_EXIT, id, exit_code};
    st->watch_cb(st->watch_arg, &ev);
}

static int64_t dummy_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Marks c exited and tells the watcher; c may be gone when this returns (the
 * watcher may destroy it), so callers touch nothing of c afterwards. */
static void dummy_exit(dummy_state_t *st, dummy_ctr_t *c, int code) {
    char id[256];
    if (c->run_timer != NULL) {
        st->host->timer_stop(st->host, c->run_timer);
        c->run_timer = NULL;
    }
    c->info.state = BAIC_RT_EXITED;
    c->info.exit_code = code;
    snprintf(id, sizeof id, "%s", c->id);
    dummy_emit(st, id, code);
}

static void dummy_run_expired(baic_timer_t *t, void *arg) {
    dummy_ctr_t *c = arg;
    dummy_exit(c->st, c, c->exit_code);
}

static int dummy_start_run_timer(dummy_state_t *st, dummy_ctr_t *c) {
    if (c->run_ms == 0)
        return 0;
    return st->host->timer_start(st->host, c->run_ms, 0, dummy_run_expired, c, &c->run_timer);
}

static void dummy_op_fire(baic_timer_t *t, void *arg) {
    dummy_ctr_t *c = arg;
    dummy_state_t *st = c->st;
    baic_rt_done_cb cb = c->op_cb;
    void *cb_arg = c->op_arg;
    baic_rt_done_cb cancel_cb = c->cancel_cb;
    void *cancel_arg = c->cancel_arg;
    int op = c->op, status = 0;
    st->host->timer_stop(st->host, c->op_timer);
    c->op_timer = NULL;
    c->op = OP_NONE;
    c->cancel_cb = NULL;
    if (cancel_cb != NULL)
        cancel_cb(cancel_arg, BAIC_ECANCELLED);
    if (c->fail_op == op && op != OP_NONE) {
        status = BAIC_EBACKEND;
        if (op == OP_CREATE)
            dummy_remove(st, c);
        cb(cb_arg, status);
        return;
    }
    switch (op) {
    case OP_CREATE:
        c->created = 1;
        c->info.state = BAIC_RT_CREATED;
        break;
    case OP_START:
        c->info.state = BAIC_RT_RUNNING;
        c->info.started_at_ms = dummy_wall_ms();
        c->info.exit_code = 0;
        status = dummy_start_run_timer(st, c);
        if (status != 0)
            c->info.state = BAIC_RT_CREATED;
        break;
    case OP_STOP:
        if (c->info.state == BAIC_RT_RUNNING)
            dummy_exit(st, c, c->op_exit); /* c may be gone now */
        break;
    case OP_DESTROY:
        dummy_remove(st, c);
        break;
    }
    cb(cb_arg, status);
}

/* Queues op on c to complete after delay_ms. Returns 0 or a code (nothing queued). */
static int dummy_queue_op(dummy_state_t *st, dummy_ctr_t *c, int op, uint64_t delay_ms,
                          baic_rt_done_cb cb, void *arg) {
    if (cb == NULL)
        return BAIC_EBAD_INPUT;
    int rc = st->host->timer_start(st->host, delay_ms, 0, dummy_op_fire, c, &c->op_timer);
    if (rc != 0)
        return rc;
    c->op = op;
    c->op_cb = cb;
    c->op_arg = arg;
    return 0;
}

/* ---- life cycle ---- */

static void dummy_fini(void *state) {
    dummy_state_t *st = state;
    const baic_host_t *h = st->host;
    /* Pending completions are dropped, not called: the agent is going away too. */
    while (st->laters != NULL) {
        dummy_later_t *l = st->laters;
        st->laters = l->next;
        h->timer_stop(h, l->timer);
        h->free(l);
    }
    for (size_t i = 0; st->buckets != NULL && i < st->nbuckets; i++) {
        while (st->buckets[i] != NULL) {
            dummy_ctr_t *c = st->buckets[i];
            st->buckets[i] = c->next;
            dummy_ctr_free(st, c);
        }
    }
    h->free(st->buckets);
    h->free(st);
}

static int dummy_conf_u64(const baic_host_t *h, const json_t *conf, const char *key,
                          uint64_t *out) {
    const json_t *v = json_object_get(conf, key);
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        h->log(h, BAIC_LOG_ERROR, "bad_config", "key=%s reason=\"want milliseconds >= 0\"", key);
        return BAIC_ECONFIG_TYPE;
    }
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int dummy_init(const baic_host_t *host, const json_t *conf, void **state) {
    dummy_state_t *st = host->calloc(1, sizeof *st);
    if (st == NULL)
        return UV_ENOMEM;
    st->host = host;
    st->nbuckets = 64;
    st->buckets = host->calloc(st->nbuckets, sizeof *st->buckets);
    int rc = st->buckets ? 0 : UV_ENOMEM;
    if (rc == 0 && conf != NULL && !json_is_object(conf)) {
        host->log(host, BAIC_LOG_ERROR, "bad_config", "key=plugin reason=\"want a table\"");
        rc = BAIC_ECONFIG_TYPE;
    }
    if (rc == 0)
        rc = dummy_conf_u64(host, conf, "create_delay_ms", &st->delay[OP_CREATE]);
    if (rc == 0)
        rc = dummy_conf_u64(host, conf, "start_delay_ms", &st->delay[OP_START]);
    if (rc == 0)
        rc = dummy_conf_u64(host, conf, "stop_delay_ms", &st->delay[OP_STOP]);
    if (rc == 0)
        rc = dummy_conf_u64(host, conf, "destroy_delay_ms", &st->delay[OP_DESTROY]);
    if (rc == 0)
        rc = dummy_conf_u64(host, conf, "run_ms", &st->run_ms);
    const json_t *v = json_object_get(conf, "exit_code");
    if (rc == 0 && v != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 255) {
            host->log(host, BAIC_LOG_ERROR, "bad_config", "key=exit_code reason=\"want 0..255\"");
            rc = BAIC_ECONFIG_TYPE;
        } else {
            st->exit_code = (int)json_integer_value(v);
        }
    }
    if (rc != 0) {
        dummy_fini(st);
        return rc;
    }
    host->log(host, BAIC_LOG_INFO, "ready",
              "create_ms=%" PRIu64 " start_ms=%" PRIu64 " stop_ms=%" PRIu64
              " destroy_ms=%" PRIu64 " run_ms=%" PRIu64,
              st->delay[OP_CREATE], st->delay[OP_START], st->delay[OP_STOP],
              st->delay[OP_DESTROY], st->run_ms);
    *state = st;
    return 0;
}

/* ---- ops ---- */

static const char *dummy_env(const baic_container_spec_t *spec, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; spec->env != NULL && spec->env[i] != NULL; i++)
        if (strncmp(spec->env[i], name, n) == 0 && spec->env[i][n] == '=')
            return spec->env[i] + n + 1;
    return NULL;
}

static char *dummy_strdup(const baic_host_t *h, const char *s) {
    size_t n = strlen(s) + 1;
    char *p = h->alloc(n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

static int dummy_create(void *state, const baic_container_spec_t *spec, baic_rt_done_cb cb,
                        void *arg) {
    dummy_state_t *st = state;
    const baic_host_t *h = st->host;
    if (spec == NULL || spec->id == NULL || spec->id[0] == '\0' || cb == NULL)
        return BAIC_EBAD_INPUT;
    if (dummy_find(st, spec->id) != NULL)
        return BAIC_EEXISTS;
    if (st->count >= st->nbuckets && dummy_grow(st) != 0)
        return UV_ENOMEM;
    dummy_ctr_t *c = h->calloc(1, sizeof *c);
    if (c == NULL)
        return UV_ENOMEM;
    c->st = st;
    c->id = dummy_strdup(h, spec->id);
    size_t nl = 0;
    while (spec->labels != NULL && spec->labels[nl] != NULL)
        nl++;
    c->labels = h->calloc(nl + 1, sizeof *c->labels);
    int rc = c->id && c->labels ? 0 : UV_ENOMEM;
    for (size_t i = 0; rc == 0 && i < nl; i++)
        if ((c->labels[i] = dummy_strdup(h, spec->labels[i])) == NULL)
            rc = UV_ENOMEM;
    c->run_ms = st->run_ms;
    c->exit_code = st->exit_code;
    const char *e;
    if ((e = dummy_env(spec, "BAIC_DUMMY_RUN_MS")) != NULL)
        c->run_ms = strtoull(e, NULL, 10);
    if ((e = dummy_env(spec, "BAIC_DUMMY_EXIT_CODE")) != NULL)
        c->exit_code = atoi(e) & 0xff;
    if ((e = dummy_env(spec, "BAIC_DUMMY_FAIL")) != NULL)
        for (int op = OP_CREATE; op <= OP_DESTROY; op++)
            if (strcmp(e, dummy_op_names[op]) == 0)
                c->fail_op = op;
    c->info = (baic_rt_info_t){
        .size = sizeof c->info,
        .id = c->id,
        .state = BAIC_RT_UNKNOWN,
        .labels = (const char *const *)c->labels,
    };
    if (rc == 0)
        rc = dummy_queue_op(st, c, OP_CREATE, st->delay[OP_CREATE], cb, arg);
    if (rc != 0) {
        dummy_ctr_free(st, c);
        return rc;
    }
    size_t k = dummy_hash(c->id) & (st->nbuckets - 1);
    c->next = st->buckets[k];
    st->buckets[k] = c;
    st->count++;
    dummy_publish_count(st);
    return 0;
}

/* The container for an op: BAIC_ENOT_FOUND when unknown or still being created. */
static int dummy_lookup(dummy_state_t *st, const char *id, dummy_ctr_t **out) {
    dummy_ctr_t *c = dummy_find(st, id);
    if (c == NULL || !c->created)
        return BAIC_ENOT_FOUND;
    *out = c;
    return 0;
}

static int dummy_start(void *state, const char *id, baic_rt_done_cb cb, void *arg) {
    dummy_state_t *st = state;
    dummy_ctr_t *c;
    int rc = dummy_lookup(st, id, &c);
    if (rc != 0)
        return rc;
    if (c->op != OP_NONE)
        return UV_EBUSY;
    /* Starting a running container is a no-op that still completes later. */
    uint64_t delay = c->info.state == BAIC_RT_RUNNING ? 0 : st->delay[OP_START];
    return dummy_queue_op(st, c, c->info.state == BAIC_RT_RUNNING ? OP_NONE : OP_START, delay,
                          cb, arg);
}

static int dummy_stop(void *state, const char *id, uint64_t timeout_ms, baic_rt_done_cb cb,
                      void *arg) {
    dummy_state_t *st = state;
    dummy_ctr_t *c;
    int rc = dummy_lookup(st, id, &c);
    if (rc != 0)
        return rc;
    if (cb == NULL)
        return BAIC_EBAD_INPUT;
    if (c->op == OP_START) {
        /* Stop wins over a start still in flight, as killing a starting process does;
         * the start learns it when the stop completes, never inside this call. */
        c->cancel_cb = c->op_cb;
        c->cancel_arg = c->op_arg;
        st->host->timer_stop(st->host, c->op_timer);
        c->op_timer = NULL;
        c->op = OP_NONE;
    } else if (c->op != OP_NONE) {
        return UV_EBUSY;
    }
    if (c->info.state != BAIC_RT_RUNNING)
        return dummy_queue_op(st, c, OP_STOP, 0, cb, arg);
    uint64_t delay = st->delay[OP_STOP];
    c->op_exit = 128 + 15; /* SIGTERM */
    if (timeout_ms > 0 && delay > timeout_ms) {
        delay = timeout_ms;
        c->op_exit = 128 + 9; /* SIGKILL after the timeout */
    }
    return dummy_queue_op(st, c, OP_STOP, delay, cb, arg);
}

static int dummy_destroy(void *state, const char *id, baic_rt_done_cb cb, void *arg) {
    dummy_state_t *st = state;
    dummy_ctr_t *c;
    int rc = dummy_lookup(st, id, &c);
    if (rc != 0)
        return rc;
    if (c->op != OP_NONE || c->info.state == BAIC_RT_RUNNING)
        return UV_EBUSY;
    return dummy_queue_op(st, c, OP_DESTROY, st->delay[OP_DESTROY], cb, arg);
}

static int dummy_watch(void *state, baic_rt_event_cb cb, void *arg) {
    dummy_state_t *st = state;
    st->watch_cb = cb;
    st->watch_arg = arg;
    return 0;
}

/* ---- list, stats, exec: answered on the next loop turn ---- */

static void dummy_later_unlink(dummy_state_t *st, dummy_later_t *l) {
    if (l->prev)
        l->prev->next = l->next;
    else
        st->laters = l->next;
    if (l->next)
        l->next->prev = l->prev;
}

static void dummy_later_fire(baic_timer_t *t, void *arg) {
    dummy_later_t *l = arg;
    dummy_state_t *st = l->st;
    const baic_host_t *h = st->host;
    dummy_later_unlink(st, l);
    h->timer_stop(h, l->timer);
    if (l->kind == LATER_LIST) {
        const baic_rt_info_t **items = h->calloc(st->count + 1, sizeof *items);
        size_t n = 0;
        for (size_t i = 0; items != NULL && i < st->nbuckets; i++)
            for (dummy_ctr_t *c = st->buckets[i]; c != NULL; c = c->next)
                if (c->created)
                    items[n++] = &c->info;
        if (items != NULL)
            l->list_cb(l->arg, 0, items, n);
        else
            l->list_cb(l->arg, UV_ENOMEM, NULL, 0);
        h->free(items);
    } else if (l->kind == LATER_STATS) {
        baic_rt_stats_t s = {.size = sizeof s};
        l->stats_cb(l->arg, 0, &s);
    } else {
        l->exec_cb(l->arg, 0, 0, "", 0);
    }
    h->free(l);
}

static int dummy_later(dummy_state_t *st, int kind, void *arg, dummy_later_t **out) {
    const baic_host_t *h = st->host;
    dummy_later_t *l = h->calloc(1, sizeof *l);
    if (l == NULL)
        return UV_ENOMEM;
    l->st = st;
    l->kind = kind;
    l->arg = arg;
    int rc = h->timer_start(h, 0, 0, dummy_later_fire, l, &l->timer);
    if (rc != 0) {
        h->free(l);
        return rc;
    }
    l->next = st->laters;
    if (st->laters)
        st->laters->prev = l;
    st->laters = l;
    *out = l;
    return 0;
}

static int dummy_list(void *state, baic_rt_list_cb cb, void *arg) {
    dummy_later_t *l;
    if (cb == NULL)
        return BAIC_EBAD_INPUT;
    int rc = dummy_later(state, LATER_LIST, arg, &l);
    if (rc == 0)
        l->list_cb = cb;
    return rc;
}

static int dummy_stats(void *state, const char *id, baic_rt_stats_cb cb, void *arg) {
    dummy_ctr_t *c;
    dummy_later_t *l;
    if (cb == NULL)
        return BAIC_EBAD_INPUT;
    int rc = dummy_lookup(state, id, &c);
    if (rc == 0)
        rc = dummy_later(state, LATER_STATS, arg, &l);
    if (rc == 0)
        l->stats_cb = cb;
    return rc;
}

static int dummy_exec(void *state, const char *id, const baic_rt_exec_t *spec,
                      baic_rt_exec_cb cb, void *arg) {
    dummy_ctr_t *c;
    dummy_later_t *l;
    if (cb == NULL || spec == NULL)
        return BAIC_EBAD_INPUT;
    int rc = dummy_lookup(state, id, &c);
    if (rc == 0 && c->info.state != BAIC_RT_RUNNING)
        rc = BAIC_EBAD_INPUT;
    if (rc == 0)
        rc = dummy_later(state, LATER_EXEC, arg, &l);
    if (rc == 0)
        l->exec_cb = cb;
    return rc;
}

static const baic_runtime_ops_t dummy_ops = {
    .create = dummy_create,
    .start = dummy_start,
    .stop = dummy_stop,
    .destroy = dummy_destroy,
    .list = dummy_list,
    .watch = dummy_watch,
    .exec = dummy_exec,
    .stats = dummy_stats,
};

BAIC_PLUGIN_DEFINE(runtime, dummy, "1.0.0", dummy_init, dummy_fini, &dummy_ops)
