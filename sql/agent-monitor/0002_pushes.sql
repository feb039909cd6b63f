-- agent-monitor schema v2: which result sets were pushed to which generation, so that
-- concurrent or repeated Views upload the same results to one viewer exactly once.
CREATE TABLE pushes (
    generation INTEGER NOT NULL REFERENCES instances (generation),
    checksum   TEXT NOT NULL,
    package    TEXT NOT NULL DEFAULT '',
    state      TEXT NOT NULL CHECK (state IN ('pushing', 'done')),
    claimed_ms INTEGER NOT NULL,
    done_ms    INTEGER,
    PRIMARY KEY (generation, checksum)
) WITHOUT ROWID;
