-- Ids a channel's platform gives things (a WhatsApp message's wamid, a customer's phone or
-- business-scoped id, a status already applied), mapped to the hub's own ids. The primary key is
-- what makes a redelivered webhook change nothing.
CREATE TABLE external_ids (
    channel_id  TEXT NOT NULL REFERENCES channels(id),
    kind        TEXT NOT NULL,
    external_id TEXT NOT NULL,
    internal_id TEXT NOT NULL,
    PRIMARY KEY (channel_id, kind, external_id)
) WITHOUT ROWID;
