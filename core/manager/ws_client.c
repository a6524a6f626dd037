/* SPDX-License-Identifier: Apache-2.0 */
/* A minimal WebSocket client on libuv: HTTP/1.1 upgrade handshake, then wslay for the frames. */
#include "ws_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <wslay/wslay.h>

enum { S_CONNECTING, S_OPEN, S_DONE };

struct baic_ws_client {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_timer_t timer;
    int handles;
    int state;
    int closing; /* close frame queued */
    char *req;
    size_t req_len;
    char accept[64];
    char *in;
    size_t in_len, in_cap;
    wslay_event_context_ptr ctx;
    baic_wsc_open_cb on_open;
    baic_wsc_message_cb on_message;
    baic_wsc_close_cb on_close;
    void *arg;
};

typedef struct wr {
    uv_write_t w;
    char data[];
} wr_t;

static void handle_closed(uv_handle_t *h) {
    baic_ws_client_t *c = h->data;
    if (--c->handles == 0) {
        if (c->ctx)
            wslay_event_context_free(c->ctx);
        free(c->req);
        free(c->in);
        free(c);
    }
}

static void shut(baic_ws_client_t *c) {
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, handle_closed);
    uv_close((uv_handle_t *)&c->tcp, handle_closed);
}

/* Ends the client: on_open(err) before it opened, on_close after. */
static void finish(baic_ws_client_t *c, int err, int status) {
    if (c->state == S_DONE)
        return;
    int was = c->state;
    c->state = S_DONE;
    if (was == S_CONNECTING && err != 0) {
        if (c->on_open)
            c->on_open(c, err, status, c->arg);
    } else if (c->on_close) {
        c->on_close(c, c->arg);
    }
    shut(c);
}

static void write_done(uv_write_t *w, int status) {
    (void)status;
    free(w->data);
}

static int raw_write(baic_ws_client_t *c, const void *data, size_t len) {
    wr_t *w = malloc(sizeof *w + len);
    if (w == NULL)
        return -ENOMEM;
    memcpy(w->data, data, len);
    w->w.data = w;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    int rc = uv_write(&w->w, (uv_stream_t *)&c->tcp, &b, 1, write_done);
    if (rc != 0)
        free(w);
    return rc;
}

/* ---- wslay callbacks ---- */

