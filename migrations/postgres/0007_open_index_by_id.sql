-- A node's open attempts, keyed by node and id: the statements that fence a write to one
-- attempt (`id = $1 AND node_id = $2 AND state IN ('claimed', 'started')`: an outcome, a
-- start, a hand-back) find it by both columns whichever index the planner picks. Keyed by
-- node alone, PostgreSQL picked this index for them on a table not yet analyzed and read
-- every open attempt of the node once per row written: an outcome batch of 512 took 2-6 s
-- at 10,000 fires/s.
DROP INDEX executions_open;
CREATE INDEX executions_open ON executions (node_id, id) WHERE state IN ('claimed', 'started');
