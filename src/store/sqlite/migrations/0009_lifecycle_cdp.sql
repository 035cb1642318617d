-- Data lifecycle, the CDP file's part: erasure records and the suppression list (with the
-- profiles they delete, so the profile step of an erasure is one transaction) and the reason
-- of an outbox row (`deleted` for the exits of an erased person). The main file's part is
-- 0009_lifecycle.sql.

CREATE TABLE IF NOT EXISTS cdp.erasures (
    id                  TEXT PRIMARY KEY,
    profile_id          TEXT NOT NULL,
    -- `[[field, value], ...]` while pending; `[]` once done.
    identities          TEXT NOT NULL,
    suppress            INTEGER NOT NULL,
    state               TEXT NOT NULL,
    events_deleted      INTEGER NOT NULL DEFAULT 0,
    identities_deleted  INTEGER NOT NULL DEFAULT 0,
    audiences_exited    INTEGER NOT NULL DEFAULT 0,
    suppressed          INTEGER NOT NULL DEFAULT 0,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);

-- `hash`: hex SHA-256 of the identifier's value; the value itself is never stored.
CREATE TABLE IF NOT EXISTS cdp.suppressions (
    id          TEXT PRIMARY KEY,
    field       TEXT NOT NULL,
    hash        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (field, hash)
);

-- Unqualified: in `cdp`, or in main in databases made before the CDP got its own file.
ALTER TABLE audience_changes ADD COLUMN reason TEXT;
