/* SPDX-License-Identifier: Apache-2.0 */
/* Kernel images: rescan a registry's v2 API into the images table, list them, resolve references. */
#include "manager.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/client.h"
#include "log/log.h"

const char BAIC_IMAGE_RESOLVE_SQL[] =
    "WITH al AS (SELECT image_id FROM image_aliases WHERE alias = $1)"
    " SELECT i.id::text AS id, i.name, i.registry, i.tag, i.architecture, i.image,"
    "   i.labels::text AS labels, i.resources::text AS resources"
    " FROM images i WHERE i.status = 'ALIVE' AND ($2::text IS NULL OR i.architecture = $2)"
    " AND (i.id IN (SELECT image_id FROM al) OR i.name = $1 OR i.image || ':' || i.tag = $1"
    "   OR (strpos($1, ':') = 0 AND (i.image = $1 OR right(i.image, length($1) + 1) = '/' || $1)))"
    " ORDER BY (i.id IN (SELECT image_id FROM al)) DESC, (i.name = $1) DESC, i.created_at DESC"
    " LIMIT 1";

/* Stock aliases set after a rescan when missing: alias -> repository in the registry. */
static const char *const STOCK_ALIASES[][2] = {
    {"python", "stable/python"},
    {"busybox", "stable/busybox"},
};

#define ACCEPT_MANIFEST                                                                 \
    "application/vnd.oci.image.manifest.v1+json, "                                      \
    "application/vnd.docker.distribution.manifest.v2+json"

/*
 * A rescan walks the registry one request at a time: catalog pages, then each
 * repository's tags, then per tag the manifest and its config blob, upserting each
 * image as soon as its config is read. Registries hold few images here; one request
 * at a time keeps the state machine plain and the registry unhurried.
 */
typedef struct rescan {
    baic_api_op_t *op;
    char reg[256];
    json_t *repos;   /* repository names from the catalog */
    size_t ri;       /* current repository */
    json_t *tags;    /* tags of repos[ri] */
    size_t ti;       /* current tag */
    json_t *manifest;
    json_t *done;    /* canonical names upserted */
    json_t *errors;  /* "repo:tag: what went wrong" */
    int pending_db;
    int finished;
} rescan_t;

typedef void (*fetch_cb)(rescan_t *r, int status, const baic_http_header_t *h, json_t *body);

typedef struct fetch {
    rescan_t *r;
    fetch_cb cb;
} fetch_t;

static void rescan_free(rescan_t *r) {
    json_decref(r->repos);
    json_decref(r->tags);
    json_decref(r->manifest);
    json_decref(r->done);
    json_decref(r->errors);
    free(r);
}

static void fetch_done(int status, const baic_http_header_t *headers, const char *body,
                       size_t len, int err, void *arg) {
    fetch_t *f = arg;
    rescan_t *r = f->r;
    fetch_cb cb = f->cb;
    free(f);
    json_t *j = err == 0 && len > 0 ? json_loadb(body, len, 0, NULL) : NULL;
    cb(r, err != 0 ? -1 : status, headers, j);
    json_decref(j);
}

static int fetch(rescan_t *r, const char *path, const char *accept, fetch_cb cb) {
    char url[1024];
    snprintf(url, sizeof url, "http://%s%s", r->reg, path);
    baic_http_header_t hdrs[] = {{"Accept", accept ? accept : "application/json"}, {NULL, NULL}};
    fetch_t *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -ENOMEM;
    f->r = r;
    f->cb = cb;
    baic_http_client_req_t req = {.url = url, .headers = hdrs, .timeout_ms = 15000};
    int rc = baic_http_client_request(r->op->m->uv, &req, fetch_done, f);
    if (rc != 0)
        free(f);
    return rc;
}

static void next_tag(rescan_t *r);
static void next_repo(rescan_t *r);

static void rescan_error(rescan_t *r, const char *what) {
    const char *repo = json_string_value(json_array_get(r->repos, r->ri));
    const char *tag = json_string_value(json_array_get(r->tags, r->ti));
    char msg[512];
    snprintf(msg, sizeof msg, "%s:%s: %s", repo ? repo : "?", tag ? tag : "?", what);
    BAIC_LOG_W("image_rescan_error", "registry=%s msg=\"%s\"", r->reg, msg);
    json_array_append_new(r->errors, json_string(msg));
}

/* ---- the end: aliases, answer ---- */

