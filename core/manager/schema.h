/* SPDX-License-Identifier: Apache-2.0 */
/* Versioned SQL migrations of the manager's database: `baic-manager schema upgrade|status`. */
#ifndef BAIC_MANAGER_SCHEMA_H
#define BAIC_MANAGER_SCHEMA_H

#include <stddef.h>
#include <stdio.h>

/* One migration, from core/manager/schema/NNNN_name.sql, embedded at build time by
 * core/manager/schema/embed.cmake. */
typedef struct baic_schema_migration {
    const char *version; /* "0001" */
    const char *name;    /* "initial" */
    const char *sql;     /* the file's text */
} baic_schema_migration_t;

/* Defined by the generated schema_embedded.c, in version order. */
extern const baic_schema_migration_t baic_schema_migrations[];
extern const size_t baic_schema_migrations_count;

/* Applies every pending migration, each in its own transaction, while holding a
 * PostgreSQL advisory lock so concurrent upgrades (two managers starting) apply each
 * migration once. Idempotent: with nothing pending it changes nothing.
 * Blocking (synchronous libpq): for the CLI and daemon start-up, not the event loop.
 * dsn is never logged. Returns 0 or a negative code with a message in err (n bytes). */
int baic_schema_upgrade(const char *dsn, char *err, size_t n);

/* Writes one line per migration to out: `VERSION NAME applied AT` or `VERSION NAME
 * pending`, applied versions this binary does not know, and a summary line.
 * Returns the number of pending migrations (>= 0) or a negative code. Blocking. */
int baic_schema_status(const char *dsn, FILE *out);

#endif
