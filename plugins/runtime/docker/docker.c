/* SPDX-License-Identifier: Apache-2.0 */
/* runtime/docker: kernels as Docker containers through the Engine API — the plugin's ops and state. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "docker.h"

/*
 * Config ([plugin."runtime/docker"]), all optional:
 *   socket              the daemon's unix socket             "/var/run/docker.sock"
 *   api_version         path prefix of every call             "v1.41" (Docker 20.10)
 *   name_prefix         container name = prefix + kernel id   "baic-"
 *   private_network     NetworkMode of BAIC_RT_NET_PRIVATE    "none" (loopback only)
 *   cap_add             capabilities kept after CapDrop ALL   a small default set
 *   pull                "missing" (create pulls an absent image) or "never"
 *   request_timeout_ms  bound on one API call                 30000
 *
 * Life of a kernel here: create = POST /containers/create (name prefix+id, labels
 * marking it ours), start = POST start, stop = POST stop?t= (the daemon escalates to
 * SIGKILL), destroy = DELETE ?force=1&v=1. Docker keeps all state, so list asks it
 * again (GET /containers/json filtered on our label) and an agent restart loses
 * nothing. Exits and OOM kills come from the /events stream (docker_events.c); a timer
 * on the loop takes them while some kernel runs, and asks the daemon directly while
 * the stream is down.
 */

#define DK_TICK_MS 20
#define DK_RECONCILE_MS 1000

typedef struct dk_waiter {
    baic_rt_done_cb cb;
    void *arg;
    struct dk_waiter *next;
} dk_waiter_t;

typedef struct dk_ctr {
    char id[128];
    char name[192];
    baic_rt_state_t state;
    int busy;                 /* create, start or destroy in flight */
    int starting;
    int exit_pending;         /* an inspect after a die event is in flight */
    int pid, exit_code, oom_killed;
    int64_t started_at_ms;
    char **labels;
    struct dk_ctr *next;
} dk_ctr_t;

typedef struct dk_state {
    const baic_host_t *host;
    dk_conf_t conf;
    dk_ctr_t *ctrs;
    dk_events_t *events;
    baic_timer_t *tick;
    uint64_t last_reconcile_ms;
    int reconciling;
    baic_rt_event_cb ev_cb;
    void *ev_arg;
} dk_state_t;

/* What GET /containers/{name}/json says, reduced to what the runtime reports. */
typedef struct dk_inspect {
    int found;
    char id[128];
    baic_rt_state_t state;
    int pid, exit_code, oom_killed;
    int64_t started_at_ms;
    char **labels;
} dk_inspect_t;

/* ---- helpers ---- */

static void dk_strv_free(char **v) {
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

static char **dk_strv_dup(const char *const *v) {
    size_t n = 0;
    while (v != NULL && v[n] != NULL)
        n++;
    char **d = calloc(n + 1, sizeof *d);
    for (size_t i = 0; d != NULL && i < n; i++) {
        if ((d[i] = strdup(v[i])) == NULL) {
            dk_strv_free(d);
            return NULL;
        }
    }
    return d;
}

static dk_ctr_t *dk_find(dk_state_t *st, const char *id) {
    for (dk_ctr_t *c = st->ctrs; c != NULL; c = c->next)
        if (strcmp(c->id, id) == 0)
            return c;
    return NULL;
}

static void dk_unlink(dk_state_t *st, dk_ctr_t *c) {
    for (dk_ctr_t **pp = &st->ctrs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            return;
        }
    }
}

static void dk_ctr_free(dk_ctr_t *c) {
    dk_strv_free(c->labels);
    free(c);
}

/* Kernel ids become container names and URL path segments: keep them plain. */
static int dk_valid_id(const char *id) {
    size_t n = id != NULL ? strlen(id) : 0;
    if (n == 0 || n > 100)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return 0;
    }
    return id[0] != '.' && id[0] != '-';
}

static void dk_emit(dk_state_t *st, baic_rt_event_type_t type, const char *id, int code) {
    if (st->ev_cb == NULL)
        return;
    baic_rt_event_t ev = {.size = sizeof ev, .type = type, .id = id, .exit_code = code};
    st->ev_cb(st->ev_arg, &ev);
}

static void dk_mark_oom(dk_state_t *st, dk_ctr_t *c, const char *source) {
    c->oom_killed = 1;
    st->host->log(st->host, BAIC_LOG_WARN, "container_oom", "kernel=%s source=%s", c->id, source);
    dk_emit(st, BAIC_RT_EV_OOM, c->id, 0);
}

/* Idempotent: the die event, stop and a reconcile may all learn of one exit. An OOM
 * only inspect saw (its event was missed) is reported before the exit. */
static void dk_mark_exited(dk_state_t *st, dk_ctr_t *c, int code, int oom) {
    if (oom && !c->oom_killed)
        dk_mark_oom(st, c, "inspect");
    if (c->state == BAIC_RT_EXITED)
        return;
    c->state = BAIC_RT_EXITED;
    c->exit_code = code;
    c->pid = 0;
    st->host->log(st->host, BAIC_LOG_INFO, "container_exited", "kernel=%s exit_code=%d oom_killed=%d",
                  c->id, code, c->oom_killed);
    dk_emit(st, BAIC_RT_EV_EXIT, c->id, code);
}

/* RFC 3339 with nanoseconds, as Docker writes it; 0 for its zero time. */
static int64_t dk_parse_time(const char *s) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int frac_at = 0;
    if (s == NULL || sscanf(s, "%d-%d-%dT%d:%d:%d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                            &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &frac_at) != 6 ||
        tm.tm_year < 1970)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    int64_t ms = (int64_t)timegm(&tm) * 1000;
    if (s[frac_at] == '.') {
        int64_t scale = 100;
        for (const char *p = s + frac_at + 1; *p >= '0' && *p <= '9' && scale > 0; p++, scale /= 10)
            ms += (*p - '0') * scale;
    }
    return ms;
}

static char **dk_labels_from(const json_t *labels) {
    const char *spec = json_string_value(json_object_get(labels, DK_LABEL_SPEC));
    json_t *arr = spec != NULL ? json_loads(spec, 0, NULL) : NULL;
    size_t n = json_array_size(arr);
    char **v = calloc(n + 1, sizeof *v);
    for (size_t i = 0; v != NULL && i < n; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if ((v[i] = strdup(s != NULL ? s : "")) == NULL) {
            dk_strv_free(v);
            v = NULL;
        }
    }
    json_decref(arr);
    return v;
}

