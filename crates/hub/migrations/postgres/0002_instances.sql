-- What several hub instances on one database need: shared signs of life and leased deliveries.

-- Agents' latest signs of life (an open stream, a command), written by whichever hub instance saw
-- them every few seconds, so the instance running the presence sweep knows about all of them.
CREATE TABLE agent_activity (
    agent_id TEXT PRIMARY KEY REFERENCES agents(id),
    seen_at  TIMESTAMPTZ NOT NULL
);

-- A call being sent is leased to the instance sending it: past `claimed_until` (that instance
-- died mid-call), another instance settles it by the usual rule (uncertain, never sent again
-- blindly; a bot's event, which it can drop as a repeat, is queued again).
ALTER TABLE deliveries ADD COLUMN claimed_until TIMESTAMPTZ;

-- Failed sign-ins, counted across every instance (`account:<email>`, `address:<ip>`), so spreading
-- guesses over several hubs gains nothing.
CREATE TABLE login_failures (
    key         TEXT PRIMARY KEY,
    count       INTEGER NOT NULL,
    last_failed TIMESTAMPTZ NOT NULL
);
