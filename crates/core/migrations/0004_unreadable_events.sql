-- Events of a kind this build knows but whose data it cannot read (a hub bug, or data a newer
-- hub wrote): each is kept here by its seq, with why, instead of failing the batch it came in.
-- The cursor moves past it, so every other event is applied; the raw data stays for a later build.
CREATE TABLE unreadable_events (
    seq     INTEGER PRIMARY KEY,
    kind    TEXT NOT NULL,
    error   TEXT NOT NULL,
    data    TEXT NOT NULL,
    seen_at TEXT NOT NULL
);
