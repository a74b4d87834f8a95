-- Work is claimed in (due time, id) order, `LIMIT n FOR UPDATE SKIP LOCKED`.
-- An index on the due time alone leaves every due row to be sorted by id on
-- each claim: with 100,000 reminders due at once a claim of 100 read and
-- sorted all of them (≈ 90 ms), every batch. In claim order, a claim reads
-- the index from its start and stops after the rows it takes.
CREATE INDEX reminder_jobs_claim ON reminder_jobs (fire_at, id) WHERE state = 'PENDING';
DROP INDEX reminder_jobs_due;
CREATE INDEX deliveries_claim ON deliveries (next_attempt_at, id) WHERE state = 'PENDING';
DROP INDEX deliveries_due;
CREATE INDEX digest_jobs_claim ON digest_jobs (fire_at, id) WHERE state = 'PENDING';
DROP INDEX digest_jobs_due;
