-- The hub's schema on PostgreSQL: the same tables as SQLite's migrations 1–9 make (see
-- ../0001_init.sql onwards), written for PostgreSQL. Entity tables keep the full wire JSON in
-- `data` (text, so the log and the streams serve it exactly as stored) plus the columns queries
-- need; `rid` orders rows as they were first written, as SQLite's rowid does.

CREATE TABLE agents (
    rid           BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT false,
    data          TEXT NOT NULL
);
-- E-mail addresses are one account however they are capitalised.
CREATE UNIQUE INDEX agents_by_email ON agents (lower(email));

CREATE TABLE tokens (
    token_hash   TEXT PRIMARY KEY,
    agent_id     TEXT NOT NULL REFERENCES agents(id),
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ
);
CREATE INDEX tokens_by_agent ON tokens (agent_id);

CREATE TABLE channels (
    rid         BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    webhook_url TEXT,
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE contacts (
    rid        BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id         TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels(id),
    data       TEXT NOT NULL
);

CREATE TABLE conversations (
    rid        BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id         TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES channels(id),
    contact_id TEXT,
    data       TEXT NOT NULL
);

CREATE TABLE handoffs (
    rid             BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    status          TEXT NOT NULL,
    assignee        TEXT,
    data            TEXT NOT NULL
);
CREATE INDEX handoffs_by_conversation ON handoffs (conversation_id);
CREATE INDEX handoffs_by_assignee ON handoffs (assignee, status);
CREATE INDEX handoffs_by_status ON handoffs (status);

CREATE TABLE messages (
    rid             BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    data            TEXT NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, rid);

CREATE TABLE notes (
    rid             BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    data            TEXT NOT NULL
);
CREATE INDEX notes_by_conversation ON notes (conversation_id);

CREATE TABLE templates (
    rid  BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id   TEXT PRIMARY KEY,
    data TEXT NOT NULL
);

CREATE TABLE reads (
    rid             BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    agent_id        TEXT NOT NULL REFERENCES agents(id),
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    data            TEXT NOT NULL,
    PRIMARY KEY (agent_id, conversation_id)
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE commands (
    agent_id    TEXT NOT NULL,
    txn_id      TEXT NOT NULL,
    status      INTEGER NOT NULL,
    response    TEXT NOT NULL,
    fingerprint TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (agent_id, txn_id)
);

-- state: queued → sending → sent | uncertain | failed (queued again on retry or resend).
CREATE TABLE deliveries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id      TEXT NOT NULL REFERENCES channels(id),
    conversation_id TEXT NOT NULL,
    route           TEXT NOT NULL,
    body            TEXT NOT NULL,
    message_id      TEXT,
    state           TEXT NOT NULL DEFAULT 'queued',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX deliveries_open ON deliveries (state, conversation_id, id);

CREATE TABLE external_ids (
    channel_id  TEXT NOT NULL REFERENCES channels(id),
    kind        TEXT NOT NULL,
    external_id TEXT NOT NULL,
    internal_id TEXT NOT NULL,
    PRIMARY KEY (channel_id, kind, external_id)
);

CREATE TABLE draft_deadlines (
    message_id TEXT PRIMARY KEY REFERENCES messages(id),
    due_at_ms  BIGINT NOT NULL
);
CREATE INDEX draft_deadlines_by_due ON draft_deadlines (due_at_ms);

CREATE TABLE devices (
    id         TEXT PRIMARY KEY,
    agent_id   TEXT NOT NULL REFERENCES agents(id),
    token_hash TEXT NOT NULL REFERENCES tokens(token_hash) ON DELETE CASCADE,
    platform   TEXT NOT NULL,
    address    TEXT NOT NULL,
    data       TEXT NOT NULL,
    UNIQUE (platform, address)
);
CREATE INDEX devices_by_agent ON devices (agent_id);

-- The log. `seq`s are handed out from `log_head` inside the writing transaction: its row lock
-- makes every other writer (on any hub instance) wait for this transaction's commit before it
-- takes the next number, so seqs commit in order and a reader never sees N+1 before N.
CREATE TABLE events (
    seq  BIGINT PRIMARY KEY,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE log_head (
    only_row BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row),
    last     BIGINT NOT NULL
);
INSERT INTO log_head (last) VALUES (0);
