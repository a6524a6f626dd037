/* SPDX-License-Identifier: Apache-2.0 */
/* Request accessors: method, paths, query, headers, params, body, request-scoped memory. */
#include <string.h>
#include <strings.h>

#include "http/internal.h"

const char *baic_http_method(const baic_http_req_t *r) {
    return http_method_str((enum http_method)r->method);
}

const char *baic_http_raw_path(const baic_http_req_t *r) {
    return r->url;
}

const char *baic_http_path(const baic_http_req_t *r) {
    if (r->path == NULL) {
        /* Decoded lazily: most handlers route on params and never need it. The cast
         * is fine: the request is mutable memory owned by the arena. */
        baic_http_req_t *m = (baic_http_req_t *)r;
        char *p = http_arena_alloc(&m->arena, r->rawpath_len + 2);
        if (p == NULL)
            return "";
        if (r->rawpath_len == 0) {
            strcpy(p, "/");
        } else {
            http_pct_decode(p, r->url, r->rawpath_len, false);
        }
        m->path = p;
    }
    return r->path;
}

const char *baic_http_query_string(const baic_http_req_t *r) {
    return r->query;
}

const char *baic_http_query(baic_http_req_t *r, const char *name) {
    size_t nl = strlen(name);
    const char *q = r->query;
    while (*q) {
        size_t l = strcspn(q, "&");
        const char *eq = memchr(q, '=', l);
        size_t kl = eq ? (size_t)(eq - q) : l;
        /* Keys are compared decoded, since clients escape freely; the fast path is an
         * exact match of the raw bytes. */
        bool match = kl == nl && memcmp(q, name, nl) == 0;
        if (!match && (memchr(q, '%', kl) != NULL || memchr(q, '+', kl) != NULL)) {
            char *k = http_arena_alloc(&r->arena, kl + 1);
            if (k == NULL)
                return NULL;
            size_t dl = http_pct_decode(k, q, kl, true);
            match = dl == nl && memcmp(k, name, nl) == 0;
        }
        if (match) {
            size_t vl = eq ? l - kl - 1 : 0;
            char *v = http_arena_alloc(&r->arena, vl + 1);
            if (v == NULL)
                return NULL;
            http_pct_decode(v, eq ? eq + 1 : q + l, vl, true);
            return v;
        }
        q += l;
        if (*q == '&')
            q++;
    }
    return NULL;
}

const char *baic_http_header(const baic_http_req_t *r, const char *name) {
    for (size_t i = 0; i < r->nhdrs; i++)
        if (strcasecmp(r->hdrs[i].name, name) == 0)
            return r->hdrs[i].value;
    return NULL;
}

int baic_http_header_at(const baic_http_req_t *r, size_t i, const char **name,
                        const char **value) {
    if (i >= r->nhdrs)
        return UV_ENOENT;
    *name = r->hdrs[i].name;
    *value = r->hdrs[i].value;
    return 0;
}

const char *baic_http_param(const baic_http_req_t *r, const char *name) {
    if (r->route == NULL || r->params == NULL)
        return NULL;
    size_t nl = strlen(name);
    for (unsigned i = 0; i < r->route->nsegs; i++) {
        const char *s = r->route->segs[i];
        if (s[0] == '{' && strlen(s) == nl + 2 && memcmp(s + 1, name, nl) == 0)
            return r->params[i];
    }
    return NULL;
}

const char *baic_http_body(const baic_http_req_t *r, size_t *len) {
    if (len)
        *len = r->body_len;
    return r->body;
}

const char *baic_http_remote_addr(const baic_http_req_t *r) {
    return r->conn ? r->conn->remote : "";
}

const char *baic_http_route_pattern(const baic_http_req_t *r) {
    return r->route ? r->route->pattern : NULL;
}

int baic_http_version_minor(const baic_http_req_t *r) {
    return r->http_minor;
}

void baic_http_set_user(baic_http_req_t *r, void *p) {
    r->user = p;
}

void *baic_http_user(const baic_http_req_t *r) {
    return r->user;
}

void *baic_http_alloc(baic_http_req_t *r, size_t n) {
    return http_arena_alloc(&r->arena, n);
}

char *baic_http_strdup(baic_http_req_t *r, const char *s) {
    size_t n = strlen(s);
    char *p = http_arena_alloc(&r->arena, n + 1);
    if (p != NULL)
        memcpy(p, s, n + 1);
    return p;
}
