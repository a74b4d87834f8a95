-- The directive a task belongs to ("directives/{id}"), for subscription filters.
ALTER TABLE task_deadlines ADD COLUMN directive TEXT NOT NULL DEFAULT '';
ALTER TABLE notifications ADD COLUMN directive TEXT NOT NULL DEFAULT '';

-- Saved subscriptions: a subscriber, a filter and a channel.
CREATE TABLE subscriptions (
    id                     BIGSERIAL   PRIMARY KEY,
    -- The subscribing agency's code.
    subscriber             TEXT        NOT NULL,
    -- The subscriber's scope when it was created: every agency (reading
    -- roles) or only its own.
    scope_all              BOOLEAN     NOT NULL,
    -- Filter.
    agencies               TEXT[]      NOT NULL DEFAULT '{}',
    kinds                  TEXT[]      NOT NULL DEFAULT '{}',
    key_tasks_only         BOOLEAN     NOT NULL DEFAULT false,
    directive              TEXT        NOT NULL DEFAULT '',
    -- 'STREAM', 'WEBHOOK' or 'EMAIL'.
    channel                TEXT        NOT NULL,
    webhook_url            TEXT,
    secret                 TEXT,
    previous_secret        TEXT,
    previous_valid_until   TIMESTAMPTZ,
    email_addresses        TEXT[]      NOT NULL DEFAULT '{}',
    -- Endpoint health.
    disabled               BOOLEAN     NOT NULL DEFAULT false,
    disabled_reason        TEXT        NOT NULL DEFAULT '',
    failing_since          TIMESTAMPTZ,
    consecutive_dead_letters INT       NOT NULL DEFAULT 0,
    created_by             TEXT        NOT NULL,
    created_agency         TEXT,
    created_at             TIMESTAMPTZ NOT NULL,
    deleted                BOOLEAN     NOT NULL DEFAULT false
);
CREATE INDEX subscriptions_subscriber ON subscriptions (subscriber, id) WHERE NOT deleted;
CREATE INDEX subscriptions_pushing ON subscriptions (channel) WHERE NOT deleted AND NOT disabled AND channel <> 'STREAM';

-- One notification's delivery to one webhook or e-mail subscription.
CREATE TABLE deliveries (
    id               BIGSERIAL   PRIMARY KEY,
    subscription_id  BIGINT      NOT NULL REFERENCES subscriptions (id),
    notification_id  UUID        NOT NULL,
    -- 'PENDING', 'DELIVERED' or 'DEAD_LETTER'.
    state            TEXT        NOT NULL DEFAULT 'PENDING',
    attempts         INT         NOT NULL DEFAULT 0,
    last_result      TEXT        NOT NULL DEFAULT '',
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    lease_token      BIGINT,
    lease_until      TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ NOT NULL,
    UNIQUE (subscription_id, notification_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'PENDING';
CREATE INDEX deliveries_of ON deliveries (subscription_id, id);
CREATE SEQUENCE delivery_fencing;

-- Every attempt, as it happened.
CREATE TABLE delivery_attempts (
    id            BIGSERIAL   PRIMARY KEY,
    delivery_id   BIGINT      NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt       INT         NOT NULL,
    attempted_at  TIMESTAMPTZ NOT NULL,
    status_code   INT,
    error         TEXT        NOT NULL DEFAULT '',
    duration_ms   INT         NOT NULL
);
CREATE INDEX delivery_attempts_of ON delivery_attempts (delivery_id, id);

-- Weekly digests: one per agency and week, whatever runs twice.
CREATE TABLE digest_jobs (
    id           BIGSERIAL   PRIMARY KEY,
    agency       TEXT        NOT NULL,
    week         DATE        NOT NULL,
    fire_at      TIMESTAMPTZ NOT NULL,
    state        TEXT        NOT NULL DEFAULT 'PENDING',
    lease_token  BIGINT,
    lease_until  TIMESTAMPTZ,
    attempts     INT         NOT NULL DEFAULT 0,
    done_at      TIMESTAMPTZ,
    UNIQUE (agency, week)
);
CREATE INDEX digest_jobs_due ON digest_jobs (fire_at) WHERE state = 'PENDING';
