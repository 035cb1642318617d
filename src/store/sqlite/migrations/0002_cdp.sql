-- CDP: stream mappings, profiles with their identity index, audiences, memberships, the
-- audience-change outbox and the profile processor's cursor. In the CDP's own file (schema
-- `cdp`, see sqlite/mod.rs); IF NOT EXISTS because a migration's transaction commits the two
-- files separately, so a crash between them leaves these tables made and the version not.
-- Databases made before the split keep these tables in main, where unqualified names find them.

CREATE TABLE IF NOT EXISTS cdp.stream_mappings (
    stream      TEXT PRIMARY KEY,
    text        TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- `state` is the ProfileState (every field with its merge state) as JSON.
CREATE TABLE IF NOT EXISTS cdp.profiles (
    id          TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- (identity field, value) -> the live profile holding it. Rows always point at a live profile:
-- a merge repoints the merged profile's identities to the survivor.
CREATE TABLE IF NOT EXISTS cdp.identities (
    field       TEXT NOT NULL,
    value       TEXT NOT NULL,
    profile_id  TEXT NOT NULL,
    PRIMARY KEY (field, value)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cdp.identities_by_profile ON identities (profile_id);

-- Ids of merged-away profiles keep resolving to the survivor (kept flat: to_id is live).
CREATE TABLE IF NOT EXISTS cdp.profile_redirects (
    from_id  TEXT PRIMARY KEY,
    to_id    TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cdp.profile_redirects_by_target ON profile_redirects (to_id);

CREATE TABLE IF NOT EXISTS cdp.audiences (
    id           TEXT PRIMARY KEY,
    slug         TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    filter       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS cdp.memberships (
    audience_id  TEXT NOT NULL REFERENCES audiences (id) ON DELETE CASCADE,
    profile_id   TEXT NOT NULL,
    entered_at   TEXT NOT NULL,
    PRIMARY KEY (audience_id, profile_id)
) WITHOUT ROWID;
-- Covering: the processor reads a profile's memberships without touching the table.
CREATE INDEX IF NOT EXISTS cdp.memberships_by_profile ON memberships (profile_id, audience_id, entered_at);

-- The outbox export jobs read after their own cursor. Never updated, only appended.
CREATE TABLE IF NOT EXISTS cdp.audience_changes (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    audience_id    TEXT NOT NULL,
    audience_slug  TEXT NOT NULL,
    profile_id     TEXT NOT NULL,
    kind           TEXT NOT NULL,
    at             TEXT NOT NULL
);

-- The processor's cursor (`cursor`: the last event seq applied) and rebuild bookkeeping.
CREATE TABLE IF NOT EXISTS cdp.cdp_state (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
INSERT OR IGNORE INTO cdp.cdp_state (key, value) VALUES ('cursor', '0');
