/* SPDX-License-Identifier: Apache-2.0 */
/* runtime/docker: follows the daemon's /events stream on a thread of its own. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "docker.h"

/*
 * Why a thread and not a pool job: the stream lives as long as the plugin, and a
 * pool job that never ends would take one of the few pool threads from every other
 * plugin. The thread only reads and queues; the loop's timer (docker.c) takes the
 * queue, so every callback still runs on the loop thread.
 */

#define DK_LINE_MAX (256 * 1024)
#define DK_BACKOFF_MIN_MS 200
#define DK_BACKOFF_MAX_MS 5000

struct dk_events {
    const baic_host_t *host;
    const dk_conf_t *conf;
    pthread_t thread;
    int wake_fd;                /* eventfd: fini ends the stream and the backoff */
    pthread_mutex_t mu;
    dk_event_t *head, *tail;    /* under mu */
    int connected;              /* under mu */
    int64_t last_nano;          /* events thread only: newest event seen */
    char *line;                 /* events thread only: a partial JSON line */
    size_t line_len;
};

static void dk_events_push(dk_events_t *ev, dk_event_t *e) {
    pthread_mutex_lock(&ev->mu);
    if (ev->tail != NULL)
        ev->tail->next = e;
    else
        ev->head = e;
    ev->tail = e;
    pthread_mutex_unlock(&ev->mu);
}

/* One event object of the stream. */
static void dk_events_parse(dk_events_t *ev, const char *line, size_t len) {
    json_t *j = json_loadb(line, len, 0, NULL);
    if (j == NULL)
        return;
    const char *action = json_string_value(json_object_get(j, "Action"));
    if (action == NULL)
        action = json_string_value(json_object_get(j, "status"));
    json_t *attrs = json_object_get(json_object_get(j, "Actor"), "Attributes");
    const char *kid = json_string_value(json_object_get(attrs, DK_LABEL_KERNEL));
    const char *code = json_string_value(json_object_get(attrs, "exitCode"));
    int64_t nano = (int64_t)json_integer_value(json_object_get(j, "timeNano"));
    /* A reconnect with since= repeats what the old stream already gave. */
    if (action == NULL || kid == NULL || (nano != 0 && nano <= ev->last_nano)) {
        json_decref(j);
        return;
    }
    if (nano != 0)
        ev->last_nano = nano;
    baic_rt_event_type_t type;
    if (strcmp(action, "die") == 0)
        type = BAIC_RT_EV_EXIT;
    else if (strcmp(action, "oom") == 0)
        type = BAIC_RT_EV_OOM;
    else {
        json_decref(j);
        return;
    }
    dk_event_t *e = calloc(1, sizeof *e);
    if (e != NULL) {
        e->type = type;
        snprintf(e->id, sizeof e->id, "%s", kid);
        e->exit_code = code != NULL ? atoi(code) : 0;
        e->time_nano = nano;
        dk_events_push(ev, e);
    }
    json_decref(j);
}

/* Events arrive as JSON objects one per line, split across chunks at random. */
static int dk_events_sink(void *arg, const char *data, size_t len) {
    dk_events_t *ev = arg;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n') {
            if (ev->line_len > 0)
                dk_events_parse(ev, ev->line, ev->line_len);
            ev->line_len = 0;
        } else if (ev->line_len < DK_LINE_MAX) {
            ev->line[ev->line_len++] = data[i];
        }
    }
    return 0;
}

static void dk_events_on_head(void *arg, int status) {
    dk_events_t *ev = arg;
    if (status != 200)
        return;
    pthread_mutex_lock(&ev->mu);
    ev->connected = 1;
    pthread_mutex_unlock(&ev->mu);
    ev->host->log(ev->host, BAIC_LOG_INFO, "docker_events_connected", "socket=%s", ev->conf->socket);
}

