-- Offline search, the outbox and backfill.
--
-- Search: the text an agent looks for gets its own column on each entity, and an FTS5 index over it
-- kept in step by triggers (external content, so the text is stored once). Filters use the columns
-- added here too: a conversation's channel, a handoff's assignee and tags.
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
CREATE INDEX conversations_by_contact ON conversations(contact_id);

CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', content_rowid='rowid',
    tokenize='unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE notes_fts USING fts5(text, content='notes', content_rowid='rowid',
    tokenize='unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE contacts_fts USING fts5(name, content='contacts', content_rowid='rowid',
    tokenize='unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE handoffs_fts USING fts5(title, content='handoffs', content_rowid='rowid',
    tokenize='unicode61 remove_diacritics 2');

CREATE TRIGGER messages_ai AFTER INSERT ON messages WHEN new.text IS NOT NULL BEGIN
    INSERT INTO messages_fts(rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER messages_ad AFTER DELETE ON messages WHEN old.text IS NOT NULL BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;
CREATE TRIGGER messages_au AFTER UPDATE OF text ON messages WHEN old.text IS NOT new.text BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text) SELECT 'delete', old.rowid, old.text WHERE old.text IS NOT NULL;
    INSERT INTO messages_fts(rowid, text) SELECT new.rowid, new.text WHERE new.text IS NOT NULL;
END;

CREATE TRIGGER notes_ai AFTER INSERT ON notes WHEN new.text IS NOT NULL BEGIN
    INSERT INTO notes_fts(rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER notes_ad AFTER DELETE ON notes WHEN old.text IS NOT NULL BEGIN
    INSERT INTO notes_fts(notes_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;
CREATE TRIGGER notes_au AFTER UPDATE OF text ON notes WHEN old.text IS NOT new.text BEGIN
    INSERT INTO notes_fts(notes_fts, rowid, text) SELECT 'delete', old.rowid, old.text WHERE old.text IS NOT NULL;
    INSERT INTO notes_fts(rowid, text) SELECT new.rowid, new.text WHERE new.text IS NOT NULL;
END;

CREATE TRIGGER contacts_ai AFTER INSERT ON contacts WHEN new.name IS NOT NULL BEGIN
    INSERT INTO contacts_fts(rowid, name) VALUES (new.rowid, new.name);
END;
CREATE TRIGGER contacts_ad AFTER DELETE ON contacts WHEN old.name IS NOT NULL BEGIN
    INSERT INTO contacts_fts(contacts_fts, rowid, name) VALUES ('delete', old.rowid, old.name);
END;
CREATE TRIGGER contacts_au AFTER UPDATE OF name ON contacts WHEN old.name IS NOT new.name BEGIN
    INSERT INTO contacts_fts(contacts_fts, rowid, name) SELECT 'delete', old.rowid, old.name WHERE old.name IS NOT NULL;
    INSERT INTO contacts_fts(rowid, name) SELECT new.rowid, new.name WHERE new.name IS NOT NULL;
END;

CREATE TRIGGER handoffs_ai AFTER INSERT ON handoffs WHEN new.title IS NOT NULL BEGIN
    INSERT INTO handoffs_fts(rowid, title) VALUES (new.rowid, new.title);
END;
CREATE TRIGGER handoffs_ad AFTER DELETE ON handoffs WHEN old.title IS NOT NULL BEGIN
    INSERT INTO handoffs_fts(handoffs_fts, rowid, title) VALUES ('delete', old.rowid, old.title);
END;
CREATE TRIGGER handoffs_au AFTER UPDATE OF title ON handoffs WHEN old.title IS NOT new.title BEGIN
    INSERT INTO handoffs_fts(handoffs_fts, rowid, title) SELECT 'delete', old.rowid, old.title WHERE old.title IS NOT NULL;
    INSERT INTO handoffs_fts(rowid, title) SELECT new.rowid, new.title WHERE new.title IS NOT NULL;
END;

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
