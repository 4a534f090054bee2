-- Jobs, their executions (one row per attempt at a fire) and the live nodes.
-- Instants are milliseconds since the Unix epoch, UTC.

CREATE TABLE jobs (
    id                   BLOB PRIMARY KEY,
    schedule             TEXT    NOT NULL,
    timezone             TEXT    NOT NULL DEFAULT 'UTC',
    api                  TEXT    NOT NULL,
    delivery             TEXT    NOT NULL CHECK (delivery IN ('ATLEAST_ONCE', 'ATMOST_ONCE')),
    misfire_policy       TEXT    NOT NULL DEFAULT 'one' CHECK (misfire_policy IN ('one', 'all', 'none')),
    retry_max_attempts   INTEGER,
    retry_backoff_ms     BIGINT,
    retry_max_backoff_ms BIGINT,
    enabled              INTEGER NOT NULL DEFAULT 1,
    next_fire_at         BIGINT,
    created_at           BIGINT  NOT NULL
);

-- The claimer's scan: enabled jobs by next fire time.
CREATE INDEX jobs_due ON jobs (next_fire_at) WHERE enabled = 1 AND next_fire_at IS NOT NULL;

CREATE TABLE executions (
    id           BLOB PRIMARY KEY,
    job_id       BLOB    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    scheduled_at BIGINT  NOT NULL,
    attempt      INTEGER NOT NULL,
    due_at       BIGINT  NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('claimed', 'started', 'succeeded', 'failed', 'unknown')),
    node_id      TEXT,
    executed_at  BIGINT,
    status_code  INTEGER,
    duration_ms  BIGINT,
    success      INTEGER,
    error        TEXT,
    -- A fire is (job, scheduled instant); each attempt at it is recorded once.
    UNIQUE (job_id, scheduled_at, attempt)
);

-- The executions endpoint: a job's newest recorded calls.
CREATE INDEX executions_history ON executions (job_id, executed_at DESC) WHERE executed_at IS NOT NULL;
-- Recovery sweeps: the few executions not finished yet.
CREATE INDEX executions_open ON executions (node_id) WHERE state IN ('claimed', 'started');

CREATE TABLE nodes (
    id           TEXT PRIMARY KEY,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
