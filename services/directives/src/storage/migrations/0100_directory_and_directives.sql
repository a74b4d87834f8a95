-- The agency directory.
CREATE TABLE agencies (
    code            TEXT        PRIMARY KEY,
    display_name    TEXT        NOT NULL,
    short_name      TEXT        NOT NULL DEFAULT '',
    aliases         TEXT[]      NOT NULL DEFAULT '{}',
    kind            TEXT        NOT NULL,
    parent          TEXT        REFERENCES agencies (code),
    effective_from  DATE,
    effective_until DATE,
    state           TEXT        NOT NULL DEFAULT 'ACTIVE',
    successors      TEXT[]      NOT NULL DEFAULT '{}',
    -- Every name folded (lowercase, no diacritics) for search.
    search_text     TEXT        NOT NULL,
    version         BIGINT      NOT NULL DEFAULT 1,
    created_by      TEXT        NOT NULL,
    created_agency  TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_by      TEXT        NOT NULL,
    updated_agency  TEXT,
    updated_at      TIMESTAMPTZ NOT NULL
);

-- Names an agency carried before a rename, with the dates they applied.
CREATE TABLE agency_names (
    code         TEXT NOT NULL REFERENCES agencies (code),
    display_name TEXT NOT NULL,
    short_name   TEXT NOT NULL DEFAULT '',
    valid_from   DATE,
    valid_until  DATE NOT NULL,
    search_text  TEXT NOT NULL,
    PRIMARY KEY (code, valid_until)
);

-- Directive documents.
CREATE TABLE directives (
    id                BIGSERIAL   PRIMARY KEY,
    kind              TEXT        NOT NULL,
    number            TEXT        NOT NULL DEFAULT '',
    issue_year        INT,
    issuer            TEXT        NOT NULL REFERENCES agencies (code),
    signer_name       TEXT        NOT NULL DEFAULT '',
    signer_title      TEXT        NOT NULL DEFAULT '',
    signer_capacities TEXT[]      NOT NULL DEFAULT '{}',
    place             TEXT        NOT NULL DEFAULT '',
    issue_date        DATE,
    subject           TEXT        NOT NULL,
    body              TEXT        NOT NULL DEFAULT '',
    recipients        TEXT[]      NOT NULL DEFAULT '{}',
    meeting_date      DATE,
    meeting_chair     TEXT,
    state             TEXT        NOT NULL DEFAULT 'DRAFT',
    version           BIGINT      NOT NULL DEFAULT 1,
    created_by        TEXT        NOT NULL,
    created_agency    TEXT,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_by        TEXT        NOT NULL,
    updated_agency    TEXT,
    updated_at        TIMESTAMPTZ NOT NULL,
    issued_by         TEXT,
    issued_agency     TEXT,
    issued_at         TIMESTAMPTZ,
    revoked_by        TEXT,
    revoked_agency    TEXT,
    revoked_at        TIMESTAMPTZ,
    revoke_reason     TEXT
);
-- A number and symbol is unique per issuer and year.
CREATE UNIQUE INDEX directives_number_unique ON directives (issuer, issue_year, number) WHERE number <> '';
CREATE INDEX directives_listing ON directives (state, id DESC);

CREATE TABLE directive_items (
    id                    BIGSERIAL PRIMARY KEY,
    directive_id          BIGINT    NOT NULL REFERENCES directives (id) ON DELETE CASCADE,
    position              INT       NOT NULL,
    reference             TEXT      NOT NULL DEFAULT '',
    text                  TEXT      NOT NULL,
    lead_agencies         TEXT[]    NOT NULL,
    coordinating_agencies TEXT[]    NOT NULL DEFAULT '{}',
    due_date              DATE,
    recurrence            TEXT,
    deadline_text         TEXT      NOT NULL DEFAULT '',
    key_task              BOOLEAN   NOT NULL DEFAULT false,
    state                 TEXT      NOT NULL DEFAULT 'ACTIVE',
    UNIQUE (directive_id, position)
);
CREATE INDEX directive_items_lead ON directive_items USING GIN (lead_agencies);
CREATE INDEX directive_items_coordinating ON directive_items USING GIN (coordinating_agencies);

CREATE TABLE directive_links (
    directive_id BIGINT NOT NULL REFERENCES directives (id) ON DELETE CASCADE,
    kind         TEXT   NOT NULL,
    target_id    BIGINT NOT NULL REFERENCES directives (id),
    PRIMARY KEY (directive_id, kind, target_id)
);
