-- Viewer schema, version 2: identity that survives moved lines, Code Dx's triage statuses,
-- triage history, CWE, snippets. Applied inside one transaction with foreign keys ON, so
-- `findings` (whose CHECK changes) is rebuilt beside `locations` rather than in place:
-- dropping `findings` while `locations` still referenced it would cascade-delete them.

CREATE TABLE findings_v2 (
    id             INTEGER PRIMARY KEY,
    project_id     INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    -- Per-row identifier, stable for the row's life (shown, exported, compared by tests).
    fingerprint    TEXT NOT NULL,
    -- What re-imports match on: tool fingerprints, else tool + rule + file + context +
    -- message; never the line. '' for rows of version 1 until the code fills it on open.
    match_key      TEXT NOT NULL DEFAULT '',
    tool           TEXT NOT NULL,
    rule           TEXT NOT NULL,
    category       TEXT NOT NULL DEFAULT '',
    severity       INTEGER NOT NULL CHECK (severity BETWEEN 1 AND 5),
    file           TEXT NOT NULL,
    line           INTEGER NOT NULL,
    message        TEXT NOT NULL,
    -- CWE numbers, comma-separated with a comma at each end (",89,79,") for LIKE '%,89,%'.
    cwe            TEXT NOT NULL DEFAULT '',
    present        INTEGER NOT NULL DEFAULT 1,
    first_import   INTEGER NOT NULL,
    last_import    INTEGER NOT NULL,
    -- Code Dx's statuses; version 1's 'confirmed' is 'unresolved' (a real issue, not
    -- yet dealt with).
    triage_status  TEXT NOT NULL DEFAULT 'new'
                   CHECK (triage_status IN ('new', 'unresolved', 'escalated', 'ignored',
                                            'false_positive', 'fixed', 'mitigated')),
    triage_comment TEXT NOT NULL DEFAULT '',
    triage_user    TEXT,
    triage_time    INTEGER,
    UNIQUE (project_id, fingerprint)
);
INSERT INTO findings_v2 (id, project_id, fingerprint, tool, rule, category, severity, file, line, message,
                         present, first_import, last_import, triage_status, triage_comment, triage_user, triage_time)
SELECT id, project_id, fingerprint, tool, rule, category, severity, file, line, message,
       present, first_import, last_import,
       CASE triage_status WHEN 'confirmed' THEN 'unresolved' ELSE triage_status END,
       triage_comment, triage_user, triage_time
FROM findings;

CREATE TABLE locations_v2 (
    finding_id INTEGER NOT NULL REFERENCES findings_v2(id) ON DELETE CASCADE,
    ord        INTEGER NOT NULL,
    file       TEXT NOT NULL,
    line       INTEGER NOT NULL,
    message    TEXT NOT NULL DEFAULT '',
    -- region.snippet (or contextRegion.snippet) when the tool gave one.
    snippet    TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (finding_id, ord)
) WITHOUT ROWID;
INSERT INTO locations_v2 (finding_id, ord, file, line, message) SELECT finding_id, ord, file, line, message FROM locations;

DROP TABLE locations;
DROP TABLE findings;
ALTER TABLE findings_v2 RENAME TO findings;
ALTER TABLE locations_v2 RENAME TO locations;
-- One index per sort order of the findings table (keyset pages walk them).
CREATE INDEX findings_by_severity ON findings (project_id, severity, tool, file, line, id);
CREATE INDEX findings_by_tool ON findings (project_id, tool, severity, id);
CREATE INDEX findings_by_rule ON findings (project_id, rule, severity, id);
CREATE INDEX findings_by_file ON findings (project_id, file, line, id);
CREATE INDEX findings_by_status ON findings (project_id, triage_status, severity, id);
CREATE INDEX findings_by_key ON findings (project_id, match_key);

-- Every triage change, newest last. Version 1 kept only the last one; it becomes the
-- first entry of its finding.
CREATE TABLE triage_history (
    id         INTEGER PRIMARY KEY,
    finding_id INTEGER NOT NULL REFERENCES findings(id) ON DELETE CASCADE,
    time       INTEGER NOT NULL,
    user       TEXT NOT NULL,
    status     TEXT NOT NULL,
    comment    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX triage_history_by_finding ON triage_history (finding_id, id);
INSERT INTO triage_history (finding_id, time, user, status, comment)
SELECT id, triage_time, triage_user, triage_status, triage_comment FROM findings
WHERE triage_user IS NOT NULL AND triage_time IS NOT NULL;
