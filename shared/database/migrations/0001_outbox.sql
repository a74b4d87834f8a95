-- Shared by every service, in the service's own schema (search_path).

-- Events written in the same transaction as the change they describe.
-- tx_id records the writing transaction so that readers can serve rows in
-- commit-safe order: only rows below the oldest running transaction are
-- served, ordered by (tx_id, id), which a late-committing BIGSERIAL alone
-- would not guarantee.
CREATE TABLE outbox (
    id          BIGSERIAL   NOT NULL,
    tx_id       xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id    UUID        NOT NULL,
    kind        TEXT        NOT NULL,
    aggregate   TEXT        NOT NULL,
    payload     BYTEA       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tx_id, id)
);
CREATE INDEX outbox_created_at ON outbox (created_at);

-- Up to where a stream was pruned: cursors at or below it get OUT_OF_RANGE.
CREATE TABLE stream_horizons (
    stream  TEXT   PRIMARY KEY,
    tx_id   xid8   NOT NULL,
    id      BIGINT NOT NULL
);

-- Where each consumer of another service's stream stands; updated in the
-- same transaction as the effects of the events it applied.
CREATE TABLE consumer_cursors (
    source     TEXT        PRIMARY KEY,
    cursor     TEXT        NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Answers to mutations that carried a request_id: a retry gets the first answer.
CREATE TABLE idempotency_keys (
    method     TEXT        NOT NULL,
    principal  TEXT        NOT NULL,
    request_id TEXT        NOT NULL,
    response   BYTEA       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (method, principal, request_id)
);