/* Pool thread. Returns 0 (out->found says whether it exists) or a code. */
static int dk_inspect(const dk_conf_t *conf, const char *name, dk_inspect_t *out, char *err,
                      size_t errlen) {
    char path[300];
    snprintf(path, sizeof path, "/containers/%s/json", name);
    dk_req_t r = {.method = "GET", .path = path, .timeout_ms = conf->request_timeout_ms, .abort_fd = -1};
    memset(out, 0, sizeof *out);
    int rc = dk_http(conf, &r, err, errlen);
    if (rc != 0)
        return rc;
    if (r.status == 404) {
        dk_req_free(&r);
        return 0;
    }
    if ((rc = dk_http_error(&r, err, errlen)) != 0) {
        dk_req_free(&r);
        return rc;
    }
    json_t *j = json_loads(r.body_out != NULL ? r.body_out : "", 0, NULL);
    dk_req_free(&r);
    json_t *s = json_object_get(j, "State");
    if (!json_is_object(s)) {
        json_decref(j);
        snprintf(err, errlen, "inspect %s: no State", name);
        return BAIC_EBACKEND;
    }
    const char *status = json_string_value(json_object_get(s, "Status"));
    out->found = 1;
    if (status == NULL || strcmp(status, "created") == 0)
        out->state = BAIC_RT_CREATED;
    else if (strcmp(status, "running") == 0 || strcmp(status, "paused") == 0 ||
             strcmp(status, "restarting") == 0)
        out->state = BAIC_RT_RUNNING;
    else
        out->state = BAIC_RT_EXITED;
    out->pid = (int)json_integer_value(json_object_get(s, "Pid"));
    out->exit_code = (int)json_integer_value(json_object_get(s, "ExitCode"));
    out->oom_killed = json_is_true(json_object_get(s, "OOMKilled"));
    out->started_at_ms = dk_parse_time(json_string_value(json_object_get(s, "StartedAt")));
    json_t *labels = json_object_get(json_object_get(j, "Config"), "Labels");
    const char *kid = json_string_value(json_object_get(labels, DK_LABEL_KERNEL));
    snprintf(out->id, sizeof out->id, "%s", kid != NULL ? kid : "");
    out->labels = dk_labels_from(labels);
    json_decref(j);
    return 0;
}

/* ---- jobs: one per op, run on a pool thread, finished on the loop ---- */

typedef struct dk_found {
    dk_inspect_t in;
    struct dk_found *next;
} dk_found_t;

typedef struct dk_job {
    dk_state_t *st;
    char id[128];
    char name[192];
    baic_rt_done_cb cb;
    void *arg;
    int status;
    char err[512];
    uint64_t timeout_ms;
    dk_inspect_t in;
    /* create */
    char *body;
    char *image;
    int pulled;
    /* exec */
    baic_rt_exec_cb exec_cb;
    dk_demux_t demux;
    int exit_code;
    char *out;
    size_t out_len;
    /* stats */
    baic_rt_stats_cb stats_cb;
    baic_rt_stats_t stats;
    /* list and reconcile */
    baic_rt_list_cb list_cb;
    dk_found_t *found;
    int event_code;           /* the die event's exit code, a fallback for inspect */
} dk_job_t;

static dk_job_t *dk_job_new(dk_state_t *st, const dk_ctr_t *c, baic_rt_done_cb cb, void *arg) {
    dk_job_t *j = calloc(1, sizeof *j);
    if (j == NULL)
        return NULL;
    j->st = st;
    j->cb = cb;
    j->arg = arg;
    j->timeout_ms = st->conf.request_timeout_ms;
    if (c != NULL) {
        snprintf(j->id, sizeof j->id, "%s", c->id);
        snprintf(j->name, sizeof j->name, "%s", c->name);
    }
    return j;
}

static void dk_job_free(dk_job_t *j) {
    free(j->body);
    free(j->image);
    free(j->demux.buf[0]);
    free(j->demux.buf[1]);
    free(j->out);
    dk_strv_free(j->in.labels);
    for (dk_found_t *f = j->found, *n; f != NULL; f = n) {
        n = f->next;
        dk_strv_free(f->in.labels);
        free(f);
    }
    free(j);
}

/* One call whose body is collected; an HTTP error becomes a code with its message. */
static int dk_call(dk_job_t *j, const char *method, const char *path, const char *body,
                   uint64_t timeout_ms, dk_req_t *r) {
    memset(r, 0, sizeof *r);
    r->method = method;
    r->path = path;
    r->body = body;
    r->timeout_ms = timeout_ms;
    r->abort_fd = -1;
    int rc = dk_http(&j->st->conf, r, j->err, sizeof j->err);
    if (rc == 0 && (rc = dk_http_error(r, j->err, sizeof j->err)) != 0)
        dk_req_free(r);
    return rc;
}

static int dk_queue(dk_state_t *st, dk_job_t *j, baic_work_cb work, baic_work_done_cb done) {
    int rc = st->host->queue_work(st->host, work, done, j);
    if (rc != 0)
        dk_job_free(j);
    return rc;
}

static void dk_log_failure(dk_state_t *st, const char *event, const dk_job_t *j) {
    st->host->log(st->host, BAIC_LOG_ERROR, event, "kernel=%s code=%d error=\"%s\"", j->id, j->status,
                  j->err);
}

static void dk_noop_work(void *arg) {
    (void)arg;
}

/* ---- create ---- */

/* The pull's progress stream reports failure in-band, after a 200. */
typedef struct dk_pull_sink {
    char line[4096];
    size_t len;
    char error[256];
} dk_pull_sink_t;

static int dk_pull_feed(void *arg, const char *data, size_t len) {
    dk_pull_sink_t *p = arg;
    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\n') {
            if (p->len + 1 < sizeof p->line)
                p->line[p->len++] = data[i];
            continue;
        }
        json_t *j = json_loadb(p->line, p->len, 0, NULL);
        const char *e = json_string_value(json_object_get(j, "error"));
        if (e != NULL)
            snprintf(p->error, sizeof p->error, "%s", e);
        json_decref(j);
        p->len = 0;
    }
    return 0;
}

