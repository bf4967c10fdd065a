-- PostgreSQL. The core tables: panels and their staff, patients, regimens, doses, back-pain reports, triage
-- results and the append-only log of the care team's actions.

CREATE TABLE meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

CREATE TABLE panels (
    panel_id VARCHAR PRIMARY KEY,
    name     VARCHAR NOT NULL UNIQUE,
    service  VARCHAR NOT NULL
);

CREATE TABLE staff (
    staff_id VARCHAR PRIMARY KEY,
    name     VARCHAR NOT NULL,
    email    VARCHAR UNIQUE,
    role     VARCHAR NOT NULL CHECK (role IN ('nurse', 'physician', 'lead', 'admin')),
    panel_id VARCHAR REFERENCES panels (panel_id)
);

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
    panel_id           VARCHAR NOT NULL REFERENCES panels (panel_id)
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

-- One row per dose, or per start of an oral daily drug.
CREATE TABLE administrations (
    administration_id BIGINT PRIMARY KEY,
    patient_id        VARCHAR NOT NULL REFERENCES patients (patient_id),
    regimen_id        VARCHAR REFERENCES regimens (regimen_id),
    drug              VARCHAR NOT NULL CHECK (length(trim(drug)) > 0),
    given_at          TIMESTAMP NOT NULL,
    cycle             INTEGER CHECK (cycle > 0),
    cycle_day         INTEGER CHECK (cycle_day > 0)
);

-- The back-pain reports, with the fields of the triage contract. Reports entered in the app are
-- numbered from reports_seq (advanced past the loaded reports when a database is seeded).
CREATE SEQUENCE reports_seq START 1;
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
    temperature_c             DOUBLE PRECISION CHECK (temperature_c BETWEEN 30 AND 45),
    rigors                    BOOLEAN NOT NULL DEFAULT FALSE,
    feels_unwell              BOOLEAN NOT NULL DEFAULT FALSE,
    note                      VARCHAR CHECK (length(note) <= 2000)
);

-- Imaging, referral and advice for a (rules version, tier, causes, unrecognised drugs): a few
-- hundred distinct sets serve a million reports. Rows are added, never changed.
CREATE TABLE guidance_sets (
    guidance_key       VARCHAR PRIMARY KEY,
    rules_version      VARCHAR NOT NULL,
    tier               VARCHAR NOT NULL,
    causes             VARCHAR[] NOT NULL,
    unrecognised_drugs VARCHAR[] NOT NULL,
    imaging            VARCHAR[] NOT NULL,
    referral           VARCHAR[] NOT NULL,
    advice             VARCHAR[] NOT NULL
);

-- The current triage of each report (replaced as a whole by re-triage under new rules).
CREATE TABLE triage_results (
    report_id              VARCHAR PRIMARY KEY,
    tier                   VARCHAR NOT NULL CHECK (tier IN ('emergency', 'urgent', 'soon', 'routine')),
    rule_ids               VARCHAR[] NOT NULL,
    causes                 VARCHAR[] NOT NULL,
    links                  JSONB NOT NULL,
    evidence               JSONB NOT NULL,
    unrecognised_drugs     VARCHAR[] NOT NULL,
    guidance_key           VARCHAR NOT NULL,
    respond_within_minutes INTEGER NOT NULL CHECK (respond_within_minutes > 0),
    respond_by             TIMESTAMP NOT NULL,
    rules_version          VARCHAR NOT NULL,
    triaged_at             TIMESTAMP NOT NULL
);

-- What the care team did, appended and never changed.
CREATE SEQUENCE events_seq START 1;
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

-- The append-only guard: a trigger that raises before any UPDATE or DELETE of a row. (The table
-- the DuckDB triggers write to is kept, so that both stores have the same tables.)
CREATE TABLE append_only_guard (message VARCHAR);
CREATE FUNCTION backline_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%: an % was refused', TG_ARGV[0], TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION backline_append_only('events are append-only');

-- The reports not yet resolved: an index the queue reads instead of the whole history. It is kept
-- in the same transaction as the report (insert) and its resolve event (delete), and can be
-- rebuilt from the events at any time.
CREATE TABLE open_reports (
    report_id   VARCHAR PRIMARY KEY REFERENCES reports (report_id),
    patient_id  VARCHAR NOT NULL,
    panel_id    VARCHAR NOT NULL,
    reported_at TIMESTAMP NOT NULL
);
