-- PostgreSQL. Every time is kept as an instant (TIMESTAMPTZ, UTC inside) and shown in the
-- service's time zone. Until now times were the service's local wall-clock times: the hour the
-- clocks go back happened twice and could not be told apart. Each stored time is read as the
-- instant it named, in the connection's time zone (the service's: the store sets it on every
-- connection), a time in the repeated hour as its first occurrence (as the triage contract reads
-- one). PostgreSQL changes the types in place (DuckDB rebuilds the tables).

CREATE FUNCTION pg_temp.m6_instant(t TIMESTAMP) RETURNS TIMESTAMPTZ LANGUAGE sql AS $$
    SELECT CASE WHEN t IS NULL THEN NULL
                WHEN (t::TIMESTAMPTZ - INTERVAL '1 hour')::TIMESTAMP = t THEN t::TIMESTAMPTZ - INTERVAL '1 hour'
                ELSE t::TIMESTAMPTZ END
$$;

DROP VIEW current_tiers;
ALTER TABLE events DISABLE TRIGGER events_append_only;  -- a change of type, not of any event
ALTER TABLE reports ALTER reported_at TYPE TIMESTAMPTZ USING pg_temp.m6_instant(reported_at),
                    ALTER received_at TYPE TIMESTAMPTZ USING pg_temp.m6_instant(received_at);
ALTER TABLE events ALTER acted_at TYPE TIMESTAMPTZ USING pg_temp.m6_instant(acted_at);
ALTER TABLE events ENABLE TRIGGER events_append_only;
ALTER TABLE open_reports ALTER reported_at TYPE TIMESTAMPTZ USING pg_temp.m6_instant(reported_at);
ALTER TABLE administrations ALTER given_at TYPE TIMESTAMPTZ USING pg_temp.m6_instant(given_at),
                            ALTER stopped_at TYPE TIMESTAMPTZ USING pg_temp.m6_instant(stopped_at);
ALTER TABLE triage_results ALTER respond_by TYPE TIMESTAMPTZ USING pg_temp.m6_instant(respond_by),
                           ALTER triaged_at TYPE TIMESTAMPTZ USING pg_temp.m6_instant(triaged_at);

CREATE VIEW current_tiers AS
SELECT t.report_id, t.tier AS triage_tier, o.tier_after AS override_tier, coalesce(o.tier_after, t.tier) AS tier,
       t.rules_version
FROM triage_results t
LEFT JOIN (SELECT DISTINCT ON (report_id) report_id, tier_after
           FROM events WHERE action = 'override' ORDER BY report_id, event_id DESC) o
  ON o.report_id = t.report_id;