static int dk_pull(dk_job_t *j) {
    char path[2048] = "/images/create?fromImage=";
    /* Without a tag the daemon would pull every tag of the repository. */
    const char *slash = strrchr(j->image, '/');
    const char *last = slash != NULL ? slash + 1 : j->image;
    int tagged = strchr(last, ':') != NULL || strchr(j->image, '@') != NULL;
    if (dk_urlencode(j->image, path, sizeof path) != 0 ||
        (!tagged && strlen(path) + 12 >= sizeof path)) {
        snprintf(j->err, sizeof j->err, "image reference too long");
        return BAIC_EBAD_INPUT;
    }
    if (!tagged)
        strcat(path, "&tag=latest");
    dk_pull_sink_t sink = {.len = 0};
    dk_req_t r = {.method = "POST", .path = path, .timeout_ms = 10 * 60 * 1000, .abort_fd = -1,
                  .sink = dk_pull_feed, .sink_arg = &sink};
    int rc = dk_http(&j->st->conf, &r, j->err, sizeof j->err);
    if (rc != 0)
        return rc;
    if (r.status != 200) {
        dk_req_free(&r);
        snprintf(j->err, sizeof j->err, "pull %s: HTTP %d", j->image, r.status);
        return r.status == 404 ? BAIC_ENOT_FOUND : BAIC_EBACKEND;
    }
    if (sink.error[0] != '\0') {
        snprintf(j->err, sizeof j->err, "pull %s: %s", j->image, sink.error);
        return BAIC_ENOT_FOUND;
    }
    return 0;
}

static void dk_create_work(void *arg) {
    dk_job_t *j = arg;
    char path[300];
    snprintf(path, sizeof path, "/containers/create?name=%s", j->name);
    dk_req_t r;
    j->status = dk_call(j, "POST", path, j->body, j->timeout_ms, &r);
    if (j->status == BAIC_ENOT_FOUND && j->st->conf.pull_missing) {
        char first[256];
        snprintf(first, sizeof first, "%.200s", j->err);
        if ((j->status = dk_pull(j)) != 0)
            return;
        j->pulled = 1;
        j->status = dk_call(j, "POST", path, j->body, j->timeout_ms, &r);
        if (j->status == BAIC_ENOT_FOUND)
            snprintf(j->err, sizeof j->err, "%.200s (after a pull)", first);
    }
    if (j->status == 0)
        dk_req_free(&r);
}

static void dk_create_done(void *arg, int status) {
    dk_job_t *j = arg;
    dk_state_t *st = j->st;
    dk_ctr_t *c = dk_find(st, j->id);
    if (status != 0 && j->status == 0)
        j->status = status;
    if (c != NULL) {
        c->busy = 0;
        if (j->status == 0) {
            c->state = BAIC_RT_CREATED;
            st->host->log(st->host, BAIC_LOG_INFO, "container_created", "kernel=%s name=%s image=%s pulled=%d",
                          c->id, c->name, j->image, j->pulled);
        } else {
            dk_log_failure(st, "container_create_failed", j);
            dk_unlink(st, c);
            dk_ctr_free(c);
        }
    }
    j->cb(j->arg, j->status);
    dk_job_free(j);
}

static int dk_create(void *state, const baic_container_spec_t *spec, baic_rt_done_cb cb, void *arg) {
    dk_state_t *st = state;
    if (spec == NULL || cb == NULL || !dk_valid_id(spec->id) || spec->argv == NULL ||
        spec->argv[0] == NULL || spec->image == NULL || spec->image[0] == '\0' ||
        strlen(spec->image) > 512)
        return BAIC_EBAD_INPUT;
    if (dk_find(st, spec->id) != NULL)
        return BAIC_EEXISTS;
    char why[512] = "";
    int rc = 0;
    char *body = dk_spec_build(&st->conf, spec, &rc, why, sizeof why);
    if (body == NULL) {
        if (rc == BAIC_EBAD_INPUT)
            st->host->log(st->host, BAIC_LOG_WARN, "container_spec_refused", "kernel=%s reason=\"%s\"",
                          spec->id, why);
        return rc != 0 ? rc : UV_ENOMEM;
    }
    dk_ctr_t *c = calloc(1, sizeof *c);
    dk_job_t *j = c != NULL ? dk_job_new(st, NULL, cb, arg) : NULL;
    if (c == NULL || j == NULL || (c->labels = dk_strv_dup(spec->labels)) == NULL ||
        (j->image = strdup(spec->image)) == NULL) {
        free(body);
        if (c != NULL)
            dk_ctr_free(c);
        if (j != NULL)
            dk_job_free(j);
        return UV_ENOMEM;
    }
    snprintf(c->id, sizeof c->id, "%s", spec->id);
    snprintf(c->name, sizeof c->name, "%s%s", st->conf.name_prefix, spec->id);
    snprintf(j->id, sizeof j->id, "%s", c->id);
    snprintf(j->name, sizeof j->name, "%s", c->name);
    c->state = BAIC_RT_UNKNOWN;
    c->busy = 1;
    j->body = body;
    if ((rc = dk_queue(st, j, dk_create_work, dk_create_done)) != 0) {
        dk_ctr_free(c);
        return rc;
    }
    c->next = st->ctrs;
    st->ctrs = c;
    return 0;
}

/* ---- the tick: events from the stream, and a fallback while it is down ---- */

static void dk_tick_cb(baic_timer_t *t, void *arg);
static void dk_reconcile(dk_state_t *st);

static void dk_tick_arm(dk_state_t *st) {
    if (st->tick == NULL &&
        st->host->timer_start(st->host, DK_TICK_MS, DK_TICK_MS, dk_tick_cb, st, &st->tick) != 0)
        st->tick = NULL;
}

static void dk_exit_work(void *arg) {
    dk_job_t *j = arg;
    j->status = dk_inspect(&j->st->conf, j->name, &j->in, j->err, sizeof j->err);
}

static void dk_exit_done(void *arg, int status) {
    dk_job_t *j = arg;
    dk_state_t *st = j->st;
    dk_ctr_t *c = dk_find(st, j->id);
    if (c != NULL) {
        c->exit_pending = 0;
        int ok = status == 0 && j->status == 0 && j->in.found && j->in.state == BAIC_RT_EXITED;
        dk_mark_exited(st, c, ok ? j->in.exit_code : j->event_code, ok && j->in.oom_killed);
    }
    dk_job_free(j);
}

