-- Capacity: a launch beyond a limit takes the pair's lock (the row) but waits for room
-- before its job starts. `waiting` = 1 until admitted; the place in line is the count of
-- waiting rows with a smaller generation (first come, first served).
ALTER TABLE instances ADD COLUMN waiting INTEGER NOT NULL DEFAULT 0;
CREATE INDEX instances_waiting ON instances (generation) WHERE waiting = 1;
