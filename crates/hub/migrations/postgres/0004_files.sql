-- Files the hub keeps (agents' uploads, customers' media fetched from WhatsApp), in the database
-- so that every instance has every file: uploaded through one hub, sent by whichever claims the
-- delivery. Named `uploads/<sha256>` and `media/<message id>`. Stored as they are: photos,
-- voice notes and PDFs are compressed already, so PostgreSQL need not try again.
CREATE TABLE files (
    name TEXT PRIMARY KEY,
    bytes BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
ALTER TABLE files ALTER COLUMN bytes SET STORAGE EXTERNAL;
