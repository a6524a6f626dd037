/* SPDX-License-Identifier: Apache-2.0 */
/* Migration runner: applies the embedded SQL files in order, once each, under an advisory lock. */
#include "manager/schema.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include <baic/errors.h>

#include "log/log.h"

/* Any fixed 64-bit key; it only has to differ from the scheduler lease's key. */
#define SCHEMA_LOCK_KEY "7301843725390165"

static const char create_table_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version text PRIMARY KEY,"
    " name text NOT NULL,"
    " checksum text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

static int fail(char *err, size_t n, int code, const char *fmt, ...) {
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
        /* libpq messages end in a newline; the CLI adds its own. */
        size_t l = strlen(err);
        while (l && (err[l - 1] == '\n' || err[l - 1] == ' '))
            err[--l] = '\0';
    }
    return code;
}

static void sha256_hex(const char *s, char out[65]) {
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void quiet(void *arg, const char *msg) { (void)arg, (void)msg; }

static PGconn *open_db(const char *dsn, char *err, size_t n) {
    PGconn *c = PQconnectdb(dsn);
    if (!c) {
        fail(err, n, -ENOMEM, "out of memory");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        fail(err, n, -ENOTCONN, "cannot connect to the database: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    /* "relation already exists, skipping" notices are noise for a CLI. */
    PQsetNoticeProcessor(c, quiet, NULL);
    return c;
}

/* Runs a statement with text parameters; returns 0 or BAIC_EBACKEND with err set. */
static int exec(PGconn *c, const char *sql, int np, const char *const *p, char *err, size_t n) {
    PGresult *r = np ? PQexecParams(c, sql, np, NULL, p, NULL, NULL, 0) : PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = fail(err, n, BAIC_EBACKEND, "%s", PQresultErrorMessage(r));
    PQclear(r);
    return rc;
}

static int is_applied(PGconn *c, const char *version, char *err, size_t n, int *applied) {
    const char *p[] = {version};
    PGresult *r = PQexecParams(c, "SELECT checksum FROM schema_migrations WHERE version = $1", 1,
                               NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = fail(err, n, BAIC_EBACKEND, "%s", PQresultErrorMessage(r));
        PQclear(r);
        return rc;
    }
    *applied = PQntuples(r) > 0;
    PQclear(r);
    return 0;
}

static int apply_one(PGconn *c, const baic_schema_migration_t *m, char *err, size_t n) {
    char sum[65];
    sha256_hex(m->sql, sum);
    int rc = exec(c, "BEGIN", 0, NULL, err, n);
    if (rc)
        return rc;
    /* The file's statements go as one simple-protocol batch: they are our own text,
     * embedded at build time, never built from input. */
    rc = exec(c, m->sql, 0, NULL, err, n);
    if (rc == 0) {
        const char *p[] = {m->version, m->name, sum};
        rc = exec(c, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                  3, p, err, n);
    }
    if (rc) {
        char why[512];
        snprintf(why, sizeof why, "%s", err ? err : "");
        exec(c, "ROLLBACK", 0, NULL, NULL, 0);
        return fail(err, n, rc, "migration %s_%s failed: %s", m->version, m->name, why);
    }
    return exec(c, "COMMIT", 0, NULL, err, n);
}

int baic_schema_upgrade(const char *dsn, char *err, size_t n) {
    if (!dsn)
        return fail(err, n, -EINVAL, "no database DSN");
    PGconn *c = open_db(dsn, err, n);
    if (!c)
        return -ENOTCONN;
    /* Session-level lock held across all migrations: a second upgrader waits, then
     * finds everything applied. */
    const char *lk[] = {SCHEMA_LOCK_KEY};
    int rc = exec(c, "SELECT pg_advisory_lock($1::bigint)", 1, lk, err, n);
    if (rc == 0)
        rc = exec(c, create_table_sql, 0, NULL, err, n);
    int applied_now = 0;
    for (size_t i = 0; rc == 0 && i < baic_schema_migrations_count; i++) {
        const baic_schema_migration_t *m = &baic_schema_migrations[i];
        int applied = 0;
        rc = is_applied(c, m->version, err, n, &applied);
        if (rc || applied)
            continue;
        rc = apply_one(c, m, err, n);
        if (rc == 0) {
            applied_now++;
            baic_log(BAIC_LOG_INFO, "schema_migration_applied", "version=%s name=%s", m->version,
                     m->name);
        }
    }
    exec(c, "SELECT pg_advisory_unlock($1::bigint)", 1, lk, NULL, 0);
    PQfinish(c);
    if (rc == 0)
        baic_log(BAIC_LOG_INFO, "schema_upgraded", "applied=%d known=%zu", applied_now,
                 baic_schema_migrations_count);
    return rc;
}

int baic_schema_status(const char *dsn, FILE *out) {
    char err[512] = "";
    PGconn *c = dsn ? open_db(dsn, err, sizeof err) : NULL;
    if (!c) {
        fprintf(out, "error: %s\n", dsn ? err : "no database DSN");
        return -ENOTCONN;
    }
    /* Read-only: status must not create the bookkeeping table. */
    PGresult *r = PQexec(c, "SELECT to_regclass('schema_migrations') IS NOT NULL");
    int have = PQresultStatus(r) == PGRES_TUPLES_OK && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    PGresult *rows = NULL;
    if (have) {
        rows = PQexec(c, "SELECT version, name, checksum, "
                         "to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
                         "FROM schema_migrations ORDER BY version");
        if (PQresultStatus(rows) != PGRES_TUPLES_OK) {
            fprintf(out, "error: %s", PQresultErrorMessage(rows));
            PQclear(rows);
            PQfinish(c);
            return BAIC_EBACKEND;
        }
    }
    int nrows = rows ? PQntuples(rows) : 0;
    int pending = 0, applied = 0;
    for (size_t i = 0; i < baic_schema_migrations_count; i++) {
        const baic_schema_migration_t *m = &baic_schema_migrations[i];
        int row = -1;
        for (int j = 0; j < nrows; j++)
            if (strcmp(PQgetvalue(rows, j, 0), m->version) == 0)
                row = j;
        if (row < 0) {
            fprintf(out, "%s %s pending\n", m->version, m->name);
            pending++;
            continue;
        }
        char sum[65];
        sha256_hex(m->sql, sum);
        applied++;
        fprintf(out, "%s %s applied %s%s\n", m->version, m->name, PQgetvalue(rows, row, 3),
                strcmp(sum, PQgetvalue(rows, row, 2)) ? " (file changed since it was applied)" : "");
    }
    for (int j = 0; j < nrows; j++) {
        int known = 0;
        for (size_t i = 0; i < baic_schema_migrations_count; i++)
            known |= strcmp(PQgetvalue(rows, j, 0), baic_schema_migrations[i].version) == 0;
        if (!known)
            fprintf(out, "%s %s applied %s (unknown to this binary: newer manager?)\n",
                    PQgetvalue(rows, j, 0), PQgetvalue(rows, j, 1), PQgetvalue(rows, j, 3));
    }
    fprintf(out, "schema: %d applied, %d pending\n", applied, pending);
    PQclear(rows);
    PQfinish(c);
    return pending;
}
