/* SPDX-License-Identifier: Apache-2.0 */
/* A minimal WebSocket client (plain ws://, wslay framing) for the manager's relays to agents. */
#ifndef BAIC_MANAGER_WS_CLIENT_H
#define BAIC_MANAGER_WS_CLIENT_H

#include <stddef.h>

#include <uv.h>

#include "http/http.h"

/*
 * Loop thread only. After connect returns 0, exactly one of these happens: on_open with
 * err < 0 (handshake failed; status is the HTTP status when one came, and the client is
 * freed after the call), or on_open with err 0 followed later by on_close once (the
 * client is freed after it returns). Messages arrive through on_message in between.
 */
typedef struct baic_ws_client baic_ws_client_t;
typedef void (*baic_wsc_open_cb)(baic_ws_client_t *c, int err, int status, void *arg);
typedef void (*baic_wsc_message_cb)(baic_ws_client_t *c, int is_text, const void *data,
                                    size_t len, void *arg);
typedef void (*baic_wsc_close_cb)(baic_ws_client_t *c, void *arg);

/* addr "host:port" or "http://host:port"; path with query; headers end with {NULL, NULL}. */
int baic_ws_client_connect(uv_loop_t *loop, const char *addr, const char *path,
                           const baic_http_header_t *headers, baic_wsc_open_cb on_open,
                           baic_wsc_message_cb on_message, baic_wsc_close_cb on_close, void *arg,
                           baic_ws_client_t **out);
/* Queues a message (copied). 0 or a negative code once closing. */
int baic_ws_client_send(baic_ws_client_t *c, int is_text, const void *data, size_t len);
/* Starts the close handshake (or drops the connection before it opened); on_close follows
 * (not on_open) unless the handshake already failed. */
void baic_ws_client_close(baic_ws_client_t *c);

#endif
