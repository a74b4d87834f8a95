-- A mutation with a request_id claims its key by inserting the row first and
-- stores the answer when it commits: the row exists without an answer only
-- inside that transaction, and a concurrent duplicate waits on the key.
ALTER TABLE idempotency_keys ALTER COLUMN response DROP NOT NULL;
