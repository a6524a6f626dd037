/* SPDX-License-Identifier: Apache-2.0 */
/* Loop wrapper: signals start an orderly shutdown; free closes what is left, libuv-style. */
#include "loop/loop.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>

#include "log/log.h"

struct baic_loop {
    uv_loop_t uv;
    uv_signal_t sigint, sigterm;
    baic_loop_shutdown_cb on_shutdown;
    void *arg;
    int stopping;
};

static void begin_shutdown(baic_loop_t *l, int signum) {
    if (l->stopping)
        return;
    l->stopping = 1;
    BAIC_LOG_I("shutdown", "signal=%d", signum);
    uv_close((uv_handle_t *)&l->sigint, NULL);
    uv_close((uv_handle_t *)&l->sigterm, NULL);
    if (l->on_shutdown)
        l->on_shutdown(l, signum, l->arg);
}

static void on_signal(uv_signal_t *s, int signum) { begin_shutdown(s->data, signum); }

int baic_loop_new(baic_loop_shutdown_cb on_shutdown, void *arg, baic_loop_t **out) {
    baic_loop_t *l = calloc(1, sizeof *l);
    if (l == NULL)
        return UV_ENOMEM;
    int rc = uv_loop_init(&l->uv);
    if (rc != 0) {
        free(l);
        return rc;
    }
    signal(SIGPIPE, SIG_IGN);
    l->on_shutdown = on_shutdown;
    l->arg = arg;
    uv_signal_init(&l->uv, &l->sigint);
    uv_signal_init(&l->uv, &l->sigterm);
    l->sigint.data = l->sigterm.data = l;
    uv_signal_start(&l->sigint, on_signal, SIGINT);
    uv_signal_start(&l->sigterm, on_signal, SIGTERM);
    *out = l;
    return 0;
}

uv_loop_t *baic_loop_uv(baic_loop_t *l) { return &l->uv; }
int baic_loop_stopping(const baic_loop_t *l) { return l->stopping; }
void baic_loop_stop(baic_loop_t *l) { begin_shutdown(l, 0); }

int baic_loop_run(baic_loop_t *l) {
    uv_run(&l->uv, UV_RUN_DEFAULT);
    return 0;
}

static void close_walk(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int baic_loop_free(baic_loop_t *l) {
    if (l == NULL)
        return 0;
    if (!l->stopping) {
        l->stopping = 1;
        uv_close((uv_handle_t *)&l->sigint, NULL);
        uv_close((uv_handle_t *)&l->sigterm, NULL);
    }
    uv_run(&l->uv, UV_RUN_NOWAIT);
    uv_walk(&l->uv, close_walk, NULL);
    uv_run(&l->uv, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&l->uv);
    if (rc == 0)
        free(l);
    return rc;
}
