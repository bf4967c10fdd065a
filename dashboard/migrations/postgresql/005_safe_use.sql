-- PostgreSQL. Safe under real use: a nurse can take a report and release it; a red-flag question
-- that could not be asked is recorded as such; the patient's phone number is at hand; one view
-- gives every report's current tier. The events' action list gains 'take' and 'release', and each
-- event keeps the id of the form submission it came from (PostgreSQL changes the CHECK in place).

ALTER TABLE events DROP CONSTRAINT events_action_check;
ALTER TABLE events ADD CONSTRAINT events_action_check
    CHECK (action IN ('acknowledge', 'call_back', 'escalate', 'resolve', 'override', 'note', 'retriaged',
                      'take', 'release'));
-- The form submission an event came from: a repeated click sends the same id and is not recorded twice.
ALTER TABLE events ADD COLUMN request_id VARCHAR CHECK (length(request_id) <= 64);

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
LEFT JOIN (SELECT DISTINCT ON (report_id) report_id, tier_after
           FROM events WHERE action = 'override' ORDER BY report_id, event_id DESC) o
  ON o.report_id = t.report_id;
