-- Bounding what province-wide statistics read (see 0104 for the counters).
--
-- Statistics read `task_tally_days` (the tasks whose state depends on today,
-- by exact due date) from the long-overdue boundary on. Open tasks pile up
-- there: at 1,000,000 tasks with today inside the data, the province read
-- 65,000 day rows and 36,000 counter rows and took 62–78 ms. Three changes
-- bound it:
--
-- * Past: once a due date is before the long-overdue boundary it stays
--   there (today only moves forward), so its day rows are rolled into one
--   row per counter at the stand-in DATE '0001-01-01' (the due date the
--   totals stand at) by `task_tally_roll` (run by the service as the clock
--   moves), and writers file tasks due before the watermark there directly.
-- * Future: a due date after the nearly-overdue window gets the same answer
--   from every predicate, so the statistics query files the today-dependent
--   totals at a far-future stand-in and reads day rows only up to the end of
--   the window (storage/statistics.rs). That needs no change here.
-- * Shards: `task_tally_fold` (below) folds each counter's shards into one
--   row.
--
-- A writer reads the watermark under a shared advisory lock that the roll
-- takes exclusively, so no task is filed by a watermark the roll has moved.

CREATE TABLE task_tally_watermark (
    only_row      BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row),
    -- Day rows due before this date stand at DATE '0001-01-01'.
    rolled_before DATE NOT NULL
);
INSERT INTO task_tally_watermark (rolled_before) VALUES (DATE '0001-01-01');

-- The statistics read day rows from the index alone (rows of one due date
-- are written at different times and lie scattered over the table: 13,000
-- rows read through the heap took 27 ms, from the index 2 ms)...
DROP INDEX task_tally_days_due;
CREATE INDEX task_tally_days_due ON task_tally_days (scope, due_date)
    INCLUDE (scope_leads, lead_agency, key_task, stage, tasks);
-- ...and the roll walks them by due date across scopes.
CREATE INDEX task_tally_days_by_due ON task_tally_days (due_date);
-- An index-only scan reads the heap for pages changed since the last
-- vacuum, and every task written changes counter rows: vacuum these small,
-- busy tables after 2 % of their rows changed rather than 20 %.
ALTER TABLE task_tally_days SET (autovacuum_vacuum_scale_factor = 0.02,
                                 autovacuum_vacuum_insert_scale_factor = 0.02);
ALTER TABLE task_tally_totals SET (autovacuum_vacuum_scale_factor = 0.02,
                                   autovacuum_vacuum_insert_scale_factor = 0.02);

-- The advisory lock that writers take shared and the roll and fold
-- exclusively: keyed by the watermark table's oid, unique in the database.
CREATE FUNCTION task_tally_lock_key() RETURNS INT
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
    SELECT 'task_tally_watermark'::regclass::oid::int
$$;

-- The watermark, read under the shared lock (held until the writer's
-- transaction ends).
CREATE FUNCTION task_tally_rolled_before() RETURNS DATE
LANGUAGE sql VOLATILE SET search_path FROM CURRENT AS $$
    SELECT pg_advisory_xact_lock_shared(task_tally_lock_key(), 0);
    SELECT rolled_before FROM task_tally_watermark;
$$;

-- The due date a day row is filed under.
CREATE FUNCTION task_tally_day(due DATE, rolled_before DATE) RETURNS DATE
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN due < rolled_before THEN DATE '0001-01-01' ELSE due END
$$;

-- Rolls day rows due before `until` into the stand-in, at most `max_days`
-- of due dates per call (each call is one short transaction that writers
-- wait for); returns the watermark reached. Call until it returns `until`.
CREATE FUNCTION task_tally_roll(until DATE, max_days INT) RETURNS DATE
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    rolled DATE;
    target DATE;