static void dk_on_event(dk_state_t *st, const dk_event_t *e) {
    dk_ctr_t *c = dk_find(st, e->id);
    if (c == NULL)
        return;
    if (e->type == BAIC_RT_EV_OOM) {
        dk_mark_oom(st, c, "event");
        return;
    }
    if (c->state == BAIC_RT_EXITED || c->exit_pending || (c->state != BAIC_RT_RUNNING && !c->starting))
        return;
    /* The event has the code but not OOMKilled, which a missed oom event leaves as the
     * only trace of the memory limit: ask once, then report. */
    dk_job_t *j = dk_job_new(st, c, NULL, NULL);
    if (j == NULL) {
        dk_mark_exited(st, c, e->exit_code, 0);
        return;
    }
    j->event_code = e->exit_code;
    c->exit_pending = 1;
    if (dk_queue(st, j, dk_exit_work, dk_exit_done) != 0) {
        c->exit_pending = 0;
        dk_mark_exited(st, c, e->exit_code, 0);
    }
}

static void dk_tick_cb(baic_timer_t *t, void *arg) {
    dk_state_t *st = arg;
    (void)t;
    dk_event_t *evs = dk_events_take(st->events);
    for (dk_event_t *e = evs; e != NULL; e = e->next)
        dk_on_event(st, e);
    dk_events_free_list(evs);
    int live = 0;
    for (dk_ctr_t *c = st->ctrs; c != NULL; c = c->next)
        live += c->state == BAIC_RT_RUNNING || c->starting || c->exit_pending;
    if (live == 0) {
        st->host->timer_stop(st->host, st->tick);
        st->tick = NULL;
        return;
    }
    uint64_t now = (uint64_t)dk_wall_ms();
    if (!dk_events_connected(st->events) && !st->reconciling &&
        now - st->last_reconcile_ms >= DK_RECONCILE_MS) {
        st->last_reconcile_ms = now;
        dk_reconcile(st);
    }
}

/* ---- start ---- */

static void dk_start_work(void *arg) {
    dk_job_t *j = arg;
    char path[300];
    snprintf(path, sizeof path, "/containers/%s/start", j->name);
    dk_req_t r;
    if ((j->status = dk_call(j, "POST", path, NULL, j->timeout_ms, &r)) != 0)
        return;
    dk_req_free(&r);
    /* The pid and start time for list; a failure here does not undo the start. */
    char err[256];
    if (dk_inspect(&j->st->conf, j->name, &j->in, err, sizeof err) != 0)
        j->in.found = 0;
}

static void dk_start_done(void *arg, int status) {
    dk_job_t *j = arg;
    dk_state_t *st = j->st;
    dk_ctr_t *c = dk_find(st, j->id);
    if (status != 0 && j->status == 0)
        j->status = status;
    if (c != NULL) {
        c->busy = 0;
        c->starting = 0;
        if (j->status == 0) {
            if (j->in.found) {
                c->pid = j->in.pid;
                c->started_at_ms = j->in.started_at_ms;
            }
            if (c->started_at_ms == 0)
                c->started_at_ms = dk_wall_ms();
            /* The die event may have come first for a short-lived process. */
            if (c->state != BAIC_RT_EXITED)
                c->state = BAIC_RT_RUNNING;
            st->host->log(st->host, BAIC_LOG_INFO, "container_started", "kernel=%s pid=%d", c->id,
                          c->pid);
        } else {
            dk_log_failure(st, "container_start_failed", j);
        }
    }
    j->cb(j->arg, j->status);
    dk_job_free(j);
}

static int dk_start(void *state, const char *id, baic_rt_done_cb cb, void *arg) {
    dk_state_t *st = state;
    dk_ctr_t *c = id != NULL ? dk_find(st, id) : NULL;
    if (c == NULL)
        return BAIC_ENOT_FOUND;
    if (cb == NULL || c->busy || c->state != BAIC_RT_CREATED)
        return BAIC_EBAD_INPUT;
    dk_job_t *j = dk_job_new(st, c, cb, arg);
    if (j == NULL)
        return UV_ENOMEM;
    int rc = dk_queue(st, j, dk_start_work, dk_start_done);
    if (rc != 0)
        return rc;
    c->busy = 1;
    c->starting = 1;
    dk_tick_arm(st);
    return 0;
}

/* ---- stop ---- */

static void dk_stop_work(void *arg) {
    dk_job_t *j = arg;
    /* The API counts the grace period in whole seconds: round up, never cut it short. */
    uint64_t secs = (j->timeout_ms + 999) / 1000;
    char path[320];
    snprintf(path, sizeof path, "/containers/%s/stop?t=%" PRIu64, j->name, secs);
    dk_req_t r;
    j->status = dk_call(j, "POST", path, NULL, secs * 1000 + j->st->conf.request_timeout_ms, &r);
    if (j->status != 0)
        return;
    dk_req_free(&r);
    j->status = dk_inspect(&j->st->conf, j->name, &j->in, j->err, sizeof j->err);
    if (j->status == 0 && j->in.found && j->in.state == BAIC_RT_RUNNING) {
        snprintf(j->err, sizeof j->err, "still running after stop");
        j->status = BAIC_EBACKEND;
    }
}

static void dk_stop_done(void *arg, int status) {
    dk_job_t *j = arg;
    dk_state_t *st = j->st;
    dk_ctr_t *c = dk_find(st, j->id);
    if (status != 0 && j->status == 0)
        j->status = status;
    if (c != NULL && j->status == 0 && j->in.found)
        dk_mark_exited(st, c, j->in.exit_code, j->in.oom_killed);
    else if (j->status != 0 && j->status != UV_ECANCELED)
        dk_log_failure(st, "container_stop_failed", j);
    j->cb(j->arg, j->status);
    dk_job_free(j);
}

static void dk_noop_done(void *arg, int status) {
    dk_job_t *j = arg;
    j->cb(j->arg, status == UV_ECANCELED ? status : 0);
    dk_job_free(j);
}

