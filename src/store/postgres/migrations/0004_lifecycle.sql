-- Data lifecycle: erasure records, the suppression list, the reason of an outbox row
-- (`deleted` for the exits of an erased person), per-source counts of suppressed events, and
-- each stream's retention (as SQLite's 0009).

CREATE TABLE erasures (
    id                  TEXT COLLATE "C" PRIMARY KEY,
    profile_id          TEXT NOT NULL,
    -- `[[field, value], ...]` while pending; `[]` once done.
    identities          TEXT NOT NULL,
    suppress            BOOLEAN NOT NULL,
    state               TEXT NOT NULL,
    events_deleted      BIGINT NOT NULL DEFAULT 0,
    identities_deleted  BIGINT NOT NULL DEFAULT 0,
    audiences_exited    BIGINT NOT NULL DEFAULT 0,
    suppressed          BIGINT NOT NULL DEFAULT 0,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);

-- `hash`: hex SHA-256 of the identifier's value; the value itself is never stored.
CREATE TABLE suppressions (
    id          TEXT COLLATE "C" PRIMARY KEY,
    field       TEXT NOT NULL,
    hash        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (field, hash)
);

ALTER TABLE audience_changes ADD COLUMN reason TEXT;

CREATE TABLE suppressed_counts (
    source  TEXT COLLATE "C" PRIMARY KEY,
    count   BIGINT NOT NULL
);

-- `max_age_secs` NULL: keep for ever (the setting's default does not apply).
CREATE TABLE stream_retention (
    stream        TEXT COLLATE "C" PRIMARY KEY,
    max_age_secs  BIGINT,
    updated_at    TIMESTAMPTZ NOT NULL
);
