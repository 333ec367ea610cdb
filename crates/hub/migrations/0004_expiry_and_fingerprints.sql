-- Sign-in tokens expire when idle too long and past a maximum age; `last_used_at` is written back
-- at most every few minutes, not on every request.
ALTER TABLE tokens ADD COLUMN last_used_at TEXT;
CREATE INDEX tokens_by_agent ON tokens(agent_id);
-- A retried command must be the same command: what it asked for (route, target, body) is kept as a
-- hash beside its answer, and a txn_id reused for something else is refused.
ALTER TABLE commands ADD COLUMN fingerprint TEXT;
-- Earlier hubs wrote network errors with the webhook URL in them (a credential): the reasons are
-- cleared; a call still waiting gets a fresh one at its next attempt.
UPDATE outbox SET last_error = NULL WHERE last_error LIKE '%://%';
UPDATE messages SET data = json_remove(data, '$.status_reason')
    WHERE json_extract(data, '$.status_reason') LIKE '%://%';
