-- PostgreSQL (as the DuckDB migration, with PostgreSQL's append-only triggers).
-- FHIR import: every import (what file, when, by whom, how many resources of each type, what was
-- refused and why), and every version of every resource imported, with the Backline row it became.
-- Both are append-only. A resource imported again with the same version (meta.versionId, or the
-- digest of its content when it has none) changes nothing; a newer version updates its row and is
-- a row of its own here, so the history says so.

CREATE SEQUENCE fhir_imports_seq START 1;

CREATE TABLE fhir_imports (
    import_id   BIGINT PRIMARY KEY DEFAULT nextval('fhir_imports_seq'),
    imported_at TIMESTAMPTZ NOT NULL,
    source      VARCHAR NOT NULL CHECK (length(source) BETWEEN 1 AND 1000),
    actor       VARCHAR CHECK (length(actor) <= 200),
    result      VARCHAR NOT NULL CHECK (result IN ('imported', 'refused')),
    -- JSON: {resource type: {"read": n, "new": n, "updated": n, "unchanged": n, "not_used": n}}
    counts      VARCHAR NOT NULL,
    -- JSON: [{"resource": "Type/id", "path": "field.path", "problem": "..."}], empty when imported
    problems    VARCHAR NOT NULL
);

CREATE TABLE fhir_resources (
    resource_type VARCHAR NOT NULL CHECK (length(resource_type) BETWEEN 1 AND 64),
    fhir_id       VARCHAR NOT NULL CHECK (length(fhir_id) BETWEEN 1 AND 64),
    version       VARCHAR NOT NULL CHECK (length(version) BETWEEN 1 AND 64),
    import_id     BIGINT NOT NULL,
    change        VARCHAR NOT NULL CHECK (change IN ('new', 'updated')),
    -- What it became in Backline: a patient, a dose or course, a report (or nothing: a condition
    -- read into its patient, an observation read into a report).
    backline_table VARCHAR CHECK (backline_table IN ('patients', 'administrations', 'reports')),
    backline_key   VARCHAR CHECK (length(backline_key) <= 64),
    PRIMARY KEY (resource_type, fhir_id, version)
);
CREATE INDEX fhir_resources_key ON fhir_resources (backline_table, backline_key);

CREATE TRIGGER fhir_imports_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON fhir_imports
    FOR EACH STATEMENT EXECUTE FUNCTION backline_append_only('the import log is append-only');
CREATE TRIGGER fhir_resources_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON fhir_resources
    FOR EACH STATEMENT EXECUTE FUNCTION backline_append_only('the FHIR resource history is append-only');
