-- agent-monitor schema v4: the front door (docs/frontdoor.md).

-- Users authorised for a pair's viewer beyond the user of the launch that started it:
-- each launchviewer --user that asks for a login (agentMonitor.viewerLogin), and any user
-- an admin names that way. Kept across generations: the pair's URL is stable too.
CREATE TABLE viewer_users (
    project  TEXT NOT NULL,
    viewer   TEXT NOT NULL,
    user     TEXT NOT NULL,
    added_ms INTEGER NOT NULL,
    PRIMARY KEY (project, viewer, user)
) WITHOUT ROWID;

-- Login tokens already redeemed, remembered until they expire (a token is single-use).
CREATE TABLE used_logins (
    id         TEXT PRIMARY KEY,
    expires_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- The front door finds a pair by its URL path on every request.
CREATE INDEX instances_by_urluuid ON instances (urluuid, generation);
