"""Every page through AppTest: renders, shows its key elements, guards its role, and actions change the store."""

from __future__ import annotations

import shutil

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.config import get_settings
from dashboard.db import Database
from tests.conftest import ROOT

APP = str(ROOT / "streamlit_app.py")
NURSE, PHYSICIAN, LEAD, ADMIN = "N0001", "P001", "L004", "A006"


@pytest.fixture
def app_db(tmp_path, sample_db, monkeypatch) -> Database:
    """A private copy of the sample database, and the app pointed at it."""
    path = tmp_path / "app.duckdb"
    shutil.copy(sample_db.path, path)
    monkeypatch.setenv("BACKLINE_DB", str(path))
    return Database(path)


def open_app(actor: str, page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["demo_actor"] = actor
    at.run()
    if page:
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [e.value for e in at.error] + [i.value for i in at.info]
    parts += [w.value for w in at.warning] + [s.value for s in at.success] + [c.value for c in at.caption]
    return "\n".join(str(p) for p in parts)


def nurse_panel(db: Database) -> str:
    return db.scalar("SELECT panel_id FROM staff WHERE staff_id = ?", [NURSE])


def an_open_report(db: Database, panel: str, *, unanswered: bool = False) -> str:
    """An open report that is the only open report of its patient (so it heads its own row)."""
    extra = " AND NOT EXISTS (SELECT 1 FROM events e WHERE e.report_id = o.report_id)" if unanswered else ""
    return db.scalar(
        f"SELECT min(report_id) FROM open_reports o WHERE panel_id = ?{extra} AND patient_id IN"
        " (SELECT patient_id FROM open_reports GROUP BY patient_id HAVING count(*) = 1)", [panel])


# --------------------------------------------------------------------------- queue


def test_queue_lists_open_reports_of_the_nurses_panel(app_db):
    at = open_app(NURSE)
    assert [t.value for t in at.title] == ["Triage queue"]
    table = at.dataframe[0].value
    panel = nurse_panel(app_db)
    open_ids = {r[0] for r in app_db.rows("SELECT report_id FROM open_reports WHERE panel_id = ?", [panel])}
    assert set(table["Report"]) <= open_ids and len(table) > 0
    # Tier is shown by word, ordered most urgent first.
    order = ["EMERGENCY", "URGENT", "SOON", "ROUTINE"]
    assert list(table["Tier"]) == sorted(table["Tier"], key=order.index)
    assert {"Clock", "Patient", "Pain", "Red flags", "Suspected", "Repeats"} <= set(table.columns)


def test_queue_groups_repeat_reports_of_a_patient(app_db):
    panel = nurse_panel(app_db)
    at = open_app(NURSE)
    table = at.dataframe[0].value
    per_patient = dict(app_db.rows(
        "SELECT patient_id, count(*) FROM open_reports WHERE panel_id = ? GROUP BY 1", [panel]))
    assert len(table) == len(per_patient)
    assert sorted(int(x[1:]) for x in table["Repeats"] if x) == sorted(n - 1 for n in per_patient.values() if n > 1)


def test_selecting_a_report_opens_its_detail(app_db):
    rid = an_open_report(app_db, nurse_panel(app_db))
    at = open_app(NURSE)
    at.session_state["selected_report"] = rid
    at.run()
    assert not at.exception
    body = texts(at)
    assert f"report **{rid}**" in body
    rule = app_db.scalar("SELECT rule_ids[1] FROM triage_results WHERE report_id = ?", [rid])
    assert any(e.label.startswith(f"{rule} ·") for e in at.expander)
    assert "Call us at once" in body  # the safety net
    assert "Imaging:" in body


def test_acknowledge_appends_an_event_and_the_clock_stops(app_db):
    rid = an_open_report(app_db, nurse_panel(app_db), unanswered=True)
    at = open_app(NURSE)
    at.session_state["selected_report"] = rid
    at.run()
    before = app_db.scalar("SELECT count(*) FROM events")
    at.button(key="ack").click().run()
    assert not at.exception
    rows = app_db.rows("SELECT actor, role, action FROM events WHERE report_id = ? ORDER BY event_id", [rid])
    assert rows[-1] == (NURSE, "nurse", "acknowledge")
    assert app_db.scalar("SELECT count(*) FROM events") >= before + 1
    table = at.dataframe[0].value
    assert table.loc[table["Report"] == rid, "Clock"].iloc[0].startswith("answered in")


def test_resolving_takes_the_report_off_the_queue(app_db):
    rid = an_open_report(app_db, nurse_panel(app_db))
    patient = app_db.scalar("SELECT patient_id FROM reports WHERE report_id = ?", [rid])
    at = open_app(NURSE)
    at.session_state["selected_report"] = rid
    at.run()
    at.selectbox(key="res_outcome").set_value("analgesia_adjusted")
    at.form_submit_button(key="submit_resolve").click().run()
    assert not at.exception
    assert app_db.scalar("SELECT count(*) FROM open_reports WHERE patient_id = ?", [patient]) == 0
    outcome = app_db.scalar("SELECT outcome FROM events WHERE report_id = ? AND action = 'resolve'", [rid])
    assert outcome == "analgesia_adjusted"
    assert rid not in set(at.dataframe[0].value["Report"])


def test_a_phone_report_is_triaged_at_once_and_raises_the_banner(app_db):
    at = open_app(NURSE)
    patient = app_db.query("SELECT name, patient_id FROM patients WHERE panel_id = ? ORDER BY patient_id LIMIT 1",
                           [nurse_panel(app_db)]).iloc[0]
    at.text_input(key="new_report_search").input(patient["name"]).run()
    at.selectbox(key="nr_patient").set_value(patient["patient_id"])
    at.checkbox(key="nr_leg_weakness").check()
    at.slider(key="nr_pain").set_value(6)
    at.form_submit_button(key="submit_new_report").click().run()
    assert not at.exception, [e.message for e in at.exception]
    new = app_db.query("SELECT r.*, t.tier, t.rule_ids FROM reports r JOIN triage_results t USING (report_id)"
                       " WHERE r.source = 'phone' AND r.entered_by = ? ", [NURSE])
    assert len(new) == 1 and new["tier"][0] == "emergency" and "E1" in list(new["rule_ids"][0])
    assert app_db.scalar("SELECT count(*) FROM open_reports WHERE report_id = ?", [new["report_id"][0]]) == 1
    assert any(b.key == f"open_{new['report_id'][0]}" for b in at.button)  # the emergency banner


def test_an_override_needs_a_reason_and_a_physician(app_db):
    rid = an_open_report(app_db, nurse_panel(app_db))
    nurse = open_app(NURSE)
    nurse.session_state["selected_report"] = rid
    nurse.run()
    assert "submit_override" not in {b.key for b in nurse.form_submit_button}
    doctor = open_app(PHYSICIAN)
    doctor.session_state["queue_panels"] = [nurse_panel(app_db)]
    doctor.session_state["selected_report"] = rid
    doctor.run()
    doctor.selectbox(key="ov_tier").set_value("emergency")
    doctor.form_submit_button(key="submit_override").click().run()
    assert "reason" in texts(doctor).lower()
    assert app_db.scalar("SELECT count(*) FROM events WHERE report_id = ? AND action = 'override'", [rid]) == 0
    doctor.text_area(key="ov_note").input("Sounds unwell on the phone; wants to be seen.")
    doctor.form_submit_button(key="submit_override").click().run()
    row = app_db.rows("SELECT tier_after, role, note FROM events WHERE report_id = ? AND action = 'override'", [rid])
    assert row == [("emergency", "physician", "Sounds unwell on the phone; wants to be seen.")]


def test_a_lead_reads_the_queue_but_cannot_act(app_db):
    rid = an_open_report(app_db, nurse_panel(app_db))
    at = open_app(LEAD)
    at.session_state["queue_panels"] = [nurse_panel(app_db)]
    at.session_state["selected_report"] = rid
    at.run()
    assert not at.exception and len(at.dataframe) >= 1
    assert "Read-only" in texts(at)
    assert "ack" not in {b.key for b in at.button}


# --------------------------------------------------------------------------- other pages


def test_timeline_for_a_patient(app_db):
    patient = app_db.query(
        "SELECT p.patient_id, p.mrn FROM patients p JOIN administrations a USING (patient_id)"
        " WHERE a.drug = 'pegfilgrastim' GROUP BY ALL ORDER BY p.patient_id LIMIT 1").iloc[0]
    at = open_app(PHYSICIAN, "patient_timeline")
    at.text_input(key="timeline_search").input(patient["mrn"]).run()
    assert not at.exception
    assert at.selectbox(key="timeline_patient").value == patient["patient_id"]
    reports = at.dataframe[0].value
    n = app_db.scalar("SELECT count(*) FROM reports WHERE patient_id = ?", [patient["patient_id"]])
    assert len(reports) == n
    positions = set(reports["position"])
    # Each report placed against the windows, in words; this patient had pegfilgrastim.
    assert positions <= {"outside every expected window"} | {p for p in positions if p.startswith("inside the ")}
    explained = app_db.scalar(
        "SELECT count(*) FROM triage_results t JOIN reports r USING (report_id) WHERE r.patient_id = ?"
        " AND (list_contains(t.causes, 'gcsf_bone_pain') OR list_contains(t.causes, 'taxane_acute_pain')"
        " OR list_contains(t.causes, 'anti_her2_infusion'))", [patient["patient_id"]])
    assert sum(p.startswith("inside the ") for p in reports["position"]) == explained
    assert len(at.get("plotly_chart")) == 1


def test_search_treats_input_as_text(app_db):
    at = open_app(PHYSICIAN, "patient_timeline")
    for hostile in ["%", "' OR 1=1 --", "_", "Robert'); DROP TABLE patients;--"]:
        at.text_input(key="timeline_search").input(hostile).run()
        assert not at.exception
    at.text_input(key="timeline_search").input("bad\u202echars").run()
    assert "control or bidirectional" in texts(at)
    assert app_db.scalar("SELECT count(*) FROM patients") > 0


def test_guidance_and_referral_summary(app_db):
    rid = an_open_report(app_db, nurse_panel(app_db))
    at = open_app(NURSE, "guidance")
    assert [t.value for t in at.title] == ["Guidance"]
    assert "MSCC coordinator now" in texts(at)
    at.text_input(key="summary_report").input(rid).run()
    assert not at.exception
    name = app_db.scalar("SELECT p.name FROM reports r JOIN patients p USING (patient_id) WHERE report_id = ?", [rid])
    assert f"referral / imaging request: {name}" in texts(at)
    assert len(at.download_button) == 1


def test_admin_sees_no_patient_data_on_guidance(app_db):
    at = open_app(ADMIN, "guidance")
    assert "does not see patient data" in texts(at)
    assert "summary_report" not in {t.key for t in at.text_input}


def test_response_times_for_a_lead(app_db):
    at = open_app(LEAD, "response_times")
    assert [t.value for t in at.title] == ["Response times"]
    tables = [d.value for d in at.dataframe]
    by_tier = tables[0]
    assert set(by_tier["tier"].str.split().str[-1]) <= {"EMERGENCY", "URGENT", "SOON", "ROUTINE"}
    assert {"within_target", "median_ack", "p90_ack"} <= set(by_tier.columns)
    assert len(at.download_button) == 1  # the audit trail export
    assert len(at.get("plotly_chart")) == 3


def test_rules_page_and_what_if(app_db, rules):
    at = open_app(NURSE, "rules")
    assert rules.version in texts(at)
    assert len(at.expander) >= len(rules.rules)
    at.checkbox(key="wi_leg_weakness").check()
    at.form_submit_button(key="submit_what_if").click().run()
    assert not at.exception
    assert "EMERGENCY" in texts(at) and "E1" in texts(at)
    assert "reload_rules" not in {b.key for b in at.button}


def test_admin_reloads_rules_and_retriages(app_db, rules):
    at = open_app(ADMIN, "rules")
    before = app_db.scalar("SELECT max(triaged_at) FROM triage_results")
    at.button(key="reload_rules").click().run()
    assert not at.exception
    assert app_db.scalar("SELECT max(triaged_at) FROM triage_results") > before
    assert "re-triaged" in texts(at)


@pytest.mark.parametrize("actor, page", [
    (NURSE, "patient_timeline"), (NURSE, "response_times"), (LEAD, "patient_timeline"),
    (ADMIN, "triage_queue"), (ADMIN, "response_times"), (PHYSICIAN, "response_times"),
])
def test_a_role_cannot_open_another_roles_page(app_db, actor, page):
    at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=60)
    at.session_state["demo_actor"] = actor
    at.run()
    assert "not available to the" in texts(at)
    assert not at.dataframe


# --------------------------------------------------------------------------- failing closed


def test_bad_rules_stop_the_app_naming_file_and_field(app_db, tmp_path, monkeypatch):
    folder = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", folder)
    text = (folder / "tiers.yaml").read_text().replace("respond_within_minutes: 15", "respond_within_minutes: soon")
    (folder / "tiers.yaml").write_text(text)
    monkeypatch.setenv("BACKLINE_RULES_DIR", str(folder))
    get_settings.cache_clear()
    try:
        at = AppTest.from_file(APP, default_timeout=60).run()
        assert "tiers.yaml: tiers[0].respond_within_minutes" in texts(at)
        assert not at.dataframe and not at.exception
    finally:
        monkeypatch.delenv("BACKLINE_RULES_DIR")
        get_settings.cache_clear()


def test_demo_mode_refuses_a_database_not_made_by_seed(app_db):
    app_db.rows("DELETE FROM meta WHERE key = 'synthetic'")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert "Demo mode refused" in texts(at)
    assert not at.dataframe
