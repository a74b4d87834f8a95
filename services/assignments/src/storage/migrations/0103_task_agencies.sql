-- One row per (task, agency that leads or coordinates it), in list order: an
-- agency's page reads its next 51 entries of `task_agencies_list` instead of
-- sorting every task of the agency (GIN on the arrays cannot give an order).
-- `tasks.lead_agencies` and `tasks.coordinating_agencies` stay the source of
-- truth: the triggers below keep this table equal to them in the same
-- statement, whoever writes `tasks` (the service, a migration, a bulk load).
CREATE TABLE task_agencies (
    agency      TEXT    NOT NULL,
    task_id     BIGINT  NOT NULL,
    leads       BOOLEAN NOT NULL,
    coordinates BOOLEAN NOT NULL,
    -- Copies of the task's stage and list key (due date, none last).
    task_stage  TEXT    NOT NULL,
    due_key     DATE    NOT NULL,
    PRIMARY KEY (task_id, agency)
);
-- "agency = X" (and an agency user's visibility) in list order.
CREATE INDEX task_agencies_list ON task_agencies (agency, due_key, task_id);
-- "agency = X AND stage = S" and "lead = X AND stage = S" in list order.
CREATE INDEX task_agencies_stage ON task_agencies (agency, task_stage, due_key, task_id);

-- The rows of one task (an agency both leading and coordinating is one row).
CREATE FUNCTION task_agency_rows(
    of_task BIGINT, lead TEXT[], coordinating TEXT[], of_stage TEXT, due DATE
) RETURNS TABLE (
    agency TEXT, task_id BIGINT, leads BOOLEAN, coordinates BOOLEAN, task_stage TEXT, due_key DATE
) LANGUAGE sql IMMUTABLE AS $$
    SELECT role.agency, of_task, bool_or(role.leads), bool_or(NOT role.leads), of_stage,
           COALESCE(due, DATE '9999-12-31')
    FROM (SELECT unnest(lead), true UNION ALL SELECT unnest(coordinating), false) AS role (agency, leads)
    GROUP BY role.agency
$$;

CREATE FUNCTION task_agencies_after_insert() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO task_agencies
    SELECT r.* FROM inserted_tasks t
    CROSS JOIN LATERAL task_agency_rows(t.id, t.lead_agencies, t.coordinating_agencies, t.stage, t.due_date) r;
    RETURN NULL;
END
$$;

-- Rewrites the rows of tasks whose agencies, stage or due date changed (a
-- progress report or a title edit touches nothing).
CREATE FUNCTION task_agencies_after_update() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    DELETE FROM task_agencies a USING old_tasks o
    WHERE a.task_id = o.id
      AND NOT EXISTS (
          SELECT 1 FROM new_tasks n
          WHERE n.id = o.id AND n.lead_agencies = o.lead_agencies
            AND n.coordinating_agencies = o.coordinating_agencies
            AND n.stage = o.stage AND n.due_date IS NOT DISTINCT FROM o.due_date);
    INSERT INTO task_agencies
    SELECT r.* FROM new_tasks t
    CROSS JOIN LATERAL task_agency_rows(t.id, t.lead_agencies, t.coordinating_agencies, t.stage, t.due_date) r
    WHERE NOT EXISTS (
          SELECT 1 FROM old_tasks o
          WHERE o.id = t.id AND o.lead_agencies = t.lead_agencies
            AND o.coordinating_agencies = t.coordinating_agencies
            AND o.stage = t.stage AND o.due_date IS NOT DISTINCT FROM t.due_date);
    RETURN NULL;
END
$$;

CREATE FUNCTION task_agencies_after_delete() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    DELETE FROM task_agencies a USING deleted_tasks o WHERE a.task_id = o.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER task_agencies_insert AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS inserted_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION task_agencies_after_insert();
CREATE TRIGGER task_agencies_update AFTER UPDATE ON tasks
    REFERENCING OLD TABLE AS old_tasks NEW TABLE AS new_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION task_agencies_after_update();
CREATE TRIGGER task_agencies_delete AFTER DELETE ON tasks
    REFERENCING OLD TABLE AS deleted_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION task_agencies_after_delete();

-- Existing tasks.
INSERT INTO task_agencies
SELECT r.* FROM tasks t
CROSS JOIN LATERAL task_agency_rows(t.id, t.lead_agencies, t.coordinating_agencies, t.stage, t.due_date) r;
-- Statistics for the planner before the first agency page.
ANALYZE task_agencies;