static int dk_stop(void *state, const char *id, uint64_t timeout_ms, baic_rt_done_cb cb, void *arg) {
    dk_state_t *st = state;
    dk_ctr_t *c = id != NULL ? dk_find(st, id) : NULL;
    if (c == NULL)
        return BAIC_ENOT_FOUND;
    if (cb == NULL)
        return BAIC_EBAD_INPUT;
    dk_job_t *j = dk_job_new(st, c, cb, arg);
    if (j == NULL)
        return UV_ENOMEM;
    if (c->state != BAIC_RT_RUNNING && !c->starting)
        return dk_queue(st, j, dk_noop_work, dk_noop_done);
    j->timeout_ms = timeout_ms;
    st->host->log(st->host, BAIC_LOG_INFO, "container_stop", "kernel=%s timeout_ms=%" PRIu64, c->id,
                  timeout_ms);
    return dk_queue(st, j, dk_stop_work, dk_stop_done);
}

/* ---- destroy ---- */

static void dk_destroy_work(void *arg) {
    dk_job_t *j = arg;
    char path[320];
    snprintf(path, sizeof path, "/containers/%s?force=1&v=1", j->name);
    dk_req_t r;
    j->status = dk_call(j, "DELETE", path, NULL, j->timeout_ms, &r);
    if (j->status == 0)
        dk_req_free(&r);
    else if (j->status == BAIC_ENOT_FOUND)
        j->status = 0; /* gone already: what destroy wants */
}

static void dk_destroy_done(void *arg, int status) {
    dk_job_t *j = arg;
    dk_state_t *st = j->st;
    dk_ctr_t *c = dk_find(st, j->id);
    if (status != 0 && j->status == 0)
        j->status = status;
    if (c != NULL) {
        c->busy = 0;
        if (j->status == 0) {
            st->host->log(st->host, BAIC_LOG_INFO, "container_destroyed", "kernel=%s", c->id);
            dk_unlink(st, c);
            dk_ctr_free(c);
        } else {
            dk_log_failure(st, "container_destroy_failed", j);
        }
    }
    j->cb(j->arg, j->status);
    dk_job_free(j);
}

static int dk_destroy(void *state, const char *id, baic_rt_done_cb cb, void *arg) {
    dk_state_t *st = state;
    dk_ctr_t *c = id != NULL ? dk_find(st, id) : NULL;
    if (c == NULL)
        return BAIC_ENOT_FOUND;
    if (cb == NULL || c->busy)
        return BAIC_EBAD_INPUT;
    /* An inspect still in flight for a container already known to have exited (stop
     * read its exit back first) does not make it busy: that job finds it gone. */
    if (c->state == BAIC_RT_RUNNING || (c->exit_pending && c->state != BAIC_RT_EXITED))
        return UV_EBUSY;
    dk_job_t *j = dk_job_new(st, c, cb, arg);
    if (j == NULL)
        return UV_ENOMEM;
    int rc = dk_queue(st, j, dk_destroy_work, dk_destroy_done);
    if (rc == 0)
        c->busy = 1;
    return rc;
}

/* ---- list and reconcile ---- */

static void dk_list_work(void *arg) {
    dk_job_t *j = arg;
    const dk_conf_t *conf = &j->st->conf;
    char filters[128], path[512] = "/containers/json?all=1&filters=";
    snprintf(filters, sizeof filters, "{\"label\":[\"%s=1\"]}", DK_LABEL_MANAGED);
    dk_urlencode(filters, path, sizeof path);
    dk_req_t r;
    if ((j->status = dk_call(j, "GET", path, NULL, j->timeout_ms, &r)) != 0)
        return;
    json_t *arr = json_loads(r.body_out != NULL ? r.body_out : "", 0, NULL);
    dk_req_free(&r);
    if (!json_is_array(arr)) {
        json_decref(arr);
        snprintf(j->err, sizeof j->err, "container list is not an array");
        j->status = BAIC_EBACKEND;
        return;
    }
    size_t plen = strlen(conf->name_prefix);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *item = json_array_get(arr, i);
        const char *name = json_string_value(json_array_get(json_object_get(item, "Names"), 0));
        const char *kid = json_string_value(
            json_object_get(json_object_get(item, "Labels"), DK_LABEL_KERNEL));
        char want[256];
        /* Another agent's prefix on the same daemon is not ours to report. */
        if (name == NULL || kid == NULL || !dk_valid_id(kid))
            continue;
        snprintf(want, sizeof want, "/%s%s", conf->name_prefix, kid);
        if (strcmp(name, want) != 0 || strncmp(name + 1, conf->name_prefix, plen) != 0)
            continue;
        dk_found_t *f = calloc(1, sizeof *f);
        if (f == NULL)
            break;
        char err[256];
        if (dk_inspect(conf, name + 1, &f->in, err, sizeof err) != 0 || !f->in.found ||
            strcmp(f->in.id, kid) != 0) {
            dk_strv_free(f->in.labels);
            free(f); /* removed meanwhile */
            continue;
        }
        f->next = j->found;
        j->found = f;
    }
    json_decref(arr);
}

/* Brings the table in line with the daemon: adopts kernels of a previous agent and
 * reports exits whose event never came. */
static void dk_merge(dk_state_t *st, dk_job_t *j) {
    for (dk_found_t *f = j->found; f != NULL; f = f->next) {
        dk_ctr_t *c = dk_find(st, f->in.id);
        if (c == NULL) {
            if ((c = calloc(1, sizeof *c)) == NULL)
                continue;
            snprintf(c->id, sizeof c->id, "%s", f->in.id);
            snprintf(c->name, sizeof c->name, "%s%s", st->conf.name_prefix, f->in.id);
            c->state = f->in.state;
            c->pid = f->in.pid;
            c->exit_code = f->in.exit_code;
            c->oom_killed = f->in.oom_killed;
            c->started_at_ms = f->in.started_at_ms;
            c->labels = f->in.labels;
            f->in.labels = NULL;
            c->next = st->ctrs;
            st->ctrs = c;
            st->host->log(st->host, BAIC_LOG_INFO, "container_recovered", "kernel=%s state=%d",
                          c->id, (int)c->state);
            if (c->state == BAIC_RT_RUNNING)
                dk_tick_arm(st);
            continue;
        }
        if (c->busy || c->exit_pending)
            continue;
        if (c->state == BAIC_RT_RUNNING && f->in.state == BAIC_RT_EXITED)
            dk_mark_exited(st, c, f->in.exit_code, f->in.oom_killed);
        else if (c->state == BAIC_RT_RUNNING && f->in.oom_killed && !c->oom_killed)
            dk_mark_oom(st, c, "inspect");
    }
}

