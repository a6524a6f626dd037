/* SPDX-License-Identifier: Apache-2.0 */
/* Background tasks: long manager-side jobs (folder clone, image rescan) that clients follow over
 * GET /events/background-task (api-contract §3). */
#ifndef BAIC_MANAGER_BGTASK_H
#define BAIC_MANAGER_BGTASK_H

#include <stdint.h>

#include <jansson.h>

#include "manager.h"

/*
 * A task is one background_tasks row (schema 0003) plus its events on the Redis stream
 * BAIC_BGTASK_EVENTS: bgtask_updated {"task_id","message","current_progress",
 * "total_progress"}, then one of bgtask_done {"task_id","message"[,"errors"]},
 * bgtask_failed or bgtask_cancelled {"task_id","message"}. Events are published in call
 * order at the call (one Redis connection keeps them in order); the row follows a moment
 * later, and only moves forward: progress and the end apply only while it is 'running'.
 * Any manager may report on any task.
 */
#define BAIC_BGTASK_EVENTS "baic:bgtask-events"

/* task_id NULL (err < 0) when the row could not be stored. */
typedef void (*baic_bgtask_started_cb)(baic_manager_t *m, const char *task_id, int err, void *arg);

/* Stores a new running task of kind (e.g. "vfolder-clone") owned by access_key (NULL:
 * system). cb runs once with its id. Returns 0 or a negative code (cb never runs). */
int baic_bgtask_start(baic_manager_t *m, const char *kind, const char *access_key,
                      baic_bgtask_started_cb cb, void *arg);
/* Progress: current of total (total 0 = unknown); message may be NULL. */
void baic_bgtask_progress(baic_manager_t *m, const char *task_id, int64_t current, int64_t total,
                          const char *message);
/* The end. errors (borrowed, may be NULL): a list of strings for a partial success. */
void baic_bgtask_done(baic_manager_t *m, const char *task_id, const char *message,
                      const json_t *errors);
void baic_bgtask_failed(baic_manager_t *m, const char *task_id, const char *message);
void baic_bgtask_cancelled(baic_manager_t *m, const char *task_id, const char *message);

/* Routes: GET /events/background-task (api/events.c reads the stream); with
 * [manager] test_routes = true also POST /_test/bgtask, a timer-driven task for tests. */
int baic_api_bgtask_init(baic_manager_t *m);

#endif
