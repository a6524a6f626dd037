/* SPDX-License-Identifier: Apache-2.0 */
/* Cluster HMAC: one implementation for every daemon that signs or checks daemon-to-daemon calls. */
#define _GNU_SOURCE
#include "auth/cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <baic/errors.h>

#include "util/hex.h"

/* RFC 3339 in UTC: 2026-11-27T13:00:00Z, fractional seconds allowed. */
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

/* The MAC over the four lines; out is 64 hex digits. */
static int mac_of(const char *secret, const char *method, const char *path, const char *date,
                  const void *body, size_t len, char out[65]) {
    unsigned char dig[SHA256_DIGEST_LENGTH];
    char bhash[65];
    if (SHA256((const unsigned char *)(body ? body : ""), len, dig) == NULL)
        return BAIC_EINTERNAL;
    baic_hex(dig, sizeof dig, bhash);
    size_t n = strlen(method) + strlen(path) + strlen(date) + 64 + 4;
    char *msg = malloc(n);
    if (msg == NULL)
        return BAIC_EINTERNAL;
    int k = snprintf(msg, n, "%s\n%s\n%s\n%s", method, path, date, bhash);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mlen = 0;
    int ok = k > 0 && (size_t)k < n &&
             HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg,
                  (size_t)k, mac, &mlen) != NULL &&
             mlen == 32;
    free(msg);
    if (!ok)
        return BAIC_EINTERNAL;
    baic_hex(mac, 32, out);
    OPENSSL_cleanse(mac, sizeof mac);
    return 0;
}

int baic_cluster_sign(const char *secret, const char *method, const char *path, const void *body,
                      size_t len, char date[32], char mac_hex[65]) {
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return mac_of(secret ? secret : "", method, path, date, body, len, mac_hex);
}

int baic_cluster_verify(const char *secret, const char *method, const char *path,
                        const char *date, const char *mac_hex, const void *body, size_t len,
                        int64_t now_s, const char **why) {
    if (date == NULL || mac_hex == NULL || method == NULL || path == NULL) {
        *why = "missing-headers";
        return -1;
    }
    time_t t;
    if (parse_date(date, &t) != 0) {
        *why = "bad-date";
        return -1;
    }
    if ((int64_t)t > now_s + BAIC_CLUSTER_SKEW_S || (int64_t)t < now_s - BAIC_CLUSTER_SKEW_S) {
        *why = "date-skew";
        return -1;
    }
    char expect[65];
    if (mac_of(secret ? secret : "", method, path, date, body, len, expect) != 0) {
        *why = "crypto-failed";
        return -1;
    }
    /* Lower-case hex of fixed length; compare every byte whatever the first mismatch. */
    int same = strlen(mac_hex) == 64 && CRYPTO_memcmp(mac_hex, expect, 64) == 0;
    OPENSSL_cleanse(expect, sizeof expect);
    if (!same) {
        *why = "bad-mac";
        return -1;
    }
    return 0;
}
