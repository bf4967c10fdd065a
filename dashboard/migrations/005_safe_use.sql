-- Safe under real use: a nurse can take a report and release it; a red-flag question that could
-- not be asked is recorded as such; the patient's phone number is at hand; one view gives every
-- report's current tier.
--
-- The events' action list gains 'take' and 'release', and each event keeps the id of the form
-- submission it came from. DuckDB cannot change a CHECK constraint, so
-- the events table is rebuilt: every row is copied unchanged, event numbers included, inside this
-- one transaction, and the append-only triggers are recreated.

CREATE TABLE m5_events AS SELECT * FROM events;
DROP TABLE events;

CREATE TABLE events (
    event_id      BIGINT PRIMARY KEY DEFAULT nextval('events_seq'),
    report_id     VARCHAR NOT NULL REFERENCES reports (report_id),
    acted_at      TIMESTAMP NOT NULL,
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

INSERT INTO events BY NAME SELECT * FROM m5_events;
DROP TABLE m5_events;

-- The red-flag questions the nurse could not ask (the patient could not say, the call dropped).
-- Each counts as a yes for the triage (the report's flag is stored true) and is recorded here so
-- that every screen can say it was not asked.
CREATE TABLE report_unasked (
    report_id VARCHAR NOT NULL REFERENCES reports (report_id),
    field     VARCHAR NOT NULL CHECK (length(field) BETWEEN 1 AND 64),
    PRIMARY KEY (report_id, field)
);

-- How to reach the patient (the next step after most reports is a call).
CREATE TABLE patient_contacts (
    patient_id VARCHAR PRIMARY KEY REFERENCES patients (patient_id),
    phone      VARCHAR NOT NULL CHECK (length(trim(phone)) BETWEEN 3 AND 40)
);

-- Every report's current tier: the latest override if any, else the triage's.
CREATE VIEW current_tiers AS
SELECT t.report_id, t.tier AS triage_tier, o.tier_after AS override_tier, coalesce(o.tier_after, t.tier) AS tier,
       t.rules_version
FROM triage_results t
LEFT JOIN (SELECT report_id, arg_max(tier_after, event_id) AS tier_after
           FROM events WHERE action = 'override' GROUP BY report_id) o
  ON o.report_id = t.report_id;