static void dk_list_done(void *arg, int status) {
    dk_job_t *j = arg;
    dk_state_t *st = j->st;
    if (status != 0 && j->status == 0)
        j->status = status;
    if (j->status == 0)
        dk_merge(st, j);
    size_t n = 0;
    for (dk_found_t *f = j->found; f != NULL; f = f->next)
        n++;
    baic_rt_info_t *infos = calloc(n + 1, sizeof *infos);
    const baic_rt_info_t **items = calloc(n + 1, sizeof *items);
    if (j->status == 0 && (infos == NULL || items == NULL))
        j->status = UV_ENOMEM;
    size_t k = 0;
    for (dk_found_t *f = j->found; j->status == 0 && f != NULL; f = f->next) {
        const dk_ctr_t *c = dk_find(st, f->in.id);
        if (c == NULL)
            continue;
        baic_rt_info_t *i = &infos[k];
        i->size = sizeof *i;
        i->id = c->id;
        i->state = c->state;
        i->pid = c->state == BAIC_RT_RUNNING ? c->pid : 0;
        i->exit_code = c->exit_code;
        i->oom_killed = c->oom_killed;
        i->started_at_ms = c->started_at_ms;
        i->labels = (const char *const *)c->labels;
        items[k++] = i;
    }
    if (j->status != 0 && j->status != UV_ECANCELED)
        st->host->log(st->host, BAIC_LOG_ERROR, "container_list_failed", "code=%d error=\"%s\"",
                      j->status, j->err);
    j->list_cb(j->arg, j->status, j->status == 0 ? items : NULL, j->status == 0 ? k : 0);
    free(items);
    free(infos);
    dk_job_free(j);
}

static int dk_list(void *state, baic_rt_list_cb cb, void *arg) {
    dk_state_t *st = state;
    if (cb == NULL)
        return BAIC_EBAD_INPUT;
    dk_job_t *j = dk_job_new(st, NULL, NULL, arg);
    if (j == NULL)
        return UV_ENOMEM;
    j->list_cb = cb;
    return dk_queue(st, j, dk_list_work, dk_list_done);
}

static void dk_reconcile_done(void *arg, int status) {
    dk_job_t *j = arg;
    j->st->reconciling = 0;
    if (status == 0 && j->status == 0)
        dk_merge(j->st, j);
    dk_job_free(j);
}

static void dk_reconcile(dk_state_t *st) {
    dk_job_t *j = dk_job_new(st, NULL, NULL, NULL);
    if (j != NULL && dk_queue(st, j, dk_list_work, dk_reconcile_done) == 0)
        st->reconciling = 1;
}

static int dk_watch(void *state, baic_rt_event_cb cb, void *arg) {
    dk_state_t *st = state;
    st->ev_cb = cb;
    st->ev_arg = arg;
    return 0;
}

/* ---- exec ---- */

