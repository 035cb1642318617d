-- Nodes sharing this store, and the leases on pieces of work they hold. Expiry and
-- heartbeats use the database's clock (now()), so the nodes' clocks need not agree.

CREATE TABLE nodes (
    id              TEXT COLLATE "C" PRIMARY KEY,
    address         TEXT NOT NULL,
    version         TEXT NOT NULL,
    started_at      TIMESTAMPTZ NOT NULL,
    last_heartbeat  TIMESTAMPTZ NOT NULL
);

CREATE TABLE leases (
    name            TEXT COLLATE "C" PRIMARY KEY,
    owner           TEXT NOT NULL,
    token           BIGINT NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL
);
