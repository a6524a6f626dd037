/* SPDX-License-Identifier: Apache-2.0 */
/* WebSocket upgrade and framing (wslay event API) on an HTTP server connection. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "http/internal.h"
#include "http/websocket.h"

struct baic_http_ws {
    http_conn_t *conn;             /* NULL once the connection is gone */
    wslay_event_context_ptr ctx;
    baic_http_ws_message_cb on_message;
    baic_http_ws_close_cb on_close;
    void *arg;
    const char *in;                /* input being handed to wslay */
    size_t in_len;
    int depth;                     /* >0 while inside wslay: defer the free */
    bool notified, done;
};

static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *ud) {
    baic_http_ws_t *ws = ud;
    (void)flags;
    if (ws->in_len == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < ws->in_len ? len : ws->in_len;
    memcpy(buf, ws->in, n);
    ws->in += n;
    ws->in_len -= n;
    return (ssize_t)n;
}

static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *ud) {
    baic_http_ws_t *ws = ud;
    (void)flags;
    if (ws->conn == NULL || ws->conn->closing) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    /* libuv queues without limit, so every frame is accepted whole; the copy is what
     * lets wslay reuse its buffer at once. */
    http_out_t *o = malloc(sizeof(*o) + len);
    if (o == NULL) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    memset(o, 0, sizeof(*o));
    o->heap = true;
    memcpy(o + 1, data, len);
    o->bufs[0] = uv_buf_init((char *)(o + 1), (unsigned)len);
    o->nbufs = 1;
    if (http_conn_write(ws->conn, o) < 0) {
        free(o);
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static void ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
                      void *ud) {
    baic_http_ws_t *ws = ud;
    (void)ctx;
    if ((a->opcode == WSLAY_TEXT_FRAME || a->opcode == WSLAY_BINARY_FRAME) &&
        ws->on_message != NULL && ws->conn != NULL)
        ws->on_message(ws, a->opcode == WSLAY_TEXT_FRAME, a->msg, a->msg_length, ws->arg);
}

static void ws_free(baic_http_ws_t *ws) {
    wslay_event_context_free(ws->ctx);
    free(ws);
}

/* Runs wslay's send side and notices the end of the close handshake. */
static void ws_pump(baic_http_ws_t *ws) {
    if (ws->conn == NULL)
        return;
    ws->depth++;
    if (wslay_event_send(ws->ctx) != 0 && ws->conn != NULL) {
        ws->depth--;
        http_conn_close(ws->conn);
        if (ws->depth == 0 && ws->conn == NULL)
            ws_free(ws);
        return;
    }
    ws->depth--;
    if (ws->conn == NULL) {
        if (ws->depth == 0)
            ws_free(ws);
        return;
    }
    if (!wslay_event_want_read(ws->ctx) && !wslay_event_want_write(ws->ctx)) {
        ws->done = true;
        if (ws->conn->wpending == 0)
            http_conn_close(ws->conn);
    }
}

bool http_ws_done(const baic_http_ws_t *ws) {
    return ws->done;
}

void http_ws_on_data(baic_http_ws_t *ws, const char *data, size_t len) {
    ws->in = data;
    ws->in_len = len;
    ws->depth++;
    int rc = wslay_event_recv(ws->ctx);
    ws->depth--;
    ws->in_len = 0;
    if (ws->conn == NULL) {
        if (ws->depth == 0)
            ws_free(ws);
        return;
    }
    if (rc != 0) {
        http_conn_close(ws->conn);
        return;
    }
    ws_pump(ws);
}

void http_ws_conn_gone(baic_http_ws_t *ws) {
    ws->conn = NULL;
    if (!ws->notified) {
        ws->notified = true;
        int code = wslay_event_get_close_received(ws->ctx)
                       ? wslay_event_get_status_code_received(ws->ctx)
                       : WSLAY_CODE_ABNORMAL_CLOSURE;
        if (ws->on_close != NULL) {
            ws->depth++;
            ws->on_close(ws, code, ws->arg);
            ws->depth--;
        }
    }
    if (ws->depth == 0)
        ws_free(ws);
}

static bool header_has_token(const char *v, const char *tok) {
    size_t tl = strlen(tok);
    while (v && *v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        size_t l = strcspn(v, ",");
        size_t e = l;
        while (e > 0 && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e == tl && strncasecmp(v, tok, tl) == 0)
            return true;
        v += l;
    }
    return false;
}

int baic_http_ws_accept(baic_http_req_t *req, baic_http_ws_message_cb on_message,
                        baic_http_ws_close_cb on_close, void *arg, baic_http_ws_t **out) {
    if (req == NULL || req->finished)
        return UV_EINVAL;
    if (req->aborted) {
        baic_http_req_release(req);
        return UV_ECONNRESET;
    }
    const char *key = baic_http_header(req, "Sec-WebSocket-Key");
    const char *ver = baic_http_header(req, "Sec-WebSocket-Version");
    if (!req->upgrade || req->method != HTTP_GET || req->head_sent ||
        !header_has_token(baic_http_header(req, "Upgrade"), "websocket") || key == NULL ||
        ver == NULL || strcmp(ver, "13") != 0 || strlen(key) > 64) {
        baic_http_add_header(req, "Sec-WebSocket-Version", "13");
        baic_http_respond_problem(req, 400, "generic-bad-request", "Bad request.",
                                  "Not a valid WebSocket upgrade.", NULL);
        return UV_EINVAL;
    }
    /* RFC 6455 §4.2.2: base64(SHA-1(key + fixed GUID)). */
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char cat[64 + sizeof(guid)];
    size_t kl = strlen(key);
    memcpy(cat, key, kl);
    memcpy(cat + kl, guid, sizeof(guid) - 1);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1((unsigned char *)cat, kl + sizeof(guid) - 1, digest);
    char accept[64];
    EVP_EncodeBlock((unsigned char *)accept, digest, SHA_DIGEST_LENGTH);

    baic_http_ws_t *ws = calloc(1, sizeof(*ws));
    struct wslay_event_callbacks cbs = {
        .recv_callback = ws_recv,
        .send_callback = ws_send,
        .on_msg_recv_callback = ws_on_msg,
    };
    if (ws == NULL || wslay_event_context_server_init(&ws->ctx, &cbs, ws) != 0) {
        free(ws);
        baic_http_respond_problem(req, 500, "internal-server-error", "Internal server error.",
                                  NULL, NULL);
        return UV_ENOMEM;
    }
    http_conn_t *c = req->conn;
    wslay_event_config_set_max_recv_msg_length(ws->ctx, c->srv->cfg.max_ws_message_bytes);
    ws->conn = c;
    ws->on_message = on_message;
    ws->on_close = on_close;
    ws->arg = arg;
    baic_http_add_header(req, "Upgrade", "websocket");
    baic_http_add_header(req, "Sec-WebSocket-Accept", accept);
    req->close_after = false;
    c->ws = ws;
    baic_http_respond(req, 101, NULL, NULL, 0);
    if (out != NULL)
        *out = ws;
    /* Bytes that came with the upgrade request already belong to the WebSocket. */
    char *p = c->pending;
    size_t n = c->pending_len;
    c->pending = NULL;
    c->pending_len = 0;
    if (n && !c->closing)
        http_ws_on_data(ws, p, n);
    free(p);
    if (!c->closing && c->ssl == NULL)
        http_conn_start_read(c);
    return 0;
}

static int ws_queue(baic_http_ws_t *ws, uint8_t opcode, const void *data, size_t len) {
    if (ws == NULL)
        return UV_EINVAL;
    if (ws->conn == NULL || ws->done)
        return UV_ECONNRESET;
    struct wslay_event_msg m = {opcode, data, len};
    int rc = wslay_event_queue_msg(ws->ctx, &m);
    if (rc == WSLAY_ERR_NO_MORE_MSG)
        return UV_ECONNRESET;
    if (rc != 0)
        return rc == WSLAY_ERR_NOMEM ? UV_ENOMEM : UV_EINVAL;
    if (ws->depth == 0)
        ws_pump(ws);
    return 0;
}

int baic_http_ws_send_text(baic_http_ws_t *ws, const char *data, size_t len) {
    return ws_queue(ws, WSLAY_TEXT_FRAME, data, len);
}

int baic_http_ws_send_binary(baic_http_ws_t *ws, const void *data, size_t len) {
    return ws_queue(ws, WSLAY_BINARY_FRAME, data, len);
}

int baic_http_ws_close(baic_http_ws_t *ws, int code, const char *reason) {
    if (ws == NULL)
        return UV_EINVAL;
    if (ws->conn == NULL || wslay_event_get_close_sent(ws->ctx))
        return UV_EALREADY;
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > 122)
        rl = 122;
    if (wslay_event_queue_close(ws->ctx, (uint16_t)(code ? code : 1000),
                                (const uint8_t *)reason, rl) != 0)
        return UV_EALREADY;
    if (ws->depth == 0)
        ws_pump(ws);
    return 0;
}

void baic_http_ws_set_arg(baic_http_ws_t *ws, void *arg) {
    ws->arg = arg;
}