static ssize_t cb_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *user) {
    baic_ws_client_t *c = user;
    (void)flags;
    if (c->in_len == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < c->in_len ? len : c->in_len;
    memcpy(buf, c->in, n);
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
    return (ssize_t)n;
}

static ssize_t cb_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user) {
    baic_ws_client_t *c = user;
    (void)flags;
    if (raw_write(c, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static int cb_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user) {
    (void)ctx;
    (void)user;
    return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

static void cb_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
                   void *user) {
    baic_ws_client_t *c = user;
    (void)ctx;
    if (c->state != S_OPEN || c->on_message == NULL)
        return;
    if (a->opcode == WSLAY_TEXT_FRAME || a->opcode == WSLAY_BINARY_FRAME)
        c->on_message(c, a->opcode == WSLAY_TEXT_FRAME, a->msg, a->msg_length, c->arg);
}

/* Sends what wslay queued; ends the client when neither side has more to say. */
static void pump(baic_ws_client_t *c) {
    if (c->state != S_OPEN)
        return;
    if (wslay_event_send(c->ctx) != 0) {
        finish(c, 0, 0);
        return;
    }
    if (!wslay_event_want_read(c->ctx) && !wslay_event_want_write(c->ctx))
        finish(c, 0, 0);
}

/* ---- handshake and reading ---- */

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    baic_ws_client_t *c = h->data;
    (void)hint;
    if (c->in_cap - c->in_len < 16384) {
        size_t cap = c->in_cap ? c->in_cap * 2 : 32768;
        char *n = realloc(c->in, cap);
        if (n == NULL) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        c->in = n;
        c->in_cap = cap;
    }
    *buf = uv_buf_init(c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static int handshake(baic_ws_client_t *c) {
    char *end = NULL;
    for (size_t i = 0; i + 4 <= c->in_len; i++)
        if (memcmp(c->in + i, "\r\n\r\n", 4) == 0) {
            end = c->in + i;
            break;
        }
    if (end == NULL)
        return c->in_len > 16384 ? -1 : 0;
    *end = '\0';
    int status = 0;
    if (sscanf(c->in, "HTTP/1.%*d %d", &status) != 1 || status != 101) {
        finish(c, UV_EPROTO, status);
        return 1;
    }
    int accepted = 0;
    for (char *line = strstr(c->in, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "Sec-WebSocket-Accept:", 21) == 0) {
            const char *v = line + 2 + 21;
            while (*v == ' ')
                v++;
            accepted = strncmp(v, c->accept, strlen(c->accept)) == 0;
        }
    }
    if (!accepted) {
        finish(c, UV_EPROTO, status);
        return 1;
    }
    size_t used = (size_t)(end + 4 - c->in);
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    struct wslay_event_callbacks cbs = {cb_recv, cb_send, cb_genmask, NULL, NULL, NULL, cb_msg};
    if (wslay_event_context_client_init(&c->ctx, &cbs, c) != 0) {
        finish(c, UV_ENOMEM, status);
        return 1;
    }
    uv_timer_stop(&c->timer);
    c->state = S_OPEN;
    if (c->on_open)
        c->on_open(c, 0, status, c->arg);
    return 2;
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    baic_ws_client_t *c = s->data;
    (void)buf;
    if (c->state == S_DONE)
        return;
    if (n < 0) {
        finish(c, (int)n, 0);
        return;
    }
    c->in_len += (size_t)n;
    if (c->state == S_CONNECTING) {
        int h = handshake(c);
        if (h < 0)
            finish(c, UV_EPROTO, 0);
        if (h != 2)
            return;
    }
    if (c->state != S_OPEN)
        return;
    if (wslay_event_recv(c->ctx) != 0) {
        finish(c, 0, 0);
        return;
    }
    pump(c);
}

static void connected(uv_connect_t *r, int status) {
    baic_ws_client_t *c = r->data;
    if (c->state == S_DONE)
        return;
    if (status != 0) {
        finish(c, status, 0);
        return;
    }
    if (raw_write(c, c->req, c->req_len) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) != 0)
        finish(c, UV_EPROTO, 0);
}

static void timed_out(uv_timer_t *t) {
    baic_ws_client_t *c = t->data;
    finish(c, c->state == S_CONNECTING ? UV_ETIMEDOUT : 0, 0);
}

int baic_ws_client_connect(uv_loop_t *loop, const char *addr, const char *path,
                           const baic_http_header_t *headers, baic_wsc_open_cb on_open,
                           baic_wsc_message_cb on_message, baic_wsc_close_cb on_close, void *arg,
                           baic_ws_client_t **out) {
    if (strncmp(addr, "http://", 7) == 0)
        addr += 7;
    char host[256];
    int w = snprintf(host, sizeof host, "%s", addr);
    char *colon = strrchr(host, ':');
    if (w < 0 || (size_t)w >= sizeof host || colon == NULL)
        return UV_EINVAL;
    *colon = '\0';
    char *slash = strchr(colon + 1, '/');
    if (slash)
        *slash = '\0';
    int port = atoi(colon + 1);
    struct sockaddr_storage ss;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host[0] == '[' ? host + 1 : host, port, (struct sockaddr_in6 *)&ss) != 0)
        return UV_EINVAL;
    baic_ws_client_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return UV_ENOMEM;
    /* key and the accept value the server must answer with (RFC 6455 §4.1) */
    unsigned char nonce[16], dig[SHA_DIGEST_LENGTH];
    char key[32], cat[128];
    RAND_bytes(nonce, sizeof nonce);
    EVP_EncodeBlock((unsigned char *)key, nonce, sizeof nonce);
    int cl = snprintf(cat, sizeof cat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    SHA1((const unsigned char *)cat, (size_t)cl, dig);
    EVP_EncodeBlock((unsigned char *)c->accept, dig, sizeof dig);
    size_t need = strlen(path) + strlen(addr) + 256;
    for (const baic_http_header_t *h = headers; h && h->name; h++)
        need += strlen(h->name) + strlen(h->value) + 4;
    c->req = malloc(need);
    if (c->req == NULL) {
        free(c);
        return UV_ENOMEM;
    }
    size_t n = (size_t)snprintf(c->req, need,
                                "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                                "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                                "Sec-WebSocket-Version: 13\r\n",
                                path, addr, key);
    for (const baic_http_header_t *h = headers; h && h->name; h++)
        n += (size_t)snprintf(c->req + n, need - n, "%s: %s\r\n", h->name, h->value);
    n += (size_t)snprintf(c->req + n, need - n, "\r\n");
    c->req_len = n;
    c->loop = loop;
    c->on_open = on_open;
    c->on_message = on_message;
    c->on_close = on_close;
    c->arg = arg;
    uv_tcp_init(loop, &c->tcp);
    uv_timer_init(loop, &c->timer);
    c->tcp.data = c->timer.data = c->conn.data = c;
    c->handles = 2;
    int rc = uv_tcp_connect(&c->conn, &c->tcp, (struct sockaddr *)&ss, connected);
    if (rc != 0) {
        c->state = S_DONE;
        shut(c);
        return rc;
    }
    uv_timer_start(&c->timer, timed_out, 10000, 0);
    if (out)
        *out = c;
    return 0;
}

int baic_ws_client_send(baic_ws_client_t *c, int is_text, const void *data, size_t len) {
    if (c->state != S_OPEN || c->closing)
        return UV_ECONNRESET;
    struct wslay_event_msg m = {is_text ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME, data, len};
    if (wslay_event_queue_msg(c->ctx, &m) != 0)
        return UV_ECONNRESET;
    pump(c);
    return 0;
}

void baic_ws_client_close(baic_ws_client_t *c) {
    if (c->state == S_CONNECTING) {
        c->state = S_OPEN; /* so that finish reports on_close, not a failed open */
        finish(c, 0, 0);
        return;
    }
    if (c->state != S_OPEN || c->closing)
        return;
    c->closing = 1;
    wslay_event_queue_close(c->ctx, 1000, NULL, 0);
    /* the peer gets 5 s to answer the close */
    uv_timer_start(&c->timer, timed_out, 5000, 0);
    pump(c);
}
