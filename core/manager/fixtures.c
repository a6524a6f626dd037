/* SPDX-License-Identifier: Apache-2.0 */
/* Default fixtures for a fresh installation; every statement is parameterised and safe to re-run. */
#include "manager/fixtures.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <baic/errors.h>

#include "log/log.h"

#define FIXTURE_LOCK_KEY "7301843725390166"

static int fail(char *err, size_t n, int code, const char *fmt, ...) {
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
        size_t l = strlen(err);
        while (l && (err[l - 1] == '\n' || err[l - 1] == ' '))
            err[--l] = '\0';
    }
    return code;
}

/* Runs one statement; on success *out (if given) keeps the result for the caller. */
static int q(PGconn *c, const char *sql, int np, const char *const *p, PGresult **out, char *err,
             size_t n) {
    PGresult *r = PQexecParams(c, sql, np, NULL, p, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        int rc = fail(err, n, BAIC_EBACKEND, "%s", PQresultErrorMessage(r));
        PQclear(r);
        return rc;
    }
    if (out)
        *out = r;
    else
        PQclear(r);
    return 0;
}

/* n characters drawn uniformly from alphabet (rejection sampling keeps it unbiased). */
static int random_chars(char *out, size_t len, const char *alphabet) {
    size_t k = strlen(alphabet);
    unsigned limit = 256 - (256 % (unsigned)k);
    size_t i = 0;
    while (i < len) {
        unsigned char buf[64];
        if (RAND_bytes(buf, sizeof buf) != 1)
            return -EIO;
        for (size_t j = 0; j < sizeof buf && i < len; j++)
            if (buf[j] < limit)
                out[i++] = alphabet[buf[j] % k];
    }
    out[len] = '\0';
    return 0;
}

static const char *const base_sql[] = {
    "INSERT INTO keypair_resource_policies (name, default_for_unspecified, total_resource_slots,"
    " max_session_lifetime, max_concurrent_sessions, max_pending_session_count,"
    " max_containers_per_session, idle_timeout, allowed_vfolder_hosts)"
    " VALUES ('default', 'UNLIMITED', '{}', 0, 30, NULL, 1, 3600, '{\"local:volume1\": "
    "[\"create-vfolder\", \"modify-vfolder\", \"delete-vfolder\", \"mount-in-session\","
    " \"upload-file\", \"download-file\", \"invite-others\", \"set-user-specific-permission\"]}')"
    " ON CONFLICT (name) DO NOTHING",
    "INSERT INTO user_resource_policies (name, max_vfolder_count, max_quota_scope_size)"
    " VALUES ('default', 0, -1) ON CONFLICT (name) DO NOTHING",
    "INSERT INTO project_resource_policies (name, max_vfolder_count, max_quota_scope_size)"
    " VALUES ('default', 0, -1) ON CONFLICT (name) DO NOTHING",
    "INSERT INTO domains (name, description) VALUES ('default', 'The default domain')"
    " ON CONFLICT (name) DO NOTHING",
    "INSERT INTO groups (name, description, domain_name, resource_policy)"
    " VALUES ('default', 'The default project', 'default', 'default')"
    " ON CONFLICT (name, domain_name) DO NOTHING",
    "INSERT INTO scaling_groups (name, description, is_public, driver, scheduler, agent_selector)"
    " VALUES ('default', 'The default resource group', true, 'static', 'fifo', 'concentrated')"
    " ON CONFLICT (name) DO NOTHING",
    "INSERT INTO sgroups_for_domains (scaling_group, domain) VALUES ('default', 'default')"
    " ON CONFLICT DO NOTHING",
    "INSERT INTO sgroups_for_groups (scaling_group, \"group\")"
    " SELECT 'default', id FROM groups WHERE name = 'default' AND domain_name = 'default'"
    " ON CONFLICT DO NOTHING",
};

