-- Nodes sharing this store, and the leases on pieces of work they hold. Times are integer
-- microseconds since the Unix epoch, so expiry compares as numbers.

CREATE TABLE nodes (
    id              TEXT PRIMARY KEY,
    address         TEXT NOT NULL,
    version         TEXT NOT NULL,
    started_us      INTEGER NOT NULL,
    heartbeat_us    INTEGER NOT NULL
);

CREATE TABLE leases (
    name            TEXT PRIMARY KEY,
    owner           TEXT NOT NULL,
    token           INTEGER NOT NULL,
    expires_us      INTEGER NOT NULL
);
