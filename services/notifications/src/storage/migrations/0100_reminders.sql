-- What notifications know of each task: its deadline and who leads it.
CREATE TABLE task_deadlines (
    task_id               BIGINT      PRIMARY KEY,
    title                 TEXT        NOT NULL,
    directive_number      TEXT        NOT NULL DEFAULT '',
    reference             TEXT        NOT NULL DEFAULT '',
    lead_agencies         TEXT[]      NOT NULL,
    coordinating_agencies TEXT[]      NOT NULL DEFAULT '{}',
    assigner              TEXT        NOT NULL DEFAULT '',
    due_date              DATE,
    deadline_version      INT         NOT NULL,
    key_task              BOOLEAN     NOT NULL DEFAULT false,
    open                  BOOLEAN     NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Reminder jobs: one per task, reminder and deadline version, whatever runs twice.
CREATE TABLE reminder_jobs (
    id               BIGSERIAL   PRIMARY KEY,
    task_id          BIGINT      NOT NULL,
    key              TEXT        NOT NULL,
    kind             TEXT        NOT NULL,
    deadline_version INT         NOT NULL,
    fire_at          TIMESTAMPTZ NOT NULL,
    state            TEXT        NOT NULL DEFAULT 'PENDING',
    -- Lease of the replica handling it; the token fences out a replica
    -- whose lease expired and was rescued by another.
    lease_token      BIGINT,
    lease_until      TIMESTAMPTZ,
    attempts         INT         NOT NULL DEFAULT 0,
    done_at          TIMESTAMPTZ,
    UNIQUE (task_id, key, deadline_version)
);
CREATE INDEX reminder_jobs_due ON reminder_jobs (fire_at) WHERE state = 'PENDING';
CREATE SEQUENCE reminder_fencing;

-- Notifications, a gap-free log per recipient like the outbox.
CREATE TABLE notifications (
    id               BIGSERIAL   NOT NULL,
    tx_id            xid8        NOT NULL DEFAULT pg_current_xact_id(),
    notification_id  UUID        NOT NULL UNIQUE,
    -- What produced it (a reminder job or an event) and for whom: never twice.
    dedupe_key       TEXT        NOT NULL UNIQUE,
    kind             TEXT        NOT NULL,
    recipient        TEXT        NOT NULL,
    task_id          BIGINT,
    directive_number TEXT        NOT NULL DEFAULT '',
    lead_agency      TEXT        NOT NULL DEFAULT '',
    due_date         DATE,
    key_task         BOOLEAN     NOT NULL DEFAULT false,
    title            TEXT        NOT NULL,
    body             TEXT        NOT NULL,
    notified_at      TIMESTAMPTZ NOT NULL,
    read_at          TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tx_id, id)
);
CREATE INDEX notifications_recipient ON notifications (recipient, tx_id, id);
CREATE INDEX notifications_created_at ON notifications (created_at);
