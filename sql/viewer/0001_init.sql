-- Viewer schema, version 1. Applied by viewer/src/db/mod.rs inside one transaction;
-- the code sets PRAGMA user_version after each file, so files must not.

-- One row per Code Dx "project" (one SWAMP package).
CREATE TABLE projects (
    id      INTEGER PRIMARY KEY,
    name    TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL
);

-- One row per import job that touched findings; findings remember the first and last
-- import that reported them, so "absent from the latest import of this tool" is a query.
CREATE TABLE imports (
    id         INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    job_id     TEXT NOT NULL,
    time       INTEGER NOT NULL
);

-- Findings are never deleted by an import: triage lives on the row and is keyed by the
-- stable fingerprint, so it survives re-imports.
CREATE TABLE findings (
    id             INTEGER PRIMARY KEY,
    project_id     INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    fingerprint    TEXT NOT NULL,
    tool           TEXT NOT NULL,
    rule           TEXT NOT NULL,
    category       TEXT NOT NULL DEFAULT '',
    severity       INTEGER NOT NULL CHECK (severity BETWEEN 1 AND 5),
    file           TEXT NOT NULL,
    line           INTEGER NOT NULL,
    message        TEXT NOT NULL,
    present        INTEGER NOT NULL DEFAULT 1,
    first_import   INTEGER NOT NULL,
    last_import    INTEGER NOT NULL,
    triage_status  TEXT NOT NULL DEFAULT 'new'
                   CHECK (triage_status IN ('new', 'confirmed', 'false_positive', 'fixed')),
    triage_comment TEXT NOT NULL DEFAULT '',
    triage_user    TEXT,
    triage_time    INTEGER,
    UNIQUE (project_id, fingerprint)
);
CREATE INDEX findings_by_severity ON findings (project_id, severity, id);
CREATE INDEX findings_by_tool ON findings (project_id, tool);

-- Every location a tool reported for a finding, primary first (ord 0).
CREATE TABLE locations (
    finding_id INTEGER NOT NULL REFERENCES findings(id) ON DELETE CASCADE,
    ord        INTEGER NOT NULL,
    file       TEXT NOT NULL,
    line       INTEGER NOT NULL,
    message    TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (finding_id, ord)
) WITHOUT ROWID;

-- Import jobs (Code Dx's /api/jobs). Kept after the project is deleted so a client
-- polling a job still gets an answer.
CREATE TABLE jobs (
    id         TEXT PRIMARY KEY,
    project_id INTEGER NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    message    TEXT NOT NULL DEFAULT '',
    created    INTEGER NOT NULL,
    updated    INTEGER NOT NULL
);
