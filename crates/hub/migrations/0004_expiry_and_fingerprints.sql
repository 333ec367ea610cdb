-- Sign-in tokens expire when idle too long and past a maximum age; `last_used_at` is written back
-- at most every few minutes, not on every request.
ALTER TABLE tokens ADD COLUMN last_used_at TEXT;
CREATE INDEX tokens_by_agent ON tokens(agent_id);
-- A retried command must be the same command: what it asked for (route, target, body) is kept as a
-- hash beside its answer, and a txn_id reused for something else is refused.
ALTER TABLE commands ADD COLUMN fingerprint TEXT;
