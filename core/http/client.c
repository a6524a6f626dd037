/* SPDX-License-Identifier: Apache-2.0 */
/* Async HTTP/1.1 client: resolve, connect, send, parse with http-parser, one callback. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "http/client.h"

typedef struct {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect;
    uv_write_t wr;
    uv_getaddrinfo_t gai;
    uv_loop_t *loop;
    http_parser parser;
    char *out;                   /* serialized request */
    size_t out_len;
    char host[256];
    char port[8];
    baic_http_client_cb cb;
    void *arg;
    /* response */
    baic_http_header_t *hdrs;    /* malloc'd strings */
    size_t nhdrs, hcap;
    bool last_was_value;
    char *body;
    size_t body_len, body_cap;
    bool complete, done, tcp_open, gai_pending;
    int handles;
    char rbuf[16384];
} creq_t;

const char *baic_http_header_find(const baic_http_header_t *h, const char *name) {
    for (; h && h->name; h++)
        if (strcasecmp(h->name, name) == 0)
            return h->value;
    return NULL;
}

static void creq_free(creq_t *q) {
    for (size_t i = 0; i < q->nhdrs; i++) {
        free((char *)q->hdrs[i].name);
        free((char *)q->hdrs[i].value);
    }
    free(q->hdrs);
    free(q->body);
    free(q->out);
    free(q);
}

static void handle_closed(uv_handle_t *h) {
    creq_t *q = h->data;
    if (--q->handles == 0)
        creq_free(q);
}

static void finish(creq_t *q, int err) {
    if (q->done)
        return;
    q->done = true;
    uv_timer_stop(&q->timer);
    if (err == 0 && !q->complete)
        err = UV_EPROTO;
    if (err == 0)
        q->cb((int)q->parser.status_code, q->hdrs, q->body ? q->body : "", q->body_len, 0,
              q->arg);
    else
        q->cb(0, NULL, NULL, 0, err, q->arg);
    q->handles = (q->tcp_open ? 2 : 1) + (q->gai_pending ? 1 : 0);
    if (q->gai_pending)
        uv_cancel((uv_req_t *)&q->gai);
    uv_close((uv_handle_t *)&q->timer, handle_closed);
    if (q->tcp_open)
        uv_close((uv_handle_t *)&q->tcp, handle_closed);
}

static int append(char **s, const char *at, size_t n) {
    size_t l = *s ? strlen(*s) : 0;
    char *p = realloc(*s, l + n + 1);
    if (p == NULL)
        return -1;
    memcpy(p + l, at, n);
    p[l + n] = '\0';
    *s = p;
    return 0;
}

static int c_header_field(http_parser *p, const char *at, size_t n) {
    creq_t *q = p->data;
    if (q->nhdrs == 0 || q->last_was_value) {
        if (q->nhdrs + 2 > q->hcap) {
            size_t nc = q->hcap ? q->hcap * 2 : 16;
            baic_http_header_t *nh = realloc(q->hdrs, nc * sizeof(*nh));
            if (nh == NULL)
                return -1;
            q->hdrs = nh;
            q->hcap = nc;
        }
        q->hdrs[q->nhdrs].name = NULL;
        q->hdrs[q->nhdrs].value = strdup("");
        q->nhdrs++;
        q->hdrs[q->nhdrs].name = q->hdrs[q->nhdrs].value = NULL;
        q->last_was_value = false;
    }
    return append((char **)&q->hdrs[q->nhdrs - 1].name, at, n);
}

static int c_header_value(http_parser *p, const char *at, size_t n) {
    creq_t *q = p->data;
    q->last_was_value = true;
    return append((char **)&q->hdrs[q->nhdrs - 1].value, at, n);
}

static int c_body(http_parser *p, const char *at, size_t n) {
    creq_t *q = p->data;
    if (q->body_len + n + 1 > q->body_cap) {
        size_t nc = q->body_cap ? q->body_cap * 2 : 4096;
        while (nc < q->body_len + n + 1)
            nc *= 2;
        char *nb = realloc(q->body, nc);
        if (nb == NULL)
            return -1;
        q->body = nb;
        q->body_cap = nc;
    }
    memcpy(q->body + q->body_len, at, n);
    q->body_len += n;
    q->body[q->body_len] = '\0';
    return 0;
}

static int c_complete(http_parser *p) {
    creq_t *q = p->data;
    /* 1xx interim answers (100 Continue) are not the response. */
    if (p->status_code >= 100 && p->status_code < 200)
        return 0;
    q->complete = true;
    http_parser_pause(p, 1);
    return 0;
}

static int c_headers_complete(http_parser *p) {
    creq_t *q = p->data;
    if (q->hdrs == NULL) {
        q->hdrs = calloc(1, sizeof(*q->hdrs));
        if (q->hdrs == NULL)
            return -1;
        q->hcap = 1;
    }
    return 0;
}

static const http_parser_settings csettings = {
    .on_header_field = c_header_field,
    .on_header_value = c_header_value,
    .on_headers_complete = c_headers_complete,
    .on_body = c_body,
    .on_message_complete = c_complete,
};

static void c_alloc(uv_handle_t *h, size_t s, uv_buf_t *b) {
    creq_t *q = h->data;
    (void)s;
    *b = uv_buf_init(q->rbuf, sizeof(q->rbuf));
}

static void c_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    creq_t *q = s->data;
    if (n == 0 || q->done)
        return;
    if (n < 0) {
        if (n == UV_EOF) {
            /* A close-delimited body ends here; http-parser is told with a zero-length read. */
            http_parser_execute(&q->parser, &csettings, NULL, 0);
            finish(q, q->complete ? 0 : UV_EPROTO);
        } else {
            finish(q, (int)n);
        }
        return;
    }
    http_parser_execute(&q->parser, &csettings, b->base, (size_t)n);
    enum http_errno e = HTTP_PARSER_ERRNO(&q->parser);
    if (q->complete)
        finish(q, 0);
    else if (e != HPE_OK)
        finish(q, UV_EPROTO);
}

