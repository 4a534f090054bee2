-- A job's spread (`spreadMs`): every fire is due a fixed offset in [0, spread_ms) after its
-- scheduled instant. The offset is derived from the job's id when the job is stored and kept
-- beside it, so that statements in SQL (the shedder's misfire rule) judge a fire's lateness
-- from the instant it was due. `next_fire_at` holds the due instant (the scheduled instant
-- plus the offset), so claims keep finding due jobs through `jobs_due`. Both columns default
-- to 0: existing jobs keep firing on their instants.
ALTER TABLE jobs ADD COLUMN spread_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN spread_offset_ms INTEGER NOT NULL DEFAULT 0;