/* Ensures one user with one keypair; fills access/secret with the stored or new keys. */
static int ensure_user(PGconn *c, const char *email, const char *username, const char *role,
                       const char *pw_hash, char access[21], char secret[41], int *created,
                       char *err, size_t n) {
    const char *pu[] = {email, username, pw_hash, role};
    PGresult *r = NULL;
    int rc = q(c,
               "INSERT INTO users (email, username, password, role, status, domain_name,"
               " resource_policy, full_name) VALUES ($1, $2, $3, $4, 'active', 'default',"
               " 'default', $2) ON CONFLICT (email) DO NOTHING RETURNING uuid",
               4, pu, &r, err, n);
    if (rc)
        return rc;
    /* Only a user made now has the password the caller just hashed. */
    *created = PQntuples(r) > 0;
    PQclear(r);
    r = NULL;
    const char *pe[] = {email};
    if (!rc)
        rc = q(c, "SELECT uuid FROM users WHERE email = $1", 1, pe, &r, err, n);
    if (rc)
        return rc;
    char uuid[64];
    snprintf(uuid, sizeof uuid, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);

    const char *pg[] = {uuid};
    rc = q(c,
           "INSERT INTO association_groups_users (user_id, group_id)"
           " SELECT $1::uuid, id FROM groups WHERE name = 'default' AND domain_name = 'default'"
           " ON CONFLICT DO NOTHING",
           1, pg, NULL, err, n);
    if (!rc)
        rc = q(c,
               "SELECT access_key, secret_key FROM keypairs WHERE \"user\" = $1"
               " ORDER BY created_at, access_key LIMIT 1",
               1, pg, &r, err, n);
    if (rc)
        return rc;
    int have = PQntuples(r) > 0;
    if (have) {
        snprintf(access, 21, "%s", PQgetvalue(r, 0, 0));
        snprintf(secret, 41, "%s", PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    if (!have) {
        memcpy(access, "AKIA", 4);
        if (random_chars(access + 4, 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") < 0 ||
            random_chars(secret, 40,
                         "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") < 0)
            return fail(err, n, -EIO, "no randomness for new keys");
        const char *is_admin = strcmp(role, "superadmin") == 0 || strcmp(role, "admin") == 0
                                   ? "true" : "false";
        const char *pk[] = {access, secret, email, uuid, is_admin};
        rc = q(c,
               "INSERT INTO keypairs (access_key, secret_key, user_id, \"user\", is_active,"
               " is_admin, resource_policy, rate_limit)"
               " VALUES ($1, $2, $3, $4, true, $5::boolean, 'default', 30000)",
               5, pk, NULL, err, n);
        if (rc)
            return rc;
        /* The access key only: the secret never goes to a log. */
        baic_log(BAIC_LOG_INFO, "fixture_keypair_created", "email=%s access_key=%s", email, access);
    }
    const char *pm[] = {uuid, access};
    return q(c, "UPDATE users SET main_access_key = $2 WHERE uuid = $1 AND main_access_key IS NULL",
             2, pm, NULL, err, n);
}

static json_t *key_obj(const char *email, const char *access, const char *secret, int created) {
    return json_pack("{s:s, s:s, s:s, s:b}", "email", email, "access_key", access, "secret_key",
                     secret, "created", created);
}

int baic_fixture_populate(const char *dsn, const char *password_hash_admin,
                          const char *password_hash_user, json_t **created_keys, char *err,
                          size_t n) {
    if (created_keys)
        *created_keys = NULL;
    if (!dsn)
        return fail(err, n, -EINVAL, "no database DSN");
    PGconn *c = PQconnectdb(dsn);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        int rc = fail(err, n, -ENOTCONN, "cannot connect to the database: %s",
                      c ? PQerrorMessage(c) : "out of memory");
        PQfinish(c);
        return rc;
    }
    char a_access[21] = "", a_secret[41] = "", u_access[21] = "", u_secret[41] = "";
    int a_created = 0, u_created = 0;
    const char *lk[] = {FIXTURE_LOCK_KEY};
    int rc = q(c, "BEGIN", 0, NULL, NULL, err, n);
    /* Transaction-level lock: two concurrent populates serialise, the second sees the first's rows. */
    if (!rc)
        rc = q(c, "SELECT pg_advisory_xact_lock($1::bigint)", 1, lk, NULL, err, n);
    for (size_t i = 0; !rc && i < sizeof base_sql / sizeof base_sql[0]; i++)
        rc = q(c, base_sql[i], 0, NULL, NULL, err, n);
    if (!rc)
        rc = ensure_user(c, BAIC_FIXTURE_ADMIN_EMAIL, "admin", "superadmin", password_hash_admin,
                         a_access, a_secret, &a_created, err, n);
    if (!rc)
        rc = ensure_user(c, BAIC_FIXTURE_USER_EMAIL, "user", "user", password_hash_user, u_access,
                         u_secret, &u_created, err, n);
    if (!rc)
        rc = q(c, "COMMIT", 0, NULL, NULL, err, n);
    else
        PQclear(PQexec(c, "ROLLBACK"));
    PQfinish(c);
    if (!rc && created_keys) {
        *created_keys = json_pack("{s:o, s:o}", "admin",
                                  key_obj(BAIC_FIXTURE_ADMIN_EMAIL, a_access, a_secret, a_created),
                                  "user",
                                  key_obj(BAIC_FIXTURE_USER_EMAIL, u_access, u_secret, u_created));
        if (!*created_keys)
            rc = fail(err, n, -ENOMEM, "out of memory");
    }
    /* Wipe the secrets from the stack copies. */
    OPENSSL_cleanse(a_secret, sizeof a_secret);
    OPENSSL_cleanse(u_secret, sizeof u_secret);
    if (!rc)
        baic_log(BAIC_LOG_INFO, "fixture_populated", "domain=default group=default scaling_group=default");
    return rc;
}
