-- Data lifecycle, the main file's part: per-source counts of suppressed events and each
-- stream's retention. The CDP file's part is 0009_lifecycle_cdp.sql.

CREATE TABLE suppressed_counts (
    source  TEXT PRIMARY KEY,
    count   INTEGER NOT NULL
);

-- `max_age_secs` NULL: keep for ever (the setting's default does not apply).
CREATE TABLE stream_retention (
    stream        TEXT PRIMARY KEY,
    max_age_secs  INTEGER,
    updated_at    TEXT NOT NULL
);
