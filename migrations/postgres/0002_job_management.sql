-- The job-management API: every job field, a version bumped by each change, deleted-job
-- markers other nodes poll, and executions that record their trigger and skipped fires.

ALTER TABLE jobs
    ADD COLUMN name               TEXT,
    ADD COLUMN method             TEXT   NOT NULL DEFAULT 'POST'
        CHECK (method IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')),
    ADD COLUMN headers            TEXT,
    ADD COLUMN body               TEXT,
    ADD COLUMN timeout_ms         BIGINT,
    ADD COLUMN concurrency_policy TEXT   NOT NULL DEFAULT 'allow'
        CHECK (concurrency_policy IN ('allow', 'forbid')),
    ADD COLUMN signing_secret     TEXT,
    ADD COLUMN version            BIGINT NOT NULL DEFAULT 1,
    ADD COLUMN updated_at         BIGINT;

UPDATE jobs SET updated_at = created_at;
ALTER TABLE jobs ALTER COLUMN updated_at SET NOT NULL;

-- Other nodes poll for changes since their last look.
CREATE INDEX jobs_changed ON jobs (updated_at) WHERE version > 1;

-- Jobs deleted lately, so other nodes drop fires they hold for them.
CREATE TABLE deleted_jobs (
    id         UUID PRIMARY KEY,
    deleted_at BIGINT NOT NULL
);
CREATE INDEX deleted_jobs_at ON deleted_jobs (deleted_at);

ALTER TABLE executions DROP CONSTRAINT executions_state_check;
ALTER TABLE executions ADD CONSTRAINT executions_state_check
    CHECK (state IN ('claimed', 'started', 'succeeded', 'failed', 'unknown', 'skipped'));
ALTER TABLE executions
    ADD COLUMN trigger TEXT NOT NULL DEFAULT 'schedule' CHECK (trigger IN ('schedule', 'manual'));
