-- Every time is kept as an instant (TIMESTAMPTZ, UTC inside) and shown in the service's time zone.
-- Until now times were the service's local wall-clock times: the hour the clocks go back happened
-- twice and could not be told apart. Each stored time is read as the instant it named, in the
-- connection's time zone (the service's: dashboard.db sets it on every connection), a time in the
-- repeated hour as its first occurrence (as the triage contract reads one).
--
-- DuckDB cannot change a column's type in a table that others reference, so reports and the tables
-- that reference it (events, open_reports, report_unasked) are rebuilt, and so are the administrations (a CHECK
-- on their times): every row is copied with
-- its ids and event numbers, inside this one transaction; the events keep their append-only
-- triggers. The triage results change their columns in place.

CREATE TEMP MACRO m6_instant(t) AS
    CASE WHEN t IS NULL THEN NULL
         WHEN (t::TIMESTAMPTZ - INTERVAL 1 HOUR)::TIMESTAMP = t THEN t::TIMESTAMPTZ - INTERVAL 1 HOUR
         ELSE t::TIMESTAMPTZ END;

DROP VIEW current_tiers;
CREATE TABLE m6_reports AS SELECT * FROM reports;
CREATE TABLE m6_events AS SELECT * FROM events;
CREATE TABLE m6_open_reports AS SELECT * FROM open_reports;
CREATE TABLE m6_report_unasked AS SELECT * FROM report_unasked;

DROP TABLE report_unasked;
DROP TABLE open_reports;
DROP TABLE events;
DROP TABLE reports;

CREATE TABLE reports (
    report_id                 VARCHAR PRIMARY KEY,
    patient_id                VARCHAR NOT NULL REFERENCES patients (patient_id),
    reported_at               TIMESTAMPTZ NOT NULL,
    received_at               TIMESTAMPTZ NOT NULL,
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
    acted_at      TIMESTAMPTZ NOT NULL,
    actor         VARCHAR NOT NULL CHECK (length(trim(actor)) > 0),
    actor_name    VARCHAR,
    role          VARCHAR NOT NULL CHECK (role IN ('nurse', 'physician', 'lead', 'admin', 'system')),
    action        VARCHAR NOT NULL CHECK (action IN ('acknowledge', 'call_back', 'escalate', 'resolve',
                                                     'override', 'note', 'retriaged', 'take', 'release')),
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
    -- The form submission an event came from: a repeated click sends the same id and is not recorded twice.
    request_id    VARCHAR CHECK (length(request_id) <= 64),
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
    reported_at TIMESTAMPTZ NOT NULL,
    actions     INTEGER NOT NULL DEFAULT 0
);


CREATE TABLE report_unasked (
    report_id VARCHAR NOT NULL REFERENCES reports (report_id),
    field     VARCHAR NOT NULL CHECK (length(field) BETWEEN 1 AND 64),
    PRIMARY KEY (report_id, field)
);

INSERT INTO reports BY NAME SELECT * REPLACE (m6_instant(reported_at) AS reported_at,
                                              m6_instant(received_at) AS received_at) FROM m6_reports;
INSERT INTO events BY NAME SELECT * REPLACE (m6_instant(acted_at) AS acted_at) FROM m6_events;
INSERT INTO open_reports BY NAME SELECT * REPLACE (m6_instant(reported_at) AS reported_at) FROM m6_open_reports;
INSERT INTO report_unasked BY NAME SELECT * FROM m6_report_unasked;

DROP TABLE m6_report_unasked;
DROP TABLE m6_open_reports;
DROP TABLE m6_events;
DROP TABLE m6_reports;

CREATE TABLE m6_administrations AS SELECT * FROM administrations;
DROP TABLE administrations;
-- One row per dose, or per course of a drug taken continuously: a course runs from given_at until
-- stopped_at, or until the report while stopped_at is null. A dose has no stopped_at.
CREATE TABLE administrations (
    administration_id BIGINT PRIMARY KEY,
    patient_id        VARCHAR NOT NULL REFERENCES patients (patient_id),
    regimen_id        VARCHAR REFERENCES regimens (regimen_id),
    drug              VARCHAR NOT NULL CHECK (length(trim(drug)) > 0),
    given_at          TIMESTAMPTZ NOT NULL,
    cycle             INTEGER CHECK (cycle > 0),
    cycle_day         INTEGER CHECK (cycle_day > 0),
    stopped_at        TIMESTAMPTZ,
    CHECK (stopped_at IS NULL OR stopped_at >= given_at)
);

INSERT INTO administrations BY NAME SELECT * REPLACE (m6_instant(given_at) AS given_at,
                                                      m6_instant(stopped_at) AS stopped_at) FROM m6_administrations;
DROP TABLE m6_administrations;
ALTER TABLE triage_results ALTER respond_by SET DATA TYPE TIMESTAMPTZ USING m6_instant(respond_by);
ALTER TABLE triage_results ALTER triaged_at SET DATA TYPE TIMESTAMPTZ USING m6_instant(triaged_at);

CREATE VIEW current_tiers AS
SELECT t.report_id, t.tier AS triage_tier, o.tier_after AS override_tier, coalesce(o.tier_after, t.tier) AS tier,
       t.rules_version
FROM triage_results t
LEFT JOIN (SELECT report_id, arg_max(tier_after, event_id) AS tier_after
           FROM events WHERE action = 'override' GROUP BY report_id) o
  ON o.report_id = t.report_id;

DROP MACRO m6_instant;
