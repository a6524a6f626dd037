/* SPDX-License-Identifier: Apache-2.0 */
/* The cluster HMAC on manager-to-agent RPCs: Date within 5 minutes and a MAC compared in constant time. */
#include <stdint.h>
#include <time.h>

#include "agent.h"
#include "auth/cluster.h"

int agent_auth_check(const agent_t *a, baic_http_req_t *req, const char **why) {
    size_t blen = 0;
    const char *body = baic_http_body(req, &blen);
    return baic_cluster_verify(a->secret, baic_http_method(req), baic_http_raw_path(req),
                               baic_http_header(req, "Date"),
                               baic_http_header(req, "X-BaiC-Cluster-Auth"), body, blen,
                               (int64_t)time(NULL), why);
}

