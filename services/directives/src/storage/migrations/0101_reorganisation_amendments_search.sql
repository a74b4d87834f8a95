-- Every name of an agency, folded with dondoc_docparse::fold::fold_name, for
-- exact resolution ("Sở LĐTB&XH" = "Sở Lao động – Thương binh và Xã hội").
-- Maintained by the application (the fold is Rust code); recomputed at start.
ALTER TABLE agencies ADD COLUMN folded_names TEXT[] NOT NULL DEFAULT '{}';
CREATE INDEX agencies_folded_names ON agencies USING GIN (folded_names);
ALTER TABLE agency_names ADD COLUMN folded_names TEXT[] NOT NULL DEFAULT '{}';
CREATE INDEX agency_names_folded_names ON agency_names USING GIN (folded_names);

-- The reorganisations an agency took part in, newest last.
CREATE TABLE agency_reorganizations (
    id             BIGSERIAL   PRIMARY KEY,
    kind           TEXT        NOT NULL,
    sources        TEXT[]      NOT NULL,
    successors     TEXT[]      NOT NULL,
    effective_date DATE        NOT NULL,
    reason         TEXT        NOT NULL DEFAULT '',
    created_by     TEXT        NOT NULL,
    created_agency TEXT,
    created_at     TIMESTAMPTZ NOT NULL
);

-- Full-text search over subject, items and body, folded (no diacritics) by
-- the application with fold_text and weighted A (subject), B (items), C (body).
ALTER TABLE directives ADD COLUMN search_vector TSVECTOR NOT NULL DEFAULT ''::tsvector;
CREATE INDEX directives_search ON directives USING GIN (search_vector);

-- Changes a directive makes to items of earlier ones, applied when it is issued.
CREATE TABLE directive_amendments (
    directive_id          BIGINT  NOT NULL REFERENCES directives (id) ON DELETE CASCADE,
    position              INT     NOT NULL,
    kind                  TEXT    NOT NULL CHECK (kind IN ('ADD', 'CHANGE', 'CANCEL')),
    target_id             BIGINT  NOT NULL REFERENCES directives (id),
    target_item_id        BIGINT  REFERENCES directive_items (id),
    mask                  TEXT[]  NOT NULL DEFAULT '{}',
    reference             TEXT    NOT NULL DEFAULT '',
    text                  TEXT    NOT NULL DEFAULT '',
    lead_agencies         TEXT[]  NOT NULL DEFAULT '{}',
    coordinating_agencies TEXT[]  NOT NULL DEFAULT '{}',
    due_date              DATE,
    recurrence            TEXT,
    deadline_text         TEXT    NOT NULL DEFAULT '',
    key_task              BOOLEAN NOT NULL DEFAULT false,
    reason                TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (directive_id, position)
);
CREATE INDEX directive_amendments_target ON directive_amendments (target_id);

-- The links of a directive keep the order they were given in.
ALTER TABLE directive_links ADD COLUMN position INT NOT NULL DEFAULT 0;
