/* SPDX-License-Identifier: Apache-2.0 */
/* Per-keypair rate limiting over a rolling window, counted in Redis so every manager agrees. */
#ifndef BAIC_MANAGER_RATELIMIT_H
#define BAIC_MANAGER_RATELIMIT_H

#include "manager.h"

typedef struct baic_ratelimit_result {
    long long limit;     /* the keypair's rate_limit (0 = unlimited, reported as 0) */
    long long remaining; /* requests left in the window */
    unsigned window_s;
    int exceeded;
} baic_ratelimit_result_t;

typedef void (*baic_ratelimit_cb)(const baic_ratelimit_result_t *r, void *arg);

typedef struct baic_ratelimit baic_ratelimit_t;

int baic_ratelimit_new(baic_manager_t *m, baic_ratelimit_t **out);
/* Stops the flush timer and frees the state once the loop has closed it. */
void baic_ratelimit_close(baic_ratelimit_t *rl);

/*
 * Counts one request for access_key and calls cb on the loop thread (possibly before
 * returning). When Redis is unreachable the request is allowed and a warning logged:
 * an outage of the limiter must not take the API down with it.
 */
void baic_ratelimit_check(baic_manager_t *m, const char *access_key, long long limit,
                          baic_ratelimit_cb cb, void *arg);

#endif
