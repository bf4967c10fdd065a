-- PostgreSQL. Version 2 of the clinical rules: the new facts about patients, courses and reports,
-- and the leading causes of each triage. Stored version 1 rows take the defaults (a version 1
-- report did not ask these questions: an unanswered "is this your usual pain?" is read as new
-- pain). PostgreSQL adds the columns in place (DuckDB rebuilds the tables).

ALTER TABLE patients ADD COLUMN low_platelets BOOLEAN NOT NULL DEFAULT FALSE;

-- A course runs from given_at until stopped_at, or until the report while stopped_at is null. A
-- dose has no stopped_at.
ALTER TABLE administrations ADD COLUMN stopped_at TIMESTAMP;
ALTER TABLE administrations ADD CONSTRAINT administrations_stopped_check
    CHECK (stopped_at IS NULL OR stopped_at >= given_at);

ALTER TABLE reports ADD COLUMN pain_pattern VARCHAR CHECK (pain_pattern IN ('new', 'changed', 'usual'));
ALTER TABLE reports ADD COLUMN saddle_numbness BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE reports ADD COLUMN confusion_or_drowsiness BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE reports ADD COLUMN thirst_or_polyuria BOOLEAN NOT NULL DEFAULT FALSE;

ALTER TABLE triage_results ADD COLUMN leading_causes VARCHAR[] NOT NULL DEFAULT '{}';
ALTER TABLE guidance_sets ADD COLUMN leading_causes VARCHAR[] NOT NULL DEFAULT '{}';
