/* SPDX-License-Identifier: Apache-2.0 */
/* baic-agent-fleet: many runtime/dummy-like agents in one process, for scheduler scale tests (docs/agent-fleet.md). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "auth/cluster.h"
#include "config/daemon.h"
#include "events/bus.h"
#include "http/http.h"
#include "log/log.h"
#include "loop/loop.h"

/*
 * Every agent of the fleet is what the manager sees of a real baic-agent with
 * runtime/dummy: its own id, its own HTTP RPC listener (127.0.0.1, an ephemeral port,
 * so a distinct address), its own heartbeats on the agent event stream, its own slot
 * books (create_kernels beyond capacity answers 409 and takes nothing), and kernels
 * that "start" at once: a 202 answer, then kernel_creating and kernel_started events.
 * They share one loop, one Redis connection and one process: a thousand agents cost a
 * thousand listening sockets and a few hundred bytes each, not a thousand processes.
 */

#define STREAM "baic:agent-events"
#define MAX_SLOTS 8

typedef struct slotdef {
    char name[32];
    int bytes;       /* 1: bytes (integer), 0: count (micro-units) */
    int64_t cap;
} slotdef_t;

typedef struct fleet fleet_t;

typedef struct fagent {
    fleet_t *f;
    char id[64];
    char addr[64];
    baic_http_server_t *http;
    uv_timer_t hb;
    int64_t used[MAX_SLOTS];
    json_t *kernels; /* kernel_id -> {"session_id", "used": [..]} */
} fagent_t;

struct fleet {
    baic_loop_t *loop;
    uv_loop_t *uv;
    baic_bus_t *bus;
    const char *secret, *sgroup, *region, *prefix, *host;
    int n;
    uint64_t hb_ms;
    int events;      /* 0: none, 1: kernel_started, 2: kernel_creating + kernel_started */
    slotdef_t slots[MAX_SLOTS];
    size_t nslots;
    fagent_t *agents;
    int closing;
    unsigned long created, refused, destroyed;
};

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "1.5" -> 1500000 (count) or "4g" -> 4294967296 (bytes); -1 when malformed. */
static int64_t parse_amount(const char *s, int bytes) {
    if (s == NULL || *s == '\0')
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || !(v >= 0) || !isfinite(v))
        return -1;
    double mult = bytes ? 1 : 1e6;
    if (bytes && *end != '\0') {
        const char *units = "kmgtp";
        const char *u = strchr(units, *end | 0x20);
        if (u == NULL)
            return -1;
        for (long i = 0; i <= u - units; i++)
            mult *= 1024;
        end++;
        if (*end == 'i' || *end == 'I')
            end++;
        if (*end == 'b' || *end == 'B')
            end++;
    }
    if (*end != '\0' || v * mult > 9e18)
        return -1;
    return (int64_t)llround(v * mult);
}

static void format_amount(int64_t v, int bytes, char *buf, size_t n) {
    if (bytes || v % 1000000 == 0)
        snprintf(buf, n, "%lld", (long long)(bytes ? v : v / 1000000));
    else
        snprintf(buf, n, "%.6g", (double)v / 1e6);
}

/* ---- events ---- */

static void on_published(const char *id, int err, void *arg) {
    (void)id;
    (void)arg;
    if (err != 0)
        BAIC_LOG_W("fleet_publish_failed", "error=%d", err);
}

static void publish(fagent_t *a, const char *name, json_t *body) {
    json_object_set_new(body, "agent_id", json_string(a->id));
    json_object_set_new(body, "ts", json_integer(wall_ms()));
    int rc = baic_bus_publish(a->f->bus, STREAM, name, body, on_published, NULL);
    if (rc != 0)
        BAIC_LOG_W("fleet_publish_failed", "agent=%s event=%s error=%d", a->id, name, rc);
    json_decref(body);
}

