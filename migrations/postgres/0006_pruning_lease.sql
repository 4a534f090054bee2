-- Pruning visits only the jobs with executions recorded since its last step, found through
-- the executions' primary key (ids are UUIDv7, so in creation order) from a stored mark,
-- and runs on one node at a time: the holder of this row's lease.
CREATE TABLE maintenance (
    name   TEXT PRIMARY KEY,
    holder TEXT,
    until  BIGINT NOT NULL DEFAULT 0,
    mark   UUID
);
INSERT INTO maintenance (name) VALUES ('prune');
