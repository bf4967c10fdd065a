"""FHIR R4 out: every exported resource validates, references resolve within the bundle, and the
round trip (export a database, import the result into an empty one) gives the same patients, doses,
reports and tiers."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime

from fhir.resources.R4B.bundle import Bundle

from dashboard import fhir_export
from dashboard.db import Database
from dashboard.fhir_import import import_fhir
from tests.conftest import SEED_NOW, both_stores, run_cli, store_args, write

pytestmark = both_stores

SINCE = datetime(2000, 1, 1)


def references(value) -> list[str]:
    if isinstance(value, dict):
        found = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return found + [r for v in value.values() for r in references(v)]
    if isinstance(value, list):
        return [r for v in value for r in references(v)]
    return []


def test_the_export_validates_and_every_reference_resolves_within_it(fresh_db, rules):
    bundle = fhir_export.bundle(fresh_db, rules, since=SINCE)
    Bundle.model_validate(bundle)
    kinds = Counter(e["resource"]["resourceType"] for e in bundle["entry"])
    reports = fresh_db.scalar("SELECT count(*) FROM reports")
    assert kinds["QuestionnaireResponse"] == kinds["RiskAssessment"] == kinds["Task"] == reports
    assert kinds["AuditEvent"] == fresh_db.scalar("SELECT count(*) FROM events")
    assert kinds["Communication"] == fresh_db.scalar("SELECT count(*) FROM events WHERE action = 'call_back'")
    ids = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
    dangling = {r for e in bundle["entry"] for r in references(e["resource"]) if r not in ids}
    assert dangling == set()


def test_a_risk_assessment_carries_the_tier_the_rules_and_their_rationale(fresh_db, rules):
    rid, tier, rule_ids, version = fresh_db.rows(
        "SELECT report_id, tier, rule_ids, rules_version FROM triage_results WHERE tier = 'emergency' LIMIT 1")[0]
    found = {e["resource"]["id"]: e["resource"] for e in fhir_export.bundle(fresh_db, rules, since=SINCE)["entry"]}
    risk = found[f"{rid}-triage"]
    assert risk["prediction"][0]["outcome"]["coding"][0]["code"] == tier
    assert risk["method"]["coding"][0]["code"] == version == rules.version
    assert risk["basis"] == [{"reference": f"QuestionnaireResponse/{rid}"}]
    assert [n["text"].split(" ")[0] for n in risk["note"]] == list(rule_ids)
    assert rules.rule_by_id[rule_ids[0]].rationale in risk["note"][0]["text"]
    task = found[f"{rid}-task"]
    assert task["priority"] == "stat" and task["for"]["reference"].startswith("Patient/")


def test_the_round_trip_gives_the_same_patients_doses_reports_and_tiers(fresh_db, rules, tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps(fhir_export.bundle(fresh_db, rules, since=SINCE, all_patients=True)))
    empty = Database(tmp_path / "empty.duckdb")
    empty.migrate()
    for panel in fresh_db.rows("SELECT panel_id, name, service FROM panels"):  # a new service's: its panels only
        write(empty, "INSERT INTO panels (panel_id, name, service) VALUES (?, ?, ?)", list(panel))
    import_fhir(empty, rules, path, now=SEED_NOW)

    def same(sql: str) -> None:
        assert sorted(map(tuple, empty.rows(sql))) == sorted(map(tuple, fresh_db.rows(sql))), sql

    same("SELECT patient_id, mrn, name, date_of_birth, sex, cancer_type, bone_metastases, osteoporosis, "
         "long_term_steroids, low_platelets, panel_id FROM patients")
    same("SELECT patient_id, drug, given_at, stopped_at FROM administrations")
    fields = ("patient_id, reported_at, source, entered_by, pain_score, pain_pattern, onset, trend, location, "
              "duration_days, temperature_c, worse_at_night, leg_weakness, saddle_numbness, bladder_or_bowel_change, "
              "rigors, feels_unwell, confusion_or_drowsiness, thirst_or_polyuria")
    same(f"SELECT {fields} FROM reports")
    same("SELECT r.patient_id, r.reported_at, t.tier, t.rule_ids FROM reports r "
         "JOIN triage_results t USING (report_id)")
    same("SELECT r.patient_id, r.reported_at, u.field FROM report_unasked u JOIN reports r USING (report_id)")


def test_export_from_the_command_line_as_ndjson(fresh_db, tmp_path):
    out = tmp_path / "export.ndjson"
    done = run_cli("export", "--since", "2026-11-01", *store_args(fresh_db), "--ndjson", "--out", str(out))
    assert done.returncode == 0, done.stderr.decode()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines and all("resourceType" in r for r in lines)
    assert {r["resourceType"] for r in lines} >= {"Patient", "QuestionnaireResponse", "RiskAssessment", "Task"}
    reported = [datetime.fromisoformat(r["authored"]) for r in lines if r["resourceType"] == "QuestionnaireResponse"]
    assert min(reported).date() >= datetime(2026, 11, 1).date()
