/* SPDX-License-Identifier: Apache-2.0 */
/* Entry points of the manager's serve, schema and fixture commands. */
#ifndef BAIC_MANAGER_SERVER_H
#define BAIC_MANAGER_SERVER_H

#include "manager.h"

/* Runs the API server until SIGINT/SIGTERM. Returns the process exit status. */
int baic_manager_serve(json_t *config);
/* The DSN from $BAIC_DB_DSN or [db] dsn; NULL after logging a config error. */
const char *baic_manager_dsn(const json_t *config);

#endif
