-- Progress reports, extension requests, recurring occurrences and indicators.

-- One occurrence per duty and due date, whatever ticks run twice.
CREATE UNIQUE INDEX tasks_occurrence ON tasks (recurrence_parent, due_date);

CREATE TABLE progress_reports (
    id               BIGSERIAL   PRIMARY KEY,
    task_id          BIGINT      NOT NULL REFERENCES tasks (id),
    agency           TEXT        NOT NULL,
    text             TEXT        NOT NULL,
    percent_complete INT         NOT NULL CHECK (percent_complete BETWEEN 0 AND 100),
    evidence         TEXT[]      NOT NULL DEFAULT '{}',
    actor            TEXT        NOT NULL,
    at               TIMESTAMPTZ NOT NULL
);
CREATE INDEX progress_reports_task ON progress_reports (task_id, id DESC);

CREATE TABLE extension_requests (
    id                 BIGSERIAL   PRIMARY KEY,
    task_id            BIGINT      NOT NULL REFERENCES tasks (id),
    requested_due_date DATE        NOT NULL,
    previous_due_date  DATE,
    reason             TEXT        NOT NULL,
    state              TEXT        NOT NULL DEFAULT 'PENDING',
    decision_note      TEXT        NOT NULL DEFAULT '',
    requested_by       TEXT        NOT NULL,
    requested_agency   TEXT,
    requested_at       TIMESTAMPTZ NOT NULL,
    decided_by         TEXT,
    decided_agency     TEXT,
    decided_at         TIMESTAMPTZ
);
CREATE INDEX extension_requests_task ON extension_requests (task_id, id);
-- One pending request per task at a time.
CREATE UNIQUE INDEX extension_requests_one_pending ON extension_requests (task_id)
    WHERE state = 'PENDING';

CREATE TABLE indicators (
    id             BIGSERIAL        PRIMARY KEY,
    agency         TEXT             NOT NULL,
    code           TEXT             NOT NULL,
    display_name   TEXT             NOT NULL,
    unit           TEXT             NOT NULL,
    period_kind    TEXT             NOT NULL,
    year           INT              NOT NULL,
    period         INT              NOT NULL,
    target         DOUBLE PRECISION NOT NULL,
    actual         DOUBLE PRECISION,
    updated_by     TEXT             NOT NULL,
    updated_agency TEXT,
    updated_at     TIMESTAMPTZ      NOT NULL,
    UNIQUE (code, agency, period_kind, year, period)
);
CREATE INDEX indicators_agency ON indicators (agency, year, period);

-- Dashboard queries: statistics and lists by scope and period.
CREATE INDEX tasks_assigner_assign ON tasks (assigner, assign_date);
CREATE INDEX tasks_assign_date ON tasks (assign_date);
CREATE INDEX tasks_stage_due ON tasks (stage, due_date);
CREATE INDEX tasks_key ON tasks (due_date, id) WHERE key_task;
CREATE INDEX tasks_open_due ON tasks (due_date, id) WHERE stage NOT IN ('COMPLETED', 'WITHDRAWN');
CREATE INDEX tasks_duties ON tasks (id) WHERE recurrence IS NOT NULL AND recurrence_parent IS NULL;
