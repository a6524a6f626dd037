/* SPDX-License-Identifier: Apache-2.0 */
/* Manager-facing API authentication: Backend.AI's shared auth-token header, or the cluster HMAC the agent uses. */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "auth/cluster.h"
#include "proxy.h"

static int check_hmac(const sp_t *sp, baic_http_req_t *req, const char *given, const char **why) {
    size_t blen = 0;
    const char *body = baic_http_body(req, &blen);
    return baic_cluster_verify(sp->manager_secret, baic_http_method(req), baic_http_raw_path(req),
                               baic_http_header(req, "Date"), given, body, blen,
                               (int64_t)time(NULL), why);
}

int sp_auth_check(const sp_t *sp, baic_http_req_t *req, const char **why) {
    const char *tok = baic_http_header(req, "X-BackendAI-Storage-Auth-Token");
    if (tok != NULL) {
        size_t n = strlen(sp->manager_secret);
        /* Length first (it is not secret), then every byte whatever the first mismatch. */
        if (strlen(tok) != n || CRYPTO_memcmp(tok, sp->manager_secret, n) != 0) {
            *why = "bad-token";
            return -1;
        }
        return 0;
    }
    const char *mac = baic_http_header(req, "X-BaiC-Cluster-Auth");
    if (mac != NULL)
        return check_hmac(sp, req, mac, why);
    *why = "missing-headers";
    return -1;
}
