-- The tasks overdue by up to the long-overdue threshold, summed per counter
-- (see 0104 and 0105 for the counters).
--
-- Province-wide statistics read the day rows (`task_tally_days`) from the
-- long-overdue boundary to the end of the nearly-overdue window, one row per
-- due date and lead agency: at 1,000,000 tasks, 12,700 rows, about 40 % of
-- the statement's time. Every due date from the long-overdue boundary up to
-- today gets the same answers from the predicates of today, so this table
-- holds their sum per counter, and the statistics read it instead of 30 days
-- of rows: what is left is the rolled rows and the days from today to the
-- end of the window.
--
-- `task_tally_overdue` holds, per counter, the sum of the day rows due from
-- the watermark `rolled_before` up to `overdue_before` (never the rolled
-- rows at DATE '0001-01-01', which stay where they are), spread over shards
-- like the day rows; reads add the shards up. The service
-- moves `overdue_before` to today once a day (`task_tally_sum_overdue`),
-- after the roll has moved `rolled_before` to the long-overdue boundary.
-- Statistics read it only when the two are exactly those boundaries, and
-- the day rows otherwise (the statement checks this itself, in its own
-- snapshot).
--
-- Whatever writes day rows keeps the sums in the same transaction: the
-- triggers on `tasks` (redefined below), the roll and the fold. Statements
-- of the release before never read this table, and its roll and fold are
-- the functions redefined here, so both releases can run side by side.
ALTER TABLE task_tally_watermark ADD COLUMN overdue_before DATE NOT NULL DEFAULT DATE '0001-01-01';

CREATE TABLE task_tally_overdue (
    scope       TEXT     NOT NULL,
    scope_leads BOOLEAN  NOT NULL,
    lead_agency TEXT     NOT NULL,
    key_task    BOOLEAN  NOT NULL,
    stage       TEXT     NOT NULL,
    -- The shard of the day rows summed (0104): writers kept apart there
    -- are kept apart here too. The fold moves both to shard 0, each in
    -- steps of its own, so only the sum over shards is exact at all times.
    shard       SMALLINT NOT NULL,
    tasks       INT      NOT NULL,
    PRIMARY KEY (scope, scope_leads, lead_agency, key_task, stage, shard)
);
ALTER TABLE task_tally_overdue SET (autovacuum_vacuum_scale_factor = 0.02,
                                    autovacuum_vacuum_insert_scale_factor = 0.02);
CREATE INDEX task_tally_overdue_sharded ON task_tally_overdue (shard) WHERE shard <> 0;

-- Whether a day row's due date is summed in `task_tally_overdue`, by the
-- watermark row `w`.
CREATE FUNCTION task_tally_summed(due DATE, w task_tally_watermark) RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE AS $$
    SELECT due >= w.rolled_before AND due < w.overdue_before AND due > DATE '0001-01-01'
$$;

-- The watermark under the shared lock (0105), in PL/pgSQL: a multi-statement
-- SQL function is planned again at every call, and every write of tasks
-- calls it (plans of PL/pgSQL are kept for the session).
CREATE OR REPLACE FUNCTION task_tally_rolled_before() RETURNS DATE
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $$
DECLARE
    rolled DATE;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(task_tally_lock_key(), 0);
    -- A statement of its own, whose snapshot is taken after the lock.
    SELECT w.rolled_before INTO rolled FROM task_tally_watermark w;
    RETURN rolled;
END
$$;

-- The triggers of 0104 and 0105, with the day rows' changes also added to
-- the sums. The three differ only in the changed tasks they read (counted
-- +1 as inserted or new, -1 as deleted or old), so they are written once
-- here and created for each; rows that cancel out (a progress report, a
-- title edit) write nothing.
DO $migration$
DECLARE
    trigger_function TEXT;
    changed_tasks TEXT;
