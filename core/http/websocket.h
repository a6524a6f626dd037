/* SPDX-License-Identifier: Apache-2.0 */
/* WebSocket connections accepted from an HTTP request (wslay over the HTTP connection). */
#ifndef BAIC_CORE_HTTP_WEBSOCKET_H
#define BAIC_CORE_HTTP_WEBSOCKET_H

#include "http/http.h"

/* All functions run on the server's loop thread. ws is valid until its on_close
 * callback has returned. Pings are answered and close handshakes completed by the
 * library; fragmented messages are reassembled before on_message. */

/* Queues a text (must be UTF-8) or binary message; data is copied.
 * Returns 0, UV_ECONNRESET once closing, UV_ENOMEM. */
int baic_http_ws_send_text(baic_http_ws_t *ws, const char *data, size_t len);
int baic_http_ws_send_binary(baic_http_ws_t *ws, const void *data, size_t len);

/* Starts the close handshake (code 1000 when 0; reason nullable, < 123 bytes).
 * on_close follows once the peer answers or the socket goes. Returns 0 or UV_EALREADY. */
int baic_http_ws_close(baic_http_ws_t *ws, int code, const char *reason);

/* Replaces the user argument passed to the callbacks. */
void baic_http_ws_set_arg(baic_http_ws_t *ws, void *arg);

#endif
