-- The forbid check (is another attempt of this job running?) reads only the job's started
-- attempts, through this small index, instead of the job's whole history.
CREATE INDEX executions_running ON executions (job_id) WHERE state = 'started';
