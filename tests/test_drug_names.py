"""Drug names are matched by one definition (dashboard.rules.normalise_drug_name and its SQL), the same
in the engine, the timeline and the detail: case, white space, hyphens and underscores do not matter,
a US biosimilar's four-letter suffix is looked through, and nothing else is removed from a name."""

from __future__ import annotations

import shutil
from datetime import datetime

import duckdb
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard import timeline
from dashboard.db import Database
from dashboard.rules import (
    biosimilar_base,
    biosimilar_base_sql,
    drug_name_sql,
    load_rules,
    normalise_drug_name,
)
from tests.conftest import ROOT, SEED_NOW, make_case, triage

RULES = load_rules(ROOT / "rules")


@pytest.mark.parametrize("name, generic", [
    ("pegfilgrastim held", None),  # a trailing word is not stripped: unrecognised
    ("pegfilgrastim 6mg", None),
    ("Pegfilgrastim-jmdb", "pegfilgrastim"),  # a US biosimilar's suffix
    ("PEGFILGRASTIM-JMDB", "pegfilgrastim"),
    ("PEG-FILGRASTIM", "pegfilgrastim"),  # hyphens are ignored (rules/drugs.yaml)
    ("peg filgrastim", "pegfilgrastim"),
    ("Neulasta", "pegfilgrastim"),
    ("pegfilgrastim-jmdbx", None),  # five letters: not a biosimilar suffix
    ("pegfilgrastim jmdb", None),  # a suffix is joined by a hyphen
])
def test_the_engine_and_the_rules_resolve_a_name_alike(rules, name, generic):
    info = rules.resolve_drug(name)
    assert (info.generic if info else None) == generic
    out = triage(rules, make_case({"pain_score": 5, "duration_days": 1}, meds=[(name, "2026-11-18T10:00:00")]))
    if generic is None:
        assert out.unrecognised_drugs == [name] and out.drug_effects == []
        assert any(name in line.text for line in out.guidance.referral)
    else:
        assert out.unrecognised_drugs == []
        assert [(e["cause"], e["drug"], e["status"]) for e in out.drug_effects] == [
            ("gcsf_bone_pain", name, "explained")]


NAME_CHARS = st.sampled_from(list("abcdefgjmxyzABCDEFJMXYZ0123456789 -_\t\n\u00a0\u2010éÉß.()/"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(NAME_CHARS, st.sampled_from(["pegfilgrastim", "-jmdb", " ", "Neulasta", "-"])),
                max_size=8).map("".join))
def test_the_sql_and_the_python_definitions_agree(name):
    con = duckdb.connect()
    try:
        key, has_suffix, base = con.execute(
            f"SELECT {drug_name_sql('$n')}, {biosimilar_base_sql('$n')[0]}, {biosimilar_base_sql('$n')[1]}",
            {"n": name}).fetchone()
    finally:
        con.close()
    assert key == normalise_drug_name(name)
    assert (base if has_suffix else None) == biosimilar_base(name)


def _treatment_free_patient(db: Database) -> tuple[str, str]:
    row = db.query(
        "SELECT patient_id, panel_id FROM patients p WHERE cancer_type <> 'myeloma' AND NOT bone_metastases"
        " AND NOT EXISTS (SELECT 1 FROM administrations a WHERE a.patient_id = p.patient_id)"
        " AND NOT EXISTS (SELECT 1 FROM open_reports o WHERE o.patient_id = p.patient_id)"
        " ORDER BY patient_id LIMIT 1")
    if row.empty:  # every sample patient has treatment: take one whose treatment ended long ago
        row = db.query(
            "SELECT patient_id, panel_id FROM patients p WHERE cancer_type <> 'myeloma' AND NOT bone_metastases"
            " AND NOT EXISTS (SELECT 1 FROM administrations a WHERE a.patient_id = p.patient_id AND"
            "   (a.given_at >= TIMESTAMP '2026-06-01' OR coalesce(a.stopped_at, TIMESTAMP '2100-01-01')"
            "    >= TIMESTAMP '2026-06-01'))"
            " AND NOT EXISTS (SELECT 1 FROM open_reports o WHERE o.patient_id = p.patient_id)"
            " ORDER BY patient_id LIMIT 1")
    return row.iloc[0]["patient_id"], row.iloc[0]["panel_id"]


@pytest.mark.parametrize("name, recognised", [("pegfilgrastim held", False), ("Pegfilgrastim-jmdb", True)])
def test_the_timeline_and_the_detail_resolve_a_stored_name_as_the_engine_does(tmp_path, sample_db, rules, name,
                                                                             recognised):
    from dashboard.access import Role, User
    from dashboard.queue import report_detail
    from dashboard.workflow import submit_report

    path = tmp_path / "names.duckdb"
    shutil.copy(sample_db.path, path)
    db = Database(path)
    patient, panel = _treatment_free_patient(db)
    with db.connect() as con:
        con.execute("INSERT INTO administrations (administration_id, patient_id, drug, given_at)"
                    " SELECT max(administration_id) + 1, ?, ?, ? FROM administrations",
                    [patient, name, datetime(2026, 11, 18, 10, 0)])
    nurse = User(actor="N0001", name="Test Nurse", role=Role.NURSE, panels=(panel,))
    done = submit_report(db, rules, nurse, SEED_NOW, patient_id=patient, report={
        "reported_at": datetime(2026, 11, 20, 9, 30), "pain_score": 5, "duration_days": 1, "onset": "gradual",
        "pain_pattern": "usual"})
    tl = timeline.patient_timeline(db, rules, patient, SEED_NOW)
    dose = tl.doses[tl.doses["drug"] == name].iloc[0]
    report = tl.reports[tl.reports["report_id"] == done.report_id].iloc[0]
    detail = report_detail(db, rules, done.report_id)
    if recognised:
        assert dose["generic"] == "pegfilgrastim" and "gcsf_bone_pain" in set(tl.windows["cause"])
        assert [e["drug"] for e in report["drug_effects"]] == [name]
        assert "G-CSF bone pain explained" in report["position"]
        assert detail["unrecognised_drugs"] == []
    else:
        assert pd.isna(dose["generic"]) and dose["class_label"] == "unrecognised"
        assert tl.windows.empty or "gcsf_bone_pain" not in set(tl.windows["cause"])
        assert report["drug_effects"] == [] and report["position"] == "no drug effect fits its timing"
        assert detail["unrecognised_drugs"] == [name]
        assert any(name in line["text"] for line in detail["explained"]["referral"])
