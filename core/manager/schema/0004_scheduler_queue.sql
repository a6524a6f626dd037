-- SPDX-License-Identifier: Apache-2.0
-- The scheduling round reads the PENDING sessions in the order priority DESC, enqueued_at,
-- created_at, id (1,000 at a time): an index in exactly that order, over PENDING rows only,
-- lets it stop after the first 1,000 instead of sorting the whole queue (its rows leave
-- the index as they are placed, so it stays as small as the queue).
DROP INDEX IF EXISTS ix_sessions_pending_queue;
CREATE INDEX ix_sessions_pending_queue ON sessions (priority DESC, enqueued_at, created_at, id)
    WHERE status = 'PENDING';

-- kernels (session_id, cluster_role, cluster_idx) is unique, so its index answers every
-- lookup by session_id; a second index on session_id alone only cost each status change
-- one more index insert.
DROP INDEX IF EXISTS ix_kernels_session_id;

-- A session its own policies hold back (a quota, its start time, a dependency) steps out of
-- the round's page until this time (one scheduler tick), so 1,000 such sessions at the head
-- of the queue cannot hide everyone queued behind them. NULL: judged every round.
ALTER TABLE sessions ADD COLUMN sched_retry_at timestamptz;
