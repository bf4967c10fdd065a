"""Sample data: deterministic, clinically shaped, loadable; stored triage agrees with the contract."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from dashboard.db import Database
from dashboard.models import TriageCase, ReportIn
from dashboard.sample import generate
from dashboard.triage import triage_cases
from tests.conftest import SEED_NOW, run_cli


def test_the_generator_is_deterministic_for_a_seed():
    a = generate(patients=80, reports=900, seed=11, as_of=SEED_NOW)
    b = generate(patients=80, reports=900, seed=11, as_of=SEED_NOW)
    c = generate(patients=80, reports=900, seed=12, as_of=SEED_NOW)
    for table in ("panels", "staff", "patients", "regimens", "administrations", "reports"):
        pd.testing.assert_frame_equal(getattr(a, table), getattr(b, table))
    assert not getattr(a, "reports").equals(getattr(c, "reports"))


def test_seeding_twice_gives_the_same_database(tmp_path, rules):
    from dashboard.seed import generate_sample, seed_generated

    dumps = []
    for name in ("one", "two"):
        db = Database(tmp_path / f"{name}.duckdb")
        seed_generated(db, rules, generate_sample(patients=50, reports=400, seed=5, now=SEED_NOW), now=SEED_NOW, seed=5)
        dumps.append([db.rows(f"SELECT * FROM {t} ORDER BY ALL") for t in ("reports", "events", "triage_results")])
    assert dumps[0] == dumps[1]


def test_the_default_sample_loads_and_ends_now(sample_db):
    meta = sample_db.meta()
    assert meta["created_by"] == "backline seed" and meta["synthetic"] == "true"
    last = sample_db.scalar("SELECT max(reported_at) FROM reports")
    assert last <= SEED_NOW and (SEED_NOW - last).total_seconds() < 24 * 3600
    counts = dict(sample_db.rows(
        "SELECT 'patients', count(*) FROM patients UNION ALL SELECT 'reports', count(*) FROM reports "
        "UNION ALL SELECT 'results', count(*) FROM triage_results UNION ALL SELECT 'panels', count(*) FROM panels"))
    assert 300 <= counts["patients"] <= 600 and counts["reports"] >= 3000
    assert counts["results"] == counts["reports"] and counts["panels"] >= 5
    span = sample_db.rows("SELECT max(reported_at) - min(reported_at) FROM reports")[0][0]
    assert span.days >= 300


def test_sample_loaded_later_is_moved_to_that_day(tmp_path, rules):
    from dashboard.seed import seed_from_files
    from tests.conftest import ROOT

    later = datetime(2027, 3, 1, 15, 0)
    db = Database(tmp_path / "later.duckdb")
    stats = seed_from_files(db, rules, ROOT / "sample_data", now=later)
    last = db.scalar("SELECT max(reported_at) FROM reports")
    assert last <= later and (later - last).days < 2
    assert db.scalar("SELECT count(*) FROM events WHERE acted_at > ?", [later]) == 0
    assert stats.open_reports > 0


def test_reports_cluster_in_the_drug_windows(sample_db, rules):
    """Pain after pegfilgrastim concentrates on days 1-4, as the literature says."""
    from dashboard.retriage import explanations

    ids = [r[0] for r in sample_db.rows("SELECT report_id FROM triage_results WHERE list_contains(causes, 'gcsf_bone_pain')")]
    with sample_db.connect() as con:
        found = explanations(con, rules, ids)
    days = pd.Series([link["day"] for e in found.values() for link in e["links"]
                      if link["cause"] == "gcsf_bone_pain" and link["drug"] == "pegfilgrastim"])
    assert len(days) > 100
    assert days.between(1, 4).mean() > 0.7


def test_a_realistic_minority_of_red_flags(sample_db):
    share = dict(sample_db.rows(
        "SELECT tier, count(*) / sum(count(*)) OVER () FROM triage_results GROUP BY tier"))
    assert 0.02 < share["emergency"] < 0.2
    assert share["routine"] > 0.3
    mscc = sample_db.scalar("SELECT avg(list_contains(causes, 'mscc')::INT) FROM triage_results")
    assert 0.01 < mscc < 0.08


def test_response_times_are_faster_for_higher_tiers_and_slower_out_of_hours(sample_db):
    df = sample_db.query(
        """
        SELECT t.tier, r.reported_at, date_diff('minute', r.reported_at, min(e.acted_at)) AS minutes
        FROM reports r JOIN triage_results t USING (report_id) JOIN events e USING (report_id)
        WHERE e.action = 'acknowledge'
        GROUP BY t.tier, r.reported_at, r.report_id
        """
    )
    med = df.groupby("tier")["minutes"].median()
    assert med["emergency"] < med["urgent"] < med["soon"] < med["routine"]
    hour = df["reported_at"].dt.hour
    ooh = (df["reported_at"].dt.day_of_week >= 5) | (hour < 8) | (hour >= 18)
    urgent = df["tier"] == "urgent"
    assert df[urgent & ooh]["minutes"].median() > df[urgent & ~ooh]["minutes"].median()
    # A few breaches of the emergency target, not none and not most.
    breach = (df[df["tier"] == "emergency"]["minutes"] > 15).mean()
    assert 0.02 < breach < 0.5


def test_stored_triage_agrees_with_the_contract(sample_db, rules):
    """The database path and the contract path are one engine: rebuild contract cases from the store."""
    reports = sample_db.query(
        "SELECT r.*, p.cancer_type, p.bone_metastases, p.osteoporosis, p.long_term_steroids "
        "FROM reports r JOIN patients p USING (patient_id) ORDER BY report_id LIMIT 400")
    doses = sample_db.query("SELECT patient_id, drug, given_at FROM administrations ORDER BY administration_id")
    by_patient = doses.groupby("patient_id")
    cases = []
    for row in reports.to_dict("records"):
        meds = []
        if row["patient_id"] in by_patient.groups:
            meds = [{"drug": d, "given_at": g.to_pydatetime()} for d, g in
                    by_patient.get_group(row["patient_id"])[["drug", "given_at"]].itertuples(index=False)]
        report = {k: (None if pd.isna(row[k]) else row[k]) for k in ReportIn.model_fields}
        report["reported_at"] = row["reported_at"].to_pydatetime()
        cases.append(TriageCase.model_validate({
            "report_id": row["report_id"],
            "patient": {k: row[k] for k in ("patient_id", "cancer_type", "bone_metastases", "osteoporosis",
                                             "long_term_steroids")},
            "medications": meds, "report": report}))
    contract = {o.report_id: (o.tier, o.rule_ids, o.causes) for o in triage_cases(rules, cases)}
    stored = {r[0]: (r[1], list(r[2]), list(r[3])) for r in sample_db.rows(
        "SELECT report_id, tier, rule_ids, causes FROM triage_results WHERE report_id IN "
        "(SELECT report_id FROM reports ORDER BY report_id LIMIT 400)")}
    assert contract == stored


def test_seed_refuses_to_overwrite_and_retriage_reports(tmp_path, rules):
    path = tmp_path / "cli.duckdb"
    first = run_cli("seed", "--db", str(path), "--patients", "40", "--reports", "300", "--seed", "2")
    assert first.returncode == 0, first.stderr
    assert b"40 patients" in first.stdout
    again = run_cli("seed", "--db", str(path), "--patients", "40")
    assert again.returncode == 4 and b"--force" in again.stderr
    re = run_cli("retriage", "--db", str(path))
    assert re.returncode == 0, re.stderr
    assert b"re-triaged" in re.stdout and b"reports/s" in re.stdout
    db = Database(path)
    assert db.scalar("SELECT count(DISTINCT rules_version) FROM triage_results") == 1
    assert db.scalar("SELECT count(*) FROM triage_results") == db.scalar("SELECT count(*) FROM reports")
    # The swapped-in table keeps its key, and every result's guidance is stored.
    import duckdb

    with pytest.raises(duckdb.ConstraintException):
        db.rows("INSERT INTO triage_results SELECT * FROM triage_results LIMIT 1")
    assert db.scalar("SELECT count(*) FROM triage_results WHERE guidance_key NOT IN "
                     "(SELECT guidance_key FROM guidance_sets)") == 0


def test_retriage_records_tier_changes_of_open_reports(tmp_path, fresh_db, rules):
    """New rules that move an open report's tier leave a 'retriaged' event saying so."""
    import shutil

    from dashboard.retriage import retriage
    from dashboard.rules import load_rules
    from tests.conftest import ROOT

    folder = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", folder)
    text = (folder / "triage_rules.yaml").read_text()
    (folder / "triage_rules.yaml").write_text(text.replace(
        "  severe_pain_score:\n    value: 7", "  severe_pain_score:\n    value: 5"))
    stricter = load_rules(folder)
    moved = fresh_db.scalar(
        "SELECT count(*) FROM open_reports o JOIN reports r USING (report_id) JOIN triage_results t USING (report_id)"
        " WHERE r.pain_score IN (5, 6) AND t.tier IN ('soon', 'routine')")
    stats = fresh_db.transaction(lambda con: retriage(con, stricter, now=SEED_NOW))
    assert stats.changed_open == moved > 0
    events = fresh_db.query("SELECT * FROM events WHERE action = 'retriaged'")
    assert len(events) == moved
    assert set(events["tier_after"]) <= {"urgent", "emergency"}
    assert (events["rules_version"] == stricter.version).all() and (events["role"] == "system").all()