BEGIN
    -- Most calls find nothing to do: they return without the lock, which
    -- would make writers wait.
    SELECT w.rolled_before INTO rolled FROM task_tally_watermark w;
    IF rolled >= until THEN
        RETURN rolled;
    END IF;
    PERFORM pg_advisory_xact_lock(task_tally_lock_key(), 0);
    SELECT w.rolled_before INTO rolled FROM task_tally_watermark w;
    IF rolled >= until THEN
        RETURN rolled;
    END IF;
    -- The first roll starts at the earliest day row, not at year 1.
    SELECT COALESCE(min(d.due_date), until) INTO target
    FROM task_tally_days d WHERE d.due_date >= rolled AND d.due_date > DATE '0001-01-01';
    target := LEAST(until, GREATEST(target, rolled) + max_days);
    WITH moved AS (
        DELETE FROM task_tally_days d
        WHERE d.due_date >= rolled AND d.due_date > DATE '0001-01-01' AND d.due_date < target
        RETURNING d.*
    )
    INSERT INTO task_tally_days AS c
    SELECT m.scope, m.scope_leads, m.lead_agency, m.key_task, m.stage, DATE '0001-01-01', 0, sum(m.tasks)
    FROM moved m
    GROUP BY 1, 2, 3, 4, 5 HAVING sum(m.tasks) <> 0 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (scope, scope_leads, lead_agency, key_task, stage, due_date, shard)
    DO UPDATE SET tasks = c.tasks + excluded.tasks;
    UPDATE task_tally_watermark SET rolled_before = target;
    RETURN target;
END
$$;

-- Shards (0104) keep concurrent writers of one agency off each other's
-- counter rows, but every task writes to its own shard, so a counter
-- touched by many tasks has up to 8 rows, which reads add up again: at
-- 1,000,000 tasks, 35,900 province rows for 5,800 counters. Folding moves
-- them into shard 0 once the writers they kept apart are long done (the
-- service folds after each daily roll; rows found by the partial indexes),
-- at most `max_rows` rows per call; returns how many rows it folded.
CREATE INDEX task_tally_totals_sharded ON task_tally_totals (shard) WHERE shard <> 0;
CREATE INDEX task_tally_days_sharded ON task_tally_days (shard) WHERE shard <> 0;

CREATE FUNCTION task_tally_fold(max_rows INT) RETURNS INT
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    totals INT;
    days INT;
BEGIN
    PERFORM pg_advisory_xact_lock(task_tally_lock_key(), 0);
    WITH moved AS (
        DELETE FROM task_tally_totals t
        WHERE t.ctid IN (SELECT ctid FROM task_tally_totals WHERE shard <> 0 LIMIT max_rows)
        RETURNING t.*
    ), folded AS (
        INSERT INTO task_tally_totals AS c
        SELECT m.scope, m.scope_leads, m.lead_agency, m.key_task, m.stage, m.due_date, m.completion_date, 0,
               sum(m.tasks)
        FROM moved m
        GROUP BY 1, 2, 3, 4, 5, 6, 7 HAVING sum(m.tasks) <> 0 ORDER BY 1, 2, 3, 4, 5, 6, 7
        ON CONFLICT (scope, scope_leads, lead_agency, key_task, stage, due_date, completion_date, shard)
        DO UPDATE SET tasks = c.tasks + excluded.tasks
    )
    SELECT count(*) INTO totals FROM moved;
    WITH moved AS (
        DELETE FROM task_tally_days d
        WHERE d.ctid IN (SELECT ctid FROM task_tally_days WHERE shard <> 0 LIMIT max_rows - totals)
        RETURNING d.*
    ), folded AS (
        INSERT INTO task_tally_days AS c
        SELECT m.scope, m.scope_leads, m.lead_agency, m.key_task, m.stage, m.due_date, 0, sum(m.tasks)
        FROM moved m
        GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(m.tasks) <> 0 ORDER BY 1, 2, 3, 4, 5, 6
        ON CONFLICT (scope, scope_leads, lead_agency, key_task, stage, due_date, shard)
        DO UPDATE SET tasks = c.tasks + excluded.tasks
    )
    SELECT count(*) INTO days FROM moved;
    RETURN totals + days;
END
$$;

