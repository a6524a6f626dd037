/* SPDX-License-Identifier: Apache-2.0 */
/* Manager -> storage proxy client: the [volumes] config and JSON calls on the proxies' manager API.
 */
#ifndef BAIC_MANAGER_STORAGE_CLIENT_H
#define BAIC_MANAGER_STORAGE_CLIENT_H

#include <jansson.h>

#include "manager.h"

/* Reads [volumes] (default_host, proxies.<name>.manager_api|client_api|secret). A missing
 * table is no error (no proxies: folder calls answer 503). Returns 0 or -EINVAL (logged). */
int baic_storage_init(baic_manager_t *m);
void baic_storage_fini(void);

/* "[volumes] default_host" or NULL. */
const char *baic_storage_default_host(void);
/* Number of configured proxies and the i-th one's name. */
size_t baic_storage_nproxies(void);
const char *baic_storage_proxy_name(size_t i);
/* 1 when host is "<configured proxy>:<volume>" (volume non-empty). */
int baic_storage_host_ok(const char *host);
/* The client API base of host's proxy (no trailing slash), or NULL when not configured. */
const char *baic_storage_client_api(const char *host);

/* Answer of one call: status 0 and err < 0 on transport failure; answer is the parsed JSON
 * body (borrowed, may be NULL for 204 or non-JSON). */
typedef void (*baic_storage_cb)(int status, json_t *answer, int err, void *arg);

/* POSTs body (borrowed; NULL = {}) to path on host's proxy with "volume" set to host's
 * volume part. Returns 0 (cb runs later) or a negative code (-ENOENT: unknown proxy). */
int baic_storage_call(baic_manager_t *m, const char *host, const char *path, json_t *body,
                      unsigned timeout_ms, baic_storage_cb cb, void *arg);
/* A call to one proxy by name; method "GET" or "POST"; body may be NULL. */
int baic_storage_proxy_call(baic_manager_t *m, const char *proxy, const char *method,
                            const char *path, json_t *body, unsigned timeout_ms, baic_storage_cb cb,
                            void *arg);

/* Answers a failed proxy call as problem JSON: the proxy's own problem passes through
 * (404/403/409/412/400/413), transport failures are 503. */
void baic_storage_fail(baic_http_req_t *req, int status, const json_t *answer, int err);

#endif
