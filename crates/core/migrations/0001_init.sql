-- The device cache's first schema: the hub's entities as their wire JSON plus the columns the
-- inbox queries need, and the sync cursor, all written in one transaction per batch of events.
CREATE TABLE contacts (
    id   TEXT PRIMARY KEY,
    data TEXT NOT NULL
);

CREATE TABLE conversations (
    id         TEXT PRIMARY KEY,
    contact_id TEXT,
    data       TEXT NOT NULL
);

CREATE TABLE handoffs (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    status          TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    data            TEXT NOT NULL
);
CREATE INDEX handoffs_by_status ON handoffs(status, created_at);

CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    data            TEXT NOT NULL
);
CREATE INDEX messages_by_conversation ON messages(conversation_id, created_at);

CREATE TABLE agents (
    id   TEXT PRIMARY KEY,
    data TEXT NOT NULL
);

-- One row per key; `cursor` is the seq of the last hub event applied.
CREATE TABLE sync_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
