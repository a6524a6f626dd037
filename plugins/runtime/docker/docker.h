/* SPDX-License-Identifier: Apache-2.0 */
/* Shared declarations of the runtime/docker plugin's files (internal, not an SDK header). */
#ifndef BAIC_PLUGIN_RUNTIME_DOCKER_H
#define BAIC_PLUGIN_RUNTIME_DOCKER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <baic/errors.h>
#include <baic/host.h>
#include <baic/runtime.h>

/* sun_path is 108 bytes on Linux, NUL included. */
#define DK_SOCKET_MAX 108
#define DK_MAX_CAPS 32
/* The label that marks every container this plugin made (list and events filter on it). */
#define DK_LABEL_MANAGED "ai.backend.baic"
#define DK_LABEL_KERNEL "ai.backend.baic.kernel-id"
/* The spec's labels in their order, as a JSON array: Docker merges the image's labels
 * into the container's and returns them as an unordered map. */
#define DK_LABEL_SPEC "ai.backend.baic.labels"

/* The plugin's settings, read once at init and immutable afterwards, so pool threads
 * and the events thread may read them without locks. */
typedef struct dk_conf {
    char socket[DK_SOCKET_MAX];
    char api_version[16];      /* "v1.41": every path is prefixed with "/v1.41" */
    char name_prefix[64];      /* container name = prefix + kernel id */
    char private_network[64];  /* NetworkMode for BAIC_RT_NET_PRIVATE */
    char cap_add[DK_MAX_CAPS][32];
    size_t n_cap_add;
    int pull_missing;          /* create pulls an image the daemon lacks */
    uint64_t request_timeout_ms; /* bound on one API call (stop adds its grace time) */
} dk_conf_t;

/* ---- docker_http.c: HTTP/1.1 over the unix socket, blocking, for pool threads ---- */

/* Receives body bytes as they arrive (chunked encoding already removed). Returns 0 to
 * go on, non-zero to end the exchange early (dk_http then returns 0). */
typedef int (*dk_sink_fn)(void *arg, const char *data, size_t len);

typedef struct dk_req {
    const char *method;
    const char *path;          /* after the version prefix, query included, URL-encoded */
    const char *body;          /* JSON body, or NULL */
    uint64_t timeout_ms;       /* the whole exchange; 0 = none */
    int abort_fd;              /* readable -> BAIC_ECANCELLED; -1 = none */
    dk_sink_fn sink;           /* NULL: collect the body into body_out */
    void *sink_arg;
    void (*on_head)(void *arg, int status); /* after the headers, before any body */
    /* results */
    int status;                /* HTTP status */
    char *body_out;            /* collected body, NUL-terminated (malloc'd) */
    size_t body_len;
} dk_req_t;

/*
 * Sends one request on a fresh connection ("Connection: close") and reads the
 * response. Returns 0 when a response arrived (any HTTP status, see r->status), or
 * a negative code: -errno of connect/read/write, BAIC_ETIMEOUT, BAIC_ECANCELLED,
 * BAIC_EBACKEND for a malformed or oversized response. err gets a reason.
 * Blocks: pool threads and the events thread only.
 */
int dk_http(const dk_conf_t *c, dk_req_t *r, char *err, size_t errlen);
void dk_req_free(dk_req_t *r);

/* A baic code for an HTTP error status (0 for 2xx and 304), and the daemon's
 * "message" (or the status) in err. */
int dk_http_error(const dk_req_t *r, char *err, size_t errlen);

/* Appends s percent-encoded for a query value; returns 0 or -1 when out is too small. */
int dk_urlencode(const char *s, char *out, size_t n);

/* Docker's stdout/stderr multiplexing of a non-tty attach: 8-byte frames
 * (stream, 0, 0, 0, big-endian length). Keeps up to max bytes per stream. */
typedef struct dk_demux {
    unsigned char hdr[8];
    size_t hdr_have;
    size_t left;               /* payload bytes left in the current frame */
    int stream;                /* 1 stdout, 2 stderr */
    char *buf[2];
    size_t len[2];
    size_t max;
} dk_demux_t;

int dk_demux_feed(void *arg, const char *data, size_t len);

/* ---- docker_spec.c: the create body ---- */

/* Builds the POST /containers/create body for spec; returns a malloc'd JSON string,
 * or NULL with *err (BAIC_EBAD_INPUT with a reason in why, or UV_ENOMEM). */
char *dk_spec_build(const dk_conf_t *c, const baic_container_spec_t *spec, int *err,
                    char *why, size_t whylen);

/* ---- docker_events.c: the /events stream on its own thread ---- */

typedef struct dk_event {
    baic_rt_event_type_t type;
    char id[128];              /* kernel id, from the container's label */
    int exit_code;
    int64_t time_nano;
    struct dk_event *next;
} dk_event_t;

typedef struct dk_events dk_events_t;

/* Starts the thread that follows GET /events (die and oom of managed containers),
 * reconnecting with since= after a drop so no event is lost while the daemon lives.
 * Returns 0 or a negative code. */
int dk_events_start(const baic_host_t *host, const dk_conf_t *conf, dk_events_t **out);
/* Takes every event received so far, oldest first (the caller frees the list with
 * dk_events_free_list). Any thread; the loop's timer calls it. */
dk_event_t *dk_events_take(dk_events_t *ev);
void dk_events_free_list(dk_event_t *e);
/* 1 once a stream is open (tests and logs). */
int dk_events_connected(dk_events_t *ev);
/* Ends the stream, joins the thread, frees everything. */
void dk_events_stop(dk_events_t *ev);

int64_t dk_wall_ms(void);

#endif
