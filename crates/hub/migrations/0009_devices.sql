-- Devices registered for push (a phone's FCM or APNs token, a browser's Web Push subscription).
-- Each belongs to the session that registered it: signing out, or the session expiring, removes
-- it with the token. One address is one device: registering it again (another agent signed in on
-- that phone) replaces the row.
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
