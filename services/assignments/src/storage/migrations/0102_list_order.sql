-- Task lists are ordered by (due date, tasks without one last, id): an index
-- in that order serves a first page, and the keyset pages after it, without
-- sorting the table (measured by dondoc-bench, scenario 3).
CREATE INDEX tasks_list_order ON tasks ((COALESCE(due_date, DATE '9999-12-31')), id);
