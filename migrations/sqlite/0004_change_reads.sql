-- Each node confirms, in its row, the instant (ms, on the database's clock) up to which it has
-- read and applied job changes; a change is answered once every live node has confirmed it.
ALTER TABLE nodes ADD COLUMN seen_at BIGINT NOT NULL DEFAULT 0;