static void heartbeat(uv_timer_t *t) {
    fagent_t *a = t->data;
    fleet_t *f = a->f;
    json_t *avail = json_object(), *types = json_object(), *kernels = json_array();
    for (size_t i = 0; i < f->nslots; i++) {
        char v[32];
        format_amount(f->slots[i].cap, f->slots[i].bytes, v, sizeof v);
        json_object_set_new(avail, f->slots[i].name, json_string(v));
        json_object_set_new(types, f->slots[i].name, json_string(f->slots[i].bytes ? "bytes" : "count"));
    }
    const char *kid;
    json_t *k;
    json_object_foreach(a->kernels, kid, k)
        json_array_append_new(kernels, json_pack("{s:s, s:s}", "kernel_id", kid, "status", "RUNNING"));
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:{s:s}, s:[], s:o}", "addr",
                             a->addr, "region", f->region, "scaling_group", f->sgroup,
                             "architecture", "x86_64", "version", BAIC_VERSION, "available_slots",
                             avail, "slot_types", types, "compute_plugins", "fleet", BAIC_VERSION,
                             "images", "kernels", kernels);
    publish(a, "agent_heartbeat", body);
}

/* ---- RPC ---- */

static int middleware(baic_http_req_t *req, void *arg) {
    fagent_t *a = arg;
    const char *why = NULL;
    size_t blen = 0;
    const char *body = baic_http_body(req, &blen);
    if (baic_cluster_verify(a->f->secret, baic_http_method(req), baic_http_raw_path(req),
                            baic_http_header(req, "Date"),
                            baic_http_header(req, "X-BaiC-Cluster-Auth"), body, blen,
                            (int64_t)time(NULL), &why) != 0) {
        baic_http_respond_problem(req, 401, "auth-failed", "Authentication failed.", why, NULL);
        return 1;
    }
    return 0;
}

static json_t *body_object(baic_http_req_t *req) {
    size_t len = 0;
    const char *text = baic_http_body(req, &len);
    json_error_t jerr;
    json_t *j = json_loadb(text ? text : "", len, 0, &jerr);
    if (!json_is_object(j)) {
        baic_http_respond_problem(req, 400, "invalid-api-params",
                                  "Missing or invalid API parameters.",
                                  j ? "body must be a JSON object" : jerr.text, NULL);
        json_decref(j);
        return NULL;
    }
    return j;
}

static void h_health(baic_http_req_t *req, void *arg) {
    fagent_t *a = arg;
    baic_http_respond_json(req, 200, json_pack("{s:s, s:s}", "agent_id", a->id, "version", BAIC_VERSION));
}