static void aliases_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    rescan_t *r = arg;
    (void)res;
    if (err != 0)
        json_array_append_new(r->errors, json_pack("s++", "aliases: ", "", errmsg ? errmsg : ""));
    if (--r->pending_db > 0)
        return;
    if (!baic_api_op_gone(r->op)) {
        BAIC_LOG_I("image_rescan_done", "registry=%s images=%zu errors=%zu", r->reg,
                   json_array_size(r->done), json_array_size(r->errors));
        baic_http_respond_json(r->op->req, 200,
                               json_pack("{s:s, s:O, s:O}", "registry", r->reg, "images", r->done,
                                         "errors", r->errors));
    }
    rescan_free(r);
}

static void rescan_finish(rescan_t *r) {
    r->finished = 1;
    if (r->pending_db > 0)
        return; /* the last upsert finishes */
    size_t n = sizeof STOCK_ALIASES / sizeof STOCK_ALIASES[0];
    r->pending_db = (int)n;
    for (size_t i = 0; i < n; i++) {
        const char *p[3] = {STOCK_ALIASES[i][0], r->reg, STOCK_ALIASES[i][1]};
        if (baic_db_query(r->op->m->db,
                          "INSERT INTO image_aliases (alias, image_id) SELECT $1, id FROM images"
                          " WHERE registry = $2 AND image = $3 AND status = 'ALIVE'"
                          " ORDER BY created_at DESC, tag DESC LIMIT 1"
                          " ON CONFLICT (alias) DO NOTHING",
                          3, p, aliases_done, r) != 0)
            aliases_done(NULL, -1, "database closed", r);
    }
}

/* ---- per image ---- */

static void upsert_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    rescan_t *r = arg;
    if (err != 0)
        json_array_append_new(r->errors, json_pack("s++", "upsert: ", "", errmsg ? errmsg : ""));
    else if (baic_db_result_rows(res) > 0)
        json_array_append_new(r->done, json_string(baic_db_result_get(res, 0, 0)));
    if (--r->pending_db == 0 && r->finished)
        rescan_finish(r);
}

static const char *arch_name(const char *oci) {
    if (oci == NULL || strcmp(oci, "amd64") == 0)
        return "x86_64";
    if (strcmp(oci, "arm64") == 0)
        return "aarch64";
    return oci;
}

static void got_config(rescan_t *r, int status, const baic_http_header_t *h, json_t *cfg) {
    (void)h;
    if (status != 200 || !json_is_object(cfg)) {
        rescan_error(r, "config blob not readable");
        next_tag(r);
        return;
    }
    const char *repo = json_string_value(json_array_get(r->repos, r->ri));
    const char *tag = json_string_value(json_array_get(r->tags, r->ti));
    json_t *labels = json_object_get(json_object_get(cfg, "config"), "Labels");
    if (!json_is_object(labels))
        labels = json_object();
    else
        json_incref(labels);
    /* ai.backend.resource.min.<slot> -> {"<slot>": {"min": "<normalised>"}} */
    json_t *resources = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(labels, k, v) {
        const char *pre = "ai.backend.resource.min.";
        if (strncmp(k, pre, strlen(pre)) != 0 || !json_is_string(v))
            continue;
        const char *slot = k + strlen(pre);
        int bytes = strcmp(slot, "mem") == 0 || strstr(slot, ".mem") != NULL;
        int64_t val;
        char buf[48];
        if (baic_slot_parse(json_string_value(v), bytes, &val) != 0)
            continue;
        baic_slot_format(val, bytes, buf, sizeof buf);
        json_object_set_new(resources, slot, json_pack("{s:s}", "min", buf));
    }
    long long size = 0;
    size_t i;
    json_array_foreach(json_object_get(r->manifest, "layers"), i, v)
        size += json_integer_value(json_object_get(v, "size"));
    const char *digest = json_string_value(json_object_get(json_object_get(r->manifest, "config"),
                                                           "digest"));
    const char *role = json_string_value(json_object_get(labels, "ai.backend.role"));
    const char *accel = json_string_value(json_object_get(labels, "ai.backend.accelerators"));
    char name[768], project[256] = "", sz[32];
    snprintf(name, sizeof name, "%s/%s:%s", r->reg, repo, tag);
    const char *slash = strchr(repo, '/');
    if (slash != NULL)
        snprintf(project, sizeof project, "%.*s", (int)(slash - repo), repo);
    snprintf(sz, sizeof sz, "%lld", size);
    char *s_labels = json_dumps(labels, JSON_COMPACT);
    char *s_res = json_dumps(resources, JSON_COMPACT);
    const char *type = role && (strcmp(role, "SYSTEM") == 0 || strcmp(role, "SERVICE") == 0)
                           ? role : "COMPUTE";
    const char *p[12] = {name, project[0] ? project : NULL, repo, tag, r->reg,
                         arch_name(json_string_value(json_object_get(cfg, "architecture"))),
                         digest ? digest : "", sz, type, accel, s_labels, s_res};
    r->pending_db++;
    if (baic_db_query(r->op->m->db,
                      "INSERT INTO images AS i (name, project, image, tag, registry, architecture,"
                      " config_digest, size_bytes, type, accelerators, labels, resources)"
                      " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::bigint, $9, $10, $11::jsonb,"
                      " $12::jsonb) ON CONFLICT (name, architecture) DO UPDATE SET"
                      " config_digest = EXCLUDED.config_digest, size_bytes = EXCLUDED.size_bytes,"
                      " type = EXCLUDED.type, accelerators = EXCLUDED.accelerators,"
                      " labels = EXCLUDED.labels, resources = EXCLUDED.resources,"
                      " status = 'ALIVE' RETURNING name",
                      12, p, upsert_done, r) != 0) {
        r->pending_db--;
        rescan_error(r, "database not reachable");
    }
    free(s_labels);
    free(s_res);
    json_decref(labels);
    json_decref(resources);
    next_tag(r);
}

