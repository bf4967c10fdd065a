"""The version 2 upgrade of a version 1 database: migration 004 keeps every row and the audit trail
as it was, new fields take their defaults, and every stored report is re-triaged under version 2 with
a history entry for each open report whose tier moves."""

from __future__ import annotations

from datetime import datetime, timezone

import duckdb
import pytest

from dashboard import clock
from dashboard.db import Database, latest_version, migrations, run
from dashboard.retriage import preview_changes, upgrade

NOW = datetime(2026, 11, 20, 12, 0)


def _version_1_database(path) -> Database:
    """A database at schema version 3 (rules version 1), holding what version 1 stored."""
    db = Database(path)
    with db.connect() as con:
        run(con, "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
                 " applied_at TIMESTAMP NOT NULL)")
        for m in migrations()[:3]:
            run(con, m.sql)
            run(con, "INSERT INTO schema_migrations VALUES (?, ?, ?)", [m.version, m.name, NOW])
        run(con, "INSERT INTO panels VALUES ('BRE-A', 'Breast A', 'Breast oncology')")
        run(con, "INSERT INTO staff VALUES ('N0001', 'Helen Costa', 'n1@x.example', 'nurse', 'BRE-A')")
        run(con, "INSERT INTO patients VALUES ('P-1', 'MRN1000001', 'Ann Smith', DATE '1960-01-01', 'female',"
                 " 'breast', TRUE, FALSE, FALSE, 'BRE-A')")
        run(con, "INSERT INTO administrations VALUES (1, 'P-1', NULL, 'letrozole', TIMESTAMP '2024-01-10 09:00', NULL, NULL)")
        # known bone metastases, stable thoracic pain 5, worse at night. Version 1 made it an
        # emergency (E3: two of U1-U4); version 2 keeps it urgent (U1, U3: no fever).
        # mild pain, resolved: routine under both.
        for rid, at, pain, loc, night in (("R-1", "2026-11-20 09:00", 5, "thoracic", True),
                                          ("R-2", "2026-11-10 09:00", 2, "lumbar", False)):
            run(con, "INSERT INTO reports (report_id, patient_id, reported_at, received_at, source, pain_score,"
                     " location, worse_at_night) VALUES (?, 'P-1', ?, ?, 'epro', ?, ?, ?)", [rid, at, at, pain, loc, night])
        for rid, tier, ids in (("R-1", "emergency", ["E3", "U1", "U3", "S1", "S3"]), ("R-2", "routine", ["R1"])):
            run(con, "INSERT INTO triage_results (report_id, tier, rule_ids, causes, unrecognised_drugs, guidance_key,"
                     " respond_within_minutes, respond_by, rules_version, triaged_at) VALUES (?, ?, ?, [], [], 'k', 15,"
                     " TIMESTAMP '2026-11-20 09:15', 'v1rules', ?)", [rid, tier, ids, NOW])
        run(con, "INSERT INTO events (report_id, acted_at, actor, actor_name, role, action, tier_before, tier_after,"
                 " rules_version) VALUES ('R-1', TIMESTAMP '2026-11-20 09:05', 'N0001', 'Helen Costa', 'nurse',"
                 " 'acknowledge', 'emergency', 'emergency', 'v1rules')")
        run(con, "INSERT INTO events (report_id, acted_at, actor, actor_name, role, action, tier_before, tier_after,"
                 " rules_version, outcome) VALUES ('R-2', TIMESTAMP '2026-11-10 12:00', 'N0001', 'Helen Costa',"
                 " 'nurse', 'resolve', 'routine', 'routine', 'v1rules', 'self_care_advice')")
        run(con, "INSERT INTO open_reports (report_id, patient_id, panel_id, reported_at, actions)"
                 " VALUES ('R-1', 'P-1', 'BRE-A', TIMESTAMP '2026-11-20 09:00', 1)")
    return db


def _rows(db: Database, sql: str) -> list[tuple]:
    with db.connect() as con:
        return con.execute(sql).fetchall()


def _walls(rows: list[tuple]) -> list[tuple]:
    """Rows with each stored instant as the service's wall-clock time (what version 1 stored)."""
    return [tuple(clock.wall(v) if isinstance(v, datetime) else v for v in row) for row in rows]