static void dk_exec_work(void *arg) {
    dk_job_t *j = arg;
    char path[320], exec_id[128];
    dk_req_t r;
    snprintf(path, sizeof path, "/containers/%s/exec", j->name);
    if ((j->status = dk_call(j, "POST", path, j->body, j->st->conf.request_timeout_ms, &r)) != 0)
        return;
    json_t *resp = json_loads(r.body_out != NULL ? r.body_out : "", 0, NULL);
    dk_req_free(&r);
    const char *eid = json_string_value(json_object_get(resp, "Id"));
    if (eid == NULL || strlen(eid) >= sizeof exec_id || strspn(eid, "0123456789abcdef") != strlen(eid)) {
        json_decref(resp);
        snprintf(j->err, sizeof j->err, "exec create: no usable Id");
        j->status = BAIC_EBACKEND;
        return;
    }
    snprintf(exec_id, sizeof exec_id, "%s", eid);
    json_decref(resp);

    /* Not a tty: the output comes multiplexed until the process ends and the daemon
     * closes the connection. */
    snprintf(path, sizeof path, "/exec/%s/start", exec_id);
    dk_req_t s = {.method = "POST", .path = path, .body = "{\"Detach\":false,\"Tty\":false}",
                  .timeout_ms = j->timeout_ms, .abort_fd = -1, .sink = dk_demux_feed,
                  .sink_arg = &j->demux};
    char err[256] = "";
    int rc = dk_http(&j->st->conf, &s, err, sizeof err);
    snprintf(path, sizeof path, "/exec/%s/json", exec_id);
    if (rc == BAIC_ETIMEOUT) {
        /* The API cannot kill an exec; its host pid can be (dockerd shares our pid
         * namespace in every supported setup). */
        if (dk_call(j, "GET", path, NULL, j->st->conf.request_timeout_ms, &r) == 0) {
            json_t *x = json_loads(r.body_out != NULL ? r.body_out : "", 0, NULL);
            json_int_t pid = json_integer_value(json_object_get(x, "Pid"));
            if (pid > 1 && json_is_true(json_object_get(x, "Running")))
                kill((pid_t)pid, SIGKILL);
            json_decref(x);
            dk_req_free(&r);
        }
        j->status = BAIC_ETIMEOUT;
        j->exit_code = 137;
        snprintf(j->err, sizeof j->err, "exec timed out");
        return;
    }
    if (rc == 0 && s.status != 200 && s.status != 101) {
        dk_req_free(&s);
        snprintf(j->err, sizeof j->err, "exec start: HTTP %d", s.status);
        j->status = s.status == 409 ? BAIC_EBAD_INPUT : BAIC_EBACKEND;
        return;
    }
    dk_req_free(&s);
    if (rc != 0) {
        snprintf(j->err, sizeof j->err, "exec start: %s", err);
        j->status = rc;
        return;
    }
    /* The stream ends as the process exits; the daemon records the code a moment later. */
    for (int tries = 0; tries < 200; tries++) {
        if ((j->status = dk_call(j, "GET", path, NULL, j->st->conf.request_timeout_ms, &r)) != 0)
            return;
        json_t *x = json_loads(r.body_out != NULL ? r.body_out : "", 0, NULL);
        dk_req_free(&r);
        int running = json_is_true(json_object_get(x, "Running"));
        j->exit_code = (int)json_integer_value(json_object_get(x, "ExitCode"));
        json_decref(x);
        if (!running)
            break;
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    size_t max = j->demux.max;
    j->out = malloc(max + 1);
    if (j->out == NULL) {
        j->status = UV_ENOMEM;
        return;
    }
    size_t a = j->demux.len[0] < max ? j->demux.len[0] : max;
    size_t b = j->demux.len[1] < max - a ? j->demux.len[1] : max - a;
    memcpy(j->out, j->demux.buf[0], a);
    memcpy(j->out + a, j->demux.buf[1], b);
    j->out_len = a + b;
    j->out[j->out_len] = '\0';
}

static void dk_exec_done(void *arg, int status) {
    dk_job_t *j = arg;
    if (status != 0 && j->status == 0)
        j->status = status;
    if (j->status != 0 && j->status != UV_ECANCELED)
        j->st->host->log(j->st->host, BAIC_LOG_WARN, "container_exec_failed",
                         "kernel=%s code=%d error=\"%s\"", j->id, j->status, j->err);
    j->exec_cb(j->arg, j->status, j->exit_code, j->out != NULL ? j->out : "", j->out_len);
    dk_job_free(j);
}

static int dk_exec(void *state, const char *id, const baic_rt_exec_t *spec, baic_rt_exec_cb cb,
                   void *arg) {
    dk_state_t *st = state;
    dk_ctr_t *c = id != NULL ? dk_find(st, id) : NULL;
    if (c == NULL)
        return BAIC_ENOT_FOUND;
    if (spec == NULL || cb == NULL || spec->argv == NULL || spec->argv[0] == NULL ||
        c->state != BAIC_RT_RUNNING)
        return BAIC_EBAD_INPUT;
    json_t *cmd = json_array(), *env = json_array();
    for (size_t i = 0; spec->argv[i] != NULL; i++)
        json_array_append_new(cmd, json_string(spec->argv[i]));
    for (size_t i = 0; spec->env != NULL && spec->env[i] != NULL; i++)
        json_array_append_new(env, json_string(spec->env[i]));
    char user[32];
    snprintf(user, sizeof user, "%" PRIu32 ":%" PRIu32, spec->uid, spec->gid);
    json_t *b = json_pack("{s:b, s:b, s:b, s:b, s:o, s:o, s:s}", "AttachStdin", 0, "AttachStdout", 1,
                          "AttachStderr", 1, "Tty", 0, "Cmd", cmd, "Env", env, "User", user);
    if (b != NULL && spec->cwd != NULL)
        json_object_set_new(b, "WorkingDir", json_string(spec->cwd));
    char *body = b != NULL ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    dk_job_t *j = body != NULL ? dk_job_new(st, c, NULL, arg) : NULL;
    if (j == NULL) {
        free(body);
        return UV_ENOMEM;
    }
    j->body = body;
    j->exec_cb = cb;
    j->timeout_ms = spec->timeout_ms;
    j->demux.max = spec->max_output > 0 ? spec->max_output : 65536;
    j->demux.buf[0] = malloc(j->demux.max);
    j->demux.buf[1] = malloc(j->demux.max);
    if (j->demux.buf[0] == NULL || j->demux.buf[1] == NULL) {
        dk_job_free(j);
        return UV_ENOMEM;
    }
    return dk_queue(st, j, dk_exec_work, dk_exec_done);
}

/* ---- stats ---- */

static uint64_t dk_u64(const json_t *j) {
    json_int_t v = json_integer_value(j);
    return v > 0 ? (uint64_t)v : 0;
}

static void dk_stats_work(void *arg) {
    dk_job_t *j = arg;
    char path[320];
    /* one-shot: a single sample now instead of two a second apart. */
    snprintf(path, sizeof path, "/containers/%s/stats?stream=false&one-shot=true", j->name);
    dk_req_t r;
    if ((j->status = dk_call(j, "GET", path, NULL, j->timeout_ms, &r)) != 0)
        return;
    json_t *s = json_loads(r.body_out != NULL ? r.body_out : "", 0, NULL);
    dk_req_free(&r);
    baic_rt_stats_t *o = &j->stats;
    o->size = sizeof *o;
    o->mem_used_bytes = -1;
    o->mem_max_bytes = -1;
    o->cpu_used_ns = dk_u64(json_object_get(json_object_get(json_object_get(s, "cpu_stats"), "cpu_usage"),
                                            "total_usage"));
    json_t *mem = json_object_get(s, "memory_stats");
    if (json_is_integer(json_object_get(mem, "usage")))
        o->mem_used_bytes = (int64_t)dk_u64(json_object_get(mem, "usage"));
    if (json_is_integer(json_object_get(mem, "max_usage")))
        o->mem_max_bytes = (int64_t)dk_u64(json_object_get(mem, "max_usage"));
    o->pids = (int64_t)dk_u64(json_object_get(json_object_get(s, "pids_stats"), "current"));
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(s, "networks"), key, v) {
        o->net_rx_bytes += dk_u64(json_object_get(v, "rx_bytes"));
        o->net_tx_bytes += dk_u64(json_object_get(v, "tx_bytes"));
    }
    json_t *io = json_object_get(json_object_get(s, "blkio_stats"), "io_service_bytes_recursive");
    for (size_t i = 0; i < json_array_size(io); i++) {
        json_t *e = json_array_get(io, i);
        const char *op = json_string_value(json_object_get(e, "op"));
        if (op != NULL && strcasecmp(op, "read") == 0)
            o->io_read_bytes += dk_u64(json_object_get(e, "value"));
        else if (op != NULL && strcasecmp(op, "write") == 0)
            o->io_write_bytes += dk_u64(json_object_get(e, "value"));
    }
    json_decref(s);
}

static void dk_stats_done(void *arg, int status) {
    dk_job_t *j = arg;
    if (status != 0 && j->status == 0)
        j->status = status;
    j->stats_cb(j->arg, j->status, j->status == 0 ? &j->stats : NULL);
    dk_job_free(j);
}

static int dk_stats(void *state, const char *id, baic_rt_stats_cb cb, void *arg) {
    dk_state_t *st = state;
    dk_ctr_t *c = id != NULL ? dk_find(st, id) : NULL;
    if (c == NULL)
        return BAIC_ENOT_FOUND;
    if (cb == NULL)
        return BAIC_EBAD_INPUT;
    dk_job_t *j = dk_job_new(st, c, NULL, arg);
    if (j == NULL)
        return UV_ENOMEM;
    j->stats_cb = cb;
    return dk_queue(st, j, dk_stats_work, dk_stats_done);
}

/* ---- init ---- */

