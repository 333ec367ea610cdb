-- When a bot's drafted reply is decided for it if no agent has (the bot channel's draft timeout).
-- Milliseconds since the Unix epoch, so the due ones are found by comparing numbers.
CREATE TABLE draft_deadlines (
    message_id TEXT PRIMARY KEY REFERENCES messages(id),
    due_at_ms  INTEGER NOT NULL
);
CREATE INDEX draft_deadlines_by_due ON draft_deadlines(due_at_ms);
