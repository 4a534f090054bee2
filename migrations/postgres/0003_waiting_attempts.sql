-- Attempts that wait in the store for any node's claimer: retries, manual calls and fires
-- handed back (at shutdown, after a failed start, or from a dead node) are rows in state
-- 'claimed' with no node. The claimer takes those due within its look-ahead window, by due
-- time, so no node holds an attempt in memory longer than the window.
CREATE INDEX executions_waiting ON executions (due_at) WHERE state = 'claimed' AND node_id IS NULL;
