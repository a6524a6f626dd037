/* SPDX-License-Identifier: Apache-2.0 */
/* The daemon's event loop: libuv plus signal-driven shutdown and a clean close. */
#ifndef BAIC_CORE_LOOP_H
#define BAIC_CORE_LOOP_H

#include <uv.h>

typedef struct baic_loop baic_loop_t;

/* Called once on the loop thread when SIGINT or SIGTERM arrives (or baic_loop_stop is
 * called); the daemon closes its servers there and lets the loop drain. */
typedef void (*baic_loop_shutdown_cb)(baic_loop_t *loop, int signum, void *arg);

/* Creates a loop with SIGINT/SIGTERM watchers and SIGPIPE ignored. Returns 0 or a
 * negative uv code. */
int baic_loop_new(baic_loop_shutdown_cb on_shutdown, void *arg, baic_loop_t **out);
uv_loop_t *baic_loop_uv(baic_loop_t *loop);
/* Runs until no active handles remain (after shutdown every subsystem has closed
 * its handles). Returns 0. */
int baic_loop_run(baic_loop_t *loop);
/* Requests shutdown as if SIGTERM had arrived. Loop thread only. */
void baic_loop_stop(baic_loop_t *loop);
/* True once shutdown has begun. */
int baic_loop_stopping(const baic_loop_t *loop);
/* Closes every handle still open, runs the loop until they are closed, closes the
 * loop and frees it. Returns 0, or UV_EBUSY if something still refused to close. */
int baic_loop_free(baic_loop_t *loop);

#endif