def test_upgrade_keeps_every_row_and_retriages_with_history(tmp_path, rules):
    db = _version_1_database(tmp_path / "v1.duckdb")
    events_before = _rows(db, "SELECT * FROM events ORDER BY event_id")
    reports_before = _rows(db, "SELECT report_id, reported_at, pain_score, location FROM reports ORDER BY 1")

    applied, stats = upgrade(db, rules, now=NOW)

    assert applied == list(range(4, latest_version() + 1))
    assert stats is not None and stats.reports == 2 and stats.changed_open == 1
    # The audit trail is the same, event for event, with one entry added for the moved report.
    after = _rows(db, "SELECT * FROM events ORDER BY event_id")
    # Columns added later (migration 005's request_id) come last and are empty on the old rows.
    width = len(events_before[0])
    assert _walls([row[:width] for row in after[: len(events_before)]]) == events_before
    assert all(v is None for row in after[: len(events_before)] for v in row[width:])
    added = after[len(events_before):]
    assert len(added) == 1
    report_id, tier_before, tier_after, note = added[0][1], added[0][7], added[0][8], added[0][10]
    assert (report_id, tier_before, tier_after) == ("R-1", "emergency", "urgent")
    assert "from emergency to urgent" in note and "U1" in note and "U3" in note
    assert _walls(_rows(db, "SELECT report_id, reported_at, pain_score, location FROM reports ORDER BY 1")) == (
        reports_before)
    # New fields take their defaults; every result is under the current rules.
    assert _rows(db, "SELECT pain_pattern, saddle_numbness, confusion_or_drowsiness, thirst_or_polyuria"
                     " FROM reports WHERE report_id = 'R-1'") == [(None, False, False, False)]
    assert _rows(db, "SELECT low_platelets FROM patients") == [(False,)]
    assert _rows(db, "SELECT stopped_at FROM administrations") == [(None,)]
    assert _rows(db, "SELECT DISTINCT rules_version FROM triage_results") == [(rules.version,)]
    assert _rows(db, "SELECT tier, leading_causes FROM triage_results WHERE report_id = 'R-1'") == [
        ("urgent", ["spinal_metastasis", "pathological_fracture"])]
    # The rebuilt events table is still append-only.
    with db.connect() as con, pytest.raises(duckdb.Error, match="append-only"):
        con.execute("DELETE FROM events WHERE event_id = 1")
    # A second run has nothing left to do.
    assert upgrade(db, rules, now=NOW) == ([], None)


def test_preview_writes_nothing_and_matches_what_retriage_applies(tmp_path, rules):
    db = _version_1_database(tmp_path / "v1.duckdb")
    db.migrate()
    events = _rows(db, "SELECT count(*) FROM events")
    with db.connect() as con:
        preview = preview_changes(con, rules)
    assert preview[["report_id", "tier_before", "tier_after"]].values.tolist() == [["R-1", "emergency", "urgent"]]
    assert _rows(db, "SELECT count(*) FROM events") == events
    assert _rows(db, "SELECT DISTINCT rules_version FROM triage_results") == [("v1rules",)]
    _, stats = upgrade(db, rules, now=NOW)
    moved = _rows(db, "SELECT report_id, tier_before, tier_after FROM events WHERE action = 'retriaged'")
    assert moved == [("R-1", "emergency", "urgent")] and stats.changed_open == len(preview)


def test_stored_times_become_the_instants_they_named(tmp_path):
    """Migration 006: each wall-clock time becomes the instant it named in the service's zone; one in
    the hour the clocks go back (25 October 2026, 01:00-02:00 twice) is its first occurrence (BST)."""
    db = _version_1_database(tmp_path / "v1.duckdb")
    with db.connect() as con:
        run(con, "INSERT INTO events (report_id, acted_at, actor, actor_name, role, action, rules_version, note)"
                 " VALUES ('R-1', TIMESTAMP '2026-10-25 01:30', 'N0001', 'Helen Costa', 'nurse', 'note', 'v1rules',"
                 " 'in the repeated hour')")
    db.migrate()
    got = dict(_rows(db, "SELECT note, epoch(acted_at) FROM events WHERE note IS NOT NULL"))
    assert got["in the repeated hour"] == datetime(2026, 10, 25, 0, 30, tzinfo=timezone.utc).timestamp()
    assert _rows(db, "SELECT epoch(reported_at) FROM reports WHERE report_id = 'R-1'") == [
        (datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc).timestamp(),)]  # GMT in November
    assert _rows(db, "SELECT epoch(given_at) FROM administrations") == [
        (datetime(2024, 1, 10, 9, 0, tzinfo=timezone.utc).timestamp(),)]
    assert {t for (t,) in _rows(db, "SELECT data_type FROM information_schema.columns WHERE column_name IN "
                                    "('reported_at', 'received_at', 'acted_at', 'given_at', 'stopped_at', "
                                    "'respond_by', 'triaged_at') AND table_name <> 'schema_migrations'")} == {
        "TIMESTAMP WITH TIME ZONE"}
