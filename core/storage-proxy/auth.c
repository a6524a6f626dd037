/* SPDX-License-Identifier: Apache-2.0 */
/* Manager-facing API authentication: Backend.AI's shared auth-token header, or the cluster HMAC the agent uses. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "proxy.h"

#define AUTH_SKEW_S 300

/* Fetched once: looking the algorithms up per request costs more than the MAC. */
static EVP_MAC *auth_hmac;
static EVP_MD *auth_sha256;

void sp_auth_free(void) {
    EVP_MAC_free(auth_hmac);
    EVP_MD_free(auth_sha256);
    auth_hmac = NULL;
    auth_sha256 = NULL;
}

static void to_hex(const unsigned char *in, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int parse_date(const char *s, time_t *out) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (p == NULL)
        return -1;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0)
        return -1;
    *out = timegm(&tm);
    return 0;
}

static int hmac_hex(const char *secret, const char *msg, size_t len, char out[65]) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t maclen = 0;
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(auth_hmac);
    int ok = ctx != NULL &&
             EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), params) == 1 &&
             EVP_MAC_update(ctx, (const unsigned char *)msg, len) == 1 &&
             EVP_MAC_final(ctx, mac, &maclen, sizeof mac) == 1 && maclen == 32;
    EVP_MAC_CTX_free(ctx);
    if (!ok)
        return -1;
    to_hex(mac, 32, out);
    return 0;
}

static int check_hmac(const sp_t *sp, baic_http_req_t *req, const char *given, const char **why) {
    if (auth_hmac == NULL)
        auth_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (auth_sha256 == NULL)
        auth_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (auth_hmac == NULL || auth_sha256 == NULL) {
        *why = "crypto-unavailable";
        return -1;
    }
    const char *date = baic_http_header(req, "Date");
    time_t t;
    if (date == NULL || parse_date(date, &t) != 0) {
        *why = "bad-date";
        return -1;
    }
    time_t now = time(NULL);
    if (t > now + AUTH_SKEW_S || t < now - AUTH_SKEW_S) {
        *why = "date-skew";
        return -1;
    }
    size_t blen = 0;
    const char *body = baic_http_body(req, &blen);
    unsigned char digest[32];
    unsigned int dlen = 0;
    char body_hex[65], expect[65];
    if (EVP_Digest(body ? body : "", blen, digest, &dlen, auth_sha256, NULL) != 1 || dlen != 32) {
        *why = "crypto-failed";
        return -1;
    }
    to_hex(digest, 32, body_hex);
    const char *method = baic_http_method(req), *path = baic_http_raw_path(req);
    size_t mlen = strlen(method) + strlen(path) + strlen(date) + 64 + 4;
    char *msg = baic_http_alloc(req, mlen);
    if (msg == NULL) {
        *why = "no-memory";
        return -1;
    }
    int n = snprintf(msg, mlen, "%s\n%s\n%s\n%s", method, path, date, body_hex);
    if (n < 0 || (size_t)n >= mlen || hmac_hex(sp->manager_secret, msg, (size_t)n, expect) != 0) {
        *why = "crypto-failed";
        return -1;
    }
    if (strlen(given) != 64 || CRYPTO_memcmp(given, expect, 64) != 0) {
        *why = "bad-mac";
        return -1;
    }
    return 0;
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
