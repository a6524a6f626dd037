/* SPDX-License-Identifier: Apache-2.0 */
/* Device statistics read on a pool thread (vendor libraries can block) and answered on the loop. */
#include "compute_common.h"

typedef struct compute_stats_req {
    const baic_host_t *host;
    size_t n;
    compute_stat_fn fill;
    void *ctx;
    baic_compute_stats_cb cb;
    void *arg;
    baic_device_stat_t *stats;
    const baic_device_stat_t **ptrs;
} compute_stats_req_t;

static void compute_stats_free(compute_stats_req_t *r) {
    r->host->free(r->stats);
    r->host->free(r->ptrs);
    r->host->free(r);
}

static void compute_stats_work(void *arg) {
    compute_stats_req_t *r = arg;
    for (size_t i = 0; i < r->n; i++) {
        baic_device_stat_t *s = &r->stats[i];
        *s = (baic_device_stat_t){sizeof *s, NULL, -1, -1, -1, -1, -1};
        r->fill(r->ctx, i, s);
        r->ptrs[i] = s;
    }
}

static void compute_stats_done(void *arg, int status) {
    compute_stats_req_t *r = arg;
    if (status == 0)
        r->cb(r->arg, 0, r->ptrs, r->n);
    else
        r->cb(r->arg, status, NULL, 0);
    compute_stats_free(r);
}

int compute_stats_queue(const baic_host_t *host, size_t n, compute_stat_fn fill, void *ctx,
                        baic_compute_stats_cb cb, void *arg) {
    compute_stats_req_t *r = host->calloc(1, sizeof *r);
    if (r == NULL)
        return UV_ENOMEM;
    *r = (compute_stats_req_t){host, n, fill, ctx, cb, arg, NULL, NULL};
    r->stats = host->calloc(n + 1, sizeof *r->stats);
    r->ptrs = host->calloc(n + 1, sizeof *r->ptrs);
    int rc = r->stats && r->ptrs ? host->queue_work(host, compute_stats_work, compute_stats_done, r)
                                 : UV_ENOMEM;
    if (rc != 0)
        compute_stats_free(r);
    return rc;
}