static void c_written(uv_write_t *w, int status) {
    creq_t *q = w->data;
    if (status < 0)
        finish(q, status);
}

static void c_connected(uv_connect_t *cr, int status) {
    creq_t *q = cr->data;
    if (q->done)
        return;
    if (status < 0) {
        finish(q, status);
        return;
    }
    uv_buf_t b = uv_buf_init(q->out, (unsigned)q->out_len);
    q->wr.data = q;
    int rc = uv_write(&q->wr, (uv_stream_t *)&q->tcp, &b, 1, c_written);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&q->tcp, c_alloc, c_read);
    if (rc < 0)
        finish(q, rc);
}

static void start_connect(creq_t *q, const struct sockaddr *sa) {
    int rc = uv_tcp_init(q->loop, &q->tcp);
    if (rc < 0) {
        finish(q, rc);
        return;
    }
    q->tcp.data = q;
    q->tcp_open = true;
    q->connect.data = q;
    rc = uv_tcp_connect(&q->connect, &q->tcp, sa, c_connected);
    if (rc < 0)
        finish(q, rc);
}

static void c_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *ai) {
    creq_t *q = g->data;
    q->gai_pending = false;
    if (q->done) {
        /* finish() counted this lookup as one more thing to wait for. */
        uv_freeaddrinfo(ai);
        if (--q->handles == 0)
            creq_free(q);
        return;
    }
    if (status < 0 || ai == NULL) {
        uv_freeaddrinfo(ai);
        finish(q, status < 0 ? status : UV_EAI_NONAME);
        return;
    }
    start_connect(q, ai->ai_addr);
    uv_freeaddrinfo(ai);
}

static void c_timeout(uv_timer_t *t) {
    finish(t->data, UV_ETIMEDOUT);
}

/* Splits "http://host[:port]/path" into host, port and the request target. */
static int parse_url(const char *url, creq_t *q, const char **target) {
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(url, strlen(url), 0, &u) != 0)
        return UV_EINVAL;
    if (!(u.field_set & (1 << UF_SCHEMA)) || !(u.field_set & (1 << UF_HOST)))
        return UV_EINVAL;
    if (u.field_data[UF_SCHEMA].len != 4 ||
        strncasecmp(url + u.field_data[UF_SCHEMA].off, "http", 4) != 0)
        return UV_EINVAL;
    size_t hl = u.field_data[UF_HOST].len;
    if (hl >= sizeof(q->host))
        return UV_EINVAL;
    memcpy(q->host, url + u.field_data[UF_HOST].off, hl);
    q->host[hl] = '\0';
    snprintf(q->port, sizeof(q->port), "%u", (u.field_set & (1 << UF_PORT)) ? u.port : 80);
    *target = (u.field_set & (1 << UF_PATH)) ? url + u.field_data[UF_PATH].off : "/";
    return 0;
}

int baic_http_client_request(uv_loop_t *loop, const baic_http_client_req_t *r,
                             baic_http_client_cb cb, void *arg) {
    if (loop == NULL || r == NULL || r->url == NULL || cb == NULL)
        return UV_EINVAL;
    creq_t *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return UV_ENOMEM;
    const char *target;
    if (parse_url(r->url, q, &target) < 0) {
        free(q);
        return UV_EINVAL;
    }
    const char *method = r->method ? r->method : "GET";
    size_t need = strlen(method) + strlen(target) + strlen(q->host) + 160 + r->body_len;
    for (const baic_http_header_t *h = r->headers; h && h->name; h++)
        need += strlen(h->name) + strlen(h->value) + 4;
    q->out = malloc(need);
    if (q->out == NULL) {
        free(q);
        return UV_ENOMEM;
    }
    bool ipv6 = strchr(q->host, ':') != NULL;
    size_t n = (size_t)snprintf(q->out, need, "%s %s HTTP/1.1\r\nHost: %s%s%s:%s\r\n", method,
                                target, ipv6 ? "[" : "", q->host, ipv6 ? "]" : "", q->port);
    for (const baic_http_header_t *h = r->headers; h && h->name; h++) {
        if (strpbrk(h->name, "\r\n") || strpbrk(h->value, "\r\n")) {
            free(q->out);
            free(q);
            return UV_EINVAL;
        }
        n += (size_t)snprintf(q->out + n, need - n, "%s: %s\r\n", h->name, h->value);
    }
    n += (size_t)snprintf(q->out + n, need - n, "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                          r->body_len);
    if (r->body_len)
        memcpy(q->out + n, r->body, r->body_len);
    q->out_len = n + r->body_len;
    q->loop = loop;
    q->cb = cb;
    q->arg = arg;
    http_parser_init(&q->parser, HTTP_RESPONSE);
    q->parser.data = q;
    uv_timer_init(loop, &q->timer);
    q->timer.data = q;
    uv_timer_start(&q->timer, c_timeout, r->timeout_ms ? r->timeout_ms : 30000, 0);
    struct sockaddr_storage ss;
    if (uv_ip4_addr(q->host, atoi(q->port), (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(q->host, atoi(q->port), (struct sockaddr_in6 *)&ss) == 0) {
        start_connect(q, (struct sockaddr *)&ss);
        return 0;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    q->gai.data = q;
    int rc = uv_getaddrinfo(loop, &q->gai, c_resolved, q->host, q->port, &hints);
    q->gai_pending = rc == 0;
    if (rc < 0)
        finish(q, rc); /* cb runs: the request was accepted up to here */
    return 0;
}
