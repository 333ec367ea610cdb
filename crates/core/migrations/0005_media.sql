-- Customers' media files (WhatsApp photos, voice messages, documents) fetched from the hub, so a
-- conversation reviewed offline still shows them.
CREATE TABLE media (
    message_id TEXT PRIMARY KEY,
    mime_type  TEXT NOT NULL,
    bytes      BLOB NOT NULL,
    fetched_at TEXT NOT NULL
);
