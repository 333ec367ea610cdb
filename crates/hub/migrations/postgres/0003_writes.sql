-- How many write transactions have committed. A hub instance's writer keeps what it read between
-- its own transactions while this has not moved past its own last commit: no other writer (another
-- instance, the admin CLI) has changed anything since (store/postgres.rs, `WriterCache`).
ALTER TABLE log_head ADD COLUMN writes BIGINT NOT NULL DEFAULT 0;
-- How many platform links have been removed: a writer keeps the links it read across other
-- writers' commits unless this moved.
ALTER TABLE log_head ADD COLUMN unlinks BIGINT NOT NULL DEFAULT 0;
