-- agent-monitor schema v1: viewer instances (the project.viewer locks), their history,
-- and stored viewer database archives.

-- One row per launch. The rowid is the generation: strictly increasing, never reused
-- (AUTOINCREMENT), so it doubles as the fencing token.
CREATE TABLE instances (
    generation       INTEGER PRIMARY KEY AUTOINCREMENT,
    project          TEXT NOT NULL,
    viewer           TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN
                        ('launching','booting','ready','stopping','stopped','failed')),
    reason           TEXT NOT NULL DEFAULT '',
    viewer_uuid      TEXT,
    resultsfolder    TEXT,
    db_path          TEXT,
    user             TEXT,
    apikey           TEXT NOT NULL,
    urluuid          TEXT NOT NULL,
    address          TEXT NOT NULL DEFAULT '',
    domain           TEXT NOT NULL DEFAULT '',
    created_ms       INTEGER NOT NULL,
    updated_ms       INTEGER NOT NULL,
    lease_until_ms   INTEGER NOT NULL,
    -- Set once the job process has been spawned; lets a restart tell "never started"
    -- (start it now) from "started and died" (fail it).
    job_started_ms   INTEGER,
    -- A launch arrived while the instance was stopping: launch again when the stop completes.
    relaunch_pending INTEGER NOT NULL DEFAULT 0,
    relaunch_user    TEXT
);

-- The lock itself: at most one live (non-terminal) instance per pair, enforced by SQLite.
CREATE UNIQUE INDEX instances_one_live_per_pair ON instances (project, viewer)
    WHERE state NOT IN ('stopped', 'failed');
CREATE INDEX instances_by_pair ON instances (project, viewer, generation);
CREATE INDEX instances_live_lease ON instances (lease_until_ms)
    WHERE state NOT IN ('stopped', 'failed');

CREATE TABLE history (
    generation INTEGER NOT NULL REFERENCES instances (generation),
    seq        INTEGER NOT NULL,
    at_ms      INTEGER NOT NULL,
    from_state TEXT NOT NULL,
    to_state   TEXT NOT NULL,
    reason     TEXT NOT NULL,
    PRIMARY KEY (generation, seq)
) WITHOUT ROWID;

-- Viewer database archives handed in by storeviewer; the newest few per pair are kept.
CREATE TABLE archives (
    version    INTEGER PRIMARY KEY AUTOINCREMENT,
    project    TEXT NOT NULL,
    viewer     TEXT NOT NULL,
    generation INTEGER NOT NULL,
    checksum   TEXT NOT NULL,
    size       INTEGER NOT NULL,
    path       TEXT NOT NULL,
    stored_ms  INTEGER NOT NULL
);
CREATE INDEX archives_by_pair ON archives (project, viewer, version);