-- The triggers of 0104, filing day rows by the watermark.
CREATE OR REPLACE FUNCTION task_tallies_after_insert() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    rolled DATE := task_tally_rolled_before();
BEGIN
    INSERT INTO task_tally_totals AS c
    SELECT r.scope, r.scope_leads, r.lead_agency, r.key_task, r.stage, r.stand_in_due, r.stand_in_completion, r.shard, count(*)
    FROM inserted_tasks t
    CROSS JOIN LATERAL task_tally_rows(t.id, t.recurrence, t.stage, t.due_date, t.completion_date,
                                       t.key_task, t.lead_agencies, t.coordinating_agencies) r
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
    ON CONFLICT (scope, scope_leads, lead_agency, key_task, stage, due_date, completion_date, shard)
    DO UPDATE SET tasks = c.tasks + excluded.tasks;
    INSERT INTO task_tally_days AS c
    SELECT r.scope, r.scope_leads, r.lead_agency, r.key_task, r.stage, task_tally_day(r.due_date, rolled), r.shard, count(*)
    FROM inserted_tasks t
    CROSS JOIN LATERAL task_tally_rows(t.id, t.recurrence, t.stage, t.due_date, t.completion_date,
                                       t.key_task, t.lead_agencies, t.coordinating_agencies) r
    WHERE r.today_dependent
    GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT (scope, scope_leads, lead_agency, key_task, stage, due_date, shard)
    DO UPDATE SET tasks = c.tasks + excluded.tasks;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION task_tallies_after_update() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    rolled DATE := task_tally_rolled_before();
BEGIN
    INSERT INTO task_tally_totals AS c
    SELECT r.scope, r.scope_leads, r.lead_agency, r.key_task, r.stage, r.stand_in_due, r.stand_in_completion, r.shard,
           sum(t.change)
    FROM (SELECT n.*, 1 AS change FROM new_tasks n UNION ALL SELECT o.*, -1 FROM old_tasks o) t
    CROSS JOIN LATERAL task_tally_rows(t.id, t.recurrence, t.stage, t.due_date, t.completion_date,
                                       t.key_task, t.lead_agencies, t.coordinating_agencies) r
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 HAVING sum(t.change) <> 0 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
    ON CONFLICT (scope, scope_leads, lead_agency, key_task, stage, due_date, completion_date, shard)
    DO UPDATE SET tasks = c.tasks + excluded.tasks;
    INSERT INTO task_tally_days AS c
    SELECT r.scope, r.scope_leads, r.lead_agency, r.key_task, r.stage, task_tally_day(r.due_date, rolled), r.shard,
           sum(t.change)
    FROM (SELECT n.*, 1 AS change FROM new_tasks n UNION ALL SELECT o.*, -1 FROM old_tasks o) t
    CROSS JOIN LATERAL task_tally_rows(t.id, t.recurrence, t.stage, t.due_date, t.completion_date,
                                       t.key_task, t.lead_agencies, t.coordinating_agencies) r
    WHERE r.today_dependent
    GROUP BY 1, 2, 3, 4, 5, 6, 7 HAVING sum(t.change) <> 0 ORDER BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT (scope, scope_leads, lead_agency, key_task, stage, due_date, shard)
    DO UPDATE SET tasks = c.tasks + excluded.tasks;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION task_tallies_after_delete() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    rolled DATE := task_tally_rolled_before();
BEGIN
    INSERT INTO task_tally_totals AS c
    SELECT r.scope, r.scope_leads, r.lead_agency, r.key_task, r.stage, r.stand_in_due, r.stand_in_completion, r.shard, -count(*)
    FROM deleted_tasks t
    CROSS JOIN LATERAL task_tally_rows(t.id, t.recurrence, t.stage, t.due_date, t.completion_date,
                                       t.key_task, t.lead_agencies, t.coordinating_agencies) r
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
    ON CONFLICT (scope, scope_leads, lead_agency, key_task, stage, due_date, completion_date, shard)
    DO UPDATE SET tasks = c.tasks + excluded.tasks;
    INSERT INTO task_tally_days AS c
    SELECT r.scope, r.scope_leads, r.lead_agency, r.key_task, r.stage, task_tally_day(r.due_date, rolled), r.shard, -count(*)
    FROM deleted_tasks t
    CROSS JOIN LATERAL task_tally_rows(t.id, t.recurrence, t.stage, t.due_date, t.completion_date,
                                       t.key_task, t.lead_agencies, t.coordinating_agencies) r
    WHERE r.today_dependent
    GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT (scope, scope_leads, lead_agency, key_task, stage, due_date, shard)
    DO UPDATE SET tasks = c.tasks + excluded.tasks;
    RETURN NULL;
END
$$;
