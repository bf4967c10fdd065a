"""The referral summary: plain text fit to paste into a referral, with the date of birth as a date and
the age at the report, the MRN labelled once, only the treatment given by the report, who asks, and
the nursing notes (the report's own, the latest call-back and escalation notes)."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pandas as pd
import pytest

from dashboard import referral, timeline
from dashboard.access import Role, User
from dashboard.db import Database
from dashboard.queue import report_detail
from dashboard.workflow import act, submit_report
from tests.conftest import SEED_NOW


@pytest.fixture
def summary_case(tmp_path, sample_db, rules):
    """A phone report with a note, made just before the patient's latest dose, then called back (not
    reached, twice), escalated and noted: (database, detail, timeline, nurse)."""
    path = tmp_path / "referral.duckdb"
    shutil.copy(sample_db.path, path)
    db = Database(path)
    row = db.query(
        "SELECT a.patient_id, p.panel_id, max(a.given_at) AS last_given FROM administrations a"
        " JOIN patients p USING (patient_id) WHERE a.stopped_at IS NULL AND a.given_at < ?"
        " AND p.date_of_birth IS NOT NULL"
        " GROUP BY ALL HAVING count(DISTINCT a.given_at) >= 3 ORDER BY a.patient_id LIMIT 1", [SEED_NOW]).iloc[0]
    nurse = User(actor="N0001", name="Test Nurse", role=Role.NURSE, panels=(row["panel_id"],))
    reported_at = pd.Timestamp(row["last_given"]).to_pydatetime() - timedelta(minutes=1)
    done = submit_report(db, rules, nurse, SEED_NOW, patient_id=row["patient_id"],
                         note="Pain since Sunday.\nLives alone.",
                         report={"reported_at": reported_at, "pain_score": 6, "onset": "gradual", "pain_pattern": "new",
                                 "location": "thoracic"})
    rid = done.report_id
    act(db, nurse, SEED_NOW, action="call_back", report_ids=[rid], reached=False, note="No answer at 12:00")
    act(db, nurse, SEED_NOW + timedelta(minutes=40), action="call_back", report_ids=[rid], reached=False,
        note="Still no answer; left a voicemail")
    act(db, nurse, SEED_NOW + timedelta(minutes=45), action="escalate", report_ids=[rid],
        escalated_to="acute_oncology", note="Asked AOS to review")
    detail = report_detail(db, rules, rid)
    tl = timeline.patient_timeline(db, rules, detail["patient_id"], SEED_NOW + timedelta(hours=1))
    return db, detail, tl, nurse


def test_the_summary_is_plain_text_with_a_date_of_birth_an_age_and_the_mrn_once(summary_case, rules):
    _, detail, tl, nurse = summary_case
    text = referral.referral_summary(rules, detail, tl.doses, tl.regimens, now=SEED_NOW, requester=nurse)
    born = pd.Timestamp(detail["date_of_birth"])
    assert f"born {born:%d %b %Y} (aged {detail['age']} at the report)," in text
    assert f"born {born:%d %b %Y} 00:00" not in text
    assert detail["mrn"].startswith("MRN")
    assert text.count(detail["mrn"]) == 1 and "MRN MRN" not in text
    # Plain text: no Markdown headings or bold.
    assert not any(line.startswith("#") for line in text.splitlines()) and "**" not in text
    # A bare number gets its label.
    bare = {**detail, "mrn": detail["mrn"].removeprefix("MRN")}
    assert f"MRN {bare['mrn']}," in referral.referral_summary(rules, bare, tl.doses, tl.regimens, now=SEED_NOW)


def test_only_treatment_given_by_the_report_is_listed(summary_case, rules):
    _, detail, tl, nurse = summary_case
    text = referral.referral_summary(rules, detail, tl.doses, tl.regimens, now=SEED_NOW, requester=nurse)
    (doses_line,) = [line for line in text.splitlines() if line.startswith("Last doses and courses before the report:")]
    after = tl.doses[tl.doses["given_at"] > detail["reported_at"]]
    before = tl.doses[tl.doses["given_at"] <= detail["reported_at"]]
    assert not after.empty and not before.empty
    for given in after["given_at"]:
        assert f"{given:%d %b %Y %H:%M}" not in doses_line, doses_line
    latest = before.sort_values("given_at").iloc[-1]
    assert f"{latest['drug']} {latest['given_at']:%d %b %Y %H:%M}" in doses_line or latest["is_course"]


def test_the_summary_names_the_requester_and_the_nursing_notes(summary_case, rules):
    _, detail, tl, nurse = summary_case
    text = referral.referral_summary(rules, detail, tl.doses, tl.regimens, now=SEED_NOW, requester=nurse)
    notes = text.split("NURSING NOTES\n")[1].split("\n\n")[0]
    assert f"Report note ({detail['entered_by_name']}): Pain since Sunday.\nLives alone." in notes
    # The latest call-back only, with who and when.
    assert "No answer at 12:00" not in notes
    assert (f"Latest call-back, not reached (Test Nurse, {SEED_NOW + timedelta(minutes=40):%d %b %Y %H:%M}): "
            "Still no answer; left a voicemail") in notes
    assert "Latest escalation to Acute oncology (Test Nurse, " in notes and "Asked AOS to review" in notes
    assert "Requested by: Test Nurse (nurse)" in text
    # Staff notes and advice are apart; what is read to the patient is under its own heading.
    advice = text.split("ADVICE GIVEN TO THE PATIENT\n")[1].split("\n\n")[0]
    assert all(a in advice for a in detail["explained"]["advice"])
    assert not any(n in advice for n in detail["explained"]["staff_notes"])
