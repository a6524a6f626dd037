/* SPDX-License-Identifier: Apache-2.0 */
/* The cluster HMAC between baic daemons (manager → agent, manager → storage proxy). */
#ifndef BAIC_CORE_CLUSTER_AUTH_H
#define BAIC_CORE_CLUSTER_AUTH_H

#include <stddef.h>
#include <stdint.h>

/* How far a request's Date may be from the receiver's clock, in seconds. */
#define BAIC_CLUSTER_SKEW_S 300

/*
 * Signs a request as docs/agent-protocol.md says: Date = now as RFC 3339 UTC, and the
 * MAC = lower-case hex HMAC-SHA256(secret, METHOD "\n" PATH "\n" DATE "\n"
 * hex(sha256(body))). body may be NULL when len is 0. Fills date and mac_hex.
 * Returns 0 or BAIC_EINTERNAL. Any thread.
 */
int baic_cluster_sign(const char *secret, const char *method, const char *path, const void *body,
                      size_t len, char date[32], char mac_hex[65]);

/*
 * Checks a received request: date (RFC 3339, UTC) within BAIC_CLUSTER_SKEW_S of now_s,
 * then the MAC compared in constant time. Returns 0, or -1 with *why set to a static
 * slug ("missing-headers", "bad-date", "date-skew", "bad-mac", "crypto-failed"). Any
 * thread; never logs the secret.
 */
int baic_cluster_verify(const char *secret, const char *method, const char *path,
                        const char *date, const char *mac_hex, const void *body, size_t len,
                        int64_t now_s, const char **why);

#endif