static void h_create(baic_http_req_t *req, void *arg) {
    fagent_t *a = arg;
    fleet_t *f = a->f;
    json_t *body = body_object(req);
    if (body == NULL)
        return;
    const char *sid = NULL;
    json_t *kernels = NULL;
    if (json_unpack(body, "{s:s, s:o}", "session_id", &sid, "kernels", &kernels) != 0 ||
        !json_is_array(kernels) || json_array_size(kernels) == 0) {
        baic_http_respond_problem(req, 400, "invalid-api-params",
                                  "Missing or invalid API parameters.",
                                  "session_id and a non-empty kernels array are required", NULL);
        json_decref(body);
        return;
    }
    /* All or nothing, as the real agent: check every kernel before taking anything. */
    int64_t want[MAX_SLOTS] = {0};
    size_t i;
    json_t *k;
    char msg[160];
    json_array_foreach(kernels, i, k) {
        const char *kid = json_string_value(json_object_get(k, "kernel_id"));
        json_t *rs = json_object_get(k, "resource_slots");
        if (kid == NULL || strlen(kid) != 36 || (rs != NULL && !json_is_object(rs))) {
            snprintf(msg, sizeof msg, "kernels[%zu]: kernel_id (a UUID) and resource_slots (an object) required", i);
            baic_http_respond_problem(req, 400, "invalid-api-params",
                                      "Missing or invalid API parameters.", msg, NULL);
            json_decref(body);
            return;
        }
        if (json_object_get(a->kernels, kid) != NULL) {
            baic_http_respond_problem(req, 409, "kernel-already-exists", "The kernel already exists.", kid, NULL);
            json_decref(body);
            return;
        }
        for (size_t s = 0; s < f->nslots; s++) {
            json_t *v = json_object_get(rs, f->slots[s].name);
            if (v == NULL)
                continue;
            int64_t x = parse_amount(json_string_value(v), f->slots[s].bytes);
            if (x < 0) {
                snprintf(msg, sizeof msg, "kernels[%zu].resource_slots.%s: not an amount", i, f->slots[s].name);
                baic_http_respond_problem(req, 400, "invalid-api-params",
                                          "Missing or invalid API parameters.", msg, NULL);
                json_decref(body);
                return;
            }
            want[s] += x;
        }
    }
    for (size_t s = 0; s < f->nslots; s++)
        if (a->used[s] + want[s] > f->slots[s].cap) {
            f->refused++;
            snprintf(msg, sizeof msg, "not enough %s", f->slots[s].name);
            baic_http_respond_problem(req, 409, "instance-not-available",
                                      "There is no available instance.", msg, NULL);
            json_decref(body);
            return;
        }
    json_t *accepted = json_array();
    json_array_foreach(kernels, i, k) {
        const char *kid = json_string_value(json_object_get(k, "kernel_id"));
        json_t *rs = json_object_get(k, "resource_slots");
        json_t *used = json_array();
        for (size_t s = 0; s < f->nslots; s++) {
            json_t *v = json_object_get(rs, f->slots[s].name);
            int64_t x = v ? parse_amount(json_string_value(v), f->slots[s].bytes) : 0;
            a->used[s] += x;
            json_array_append_new(used, json_integer(x));
        }
        json_object_set_new(a->kernels, kid, json_pack("{s:s, s:o}", "session_id", sid, "used", used));
        json_array_append_new(accepted, json_string(kid));
        f->created++;
    }
    baic_http_respond_json(req, 202, json_pack("{s:O}", "accepted", accepted));
    /* runtime/dummy with no delays: created and started as soon as accepted. */
    json_array_foreach(accepted, i, k) {
        const char *kid = json_string_value(k);
        if (f->events >= 2)
            publish(a, "kernel_creating", json_pack("{s:s, s:s}", "kernel_id", kid, "session_id", sid));
        if (f->events >= 1)
            publish(a, "kernel_started",
                    json_pack("{s:s, s:s, s:s, s:[]}", "kernel_id", kid, "session_id", sid,
                              "container_id", kid, "service_ports"));
    }
    json_decref(accepted);
    json_decref(body);
}

static void h_destroy(baic_http_req_t *req, void *arg) {
    fagent_t *a = arg;
    fleet_t *f = a->f;
    json_t *body = body_object(req);
    if (body == NULL)
        return;
    const char *kid = json_string_value(json_object_get(body, "kernel_id"));
    const char *reason = json_string_value(json_object_get(body, "reason"));
    json_t *k = kid ? json_object_get(a->kernels, kid) : NULL;
    if (kid == NULL) {
        baic_http_respond_problem(req, 400, "invalid-api-params",
                                  "Missing or invalid API parameters.", "kernel_id is required", NULL);
    } else if (k == NULL) {
        baic_http_respond_problem(req, 404, "kernel-not-found", "No such kernel.", kid, NULL);
    } else {
        json_t *used = json_object_get(k, "used");
        for (size_t s = 0; s < f->nslots; s++)
            a->used[s] -= json_integer_value(json_array_get(used, s));
        json_t *ev = json_pack("{s:s, s:s, s:i, s:s, s:s}", "kernel_id", kid, "session_id",
                               json_string_value(json_object_get(k, "session_id")), "exit_code", 0,
                               "reason", reason ? reason : "user-requested", "msg", "");
        json_object_del(a->kernels, kid);
        f->destroyed++;
        baic_http_respond_json(req, 202, json_object());
        publish(a, "kernel_terminated", ev);
    }
    json_decref(body);
}

