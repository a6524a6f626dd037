/* SPDX-License-Identifier: Apache-2.0 */
/* Many small writes of one kind as one statement: items gathered during a loop turn, sent together. */
#ifndef BAIC_CORE_DB_BATCH_H
#define BAIC_CORE_DB_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "db/db.h"

/*
 * A batch runs one SQL statement for many items at once. Each item is a JSON object; the
 * statement gets them as $1, a JSON array in which every item carries "i", its index in
 * that array, and must answer rows with a column "i" saying which item a row belongs to
 * (an item may have no row, or several).
 *
 * A batch has one statement in flight at a time. Items added meanwhile wait (up to `max`
 * per statement) and go out together when it is done, so statements grow with the load
 * instead of queueing for the pool; when nothing is in flight, the items of one loop turn
 * go at the start of the next (a zero timer), or as soon as `max` are waiting. Items that
 * name the same key never share a statement (an INSERT ... ON CONFLICT or an UPDATE ...
 * FROM cannot touch one row twice): a second one goes into the statement after. So the
 * items of one key are applied in the order they were added, and the statements of a
 * batch never wait on each other's row locks.
 *
 * Threading and callbacks as db.h: every item's callback fires exactly once, from the loop.
 */

typedef struct baic_db_batch baic_db_batch_t;

/* res: the statement's result (NULL on error); rows: the indices of this item's rows in
 * it (nrows of them); err/errmsg as baic_db_cb, the same for every item of a statement. */
typedef void (*baic_db_batch_cb)(const baic_db_result_t *res, const int *rows, int nrows, int err,
                                 const char *errmsg, void *arg);

/* sql is copied; max: items per statement (at least 1). NULL when out of memory. */
baic_db_batch_t *baic_db_batch_new(uv_loop_t *loop, baic_db_pool_t *db, const char *sql,
                                   size_t max);

/* Queues item (a JSON object; the reference is taken, also on failure) under key (NULL:
 * none). 0, or -ENOMEM / BAIC_ECANCELLED (after baic_db_batch_close) with no callback. */
int baic_db_batch_add(baic_db_batch_t *b, const char *key, json_t *item, baic_db_batch_cb cb,
                      void *arg);

/* Lets the items of a batch whose writes can wait (heartbeats) wait up to ms for others
 * before they go, when nothing is in flight, instead of one loop turn: fewer, larger
 * statements. 0 (the default): one loop turn. */
void baic_db_batch_set_linger(baic_db_batch_t *b, uint64_t ms);

/* Sends what is waiting now. */
void baic_db_batch_flush(baic_db_batch_t *b);

/* Sends what is waiting; the batch is freed once its timer is closed and its last
 * statement is done (every item still calls back). */
void baic_db_batch_close(baic_db_batch_t *b);

#endif
