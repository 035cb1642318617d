-- Foundation: authorizations, jobs, shard checkpoints, the event log and dead letters.
-- Portable types only: TEXT ids and RFC 3339 timestamps, JSON stored as TEXT, BLOB for bytes.

CREATE TABLE authorizations (
    id                TEXT PRIMARY KEY,
    label             TEXT NOT NULL UNIQUE,
    description       TEXT NOT NULL DEFAULT '',
    method            TEXT NOT NULL,
    access_key_id     TEXT,
    secret_sealed     BLOB,
    role_arn          TEXT,
    external_id       TEXT,
    created_at        TEXT NOT NULL
);

CREATE TABLE jobs (
    id                TEXT PRIMARY KEY,
    job_type          TEXT NOT NULL,
    label             TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    authorization_id  TEXT NOT NULL REFERENCES authorizations (id),
    config            TEXT NOT NULL,
    state             TEXT NOT NULL,
    last_error        TEXT,
    records_in        INTEGER NOT NULL DEFAULT 0,
    events_out        INTEGER NOT NULL DEFAULT 0,
    dead_letters      INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE INDEX jobs_by_authorization ON jobs (authorization_id);

CREATE TABLE shard_checkpoints (
    job_id               TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    shard_id             TEXT NOT NULL,
    parent_shard_ids     TEXT NOT NULL,
    state                TEXT NOT NULL,
    start_position       TEXT NOT NULL,
    sequence_number      TEXT,
    sub_sequence_number  INTEGER,
    records              INTEGER NOT NULL DEFAULT 0,
    millis_behind_latest INTEGER,
    updated_at           TEXT NOT NULL,
    PRIMARY KEY (job_id, shard_id)
);

CREATE TABLE streams (
    name           TEXT PRIMARY KEY,
    events         INTEGER NOT NULL DEFAULT 0,
    last_event_at  TEXT
);

CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT NOT NULL UNIQUE,
    stream     TEXT NOT NULL,
    fields     TEXT NOT NULL,
    origin     TEXT,
    stored_at  TEXT NOT NULL
);
CREATE INDEX events_by_stream ON events (stream, seq);

CREATE TABLE dead_letters (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id               TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    shard_id             TEXT NOT NULL,
    sequence_number      TEXT NOT NULL,
    sub_sequence_number  INTEGER NOT NULL,
    position             INTEGER NOT NULL,
    partition_key        TEXT NOT NULL,
    reason               TEXT NOT NULL,
    raw                  BLOB NOT NULL,
    created_at           TEXT NOT NULL,
    UNIQUE (job_id, shard_id, sequence_number, sub_sequence_number, position)
);