static void *dk_events_main(void *arg) {
    dk_events_t *ev = arg;
    char filters[256], enc[512], path[1024];
    /* Only the two actions the runtime reports, of containers this plugin made. */
    snprintf(filters, sizeof filters,
             "{\"type\":[\"container\"],\"event\":[\"die\",\"oom\"],\"label\":[\"%s=1\"]}",
             DK_LABEL_MANAGED);
    enc[0] = '\0';
    dk_urlencode(filters, enc, sizeof enc);
    int backoff = DK_BACKOFF_MIN_MS, failures = 0;
    for (;;) {
        /* since= replays what happened while no stream was open (the daemon keeps a
         * window of recent events), so an exit during a reconnect is not lost. */
        int k = snprintf(path, sizeof path, "/events?since=%" PRId64 ".%09" PRId64 "&filters=%s",
                         ev->last_nano / 1000000000, ev->last_nano % 1000000000, enc);
        if (k < 0 || (size_t)k >= sizeof path)
            break;
        dk_req_t r = {.method = "GET", .path = path, .abort_fd = ev->wake_fd,
                      .sink = dk_events_sink, .sink_arg = ev, .on_head = dk_events_on_head};
        char err[256] = "";
        ev->line_len = 0;
        int rc = dk_http(ev->conf, &r, err, sizeof err);
        int was = 0;
        pthread_mutex_lock(&ev->mu);
        was = ev->connected;
        ev->connected = 0;
        pthread_mutex_unlock(&ev->mu);
        if (rc == BAIC_ECANCELLED)
            break;
        if (was) {
            backoff = DK_BACKOFF_MIN_MS;
            failures = 0;
            ev->host->log(ev->host, BAIC_LOG_WARN, "docker_events_dropped", "error=\"%s\"",
                          rc != 0 ? err : "stream ended");
        } else if (failures++ == 0) {
            /* One line per outage, not one per retry. */
            char why[256];
            if (rc == 0)
                dk_http_error(&r, why, sizeof why);
            ev->host->log(ev->host, BAIC_LOG_WARN, "docker_events_unavailable",
                          "socket=%s error=\"%s\"", ev->conf->socket, rc != 0 ? err : why);
        }
        dk_req_free(&r);
        struct pollfd p = {.fd = ev->wake_fd, .events = POLLIN};
        if (poll(&p, 1, backoff) > 0)
            break;
        backoff = backoff * 2 > DK_BACKOFF_MAX_MS ? DK_BACKOFF_MAX_MS : backoff * 2;
    }
    return NULL;
}

int dk_events_start(const baic_host_t *host, const dk_conf_t *conf, dk_events_t **out) {
    dk_events_t *ev = calloc(1, sizeof *ev);
    if (ev == NULL || (ev->line = malloc(DK_LINE_MAX)) == NULL) {
        free(ev);
        return UV_ENOMEM;
    }
    ev->host = host;
    ev->conf = conf;
    /* From now on: a previous agent's kernels are reconciled by list, not by replay. */
    ev->last_nano = dk_wall_ms() * 1000000;
    ev->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ev->wake_fd < 0) {
        int e = -errno;
        free(ev->line);
        free(ev);
        return e;
    }
    pthread_mutex_init(&ev->mu, NULL);
    int rc = pthread_create(&ev->thread, NULL, dk_events_main, ev);
    if (rc != 0) {
        pthread_mutex_destroy(&ev->mu);
        close(ev->wake_fd);
        free(ev->line);
        free(ev);
        return -rc;
    }
    *out = ev;
    return 0;
}

dk_event_t *dk_events_take(dk_events_t *ev) {
    pthread_mutex_lock(&ev->mu);
    dk_event_t *e = ev->head;
    ev->head = ev->tail = NULL;
    pthread_mutex_unlock(&ev->mu);
    return e;
}

void dk_events_free_list(dk_event_t *e) {
    while (e != NULL) {
        dk_event_t *n = e->next;
        free(e);
        e = n;
    }
}

int dk_events_connected(dk_events_t *ev) {
    pthread_mutex_lock(&ev->mu);
    int c = ev->connected;
    pthread_mutex_unlock(&ev->mu);
    return c;
}

void dk_events_stop(dk_events_t *ev) {
    if (ev == NULL)
        return;
    uint64_t one = 1;
    if (write(ev->wake_fd, &one, sizeof one) < 0)
        ev->host->log(ev->host, BAIC_LOG_WARN, "docker_events_stop_failed", "error=\"%s\"",
                      strerror(errno));
    pthread_join(ev->thread, NULL);
    dk_events_free_list(ev->head);
    pthread_mutex_destroy(&ev->mu);
    close(ev->wake_fd);
    free(ev->line);
    free(ev);
}