static void got_manifest(rescan_t *r, int status, const baic_http_header_t *h, json_t *man) {
    const char *ctype = h ? baic_http_header_find(h, "Content-Type") : NULL;
    /* The format is what the registry says it sent, not what the body claims: umoci's
     * manifests have no mediaType member. */
    if (status != 200 || !json_is_object(man) || ctype == NULL ||
        (strstr(ctype, "application/vnd.oci.image.manifest.v1+json") == NULL &&
         strstr(ctype, "application/vnd.docker.distribution.manifest.v2+json") == NULL)) {
        char msg[160];
        snprintf(msg, sizeof msg, "manifest not usable (HTTP %d, %s)", status,
                 ctype ? ctype : "no content type");
        rescan_error(r, msg);
        next_tag(r);
        return;
    }
    const char *digest = json_string_value(json_object_get(json_object_get(man, "config"), "digest"));
    if (digest == NULL || strncmp(digest, "sha256:", 7) != 0 || strlen(digest) != 71) {
        rescan_error(r, "manifest has no config digest");
        next_tag(r);
        return;
    }
    json_decref(r->manifest);
    r->manifest = json_incref(man);
    char path[768];
    snprintf(path, sizeof path, "/v2/%s/blobs/%s",
             json_string_value(json_array_get(r->repos, r->ri)), digest);
    if (fetch(r, path, NULL, got_config) != 0) {
        rescan_error(r, "request failed");
        next_tag(r);
    }
}

static int safe_name(const char *s, const char *extra) {
    if (s == NULL || *s == '\0' || strlen(s) > 255)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && strchr(extra, *s) == NULL)
            return 0;
    return 1;
}

static void next_tag(rescan_t *r) {
    for (;;) {
        if (r->tags != NULL)
            r->ti++;
        if (r->tags == NULL || r->ti >= json_array_size(r->tags)) {
            next_repo(r);
            return;
        }
        const char *tag = json_string_value(json_array_get(r->tags, r->ti));
        if (!safe_name(tag, "._-"))
            continue;
        char path[768];
        snprintf(path, sizeof path, "/v2/%s/manifests/%s",
                 json_string_value(json_array_get(r->repos, r->ri)), tag);
        if (fetch(r, path, ACCEPT_MANIFEST, got_manifest) == 0)
            return;
        rescan_error(r, "request failed");
    }
}

static void got_tags(rescan_t *r, int status, const baic_http_header_t *h, json_t *body) {
    (void)h;
    json_decref(r->tags);
    r->tags = NULL;
    json_t *tags = json_object_get(body, "tags");
    /* A deleted repository stays in the catalog with "tags": null. */
    if (status == 200 && json_is_array(tags) && json_array_size(tags) > 0) {
        r->tags = json_incref(tags);
        r->ti = (size_t)-1; /* next_tag moves to 0 */
    }
    next_tag(r);
}

static void next_repo(rescan_t *r) {
    json_decref(r->tags);
    r->tags = NULL;
    for (;;) {
        r->ri = r->ri == (size_t)-1 ? 0 : r->ri + 1;
        if (r->ri >= json_array_size(r->repos)) {
            rescan_finish(r);
            return;
        }
        const char *repo = json_string_value(json_array_get(r->repos, r->ri));
        if (!safe_name(repo, "._-/"))
            continue;
        char path[600];
        snprintf(path, sizeof path, "/v2/%s/tags/list", repo);
        if (fetch(r, path, NULL, got_tags) == 0)
            return;
    }
}