static int dk_conf_bad(const baic_host_t *host, const char *key, const char *reason) {
    host->log(host, BAIC_LOG_ERROR, "config_invalid", "key=%s reason=\"%s\"", key, reason);
    return BAIC_ECONFIG_TYPE;
}

static int dk_conf_str(const baic_host_t *host, const json_t *conf, const char *key, const char *def,
                       char *out, size_t n) {
    const json_t *v = conf != NULL ? json_object_get(conf, key) : NULL;
    if (v == NULL) {
        snprintf(out, n, "%s", def);
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= n)
        return dk_conf_bad(host, key, "non-empty string of bounded length expected");
    snprintf(out, n, "%s", json_string_value(v));
    return 0;
}

static int dk_conf_load(const baic_host_t *host, const json_t *conf, dk_conf_t *c) {
    static const char *const keys[] = {"socket", "api_version", "name_prefix", "private_network",
                                       "cap_add", "pull", "request_timeout_ms", NULL};
    static const char *const default_caps[] = {"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL",
                                               "SETGID", "SETUID", "NET_BIND_SERVICE", NULL};
    char pull[16];
    int rc;
    if (conf != NULL && !json_is_object(conf))
        return dk_conf_bad(host, "-", "plugin table expected");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)conf, key, v) {
        size_t i = 0;
        while (keys[i] != NULL && strcmp(keys[i], key) != 0)
            i++;
        if (keys[i] == NULL)
            return dk_conf_bad(host, key, "unknown key (a typo would otherwise go unnoticed)");
    }
    if ((rc = dk_conf_str(host, conf, "socket", "/var/run/docker.sock", c->socket, sizeof c->socket)) != 0 ||
        (rc = dk_conf_str(host, conf, "api_version", "v1.41", c->api_version, sizeof c->api_version)) != 0 ||
        (rc = dk_conf_str(host, conf, "name_prefix", "baic-", c->name_prefix, sizeof c->name_prefix)) != 0 ||
        (rc = dk_conf_str(host, conf, "private_network", "none", c->private_network,
                          sizeof c->private_network)) != 0 ||
        (rc = dk_conf_str(host, conf, "pull", "missing", pull, sizeof pull)) != 0)
        return rc;
    if (c->socket[0] != '/')
        return dk_conf_bad(host, "socket", "absolute path of at most 107 bytes expected");
    unsigned major = 0, minor = 0;
    int used = 0;
    if (sscanf(c->api_version, "v%u.%u%n", &major, &minor, &used) != 2 || major != 1 || minor < 24 ||
        (size_t)used != strlen(c->api_version))
        return dk_conf_bad(host, "api_version", "v1.N with N >= 24 expected");
    if (!dk_valid_id(c->name_prefix))
        return dk_conf_bad(host, "name_prefix", "letters, digits, '-', '_', '.' expected");
    if (strcmp(pull, "missing") != 0 && strcmp(pull, "never") != 0)
        return dk_conf_bad(host, "pull", "\"missing\" or \"never\" expected");
    c->pull_missing = strcmp(pull, "missing") == 0;
    v = conf != NULL ? json_object_get(conf, "cap_add") : NULL;
    if (v == NULL) {
        for (c->n_cap_add = 0; default_caps[c->n_cap_add] != NULL; c->n_cap_add++)
            snprintf(c->cap_add[c->n_cap_add], sizeof c->cap_add[0], "%s", default_caps[c->n_cap_add]);
    } else {
        if (!json_is_array(v) || json_array_size(v) > DK_MAX_CAPS)
            return dk_conf_bad(host, "cap_add", "array of at most 32 capability names expected");
        for (size_t i = 0; i < json_array_size(v); i++) {
            const char *s = json_string_value(json_array_get(v, i));
            if (s == NULL || s[0] == '\0' || strlen(s) >= sizeof c->cap_add[0] ||
                strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_") != strlen(s))
                return dk_conf_bad(host, "cap_add", "upper-case capability names expected");
            snprintf(c->cap_add[i], sizeof c->cap_add[0], "%s", s);
        }
        c->n_cap_add = json_array_size(v);
    }
    c->request_timeout_ms = 30000;
    v = conf != NULL ? json_object_get(conf, "request_timeout_ms") : NULL;
    if (v != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > 3600000)
            return dk_conf_bad(host, "request_timeout_ms", "integer in 1..3600000 expected");
        c->request_timeout_ms = (uint64_t)json_integer_value(v);
    }
    return 0;
}

static int dk_init(const baic_host_t *host, const json_t *conf, void **state) {
    dk_state_t *st = host->calloc(1, sizeof *st);
    if (st == NULL)
        return UV_ENOMEM;
    st->host = host;
    int rc = dk_conf_load(host, conf, &st->conf);
    if (rc == 0 && (rc = dk_events_start(host, &st->conf, &st->events)) != 0)
        host->log(host, BAIC_LOG_ERROR, "docker_events_failed", "error=\"%s\"", strerror(-rc));
    if (rc != 0) {
        host->free(st);
        return rc;
    }
    /* Not fatal: the daemon may come up after the agent; calls fail until it does. */
    struct stat sb;
    if (stat(st->conf.socket, &sb) != 0 || !S_ISSOCK(sb.st_mode))
        host->log(host, BAIC_LOG_WARN, "docker_socket_missing", "socket=%s", st->conf.socket);
    host->log(host, BAIC_LOG_INFO, "docker_ready", "socket=%s api=%s prefix=%s pull=%s",
              st->conf.socket, st->conf.api_version, st->conf.name_prefix,
              st->conf.pull_missing ? "missing" : "never");
    *state = st;
    return 0;
}

static void dk_fini(void *state) {
    dk_state_t *st = state;
    dk_events_stop(st->events);
    if (st->tick != NULL)
        st->host->timer_stop(st->host, st->tick);
    /* Containers keep running: the next agent finds them through list. */
    for (dk_ctr_t *c = st->ctrs, *n; c != NULL; c = n) {
        n = c->next;
        dk_ctr_free(c);
    }
    st->host->free(st);
}

static const baic_runtime_ops_t dk_ops = {
    .create = dk_create,
    .start = dk_start,
    .stop = dk_stop,
    .destroy = dk_destroy,
    .list = dk_list,
    .watch = dk_watch,
    .exec = dk_exec,
    .stats = dk_stats,
};

BAIC_PLUGIN_DEFINE(runtime, docker, "0.1.0", dk_init, dk_fini, &dk_ops)