BEGIN
    FOR trigger_function, changed_tasks IN VALUES
        ('task_tallies_after_insert', 'SELECT n.*, 1 AS change FROM inserted_tasks n'),
        ('task_tallies_after_update',
         'SELECT n.*, 1 AS change FROM new_tasks n UNION ALL SELECT o.*, -1 FROM old_tasks o'),
        ('task_tallies_after_delete', 'SELECT o.*, -1 AS change FROM deleted_tasks o')
    LOOP
        EXECUTE format($function$
CREATE OR REPLACE FUNCTION %2$I() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $body$
DECLARE
    rolled DATE := task_tally_rolled_before();
BEGIN
    INSERT INTO task_tally_totals AS c
    SELECT r.scope, r.scope_leads, r.lead_agency, r.key_task, r.stage, r.stand_in_due, r.stand_in_completion, r.shard,
           sum(t.change)
    FROM (%1$s) t
    CROSS JOIN LATERAL task_tally_rows(t.id, t.recurrence, t.stage, t.due_date, t.completion_date,
                                       t.key_task, t.lead_agencies, t.coordinating_agencies) r
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 HAVING sum(t.change) <> 0 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
    ON CONFLICT (scope, scope_leads, lead_agency, key_task, stage, due_date, completion_date, shard)
    DO UPDATE SET tasks = c.tasks + excluded.tasks;
    INSERT INTO task_tally_days AS c
    SELECT r.scope, r.scope_leads, r.lead_agency, r.key_task, r.stage, task_tally_day(r.due_date, rolled), r.shard,
           sum(t.change)
    FROM (%1$s) t
    CROSS JOIN LATERAL task_tally_rows(t.id, t.recurrence, t.stage, t.due_date, t.completion_date,
                                       t.key_task, t.lead_agencies, t.coordinating_agencies) r
    WHERE r.today_dependent
    GROUP BY 1, 2, 3, 4, 5, 6, 7 HAVING sum(t.change) <> 0 ORDER BY 1, 2, 3, 4, 5, 6, 7
    ON CONFLICT (scope, scope_leads, lead_agency, key_task, stage, due_date, shard)
    DO UPDATE SET tasks = c.tasks + excluded.tasks;
    -- Most writes are of tasks due ahead: one look at the changed tasks'
    -- due dates spares them the statement.
    IF EXISTS (SELECT FROM (%1$s) t CROSS JOIN task_tally_watermark w WHERE task_tally_summed(t.due_date, w)) THEN
        INSERT INTO task_tally_overdue AS c
        SELECT r.scope, r.scope_leads, r.lead_agency, r.key_task, r.stage, r.shard, sum(t.change)
        FROM (%1$s) t
        CROSS JOIN LATERAL task_tally_rows(t.id, t.recurrence, t.stage, t.due_date, t.completion_date,
                                           t.key_task, t.lead_agencies, t.coordinating_agencies) r
        CROSS JOIN task_tally_watermark w
        WHERE r.today_dependent AND task_tally_summed(r.due_date, w)
        GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(t.change) <> 0 ORDER BY 1, 2, 3, 4, 5, 6
        ON CONFLICT (scope, scope_leads, lead_agency, key_task, stage, shard)
        DO UPDATE SET tasks = c.tasks + excluded.tasks;
    END IF;
    RETURN NULL;
END
$body$
$function$, changed_tasks, trigger_function);
    END LOOP;
END
$migration$;

-- The roll of 0105; the day rows it moves out of the range summed leave
-- the sums too.
CREATE OR REPLACE FUNCTION task_tally_roll(until DATE, max_days INT) RETURNS DATE
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
    ), unsummed AS (
        INSERT INTO task_tally_overdue AS c
        SELECT m.scope, m.scope_leads, m.lead_agency, m.key_task, m.stage, m.shard, -sum(m.tasks)
        FROM moved m CROSS JOIN task_tally_watermark w
        WHERE task_tally_summed(m.due_date, w)
        GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(m.tasks) <> 0 ORDER BY 1, 2, 3, 4, 5, 6
        ON CONFLICT (scope, scope_leads, lead_agency, key_task, stage, shard)
        DO UPDATE SET tasks = c.tasks + excluded.tasks
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

-- The fold of 0105, folding the sums' shards too.
CREATE OR REPLACE FUNCTION task_tally_fold(max_rows INT) RETURNS INT
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    totals INT;
    days INT;
    sums INT;
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
    WITH moved AS (
        DELETE FROM task_tally_overdue o
        WHERE o.ctid IN (SELECT ctid FROM task_tally_overdue WHERE shard <> 0 LIMIT max_rows - totals - days)
        RETURNING o.*
    ), folded AS (
        INSERT INTO task_tally_overdue AS c
        SELECT m.scope, m.scope_leads, m.lead_agency, m.key_task, m.stage, 0, sum(m.tasks)
        FROM moved m
        GROUP BY 1, 2, 3, 4, 5 HAVING sum(m.tasks) <> 0 ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (scope, scope_leads, lead_agency, key_task, stage, shard)
        DO UPDATE SET tasks = c.tasks + excluded.tasks
    )
    SELECT count(*) INTO sums FROM moved;
    RETURN totals + days + sums;
END
$$;

-- Moves `overdue_before` to `until` (never back), adding the day rows due
-- in between to the sums, and drops the sums that came to zero. The
-- service calls it once a day after the roll and the fold; returns the
-- watermark reached.
CREATE FUNCTION task_tally_sum_overdue(until DATE) RETURNS DATE
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    w task_tally_watermark;
BEGIN
    -- Most calls find nothing to do: they return without the lock, which
    -- would make writers wait.
    SELECT * INTO w FROM task_tally_watermark;
    IF w.overdue_before >= until THEN
        RETURN w.overdue_before;
    END IF;
    PERFORM pg_advisory_xact_lock(task_tally_lock_key(), 0);
    SELECT * INTO w FROM task_tally_watermark;
    IF w.overdue_before >= until THEN
        RETURN w.overdue_before;
    END IF;
    INSERT INTO task_tally_overdue AS c
    SELECT d.scope, d.scope_leads, d.lead_agency, d.key_task, d.stage, d.shard, sum(d.tasks)
    FROM task_tally_days d
    WHERE d.due_date >= GREATEST(w.overdue_before, w.rolled_before) AND d.due_date < until
      AND d.due_date > DATE '0001-01-01'
    GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(d.tasks) <> 0 ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (scope, scope_leads, lead_agency, key_task, stage, shard)
    DO UPDATE SET tasks = c.tasks + excluded.tasks;
    DELETE FROM task_tally_overdue WHERE tasks = 0;
    UPDATE task_tally_watermark SET overdue_before = until;
    RETURN until;
END
$$;
