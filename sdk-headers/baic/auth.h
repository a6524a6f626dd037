/* SPDX-License-Identifier: Apache-2.0 */
/* The auth plugin kind: checks a user's credentials at login and hashes passwords for storage. */
#ifndef BAIC_AUTH_H
#define BAIC_AUTH_H

#include "host.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Where this sits: API requests are signed with a keypair (HMAC, done by the core);
 * an auth plugin is consulted only where a human proves who they are with a
 * password — the webserver's login and the manager's authorize / password-change
 * routes — and when the core stores a new password. Which plugin runs is chosen in
 * config ("auth/password" is the default).
 *
 * Secrets (password, otp, stored hash) must never reach a log line, a metric label,
 * an event body or a result's reason. Copies a plugin makes of them are wiped
 * (memset through a volatile pointer or OPENSSL_cleanse) before being freed.
 */

typedef enum baic_auth_req_type {
    BAIC_AUTH_REQ_PASSWORD = 1, /* username + password (+ otp), checked against `user` */
} baic_auth_req_type_t;

/*
 * One login attempt. Borrowed: valid only until authenticate() returns, so a plugin
 * that answers later copies what it needs. Members are only appended; read
 * members beyond the 1.0 set only when size says the host filled them.
 */
typedef struct baic_auth_request {
    uint32_t size; /* sizeof(baic_auth_request_t) at host build time */
    baic_auth_req_type_t type;
    const char *domain;   /* domain name, e.g. "default"; never NULL */
    const char *username; /* what the user typed: e-mail or username; never NULL */
    const char *password; /* secret; never NULL (may be "") */
    const char *otp;      /* one-time code or NULL */
    /*
     * The stored user record as the core keeps it, or NULL when no such user exists
     * (the plugin must still answer DENIED, ideally after the same amount of work,
     * so timing does not reveal which names exist). Keys the core fills:
     *   "email", "username", "domain_name", "role" ("superadmin"|"admin"|"user"|
     *   "monitor"), "status" ("active"|"inactive"|"deleted"|"before-verification"),
     *   "password" (the stored hash, in whatever format hash_password produced),
     *   "totp_key" (may be absent).
     */
    const json_t *user;
    const char *client_addr; /* peer address as text ("10.0.0.7" / "::1"), or NULL */
} baic_auth_request_t;

typedef enum baic_auth_outcome {
    BAIC_AUTH_OK = 0,     /* credentials are right: identity filled */
    BAIC_AUTH_DENIED = 1, /* credentials are wrong, or the account may not log in */
    BAIC_AUTH_ERROR = 2,  /* could not decide (backend down, corrupt stored hash, ...) */
} baic_auth_outcome_t;

/*
 * The answer, borrowed for the duration of the callback: the core copies what it
 * keeps. Strings are the plugin's (static or its own memory) and must stay valid
 * until the callback returns.
 */
typedef struct baic_auth_result {
    baic_auth_outcome_t outcome;
    int error; /* ERROR: the negative code; otherwise 0 */
    /*
     * DENIED / ERROR: one sentence the core may show the client as the problem
     * JSON's msg. Keep it generic ("Invalid credentials"): it must not tell a wrong
     * password from an unknown user, and never contains a secret. NULL = core's default.
     */
    const char *reason;
    /* OK: who logged in. NULL means "as in the stored record". */
    const char *username;
    const char *email;
    /* OK: a role the plugin vouches for (e.g. from an external directory), or NULL
     * to keep the stored role. The core never raises a role on a hint alone
     * unless configured to trust this plugin's hints. */
    const char *role_hint;
    /* OK: 1 when the stored hash is of an older or weaker format and the core should
     * store hash_password(password) now, while it has the plain password. */
    int needs_rehash;
} baic_auth_result_t;

/* Completion of authenticate; loop thread; res borrowed for the call. */
typedef void (*baic_auth_done_cb)(const baic_auth_result_t *res, void *arg);

/*
 * The ops table. Mandatory: authenticate, hash_password (BAIC_AUTH_MANDATORY_OPS).
 * Members are only appended; each group says the ABI minor that added it.
 */
typedef struct baic_auth_ops {
    /* ---- ABI 1.0 ---- */

    /*
     * authenticate: decides one login attempt.
     *   state  the plugin's state from init
     *   req    the attempt; borrowed until this call returns
     *   cb     called exactly once with the answer, on the loop thread, and never
     *          before authenticate has returned (a plugin with an immediate answer
     *          defers it through host->timer_start(0, ...) or host->queue_work)
     *   arg    passed to cb untouched
     * Returns 0 when cb will be called; a negative code otherwise, and then cb is
     * never called. Loop thread. Slow work (password hashing, directory lookups)
     * goes through host->queue_work or the plugin's own non-blocking I/O.
     * There is no cancel op: the core keeps arg alive until cb has run, and calls the
     * plugin's fini only once every authenticate has called back (cb's caller lives in
     * the .so). Should fini come first anyway, pending answers are ERROR/BAIC_ECANCELLED.
     */
    int (*authenticate)(void *state, const baic_auth_request_t *req, baic_auth_done_cb cb,
                        void *arg);

    /*
     * hash_password: makes the string the core stores for a new password.
     *   password  the plain password (borrowed)
     *   out       receives a NUL-terminated string allocated with host->alloc; the
     *             caller frees it with host->free. Self-describing (it names its
     *             algorithm and parameters) so a later authenticate can check it.
     * Returns 0 or a negative code (*out untouched then). Any thread, and it may take
     * long on purpose (a key-stretching hash): the core calls it from its work queue,
     * never on the loop thread.
     */
    int (*hash_password)(void *state, const char *password, char **out);

    /*
     * needs_rehash (optional): whether a stored hash should be replaced because its
     * format or cost is below the plugin's current setting.
     * Returns 1 (replace), 0 (keep), or a negative code (BAIC_EBAD_INPUT: not a
     * format this plugin knows). Any thread; fast (parses only).
     */
    int (*needs_rehash)(void *state, const char *stored);
} baic_auth_ops_t;

/* The smallest table the host accepts: the whole 1.0 group. */
#define BAIC_AUTH_OPS_MIN_SIZE (offsetof(baic_auth_ops_t, needs_rehash) + sizeof(void *))

/* Mandatory members, for the loader's check: X(member) for each. */
#define BAIC_AUTH_MANDATORY_OPS(X) X(authenticate) X(hash_password)

#ifdef __cplusplus
}
#endif

#endif /* BAIC_AUTH_H */
