-- Notes on conversations, canned replies, and the team's tag list, so they work offline too.
CREATE TABLE notes (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    data            TEXT NOT NULL
);
CREATE INDEX notes_by_conversation ON notes(conversation_id, created_at);

CREATE TABLE templates (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    data TEXT NOT NULL
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
