-- Counters for statistics by scope: a scan of the tasks in scope is linear
-- in tasks (≈ 0.4 s for the province at 50,000 tasks), and a task's deadline
-- state depends on "today", so the counters are kept by what the state is
-- computed from, never by the state itself.
--
-- Every non-duty task (`recurrence IS NULL`) is counted in the scope of the
-- whole province (`scope = ''`) and in the scope of each agency that leads
-- or coordinates it (`scope` = that agency, `scope_leads` when it leads);
-- within a scope, once for the scope's total (`lead_agency = ''`) and once
-- per lead agency of the task (the per-agency breakdown). Two tables:
--
-- * `task_tally_totals`: every task, its due date replaced by the stand-in
--   DATE '0001-01-01' (earlier than any real "today" minus the long-overdue
--   threshold) and its completion date by the stand-in for "on time"
--   ('0001-01-01') or "late" ('0001-01-02'), 'infinity' meaning none. Read
--   as rows of (stage, due_date, completion_date), every deadline predicate
--   gives the stand-in the answer it gives the task — for a task due before
--   the window read in detail (below).
-- * `task_tally_days`: the tasks whose state depends on today (open with a
--   due date, or completed without a completion date), by exact due date.
--
-- The statistics query (storage/statistics.rs) reads the totals, and for the
-- days from the long-overdue boundary on, moves their tasks from the stand-in
-- to their exact due date (+n there, −n at the stand-in), then applies the
-- same SQL predicates as the task lists (`tasks::deadline_predicate`).
-- Stages are stored as 'OPEN', 'COMPLETED' or 'WITHDRAWN': the predicates
-- only tell those apart.
--
-- `shard` (task id mod 8) spreads tasks created at the same time for the same
-- agency and due date over several rows, so that concurrent writers do not
-- queue on one counter row until commit.
CREATE TABLE task_tally_totals (
    scope           TEXT     NOT NULL,
    scope_leads     BOOLEAN  NOT NULL,
    lead_agency     TEXT     NOT NULL,
    key_task        BOOLEAN  NOT NULL,
    stage           TEXT     NOT NULL,
    due_date        DATE     NOT NULL,
    completion_date DATE     NOT NULL,
    shard           SMALLINT NOT NULL,
    tasks           INT      NOT NULL,
    PRIMARY KEY (scope, scope_leads, lead_agency, key_task, stage, due_date, completion_date, shard)
);

CREATE TABLE task_tally_days (
    scope       TEXT     NOT NULL,
    scope_leads BOOLEAN  NOT NULL,
    lead_agency TEXT     NOT NULL,
    key_task    BOOLEAN  NOT NULL,
    stage       TEXT     NOT NULL,
    due_date    DATE     NOT NULL,
    shard       SMALLINT NOT NULL,
    tasks       INT      NOT NULL,
    PRIMARY KEY (scope, scope_leads, lead_agency, key_task, stage, due_date, shard)
);
CREATE INDEX task_tally_days_due ON task_tally_days (scope, due_date);

-- What one task adds to the counters: one row per scope and breakdown.
CREATE FUNCTION task_tally_rows(
    of_task BIGINT, of_recurrence TEXT, of_stage TEXT, due DATE, completed DATE,
    is_key BOOLEAN, lead TEXT[], coordinating TEXT[]
) RETURNS TABLE (
    scope TEXT, scope_leads BOOLEAN, lead_agency TEXT, key_task BOOLEAN, stage TEXT, stand_in_due DATE,
    stand_in_completion DATE, shard SMALLINT, due_date DATE, today_dependent BOOLEAN
) LANGUAGE sql IMMUTABLE AS $$
    SELECT scope.agency, scope.leads, breakdown.agency, is_key, class.stage,
           CASE WHEN class.stage = 'WITHDRAWN' OR due IS NULL THEN DATE 'infinity'
                ELSE DATE '0001-01-01' END,
           CASE WHEN class.stage <> 'COMPLETED' OR due IS NULL OR completed IS NULL
                    THEN DATE 'infinity'
                WHEN completed <= due THEN DATE '0001-01-01'
                ELSE DATE '0001-01-02' END,
           (of_task % 8)::smallint,
           due,
           due IS NOT NULL AND (class.stage = 'OPEN' OR (class.stage = 'COMPLETED' AND completed IS NULL))
    FROM (SELECT CASE WHEN of_stage IN ('COMPLETED', 'WITHDRAWN') THEN of_stage ELSE 'OPEN' END) AS class (stage)
    CROSS JOIN (
        SELECT '', false
        UNION ALL
        SELECT role.agency, bool_or(role.leads)
        FROM (SELECT unnest(lead), true UNION ALL SELECT unnest(coordinating), false) AS role (agency, leads)
        GROUP BY role.agency
    ) AS scope (agency, leads)
    CROSS JOIN (SELECT '' UNION ALL SELECT unnest(lead)) AS breakdown (agency)
    WHERE of_recurrence IS NULL
$$;

-- Each trigger adds what the inserted (or removes what the deleted) tasks
-- count, grouped, in key order so that concurrent writers lock counter rows
-- in the same order.
CREATE FUNCTION task_tallies_after_insert() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
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
    SELECT r.scope, r.scope_leads, r.lead_agency, r.key_task, r.stage, r.due_date, r.shard, count(*)
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

-- Old versions count −1, new ones +1; rows that cancel out (a progress
-- report, a title edit) write nothing.
CREATE FUNCTION task_tallies_after_update() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
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
    SELECT r.scope, r.scope_leads, r.lead_agency, r.key_task, r.stage, r.due_date, r.shard, sum(t.change)
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

CREATE FUNCTION task_tallies_after_delete() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
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
    SELECT r.scope, r.scope_leads, r.lead_agency, r.key_task, r.stage, r.due_date, r.shard, -count(*)
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

CREATE TRIGGER task_tallies_insert AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS inserted_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION task_tallies_after_insert();
CREATE TRIGGER task_tallies_update AFTER UPDATE ON tasks
    REFERENCING OLD TABLE AS old_tasks NEW TABLE AS new_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION task_tallies_after_update();
CREATE TRIGGER task_tallies_delete AFTER DELETE ON tasks
    REFERENCING OLD TABLE AS deleted_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION task_tallies_after_delete();

-- Existing tasks.
INSERT INTO task_tally_totals
SELECT r.scope, r.scope_leads, r.lead_agency, r.key_task, r.stage, r.stand_in_due, r.stand_in_completion, r.shard, count(*)
FROM tasks t
CROSS JOIN LATERAL task_tally_rows(t.id, t.recurrence, t.stage, t.due_date, t.completion_date,
                                   t.key_task, t.lead_agencies, t.coordinating_agencies) r
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;
INSERT INTO task_tally_days
SELECT r.scope, r.scope_leads, r.lead_agency, r.key_task, r.stage, r.due_date, r.shard, count(*)
FROM tasks t
CROSS JOIN LATERAL task_tally_rows(t.id, t.recurrence, t.stage, t.due_date, t.completion_date,
                                   t.key_task, t.lead_agencies, t.coordinating_agencies) r
WHERE r.today_dependent
GROUP BY 1, 2, 3, 4, 5, 6, 7;
ANALYZE task_tally_totals;
ANALYZE task_tally_days;
