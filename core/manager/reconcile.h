/* SPDX-License-Identifier: Apache-2.0 */
/* Reconciliation: compares what the agents run with the database and fixes the drift. */
#ifndef BAIC_MANAGER_RECONCILE_H
#define BAIC_MANAGER_RECONCILE_H

#include <stddef.h>

#include <jansson.h>

/*
 * One pass, synchronous: its own database connection and its own event loop for the
 * agent RPCs, no shared state, so the manager runs it on a worker thread. Asks every
 * ALIVE agent for its kernels (GET /rpc/kernels) and, in one transaction:
 *  - missing:   a live kernel (past dispatch, unchanged for grace_s) the agent does not list
 *               -> TERMINATED, status_info reconciled-missing (its occupancy no longer counts);
 *  - orphan:    a kernel the agent runs that the database has ended, never knew, or places
 *               elsewhere -> destroyed on the agent (after the commit);
 *  - occupancy: agents.occupied_slots differs from the sum of its live kernels' occupied_slots
 *               -> rewritten to that sum (every agent, reachable or not);
 *  - session:   a session not final whose kernels all are -> finalized.
 * dry_run: the same statements run and are rolled back, nothing is destroyed.
 * Every fix is logged (event=reconcile_fix) and listed in *report:
 *   {"dry_run", "agents_checked", "agents_failed": [{"agent", "error"}],
 *    "fixes": [{"kind", "agent", "kernel", "session", "before", "after", "applied"}]}
 * Returns 0, or -1 with err filled (database unreachable, a statement failed). */
int baic_reconcile_run(const char *dsn, const char *cluster_secret, int dry_run, int grace_s,
                       json_t **report, char *err, size_t errlen);

/* `baic-manager reconcile [--dry-run] [--grace SECONDS] [--config FILE]`: prints the report
 * as JSON; exit 0, 1 (failed), 2 (usage/config), 3 (done, but some agent did not answer). */
int baic_reconcile_cli(json_t *config, int argc, char **argv);

struct baic_manager;
/* POST /admin/reconcile (superadmin): {"dry_run"?: bool, "grace_seconds"?: int} -> the report. */
int baic_api_reconcile_init(struct baic_manager *m);

#endif
