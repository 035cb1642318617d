-- Every table of every store role, in PostgreSQL's own types: BIGINT positions and counters,
-- TIMESTAMPTZ times (microseconds, as the SQLite backend's RFC 3339 text), BYTEA bytes.
--
-- Text that is ordered or paged by (ids, slugs, names, keys) is COLLATE "C": byte order, as
-- Rust sorts strings and as SQLite compares them, whatever the database's default collation.
-- Event fields and job configs are TEXT holding JSON exactly as written (JSONB would reorder
-- keys, and the API returns event fields as stored).

CREATE TABLE authorizations (
    id             TEXT COLLATE "C" PRIMARY KEY,
    label          TEXT COLLATE "C" NOT NULL UNIQUE,
    description    TEXT NOT NULL DEFAULT '',
    method         TEXT NOT NULL,
    access_key_id  TEXT,
    secret_sealed  BYTEA,
    role_arn       TEXT,
    external_id    TEXT,
    created_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE jobs (
    id                TEXT COLLATE "C" PRIMARY KEY,
    job_type          TEXT NOT NULL,
    label             TEXT COLLATE "C" NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    authorization_id  TEXT COLLATE "C" NOT NULL REFERENCES authorizations (id),
    config            TEXT NOT NULL,
    state             TEXT NOT NULL,
    last_error        TEXT,
    records_in        BIGINT NOT NULL DEFAULT 0,
    events_out        BIGINT NOT NULL DEFAULT 0,
    dead_letters      BIGINT NOT NULL DEFAULT 0,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX jobs_by_authorization ON jobs (authorization_id);

CREATE TABLE shard_checkpoints (
    job_id                TEXT COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    shard_id              TEXT COLLATE "C" NOT NULL,
    parent_shard_ids      TEXT NOT NULL,
    state                 TEXT NOT NULL,
    start_position        TEXT NOT NULL,
    sequence_number       TEXT,
    sub_sequence_number   BIGINT,
    records               BIGINT NOT NULL DEFAULT 0,
    millis_behind_latest  BIGINT,
    updated_at            TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (job_id, shard_id)
);

-- The newest position handed out in each log (`events`, `audience_changes`). A writer locks its
-- log's row (SELECT … FOR UPDATE) just before inserting the log's rows and keeps the lock until
-- commit, so positions are handed out in commit order (see postgres/positions.rs). Rolled back
-- with the rows it counted, so positions have no gaps.
CREATE TABLE log_heads (
    log       TEXT COLLATE "C" PRIMARY KEY,
    last_seq  BIGINT NOT NULL
);
INSERT INTO log_heads (log, last_seq) VALUES ('events', 0), ('audience_changes', 0);

CREATE TABLE streams (
    name           TEXT COLLATE "C" PRIMARY KEY,
    events         BIGINT NOT NULL DEFAULT 0,
    last_event_at  TIMESTAMPTZ
);

-- The Kinesis origin in typed columns, all NULL for collected events (as SQLite's 0005).
-- `arrival_ns`: ApproximateArrivalTimestamp in nanoseconds since the epoch, as the SDK gives it.
CREATE TABLE events (
    seq                  BIGINT PRIMARY KEY,
    event_id             TEXT COLLATE "C" NOT NULL UNIQUE,
    stream               TEXT COLLATE "C" NOT NULL,
    fields               TEXT NOT NULL,
    stored_at            TIMESTAMPTZ NOT NULL,
    kinesis_stream       TEXT,
    shard_id             TEXT,
    sequence_number      TEXT,
    sub_sequence_number  BIGINT,
    partition_key        TEXT,
    arrival_ns           BIGINT
);
CREATE INDEX events_by_stream ON events (stream, seq);

-- `sub_sequence_number` is -1 when the record had none (it is part of the unique key, where
-- NULLs would never collide).
CREATE TABLE dead_letters (
    id                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id               TEXT COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    shard_id             TEXT NOT NULL,
    sequence_number      TEXT NOT NULL,
    sub_sequence_number  BIGINT NOT NULL,
    position             BIGINT NOT NULL,
    partition_key        TEXT NOT NULL,
    reason               TEXT NOT NULL,
    raw                  BYTEA NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL,
    UNIQUE (job_id, shard_id, sequence_number, sub_sequence_number, position)
);

CREATE TABLE stream_mappings (
    stream      TEXT COLLATE "C" PRIMARY KEY,
    text        TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- `state`: the ProfileState in its binary form (tributary-lang's codec).
CREATE TABLE profiles (
    id          TEXT COLLATE "C" PRIMARY KEY,
    state       BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- (identity field, value) -> the live profile holding it.
CREATE TABLE identities (
    field       TEXT COLLATE "C" NOT NULL,
    value       TEXT COLLATE "C" NOT NULL,
    profile_id  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (field, value)
);
CREATE INDEX identities_by_profile ON identities (profile_id);

-- Ids of merged-away profiles keep resolving to the survivor (kept flat: to_id is live).
CREATE TABLE profile_redirects (
    from_id  TEXT COLLATE "C" PRIMARY KEY,
    to_id    TEXT COLLATE "C" NOT NULL
);
CREATE INDEX profile_redirects_by_target ON profile_redirects (to_id);

-- `num` orders a profile's member list (audiences in creation order, as SQLite's lists);
-- `member_count` moves with every membership written, in the same transaction.
CREATE TABLE audiences (
    id            TEXT COLLATE "C" PRIMARY KEY,
    num           BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    slug          TEXT COLLATE "C" NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    filter        TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    member_count  BIGINT NOT NULL DEFAULT 0
);

-- A row per membership: PostgreSQL rewrites a whole row version on every update anyway, so
-- SQLite's member list inside the profile row saves nothing here, and an audience's members
-- are an index range instead of a scan of every profile.
CREATE TABLE memberships (
    audience_id  TEXT COLLATE "C" NOT NULL REFERENCES audiences (id) ON DELETE CASCADE,
    profile_id   TEXT COLLATE "C" NOT NULL,
    entered_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (audience_id, profile_id)
);
CREATE INDEX memberships_by_profile ON memberships (profile_id);

-- The outbox export jobs read after their own cursor. Never updated, only appended.
CREATE TABLE audience_changes (
    seq            BIGINT PRIMARY KEY,
    audience_id    TEXT NOT NULL,
    audience_slug  TEXT NOT NULL,
    profile_id     TEXT NOT NULL,
    kind           TEXT NOT NULL,
    at             TIMESTAMPTZ NOT NULL,
    entered_at     TIMESTAMPTZ
);

-- The processor's cursor (`cursor`: the last event seq applied) and its bookkeeping.
CREATE TABLE cdp_state (
    key    TEXT COLLATE "C" PRIMARY KEY,
    value  TEXT NOT NULL
);
INSERT INTO cdp_state (key, value) VALUES ('cursor', '0');

CREATE TABLE export_progress (
    job_id      TEXT COLLATE "C" PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    progress    TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
