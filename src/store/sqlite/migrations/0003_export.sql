-- Export jobs: how far each job has published the audience-change outbox, and its backfill.
CREATE TABLE export_progress (
    job_id      TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    progress    TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
