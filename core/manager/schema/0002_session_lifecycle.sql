-- SPDX-License-Identifier: Apache-2.0
-- Bookkeeping for the kernel lifecycle: when a status was entered (deadlines), the
-- queue position and skip count the scheduler plugins read, destroy retries, and the
-- agents' last heartbeat (LOST detection).
ALTER TABLE sessions ADD COLUMN status_changed timestamptz;
ALTER TABLE sessions ADD COLUMN enqueued_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE sessions ADD COLUMN times_skipped integer NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN resource_opts jsonb NOT NULL DEFAULT '{}';
ALTER TABLE kernels ADD COLUMN destroy_tries integer NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN heartbeat_at timestamptz;

-- The deadline sweep looks only at kernels in a transitional status.
CREATE INDEX ix_kernels_transitional ON kernels (status, status_changed)
    WHERE status IN ('SCHEDULED', 'PREPARING', 'PULLING', 'PREPARED', 'CREATING', 'TERMINATING');
