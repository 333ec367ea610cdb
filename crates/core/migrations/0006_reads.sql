-- Unread markers: where each agent read each conversation up to (the hub's `read` entity, shared
-- by an agent's devices), and when the customer last wrote, so the inbox list compares two
-- columns instead of reading every message.
CREATE TABLE reads (
    agent_id        TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    read_at         TEXT NOT NULL,
    unread          INTEGER NOT NULL DEFAULT 0,
    data            TEXT NOT NULL,
    PRIMARY KEY (agent_id, conversation_id)
);

ALTER TABLE conversations ADD COLUMN last_customer_at TEXT;
UPDATE conversations SET last_customer_at = (
    SELECT MAX(m.created_at) FROM messages m
    WHERE m.conversation_id = conversations.id AND json_extract(m.data, '$.author') = 'end_user');