/* Link: </v2/_catalog?last=x&n=100>; rel="next" -> the path, or NULL. */
static int link_next(const char *link, char *out, size_t n) {
    if (link == NULL || strstr(link, "rel=\"next\"") == NULL)
        return 0;
    const char *a = strchr(link, '<'), *b = a ? strchr(a, '>') : NULL;
    if (a == NULL || b == NULL || (size_t)(b - a - 1) >= n || a[1] != '/')
        return 0;
    snprintf(out, n, "%.*s", (int)(b - a - 1), a + 1);
    return 1;
}

static void got_catalog(rescan_t *r, int status, const baic_http_header_t *h, json_t *body) {
    json_t *repos = json_object_get(body, "repositories");
    if (status != 200 || !json_is_array(repos)) {
        if (!baic_api_op_gone(r->op)) {
            char msg[400];
            snprintf(msg, sizeof msg, "The registry %s did not answer its catalog (HTTP %d).",
                     r->reg, status);
            baic_http_respond_problem(r->op->req, 502, "generic-bad-request",
                                      "Registry not reachable.", msg, NULL);
        }
        rescan_free(r);
        return;
    }
    json_array_extend(r->repos, repos);
    char next[512];
    if (link_next(h ? baic_http_header_find(h, "Link") : NULL, next, sizeof next) &&
        json_array_size(r->repos) < 100000 && fetch(r, next, NULL, got_catalog) == 0)
        return;
    r->ri = (size_t)-1;
    next_repo(r);
}

static void post_rescan(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    json_t *body = baic_api_json_body(req);
    if (body == NULL)
        return;
    const char *reg = NULL;
    json_error_t e;
    if (json_unpack_ex(body, &e, JSON_STRICT, "{s:s}", "registry", &reg) != 0) {
        json_decref(body);
        baic_api_invalid_params(req, e.text);
        return;
    }
    if (strncmp(reg, "http://", 7) == 0)
        reg += 7;
    if (!safe_name(reg, ".-:[]") || strlen(reg) >= 256) {
        json_decref(body);
        baic_api_invalid_params(req, "registry must be host:port of a plain-HTTP v2 registry.");
        return;
    }
    rescan_t *r = calloc(1, sizeof *r);
    r->op = baic_api_op_new(req, m, who);
    snprintf(r->reg, sizeof r->reg, "%s", reg);
    json_decref(body);
    r->repos = json_array();
    r->done = json_array();
    r->errors = json_array();
    BAIC_LOG_I("image_rescan_started", "registry=%s by=%s", r->reg, who->access_key);
    if (fetch(r, "/v2/_catalog?n=100", NULL, got_catalog) != 0) {
        baic_api_internal(req, "Could not start the registry request.");
        rescan_free(r);
    }
}

/* ---- GET /admin/rest/images ---- */

static void list_done(const baic_db_result_t *res, int err, const char *errmsg, void *arg) {
    baic_api_op_t *op = arg;
    if (baic_api_op_gone(op))
        return;
    if (err != 0) {
        BAIC_LOG_W("images_query_failed", "error=\"%s\"", errmsg ? errmsg : "");
        baic_api_unavailable(op->req, "The database is not reachable.");
        return;
    }
    json_t *items = json_array();
    for (int r = 0; r < baic_db_result_rows(res); r++)
        json_array_append_new(items, json_loads(baic_db_result_get(res, r, 0), 0, NULL));
    baic_http_respond_json(op->req, 200, json_pack("{s:o}", "items", items));
}

static void get_images(baic_http_req_t *req, baic_manager_t *m, const baic_caller_t *who) {
    baic_api_op_t *op = baic_api_op_new(req, m, who);
    if (baic_db_query(m->db,
                      "SELECT (to_jsonb(i) || jsonb_build_object('aliases', (SELECT"
                      " COALESCE(jsonb_agg(a.alias ORDER BY a.alias), '[]') FROM image_aliases a"
                      " WHERE a.image_id = i.id)))::text FROM images i"
                      " WHERE i.status = 'ALIVE' ORDER BY i.name, i.architecture",
                      0, NULL, list_done, op) != 0)
        baic_api_unavailable(req, "The database is not reachable.");
}

int baic_api_images_init(baic_manager_t *m) {
    int rc = baic_api_route(m, "POST", "/admin/rest/images/rescan", BAIC_ROUTE_SUPERADMIN,
                            post_rescan, 4096);
    if (rc == 0)
        rc = baic_api_route(m, "GET", "/admin/rest/images", BAIC_ROUTE_SUPERADMIN, get_images, 0);
    return rc;
}
