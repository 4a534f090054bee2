-- The job-management API: every job field, a version bumped by each change, deleted-job
-- markers, and executions that record their trigger and skipped fires.

ALTER TABLE jobs ADD COLUMN name TEXT;
ALTER TABLE jobs ADD COLUMN method TEXT NOT NULL DEFAULT 'POST'
    CHECK (method IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE'));
ALTER TABLE jobs ADD COLUMN headers TEXT;
ALTER TABLE jobs ADD COLUMN body TEXT;
ALTER TABLE jobs ADD COLUMN timeout_ms BIGINT;
ALTER TABLE jobs ADD COLUMN concurrency_policy TEXT NOT NULL DEFAULT 'allow'
    CHECK (concurrency_policy IN ('allow', 'forbid'));
ALTER TABLE jobs ADD COLUMN signing_secret TEXT;
ALTER TABLE jobs ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;

UPDATE jobs SET updated_at = created_at;

CREATE INDEX jobs_changed ON jobs (updated_at) WHERE version > 1;

CREATE TABLE deleted_jobs (
    id         BLOB PRIMARY KEY,
    deleted_at BIGINT NOT NULL
);
CREATE INDEX deleted_jobs_at ON deleted_jobs (deleted_at);

-- SQLite cannot alter a CHECK constraint: the executions table is rebuilt.
CREATE TABLE executions_new (
    id           BLOB PRIMARY KEY,
    job_id       BLOB    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    scheduled_at BIGINT  NOT NULL,
    attempt      INTEGER NOT NULL,
    due_at       BIGINT  NOT NULL,
    state        TEXT    NOT NULL
        CHECK (state IN ('claimed', 'started', 'succeeded', 'failed', 'unknown', 'skipped')),
    node_id      TEXT,
    executed_at  BIGINT,
    status_code  INTEGER,
    duration_ms  BIGINT,
    success      INTEGER,
    error        TEXT,
    trigger      TEXT    NOT NULL DEFAULT 'schedule' CHECK (trigger IN ('schedule', 'manual')),
    UNIQUE (job_id, scheduled_at, attempt)
);
INSERT INTO executions_new (id, job_id, scheduled_at, attempt, due_at, state, node_id,
                            executed_at, status_code, duration_ms, success, error)
    SELECT id, job_id, scheduled_at, attempt, due_at, state, node_id,
           executed_at, status_code, duration_ms, success, error
    FROM executions;
DROP TABLE executions;
ALTER TABLE executions_new RENAME TO executions;
CREATE INDEX executions_history ON executions (job_id, executed_at DESC) WHERE executed_at IS NOT NULL;
CREATE INDEX executions_open ON executions (node_id) WHERE state IN ('claimed', 'started');
