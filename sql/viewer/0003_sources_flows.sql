-- Viewer schema, version 3: source files from the uploaded archive and code flows.

-- The files findings refer to, taken from the source archive (`file2`) of the latest
-- import that carried one; keyed by the path as findings name it. Bounded in size by the
-- import (see viewer/src/import/sources.rs): it travels in the saved database.
CREATE TABLE sources (
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    file       TEXT NOT NULL,
    -- The archive entry it came from, for the page.
    entry      TEXT NOT NULL,
    content    TEXT NOT NULL,
    PRIMARY KEY (project_id, file)
) WITHOUT ROWID;

-- SARIF codeFlows: each threadFlow is one numbered flow of numbered steps.
CREATE TABLE flow_steps (
    finding_id INTEGER NOT NULL REFERENCES findings(id) ON DELETE CASCADE,
    flow       INTEGER NOT NULL,
    step       INTEGER NOT NULL,
    file       TEXT NOT NULL,
    line       INTEGER NOT NULL,
    message    TEXT NOT NULL DEFAULT '',
    snippet    TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (finding_id, flow, step)
) WITHOUT ROWID;

-- SARIF message.markdown, rendered (safely) on the finding page; '' when none.
ALTER TABLE findings ADD COLUMN markdown TEXT NOT NULL DEFAULT '';
