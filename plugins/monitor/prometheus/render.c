/* SPDX-License-Identifier: Apache-2.0 */
/* Turns host->metric_walk samples into Prometheus text; kept apart so tests compile it in. */
#include "render.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growing buffer on the host's allocator (the HTTP body is freed with host->free). */
typedef struct prometheus_buf {
    const baic_host_t *host;
    char *p;
    size_t len, cap;
    int oom;
} prometheus_buf_t;

static void prometheus_reserve(prometheus_buf_t *b, size_t more) {
    if (b->oom || b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = b->host->realloc(b->p, cap);
    if (p == NULL) {
        b->oom = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void prometheus_put(prometheus_buf_t *b, const char *s, size_t n) {
    prometheus_reserve(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void prometheus_puts(prometheus_buf_t *b, const char *s) {
    prometheus_put(b, s, strlen(s));
}

static void prometheus_printf(prometheus_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void prometheus_printf(prometheus_buf_t *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(tmp)) {
        prometheus_put(b, tmp, (size_t)n);
        return;
    }
    prometheus_reserve(b, (size_t)n);
    if (b->oom)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Shortest text that reads back as the same double; Prometheus spells the specials. */
static void prometheus_num(double v, char out[32]) {
    if (isnan(v)) {
        strcpy(out, "NaN");
        return;
    }
    if (isinf(v)) {
        strcpy(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* Whole numbers in plain digits (%g would write 10 as 1e+01 at its shortest). */
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(out, 32, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, 32, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

static int prometheus_name_ok(const char *s) {
    if (s == NULL || *s == '\0')
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(p != s && c >= '0' && c <= '9'))
            return 0;
    }
    return 1;
}

/* HELP text: backslash and newline are the only escapes. */
static void prometheus_help(prometheus_buf_t *b, const char *s) {
    for (; s && *s; s++) {
        if (*s == '\\')
            prometheus_puts(b, "\\\\");
        else if (*s == '\n')
            prometheus_puts(b, "\\n");
        else
            prometheus_put(b, s, 1);
    }
}

/*
 * Re-emits a rendered label set (`a="x",b="y"`, no braces) in canonical form. Inside a
 * value: `\\`, `\"`, `\n` stay; a raw newline becomes `\n`; any other backslash is taken
 * literally and doubled. Returns 0, or -1 when the set is not name="value" pairs.
 */
static int prometheus_labels(prometheus_buf_t *b, const char *s) {
    const char *p = s;
    int first = 1;
    while (*p == ' ')
        p++;
    while (*p) {
        const char *nb = p;
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_'))
            return -1;
        while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
               (*p >= '0' && *p <= '9'))
            p++;
        const char *ne = p;
        while (*p == ' ')
            p++;
        if (*p++ != '=')
            return -1;
        while (*p == ' ')
            p++;
        if (*p++ != '"')
            return -1;
        if (!first)
            prometheus_puts(b, ",");
        first = 0;
        prometheus_put(b, nb, (size_t)(ne - nb));
        prometheus_puts(b, "=\"");
        for (;;) {
            if (*p == '\0')
                return -1;
            if (*p == '"') {
                p++;
                break;
            }
            if (*p == '\\' && (p[1] == '\\' || p[1] == '"' || p[1] == 'n')) {
                prometheus_put(b, p, 2);
                p += 2;
            } else if (*p == '\\') {
                prometheus_puts(b, "\\\\");
                p++;
            } else if (*p == '\n') {
                prometheus_puts(b, "\\n");
                p++;
            } else {
                prometheus_put(b, p, 1);
                p++;
            }
        }
        prometheus_puts(b, "\"");
        while (*p == ' ')
            p++;
        if (*p == ',') {
            p++;
            while (*p == ' ')
                p++;
        } else if (*p != '\0') {
            return -1;
        }
    }
    return 0;
}

/* One metric name: its header and its samples, so names stay contiguous in the output. */
typedef struct prometheus_group {
    char *name;
    baic_metric_type_t type;
    prometheus_buf_t text;
} prometheus_group_t;

typedef struct prometheus_walk {
    const baic_host_t *host;
    prometheus_group_t *groups;
    size_t ngroups, cap;
    size_t skipped;
    int oom;
} prometheus_walk_t;

static prometheus_group_t *prometheus_group(prometheus_walk_t *w, const baic_metric_sample_t *s) {
    for (size_t i = 0; i < w->ngroups; i++)
        if (strcmp(w->groups[i].name, s->name) == 0)
            return w->groups[i].type == s->type ? &w->groups[i] : NULL;
    if (w->ngroups == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        prometheus_group_t *g = w->host->realloc(w->groups, cap * sizeof(*g));
        if (g == NULL) {
            w->oom = 1;
            return NULL;
        }
        w->groups = g;
        w->cap = cap;
    }
    size_t n = strlen(s->name);
    char *name = w->host->alloc(n + 1);
    if (name == NULL) {
        w->oom = 1;
        return NULL;
    }
    memcpy(name, s->name, n + 1);
    prometheus_group_t *g = &w->groups[w->ngroups++];
    memset(g, 0, sizeof(*g));
    g->name = name;
    g->type = s->type;
    g->text.host = w->host;
    static const char *const types[] = {"counter", "gauge", "histogram"};
    prometheus_puts(&g->text, "# HELP ");
    prometheus_puts(&g->text, name);
    prometheus_puts(&g->text, " ");
    prometheus_help(&g->text, s->help);
    prometheus_printf(&g->text, "\n# TYPE %s %s\n", name, types[s->type]);
    return g;
}

/* `name{labels[,le="x"]} value\n`; extra_le NULL for none. */
static void prometheus_line(prometheus_buf_t *b, const char *name, const char *suffix,
                            const char *labels, const char *le, const char *value) {
    prometheus_puts(b, name);
    prometheus_puts(b, suffix);
    if (*labels || le) {
        prometheus_puts(b, "{");
        prometheus_puts(b, labels);
        if (le) {
            prometheus_puts(b, *labels ? ",le=\"" : "le=\"");
            prometheus_puts(b, le);
            prometheus_puts(b, "\"");
        }
        prometheus_puts(b, "}");
    }
    prometheus_puts(b, " ");
    prometheus_puts(b, value);
    prometheus_puts(b, "\n");
}

static void prometheus_sample(const baic_metric_sample_t *s, void *arg) {
    prometheus_walk_t *w = arg;
    if (w->oom)
        return;
    if (!prometheus_name_ok(s->name) || (unsigned)s->type > BAIC_METRIC_HISTOGRAM) {
        w->skipped++;
        return;
    }
    /* Labels first, into a scratch buffer, so a bad set drops only this sample. */
    prometheus_buf_t lab = {.host = w->host};
    prometheus_puts(&lab, "");
    if (s->labels != NULL && prometheus_labels(&lab, s->labels) != 0) {
        w->host->free(lab.p);
        w->skipped++;
        return;
    }
    prometheus_group_t *g = lab.oom ? NULL : prometheus_group(w, s);
    if (g == NULL) {
        if (!w->oom && !lab.oom)
            w->skipped++; /* same name, other type */
        w->oom |= lab.oom;
        w->host->free(lab.p);
        return;
    }
    const char *labels = lab.p ? lab.p : "";
    char v[32], le[32];
    if (s->type != BAIC_METRIC_HISTOGRAM) {
        prometheus_num(s->value, v);
        prometheus_line(&g->text, s->name, "", labels, NULL, v);
    } else {
        for (size_t i = 0; i < s->nbuckets && s->bucket_le && s->bucket_count; i++) {
            prometheus_num(s->bucket_le[i], le);
            snprintf(v, sizeof(v), "%llu", (unsigned long long)s->bucket_count[i]);
            prometheus_line(&g->text, s->name, "_bucket", labels, le, v);
        }
        snprintf(v, sizeof(v), "%llu", (unsigned long long)s->count);
        prometheus_line(&g->text, s->name, "_bucket", labels, "+Inf", v);
        prometheus_num(s->value, le);
        prometheus_line(&g->text, s->name, "_sum", labels, NULL, le);
        prometheus_line(&g->text, s->name, "_count", labels, NULL, v);
    }
    w->oom |= g->text.oom;
    w->host->free(lab.p);
}

int prometheus_render(const baic_host_t *host, char **out, size_t *len, size_t *skipped) {
    prometheus_walk_t w = {.host = host};
    host->metric_walk(host, prometheus_sample, &w);
    prometheus_buf_t all = {.host = host};
    prometheus_puts(&all, "");
    for (size_t i = 0; i < w.ngroups; i++) {
        if (!w.oom && w.groups[i].text.p)
            prometheus_put(&all, w.groups[i].text.p, w.groups[i].text.len);
        host->free(w.groups[i].text.p);
        host->free(w.groups[i].name);
    }
    host->free(w.groups);
    if (w.oom || all.oom) {
        host->free(all.p);
        return UV_ENOMEM;
    }
    *out = all.p;
    *len = all.len;
    if (skipped != NULL)
        *skipped = w.skipped;
    return 0;
}

static void prometheus_static(baic_http_simple_response_t *res, const baic_host_t *host, int status,
                              const char *text) {
    size_t n = strlen(text);
    res->status = status;
    res->content_type = "text/plain; charset=utf-8";
    res->body = host->alloc(n + 1);
    res->body_len = res->body ? n : 0;
    if (res->body)
        memcpy(res->body, text, n + 1);
}

void prometheus_handle(const baic_http_simple_request_t *req, baic_http_simple_response_t *res,
                       void *arg) {
    const prometheus_endpoint_t *ep = arg;
    const baic_host_t *host = ep->host;
    const char *path = req->path ? req->path : "";
    size_t plen = strcspn(path, "?#");
    if (plen != strlen(ep->path) || strncmp(path, ep->path, plen) != 0) {
        prometheus_static(res, host, 404, "not found\n");
        return;
    }
    int head = req->method && strcmp(req->method, "HEAD") == 0;
    if (!head && (req->method == NULL || strcmp(req->method, "GET") != 0)) {
        prometheus_static(res, host, 405, "method not allowed\n");
        return;
    }
    char *text = NULL;
    size_t n = 0, skipped = 0;
    if (prometheus_render(host, &text, &n, &skipped) != 0) {
        prometheus_static(res, host, 500, "out of memory\n");
        return;
    }
    if (skipped)
        host->log(host, BAIC_LOG_DEBUG, "samples_skipped", "count=%zu", skipped);
    res->status = 200;
    res->content_type = PROMETHEUS_CONTENT_TYPE;
    if (head) {
        host->free(text);
        text = NULL;
        n = 0;
    }
    res->body = text;
    res->body_len = n;
}
