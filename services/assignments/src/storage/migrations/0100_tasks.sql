CREATE TABLE tasks (
    id                    BIGSERIAL   PRIMARY KEY,
    title                 TEXT        NOT NULL,
    description           TEXT        NOT NULL DEFAULT '',
    directive_id          BIGINT,
    -- One task per directive item, whatever is retried or redelivered.
    directive_item_id     BIGINT      UNIQUE,
    directive_number      TEXT        NOT NULL DEFAULT '',
    reference             TEXT        NOT NULL DEFAULT '',
    lead_agencies         TEXT[]      NOT NULL,
    coordinating_agencies TEXT[]      NOT NULL DEFAULT '{}',
    assigner              TEXT        NOT NULL,
    assign_date           DATE        NOT NULL,
    due_date              DATE,
    original_due_date     DATE,
    recurrence            TEXT,
    recurrence_parent     BIGINT      REFERENCES tasks (id),
    priority              TEXT        NOT NULL DEFAULT 'NORMAL',
    key_task              BOOLEAN     NOT NULL DEFAULT false,
    stage                 TEXT        NOT NULL DEFAULT 'ASSIGNED',
    completion_date       DATE,
    percent_complete      INT         NOT NULL DEFAULT 0,
    extension_count       INT         NOT NULL DEFAULT 0,
    deadline_version      INT         NOT NULL DEFAULT 1,
    version               BIGINT      NOT NULL DEFAULT 1,
    created_by            TEXT        NOT NULL,
    created_agency        TEXT,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_by            TEXT        NOT NULL,
    updated_agency        TEXT,
    updated_at            TIMESTAMPTZ NOT NULL
);
CREATE INDEX tasks_lead ON tasks USING GIN (lead_agencies);
CREATE INDEX tasks_coordinating ON tasks USING GIN (coordinating_agencies);
CREATE INDEX tasks_due ON tasks (due_date, id);
CREATE INDEX tasks_directive ON tasks (directive_id);

-- Every transition: who, when, why.
CREATE TABLE task_history (
    id          BIGSERIAL   PRIMARY KEY,
    task_id     BIGINT      NOT NULL REFERENCES tasks (id),
    action      TEXT        NOT NULL,
    from_stage  TEXT,
    to_stage    TEXT        NOT NULL,
    due_date    DATE,
    reason      TEXT        NOT NULL DEFAULT '',
    actor       TEXT        NOT NULL,
    agency      TEXT,
    at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX task_history_task ON task_history (task_id, id);
