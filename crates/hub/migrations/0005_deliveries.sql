-- The hub's queue of calls to bot platforms is named for what it is: deliveries (a device's queue
-- of agent actions is its outbox).
ALTER TABLE outbox RENAME TO deliveries;
DROP INDEX outbox_open;
CREATE INDEX deliveries_open ON deliveries(state, conversation_id, id);
