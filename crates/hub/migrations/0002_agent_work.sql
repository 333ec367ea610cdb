-- Agents working handoffs: presence and capacity live in the agent's JSON; commands are recorded
-- by (agent, txn_id) so a retry is answered from here; outbound Botpress calls wait in `outbox`.
ALTER TABLE channels ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
ALTER TABLE handoffs ADD COLUMN assignee TEXT;
CREATE INDEX handoffs_by_assignee ON handoffs(assignee, status);

CREATE TABLE notes (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    data            TEXT NOT NULL
);
CREATE INDEX notes_by_conversation ON notes(conversation_id);

CREATE TABLE templates (
    id   TEXT PRIMARY KEY,
    data TEXT NOT NULL
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE commands (
    agent_id   TEXT NOT NULL,
    txn_id     TEXT NOT NULL,
    status     INTEGER NOT NULL,
    response   TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (agent_id, txn_id)
);

-- state: queued → sending → sent | uncertain | failed (queued again on retry or resend).
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id      TEXT NOT NULL REFERENCES channels(id),
    conversation_id TEXT NOT NULL,
    route           TEXT NOT NULL,
    body            TEXT NOT NULL,
    message_id      TEXT,
    state           TEXT NOT NULL DEFAULT 'queued',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX outbox_open ON outbox(state, conversation_id, id);
