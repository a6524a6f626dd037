/* SPDX-License-Identifier: Apache-2.0 */
/* `baic-manager fixture populate`: the default domain, project, policies, resource group and two users. */
#ifndef BAIC_MANAGER_FIXTURES_H
#define BAIC_MANAGER_FIXTURES_H

#include <stddef.h>

#include <jansson.h>

/* The e-mail addresses of the two users created (Backend.AI's example fixture names). */
#define BAIC_FIXTURE_ADMIN_EMAIL "admin@lablup.com"
#define BAIC_FIXTURE_USER_EMAIL "user@lablup.com"

/*
 * Creates, when missing: domain "default"; project (group) "default" in it; resource
 * policies "default" (keypair, user, project); resource group "default" (public, fifo,
 * concentrated) associated with the domain and the project; a superadmin
 * (BAIC_FIXTURE_ADMIN_EMAIL) and a normal user (BAIC_FIXTURE_USER_EMAIL), members of the
 * project, each with one active keypair (access key "AKIA" + 16 of [A-Z0-9], secret key
 * 40 of [A-Za-z0-9+/], both from RAND_bytes).
 *
 * Idempotent: a second run creates nothing, leaves existing passwords alone and returns
 * the keys already stored. All of it runs in one transaction under an advisory lock.
 * The schema must be upgraded first.
 *
 * password_hash_admin/user: stored as given (already hashed by the caller); NULL leaves
 * the account without a password (keypair access only).
 * created_keys: when not NULL, receives a new object the caller owns (json_decref):
 *   {"admin": {"email", "access_key", "secret_key"}, "user": {...}}
 * It holds secrets: write it only to files the operator asked for, never to logs.
 * Blocking (synchronous libpq). Returns 0, or a negative code with a message in err.
 */
int baic_fixture_populate(const char *dsn, const char *password_hash_admin,
                          const char *password_hash_user, json_t **created_keys, char *err,
                          size_t n);

#endif