static void h_kernels(baic_http_req_t *req, void *arg) {
    fagent_t *a = arg;
    json_t *list = json_array();
    const char *kid;
    json_t *k;
    json_object_foreach(a->kernels, kid, k)
        json_array_append_new(list, json_pack("{s:s, s:O, s:s, s:s, s:{}}", "kernel_id", kid, "session_id",
                                              json_object_get(k, "session_id"), "status", "RUNNING",
                                              "container_id", kid, "resource_slots"));
    baic_http_respond_json(req, 200, json_pack("{s:o}", "kernels", list));
}

/* ---- start and stop ---- */


static void on_shutdown(baic_loop_t *loop, int signum, void *arg) {
    (void)loop;
    fleet_t *f = arg;
    f->closing = 1;
    BAIC_LOG_I("fleet_stopping", "signal=%d created=%lu refused=%lu destroyed=%lu", signum,
               f->created, f->refused, f->destroyed);
    for (int i = 0; i < f->n; i++) {
        fagent_t *a = &f->agents[i];
        uv_timer_stop(&a->hb);
        uv_close((uv_handle_t *)&a->hb, NULL);
        if (a->http)
            baic_http_server_close(a->http, NULL, NULL);
        a->http = NULL;
    }
    baic_bus_close(f->bus, NULL, NULL);
}

static int parse_slots(fleet_t *f, const char *spec) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", spec);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (eq == NULL || f->nslots == MAX_SLOTS || eq - tok >= 32 || eq == tok)
            return -1;
        *eq = '\0';
        slotdef_t *s = &f->slots[f->nslots++];
        snprintf(s->name, sizeof s->name, "%s", tok);
        /* mem and anything named *.mem / *mem are bytes, the rest counts (compute/mem's rule). */
        size_t l = strlen(tok);
        s->bytes = l >= 3 && strcmp(tok + l - 3, "mem") == 0;
        s->cap = parse_amount(eq + 1, s->bytes);
        if (s->cap < 0)
            return -1;
    }
    return f->nslots > 0 ? 0 : -1;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: baic-agent-fleet -n COUNT [--redis HOST:PORT] [--scaling-group NAME]\n"
            "         [--slots cpu=64,mem=256g] [--id-prefix i-fleet-] [--heartbeat-ms 3000]\n"
            "         [--events none|started|creating] [--listen-host 127.0.0.1]\n"
            "\n"
            "COUNT runtime/dummy-like agents in this one process (see docs/agent-fleet.md).\n"
            "The cluster secret comes from $BAIC_CLUSTER_SECRET (16 characters or more).\n");
}

