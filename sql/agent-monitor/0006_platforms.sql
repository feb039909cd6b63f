-- Platforms (viewer VM images) validated before users get them: `platform add` boots each
-- once in a scratch VM (VIEWERUP, a sample import, power-off with the database saved).
-- Launches use the newest approved platform; with none, the configured one.
CREATE TABLE platforms (
    name       TEXT PRIMARY KEY,
    path       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('validating', 'approved', 'rejected', 'retired')),
    reason     TEXT NOT NULL DEFAULT '',
    -- The scratch instance that validated it.
    generation INTEGER,
    added_ms   INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);

-- The platform an instance runs (NULL: the configured one, as before platforms existed).
ALTER TABLE instances ADD COLUMN platform_path TEXT;
ALTER TABLE instances ADD COLUMN platform_sha256 TEXT;
