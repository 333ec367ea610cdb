-- Offline search, the outbox and backfill.
--
-- Search: the text an agent looks for gets its own column on each entity, and an FTS5 index over it
-- (external content, so the text is stored once). The cache code keeps each index in step in the
-- same transaction as its row — not triggers: FTS5 flushes its pending terms at every statement
-- savepoint a trigger opens, which made applying events five times slower. Filters use the columns
-- added here too: a conversation's channel, a handoff's assignee and tags. `detail=none`: the index
-- only says which rows hold a word; ranking and snippets are worked out from the few rows shown,
-- so positions would be written for every message and never read.
ALTER TABLE messages ADD COLUMN text TEXT;
ALTER TABLE notes ADD COLUMN text TEXT;
ALTER TABLE contacts ADD COLUMN name TEXT;
ALTER TABLE handoffs ADD COLUMN title TEXT;
ALTER TABLE handoffs ADD COLUMN assignee TEXT;
ALTER TABLE handoffs ADD COLUMN tags TEXT;
ALTER TABLE conversations ADD COLUMN channel_id TEXT;

UPDATE messages SET text = json_extract(data, '$.text');
UPDATE notes SET text = json_extract(data, '$.text');
UPDATE contacts SET name = json_extract(data, '$.name');
UPDATE handoffs SET title = json_extract(data, '$.title'),
                    assignee = json_extract(data, '$.assignee'),
                    tags = json_extract(data, '$.tags');
UPDATE conversations SET channel_id = json_extract(data, '$.channel_id');
CREATE INDEX handoffs_by_conversation ON handoffs(conversation_id);
-- Messages arrive interleaved across conversations, so every entry of this index lands on a
-- different page; a narrower key (one conversation's messages are few enough to sort when read)
-- halves what each batch of events has to write.
DROP INDEX messages_by_conversation;
CREATE INDEX messages_by_conversation ON messages(conversation_id);
CREATE INDEX conversations_by_contact ON conversations(contact_id);

CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', content_rowid='rowid',
    tokenize='unicode61 remove_diacritics 2', detail=none);
CREATE VIRTUAL TABLE notes_fts USING fts5(text, content='notes', content_rowid='rowid',
    tokenize='unicode61 remove_diacritics 2', detail=none);
CREATE VIRTUAL TABLE contacts_fts USING fts5(name, content='contacts', content_rowid='rowid',
    tokenize='unicode61 remove_diacritics 2', detail=none);
CREATE VIRTUAL TABLE handoffs_fts USING fts5(title, content='handoffs', content_rowid='rowid',
    tokenize='unicode61 remove_diacritics 2', detail=none);

-- What was cached before this version becomes searchable now.
INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');
INSERT INTO notes_fts(notes_fts) VALUES ('rebuild');
INSERT INTO contacts_fts(contacts_fts) VALUES ('rebuild');
INSERT INTO handoffs_fts(handoffs_fts) VALUES ('rebuild');

-- Every agent action, queued here first and delivered in order with its txn_id. A row leaves when
-- the hub has applied it (its events are written in the same transaction) or the agent discards it.
-- state: queued (waiting or retrying) | failed (stopped: `error` says why; retry, edit or discard).
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    txn_id          TEXT NOT NULL UNIQUE,
    action          TEXT NOT NULL,
    path            TEXT NOT NULL,
    body            TEXT NOT NULL,
    conversation_id TEXT,
    state           TEXT NOT NULL DEFAULT 'queued',
    attempts        INTEGER NOT NULL DEFAULT 0,
    error_class     TEXT,
    error           TEXT,
    next_attempt_at TEXT,
    created_at      TEXT NOT NULL
);

-- What an agent was typing, per conversation: local only, kept across restarts and snapshots.
CREATE TABLE drafts (
    conversation_id TEXT PRIMARY KEY,
    text            TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