int main(int argc, char **argv) {
    fleet_t f = {.sgroup = "default", .region = "local", .prefix = "i-fleet-",
                 .host = "127.0.0.1", .hb_ms = 3000, .events = 2};
    const char *redis = "127.0.0.1:6379", *slots = "cpu=64,mem=256g";
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (v == NULL) {
            usage(stderr);
            return 2;
        }
        i++;
        if (strcmp(o, "-n") == 0 || strcmp(o, "--count") == 0)
            f.n = atoi(v);
        else if (strcmp(o, "--redis") == 0)
            redis = v;
        else if (strcmp(o, "--scaling-group") == 0)
            f.sgroup = v;
        else if (strcmp(o, "--slots") == 0)
            slots = v;
        else if (strcmp(o, "--id-prefix") == 0)
            f.prefix = v;
        else if (strcmp(o, "--listen-host") == 0)
            f.host = v;
        else if (strcmp(o, "--heartbeat-ms") == 0)
            f.hb_ms = (uint64_t)atoll(v);
        else if (strcmp(o, "--events") == 0)
            f.events = strcmp(v, "none") == 0 ? 0 : strcmp(v, "started") == 0 ? 1
                     : strcmp(v, "creating") == 0 ? 2 : -1;
        else {
            usage(stderr);
            return 2;
        }
    }
    f.secret = getenv("BAIC_CLUSTER_SECRET");
    if (f.n < 1 || f.n > 20000 || f.hb_ms < 100 || f.hb_ms > 60000 || f.events < 0 ||
        strlen(f.prefix) > 40 || parse_slots(&f, slots) != 0) {
        usage(stderr);
        return 2;
    }
    if (f.secret == NULL || strlen(f.secret) < 16) {
        fprintf(stderr, "baic-agent-fleet: $BAIC_CLUSTER_SECRET (16+ characters) is required\n");
        return 2;
    }
    char rhost[256];
    const char *colon = strrchr(redis, ':');
    int rport = colon ? atoi(colon + 1) : 0;
    snprintf(rhost, sizeof rhost, "%.*s", colon ? (int)(colon - redis) : 0, redis);
    if (rport <= 0 || rport > 65535 || rhost[0] == '\0') {
        fprintf(stderr, "baic-agent-fleet: --redis HOST:PORT\n");
        return 2;
    }
    if (baic_daemon_open_files((unsigned)f.n * 2 + 256) != 0) {
        fprintf(stderr, "baic-agent-fleet: cannot raise the open-file limit to %d\n", f.n * 2 + 256);
        return 1;
    }
    baic_log_set_stream(stderr);
    if (baic_loop_new(on_shutdown, &f, &f.loop) != 0)
        return 1;
    f.uv = baic_loop_uv(f.loop);
    if (baic_bus_new(f.uv, rhost, rport, getenv("BAIC_REDIS_PASSWORD"), &f.bus) != 0) {
        fprintf(stderr, "baic-agent-fleet: cannot set up the Redis connection\n");
        return 1;
    }
    f.agents = calloc((size_t)f.n, sizeof *f.agents);
    if (f.agents == NULL)
        return 1;
    char listen[128];
    snprintf(listen, sizeof listen, "%s:0", f.host);
    for (int i = 0; i < f.n; i++) {
        fagent_t *a = &f.agents[i];
        a->f = &f;
        a->kernels = json_object();
        snprintf(a->id, sizeof a->id, "%s%05d", f.prefix, i);
        baic_http_config_t cfg = {.listen = listen, .max_connections = 256, .server_name = "baic-agent-fleet"};
        int rc = baic_http_server_new(f.uv, &cfg, &a->http);
        if (rc != 0) {
            fprintf(stderr, "baic-agent-fleet: agent %d: listen on %s: %s\n", i, listen, uv_strerror(rc));
            return 1;
        }
        snprintf(a->addr, sizeof a->addr, "http://%s:%d", f.host, baic_http_server_port(a->http));
        baic_http_set_middleware(a->http, middleware, a);
        baic_http_route(a->http, "GET", "/rpc/health", h_health, a, 0);
        baic_http_route(a->http, "POST", "/rpc/create_kernels", h_create, a, 4u << 20);
        baic_http_route(a->http, "POST", "/rpc/destroy_kernel", h_destroy, a, 0);
        baic_http_route(a->http, "GET", "/rpc/kernels", h_kernels, a, 0);
        uv_timer_init(f.uv, &a->hb);
        a->hb.data = a;
        /* Spread over the interval, as independent agents would be. */
        uv_timer_start(&a->hb, heartbeat, f.hb_ms * (uint64_t)i / (uint64_t)f.n, f.hb_ms);
    }
    BAIC_LOG_I("fleet_ready", "agents=%d first=%s addr=%s scaling_group=%s heartbeat_ms=%llu", f.n,
               f.agents[0].id, f.agents[0].addr, f.sgroup, (unsigned long long)f.hb_ms);
    printf("ready %d\n", f.n);
    fflush(stdout);
    baic_loop_run(f.loop);
    for (int i = 0; i < f.n; i++)
        json_decref(f.agents[i].kernels);
    free(f.agents);
    baic_loop_free(f.loop);
    return 0;
}
