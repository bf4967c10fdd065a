-- Version 2 of the clinical rules: the new facts about patients, courses and reports, and the
-- leading causes of each triage. Stored version 1 rows take the defaults (a version 1 report did
-- not ask these questions: an unanswered "is this your usual pain?" is read as new pain).
--
-- DuckDB cannot add a column to a table that other tables reference, so the referenced tables
-- (patients, regimens, administrations, reports) and those referencing them (events, open_reports)
-- are rebuilt: every row is copied unchanged, ids and event numbers included, inside this one
-- transaction; the events keep their append-only triggers.

CREATE TABLE m4_patients AS SELECT * FROM patients;
CREATE TABLE m4_regimens AS SELECT * FROM regimens;
CREATE TABLE m4_administrations AS SELECT * FROM administrations;
CREATE TABLE m4_reports AS SELECT * FROM reports;
CREATE TABLE m4_events AS SELECT * FROM events;
CREATE TABLE m4_open_reports AS SELECT * FROM open_reports;

DROP TABLE open_reports;
DROP TABLE events;
DROP TABLE administrations;
DROP TABLE regimens;
DROP TABLE reports;
DROP TABLE patients;

CREATE TABLE patients (
    patient_id         VARCHAR PRIMARY KEY,
    mrn                VARCHAR NOT NULL UNIQUE,
    name               VARCHAR NOT NULL,
    date_of_birth      DATE CHECK (date_of_birth >= DATE '1900-01-01'),
    sex                VARCHAR CHECK (sex IN ('female', 'male', 'other')),
    cancer_type        VARCHAR NOT NULL CHECK (length(trim(cancer_type)) > 0),
    bone_metastases    BOOLEAN NOT NULL DEFAULT FALSE,
    osteoporosis       BOOLEAN NOT NULL DEFAULT FALSE,
    long_term_steroids BOOLEAN NOT NULL DEFAULT FALSE,
    panel_id           VARCHAR NOT NULL REFERENCES panels (panel_id),
    low_platelets      BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE regimens (
    regimen_id     VARCHAR PRIMARY KEY,
    patient_id     VARCHAR NOT NULL REFERENCES patients (patient_id),
    name           VARCHAR NOT NULL,
    intent         VARCHAR CHECK (intent IN ('curative', 'adjuvant', 'neoadjuvant', 'palliative', 'maintenance')),
    cycle_days     INTEGER CHECK (cycle_days > 0),
    planned_cycles INTEGER CHECK (planned_cycles > 0),
    start_date     DATE NOT NULL,
    end_date       DATE,
    CHECK (end_date IS NULL OR end_date >= start_date)
);

-- One row per dose, or per course of a drug taken continuously: a course runs from given_at until
-- stopped_at, or until the report while stopped_at is null. A dose has no stopped_at.
CREATE TABLE administrations (
    administration_id BIGINT PRIMARY KEY,
    patient_id        VARCHAR NOT NULL REFERENCES patients (patient_id),
    regimen_id        VARCHAR REFERENCES regimens (regimen_id),
    drug              VARCHAR NOT NULL CHECK (length(trim(drug)) > 0),
    given_at          TIMESTAMP NOT NULL,
    cycle             INTEGER CHECK (cycle > 0),
    cycle_day         INTEGER CHECK (cycle_day > 0),
    stopped_at        TIMESTAMP,
    CHECK (stopped_at IS NULL OR stopped_at >= given_at)
);

CREATE TABLE reports (
    report_id                 VARCHAR PRIMARY KEY,
    patient_id                VARCHAR NOT NULL REFERENCES patients (patient_id),
    reported_at               TIMESTAMP NOT NULL,
    received_at               TIMESTAMP NOT NULL,
    source                    VARCHAR NOT NULL CHECK (source IN ('epro', 'phone')),
    entered_by                VARCHAR,
    pain_score                INTEGER NOT NULL CHECK (pain_score BETWEEN 0 AND 10),
    onset                     VARCHAR CHECK (onset IN ('sudden', 'gradual')),
    trend                     VARCHAR CHECK (trend IN ('improving', 'stable', 'worsening')),
    location                  VARCHAR CHECK (location IN ('cervical', 'thoracic', 'lumbar', 'sacral')),
    duration_days             INTEGER CHECK (duration_days BETWEEN 0 AND 36500),
    worse_at_night            BOOLEAN NOT NULL DEFAULT FALSE,
    worse_on_straining        BOOLEAN NOT NULL DEFAULT FALSE,
    worse_on_movement         BOOLEAN NOT NULL DEFAULT FALSE,
    localised_tenderness      BOOLEAN NOT NULL DEFAULT FALSE,
    after_minor_strain        BOOLEAN NOT NULL DEFAULT FALSE,
    uncontrolled_by_analgesia BOOLEAN NOT NULL DEFAULT FALSE,
    leg_weakness              BOOLEAN NOT NULL DEFAULT FALSE,
    difficulty_walking        BOOLEAN NOT NULL DEFAULT FALSE,
    leg_numbness              BOOLEAN NOT NULL DEFAULT FALSE,
    bladder_or_bowel_change   BOOLEAN NOT NULL DEFAULT FALSE,
    radiating_pain            BOOLEAN NOT NULL DEFAULT FALSE,
    hand_foot_tingling        BOOLEAN NOT NULL DEFAULT FALSE,
    temperature_c             DOUBLE CHECK (temperature_c BETWEEN 30 AND 45),
    rigors                    BOOLEAN NOT NULL DEFAULT FALSE,
    feels_unwell              BOOLEAN NOT NULL DEFAULT FALSE,
    note                      VARCHAR CHECK (length(note) <= 2000),
    pain_pattern              VARCHAR CHECK (pain_pattern IN ('new', 'changed', 'usual')),
    saddle_numbness           BOOLEAN NOT NULL DEFAULT FALSE,
    confusion_or_drowsiness   BOOLEAN NOT NULL DEFAULT FALSE,
    thirst_or_polyuria        BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE events (
    event_id      BIGINT PRIMARY KEY DEFAULT nextval('events_seq'),
    report_id     VARCHAR NOT NULL REFERENCES reports (report_id),
    acted_at      TIMESTAMP NOT NULL,
    actor         VARCHAR NOT NULL CHECK (length(trim(actor)) > 0),
    actor_name    VARCHAR,
    role          VARCHAR NOT NULL CHECK (role IN ('nurse', 'physician', 'lead', 'admin', 'system')),
    action        VARCHAR NOT NULL CHECK (action IN ('acknowledge', 'call_back', 'escalate', 'resolve',
                                                     'override', 'note', 'retriaged')),
    tier_before   VARCHAR CHECK (tier_before IN ('emergency', 'urgent', 'soon', 'routine')),
    tier_after    VARCHAR CHECK (tier_after IN ('emergency', 'urgent', 'soon', 'routine')),
    rules_version VARCHAR,
    note          VARCHAR CHECK (length(note) <= 2000),
    reached       BOOLEAN,
    escalated_to  VARCHAR CHECK (escalated_to IN ('acute_oncology', 'mscc_coordinator', 'physician',
                                                  'emergency_services')),
    outcome       VARCHAR CHECK (outcome IN ('self_care_advice', 'analgesia_adjusted', 'clinic_review_booked',
                                             'imaging_requested', 'admitted', 'referred_to_ed',
                                             'referred_to_mscc', 'no_further_action', 'other')),
    CHECK (action <> 'override' OR (tier_after IS NOT NULL AND length(trim(note)) > 0)),
    CHECK (action <> 'escalate' OR escalated_to IS NOT NULL),
    CHECK (action <> 'resolve' OR outcome IS NOT NULL),
    CHECK (action <> 'call_back' OR reached IS NOT NULL)
);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events FOR EACH STATEMENT
    INSERT INTO append_only_guard SELECT error('events are append-only: an UPDATE was refused');
CREATE TRIGGER events_no_delete BEFORE DELETE ON events FOR EACH STATEMENT
    INSERT INTO append_only_guard SELECT error('events are append-only: a DELETE was refused');

CREATE TABLE open_reports (
    report_id   VARCHAR PRIMARY KEY REFERENCES reports (report_id),
    patient_id  VARCHAR NOT NULL,
    panel_id    VARCHAR NOT NULL,
    reported_at TIMESTAMP NOT NULL,
    actions     INTEGER NOT NULL DEFAULT 0
);

INSERT INTO patients BY NAME SELECT * FROM m4_patients;
INSERT INTO regimens BY NAME SELECT * FROM m4_regimens;
INSERT INTO administrations BY NAME SELECT * FROM m4_administrations;
INSERT INTO reports BY NAME SELECT * FROM m4_reports;
INSERT INTO events BY NAME SELECT * FROM m4_events;
INSERT INTO open_reports BY NAME SELECT * FROM m4_open_reports;

DROP TABLE m4_open_reports;
DROP TABLE m4_events;
DROP TABLE m4_reports;
DROP TABLE m4_administrations;
DROP TABLE m4_regimens;
DROP TABLE m4_patients;

ALTER TABLE triage_results ADD COLUMN leading_causes VARCHAR[] NOT NULL DEFAULT [];
ALTER TABLE guidance_sets ADD COLUMN leading_causes VARCHAR[] NOT NULL DEFAULT [];
