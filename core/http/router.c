/* SPDX-License-Identifier: Apache-2.0 */
/* Route table: method + segment patterns with {param} captures, and 404/405 decisions. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/internal.h"

static int hexval(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t http_pct_decode(char *dst, const char *src, size_t n, bool plus_space) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int h, l;
        if (src[i] == '%' && i + 2 < n &&
            (h = hexval((unsigned char)src[i + 1])) >= 0 &&
            (l = hexval((unsigned char)src[i + 2])) >= 0) {
            dst[o++] = (char)(h * 16 + l);
            i += 2;
        } else if (plus_space && src[i] == '+') {
            dst[o++] = ' ';
        } else {
            dst[o++] = src[i];
        }
    }
    dst[o] = '\0';
    return o;
}

static void route_free(http_route_t *r) {
    for (unsigned i = 0; i < r->nsegs; i++)
        free(r->segs[i]);
    free(r->segs);
    free(r->method);
    free(r->pattern);
    free(r);
}

void http_routes_free(baic_http_server_t *srv) {
    http_route_t *r, *next;
    for (r = srv->routes; r != NULL; r = next) {
        next = r->next;
        route_free(r);
    }
    srv->routes = srv->routes_tail = NULL;
}

static bool is_param(const char *seg) {
    size_t n = strlen(seg);
    return n >= 3 && seg[0] == '{' && seg[n - 1] == '}';
}

int baic_http_route(baic_http_server_t *srv, const char *method, const char *pattern,
                    baic_http_handler_t handler, void *arg, size_t max_body) {
    if (srv == NULL || method == NULL || *method == '\0' || pattern == NULL || handler == NULL)
        return UV_EINVAL;
    http_route_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return UV_ENOMEM;
    r->method = strdup(method);
    r->pattern = strdup(*pattern ? pattern : "/");
    size_t plen = strlen(pattern);
    r->segs = calloc(plen / 2 + 1, sizeof(char *));
    if (r->method == NULL || r->pattern == NULL || r->segs == NULL)
        goto nomem;
    for (const char *p = pattern; *p;) {
        while (*p == '/')
            p++;
        if (*p == '\0')
            break;
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char *seg = strndup(p, n);
        if (seg == NULL)
            goto nomem;
        r->segs[r->nsegs++] = seg;
        if (is_param(seg))
            r->nparams++;
        p += n;
    }
    r->handler = handler;
    r->arg = arg;
    r->max_body = max_body;
    if (srv->routes_tail)
        srv->routes_tail->next = r;
    else
        srv->routes = r;
    srv->routes_tail = r;
    return 0;
nomem:
    route_free(r);
    return UV_ENOMEM;
}

/* Splits the raw path (no query) into at most max segments, empty ones skipped, so
 * "//a/b/" and "/a/b" look the same; returns the count or -1 when there are more. */
static int split_path(const char *path, size_t len, const char **seg, size_t *slen, int max) {
    int n = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && path[i] == '/')
            i++;
        if (i >= len)
            break;
        size_t s = i;
        while (i < len && path[i] != '/')
            i++;
        if (n == max)
            return -1;
        seg[n] = path + s;
        slen[n] = i - s;
        n++;
    }
    return n;
}

static bool seg_equal(const char *lit, const char *raw, size_t rlen) {
    /* Literal route segments are plain ASCII; compare against the decoded segment only
     * when the raw one holds an escape, which keeps the common case allocation-free. */
    if (memchr(raw, '%', rlen) == NULL)
        return strlen(lit) == rlen && memcmp(lit, raw, rlen) == 0;
    char tmp[256];
    if (rlen >= sizeof(tmp))
        return false;
    size_t d = http_pct_decode(tmp, raw, rlen, false);
    return strlen(lit) == d && memcmp(lit, tmp, d) == 0;
}

#define MAX_SEGS 64

http_route_t *http_route_match(baic_http_server_t *srv, baic_http_req_t *req, char *allow,
                               size_t allow_size, bool *path_known) {
    const char *seg[MAX_SEGS];
    size_t slen[MAX_SEGS];
    size_t plen = req->rawpath_len;
    const char *path = req->url;
    /* Absolute-form targets ("http://host/x") are legal; route on their path part. */
    if (plen > 0 && path[0] != '/') {
        const char *s = memchr(path, '/', plen);
        if (s != NULL && s + 1 < path + plen && s[1] == '/') {
            const char *p2 = memchr(s + 2, '/', plen - (size_t)(s + 2 - path));
            plen = p2 ? plen - (size_t)(p2 - path) : 0;
            path = p2 ? p2 : path + plen;
        }
    }
    int n = split_path(path, plen, seg, slen, MAX_SEGS);
    *path_known = false;
    if (allow_size)
        allow[0] = '\0';
    size_t alen = 0;
    if (n < 0)
        return NULL;
    const char *method = http_method_str((enum http_method)req->method);
    http_route_t *get_fallback = NULL;
    for (http_route_t *r = srv->routes; r != NULL; r = r->next) {
        if ((int)r->nsegs != n)
            continue;
        bool ok = true;
        for (int i = 0; i < n && ok; i++) {
            if (!is_param(r->segs[i]))
                ok = seg_equal(r->segs[i], seg[i], slen[i]);
        }
        if (!ok)
            continue;
        *path_known = true;
        bool mok = strcmp(r->method, "*") == 0 || strcasecmp(r->method, method) == 0;
        if (!mok && req->is_head && strcasecmp(r->method, "GET") == 0 && get_fallback == NULL)
            get_fallback = r;
        if (!mok) {
            /* Collect the Allow list for a possible 405, skipping duplicates. */
            size_t ml = strlen(r->method);
            bool dup = false;
            for (const char *a = allow; a && *a;) {
                const char *e = strchr(a, ',');
                size_t l = e ? (size_t)(e - a) : strlen(a);
                if (l == ml && memcmp(a, r->method, ml) == 0)
                    dup = true;
                a = e ? e + 2 : a + l;
            }
            if (!dup && alen + ml + 3 < allow_size) {
                if (alen) {
                    memcpy(allow + alen, ", ", 2);
                    alen += 2;
                }
                memcpy(allow + alen, r->method, ml);
                alen += ml;
                allow[alen] = '\0';
            }
            continue;
        }
        get_fallback = r;
        break;
    }
    http_route_t *r = get_fallback;
    if (r == NULL)
        return NULL;
    if (r->nparams) {
        req->params = http_arena_alloc(&req->arena, sizeof(char *) * r->nsegs);
        if (req->params == NULL)
            return NULL;
        for (int i = 0; i < n; i++) {
            req->params[i] = NULL;
            if (is_param(r->segs[i])) {
                char *v = http_arena_alloc(&req->arena, slen[i] + 1);
                if (v == NULL)
                    return NULL;
                http_pct_decode(v, seg[i], slen[i], false);
                req->params[i] = v;
            }
        }
    }
    return r;
}
