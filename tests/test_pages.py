"""Every page through AppTest: renders, shows its key elements, guards its role, and actions change the store."""

from __future__ import annotations

import shutil

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.config import get_settings
from dashboard.db import Database
from dashboard.rules import load_rules
from dashboard.ui import plain
from tests.conftest import ROOT, both_stores, write

APP = str(ROOT / "streamlit_app.py")
NURSE, PHYSICIAN, LEAD, ADMIN = "N0001", "P001", "L004", "A006"
pytestmark = both_stores


@pytest.fixture
def app_db(request, tmp_path, sample_db, monkeypatch) -> Database:
    """A private copy of the sample database, and the app pointed at it: a DuckDB file, or (in a
    module marked ``both_stores``) also a PostgreSQL database holding the same rows."""
    if getattr(request, "param", "duckdb") == "postgresql":
        from tests.conftest import drop_store, postgres_store

        store = postgres_store(request.getfixturevalue("postgres_server"), request.getfixturevalue("_sample_template"))
        monkeypatch.delenv("BACKLINE_DB", raising=False)
        monkeypatch.setenv("BACKLINE_DATABASE_URL", store.url)
        yield store
        drop_store(store)
        return
    path = tmp_path / "app.duckdb"
    shutil.copy(sample_db.path, path)
    monkeypatch.delenv("BACKLINE_DATABASE_URL", raising=False)
    monkeypatch.setenv("BACKLINE_DB", str(path))
    yield Database(path)


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
    found = db.scalar(
        f"SELECT min(report_id) FROM open_reports o WHERE panel_id = ?{extra} AND patient_id IN"
        " (SELECT patient_id FROM open_reports GROUP BY patient_id HAVING count(*) = 1)", [panel])
    if found is None:  # the sample has none such: a nurse enters one by phone
        from dashboard.access import Role, User
        from dashboard.workflow import submit_report
        from tests.conftest import SEED_NOW

        patient = db.scalar("SELECT min(patient_id) FROM patients p WHERE panel_id = ? AND NOT EXISTS"
                            " (SELECT 1 FROM open_reports o WHERE o.patient_id = p.patient_id)", [panel])
        nurse = User(actor=NURSE, name="Test Nurse", role=Role.NURSE, panels=(panel,))
        found = submit_report(db, load_rules(ROOT / "rules"), nurse, SEED_NOW, patient_id=patient, report={
            "reported_at": SEED_NOW, "pain_score": 2, "onset": "gradual", "pain_pattern": "usual"}).report_id
    return found


# --------------------------------------------------------------------------- queue


# The queue page's tests are in tests/test_queue_page.py.


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
    # Each report with the drug effects that fit its timing, in words; this patient had pegfilgrastim.
    # A report's suspected causes include a back-pain effect exactly when one fits (explained or possible).
    fitting = app_db.scalar(
        "SELECT count(*) FROM triage_results t JOIN reports r USING (report_id) WHERE r.patient_id = ?"
        " AND (list_contains(t.causes, 'gcsf_bone_pain') OR list_contains(t.causes, 'taxane_acute_pain')"
        " OR list_contains(t.causes, 'anti_her2_infusion'))", [patient["patient_id"]])
    words = [p for p in reports["position"] if p != "no drug effect fits its timing"]
    assert len(words) == fitting > 0
    assert all(" explained: " in p or " possible: " in p for p in words)
    assert len(at.get("plotly_chart")) == 1


def test_search_treats_input_as_text_and_returns_exactly_the_matching_rows(app_db):
    """Wildcards and quotes are plain characters: "%" finds the one name holding a "%", not every
    patient; an injection string finds nothing and changes nothing; a stored name with Markdown and
    HTML shows as typed."""
    target = app_db.scalar("SELECT min(patient_id) FROM patients")
    hostile = "100% O'Brien_Smith **x** <img src=x onerror=alert(1)>"
    write(app_db, "UPDATE patients SET name = ? WHERE patient_id = ?", [hostile, target])
    count = app_db.scalar("SELECT count(*) FROM patients")
    at = open_app(PHYSICIAN, "patient_timeline")

    def found(text: str) -> list[str] | None:
        at.text_input(key="timeline_search").input(text).run()
        assert not at.exception
        picker = [s for s in at.selectbox if s.key == "timeline_patient"]
        return list(picker[0].options) if picker else None

    for text in ("%", "_", "o'brien", "**X**"):
        options = found(text)
        assert options is not None and len(options) == 1 and options[0].startswith("100% O'Brien_Smith"), (text, options)
    for text in ("' OR 1=1 --", "Robert'); DROP TABLE patients;--", "%%%"):
        assert found(text) is None and "No patient matches." in texts(at)
    found("o'brien")
    assert at.subheader[0].value.startswith(plain(hostile))  # escaped: shown as the characters stored
    at.text_input(key="timeline_search").input("bad\u202echars").run()
    assert "control or bidirectional" in texts(at)
    assert app_db.scalar("SELECT count(*) FROM patients") == count


def test_guidance_and_referral_summary(app_db):
    rid = an_open_report(app_db, nurse_panel(app_db))
    at = open_app(NURSE, "guidance")
    assert [t.value for t in at.title] == ["Guidance"]
    assert "MSCC coordinator now" in texts(at)
    at.text_input(key="summary_report").input(rid).run()
    assert not at.exception
    name = app_db.scalar("SELECT p.name FROM reports r JOIN patients p USING (patient_id) WHERE report_id = ?", [rid])
    summary = next(c.value for c in at.code)
    assert f"REFERRAL / IMAGING REQUEST: {name}" in summary
    staff = app_db.scalar("SELECT name FROM staff WHERE staff_id = ?", [NURSE])
    assert f"Requested by: {staff} (nurse)" in summary
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
    assert {"within_target", "median_ack", "p90_ack", "unanswered_past_target", "unanswered_within_target"} <= set(
        by_tier.columns)
    # Times in words, never bare minutes: "45 min", "3 h 20 min", "4 d 12 h".
    assert by_tier["median_ack"].str.fullmatch(r"\d+ min|\d+ h \d\d min|\d+ d \d+ h|").all()
    assert "tier in force when it was first answered" in texts(at)
    assert len(at.download_button) == 1  # the audit trail export
    assert len(at.get("plotly_chart")) == 4
    assert at.selectbox(key="metrics_behind").label == "Show the reports behind"


def test_rules_page_and_what_if(app_db, rules):
    at = open_app(NURSE, "rules")
    assert rules.version in texts(at)
    assert len(at.expander) >= len(rules.rules)
    # The drug list covers the brief's drugs, each with whether it is taken continuously.
    drugs = at.tabs[1].dataframe[1].value
    for name in ("pomalidomide", "olaparib", "teclistamab", "goserelin", "relugolix", "apixaban", "tinzaparin",
                 "paracetamol", "ondansetron"):
        assert name in set(drugs["Drug"]), name
    assert drugs.loc[drugs["Drug"] == "apixaban", "Taken"].iloc[0].startswith("continuously")
    assert drugs.loc[drugs["Drug"] == "goserelin", "Taken"].iloc[0] == "as doses"
    at.checkbox(key="wi_leg_weakness").check()
    at.form_submit_button(key="submit_what_if").click().run()
    assert not at.exception
    out, words = what_if(at)
    assert out["tier"] == "emergency" and "E1" in out["rule_ids"] and "EMERGENCY" in words
    # Only an admin sees the impact preview and the reload.
    assert not {"preview_rules", "confirm_reload"} & {b.key for b in at.button}


def what_if(at: AppTest) -> tuple[dict, str]:
    """The what-if's contract output and the words shown on its tab."""
    import json

    tab = at.tabs[3]
    out = json.loads(tab.json[0].value) if len(tab.json) else {}
    words = "\n".join(str(m.value) for m in [*tab.markdown, *tab.error, *tab.warning])
    return out, words


def test_what_if_takes_courses_and_the_new_questions(app_db, rules):
    at = open_app(NURSE, "rules")
    # An aromatase-inhibitor course running for 400 days is bone fragility (U4 with a sudden onset).
    at.text_area(key="wi_meds").input("letrozole, 400")
    at.radio(key="wi_onset").set_value("sudden")
    at.slider(key="wi_pain").set_value(3)
    at.form_submit_button(key="submit_what_if").click().run()
    assert not at.exception
    out, words = what_if(at)
    assert out["rule_ids"] == ["U4", "S3"] and out["leading_causes"] == ["fragility_fracture"]
    assert "**Leading:** Possible vertebral (fragility) fracture" in words
    assert "**Also considered:** Aromatase-inhibitor musculoskeletal symptoms" in words
    assert "letrozole from 11 Dec 2024, running" in words  # the course behind the facts, in words
    # Stopped 30 days before the report: no longer fragility, and no aromatase-inhibitor symptoms (S3).
    at.text_area(key="wi_meds").input("letrozole, 400, 30")
    at.form_submit_button(key="submit_what_if").click().run()
    out, words = what_if(at)
    assert out["rule_ids"] == ["R1"]
    # The new questions reach the engine: saddle numbness (E1), thirst in myeloma (U7).
    at.selectbox(key="wi_cancer").set_value("myeloma")
    at.checkbox(key="wi_saddle_numbness").check()
    at.checkbox(key="wi_thirst_or_polyuria").check()
    at.radio(key="wi_pain_pattern").set_value("usual")
    at.form_submit_button(key="submit_what_if").click().run()
    out, words = what_if(at)
    assert out["rule_ids"] == ["E1", "U7"]  # usual pain does not fire U3
    assert "**Also considered:** Possible hypercalcaemia" in words
    # Days are required now (given_at is): the line is named.
    at.text_area(key="wi_meds").input("pegfilgrastim")
    at.form_submit_button(key="submit_what_if").click().run()
    out, words = what_if(at)
    assert "medications line 1" in words and not out
    # A stop date on a drug given as doses is refused by the engine, naming the field.
    at.text_area(key="wi_meds").input("pegfilgrastim, 5, 2")
    at.form_submit_button(key="submit_what_if").click().run()
    out, words = what_if(at)
    assert plain("medications[0].stopped_at") in words and not out and not at.exception


# --------------------------------------------------------------------------- v2: phone form and detail


def _a_patient(db: Database, panel: str, *, bone: bool, besides: tuple[str, ...] = ()) -> str:
    """A patient of the panel (not myeloma) with no open report and no treatment since 1 Sep 2026: no
    dose given since, and no course of a drug taken continuously running since (so nothing but what a
    test gives them bears on their triage)."""
    from dashboard.rules import drug_name_sql, normalise_drug_name

    rules = load_rules(ROOT / "rules")
    continuous = sorted({normalise_drug_name(n) for d in rules.drugs if d.continuous for n in (d.name, *d.synonyms)})
    return db.scalar(
        "SELECT min(patient_id) FROM patients p WHERE panel_id = ? AND bone_metastases = ?"
        " AND cancer_type <> 'myeloma' AND patient_id NOT IN (SELECT unnest(?::VARCHAR[]))"
        " AND NOT EXISTS (SELECT 1 FROM administrations a WHERE a.patient_id = p.patient_id"
        "                 AND (a.given_at >= TIMESTAMP '2026-09-01' OR (coalesce(a.stopped_at, TIMESTAMP '2100-01-01')"
        f"                      >= TIMESTAMP '2026-09-01' AND {drug_name_sql('a.drug')}"
        "                      IN (SELECT unnest(?::VARCHAR[])))))"
        " AND NOT EXISTS (SELECT 1 FROM open_reports o WHERE o.patient_id = p.patient_id)",
        [panel, bone, list(besides), continuous])


def _give(db: Database, patient: str, drug: str, given_at: str, stopped_at: str | None = None) -> None:
    write(db, "INSERT INTO administrations (administration_id, patient_id, drug, given_at, stopped_at)"
            " SELECT coalesce(max(administration_id), 0) + 1, ?, ?, ?, ? FROM administrations",
            [patient, drug, given_at, stopped_at])


def test_the_phone_form_asks_the_new_questions_and_shows_the_record(app_db):
    panel = nurse_panel(app_db)
    patient = _a_patient(app_db, panel, bone=True)
    assert patient, "the sample has a patient with bone metastases in the nurse's panel"
    write(app_db, "UPDATE patients SET low_platelets = TRUE WHERE patient_id = ?", [patient])
    _give(app_db, patient, "apixaban", "2026-10-01 08:00")
    _give(app_db, patient, "letrozole", "2025-01-10 08:00", "2026-11-01 08:00")
    at = open_app(NURSE)
    at.text_input(key="new_report_search").input(patient).run()
    at.selectbox(key="nr_patient").set_value(patient).run()
    record = "\n".join(i.value for i in at.info)
    assert plain("Anticoagulant: apixaban from 1 Oct, running") in record
    assert plain("Low platelets: yes") in record
    assert plain("letrozole from 10 Jan 2025, stopped 1 Nov") in record
    # The questions in the words a nurse says on the phone; every red flag is answered yes, no or
    # could not ask.
    k = f"nr_{patient}"
    assert at.radio(key=f"{k}_pain_pattern").label.startswith("**Is this your usual pain, or new or different?**")
    assert at.radio(key=f"{k}_saddle_numbness").label == "Any numbness in your bottom or genitals?"
    assert at.radio(key=f"{k}_confusion_or_drowsiness").label == "Any new confusion, or are you unusually drowsy?"
    assert "thirsty" in at.radio(key=f"{k}_thirst_or_polyuria").label
    # Unanswered, the questions stop the report, named as the form asks them: nothing is stored.
    before = app_db.scalar("SELECT count(*) FROM reports")
    last = app_db.scalar("SELECT max(report_id) FROM reports")
    at.segmented_control(key=f"{k}_pain").set_value(8)
    at.form_submit_button(key=f"{k}_submit").click().run()
    body = texts(at)
    assert "Is this your usual pain, or new or different?" in body and "Did it come on suddenly, or gradually?" in body
    assert "Any numbness in your bottom or genitals?" in body
    assert app_db.scalar("SELECT count(*) FROM reports") == before
    at.radio(key=f"{k}_pain_pattern").set_value("changed")
    at.radio(key=f"{k}_onset").set_value("sudden")
    yes = ("saddle_numbness", "confusion_or_drowsiness", "thirst_or_polyuria")
    for radio in at.radio:
        if radio.key.startswith(f"{k}_") and radio.key not in (f"{k}_pain_pattern", f"{k}_onset"):
            radio.set_value("yes" if radio.key.removeprefix(f"{k}_") in yes else "no")
    at.form_submit_button(key=f"{k}_submit").click().run()
    assert not at.exception, [e.message for e in at.exception]
    new = app_db.query("SELECT r.*, t.tier, t.rule_ids, t.leading_causes FROM reports r JOIN triage_results t"
                       " USING (report_id) WHERE r.report_id > ?", [last])
    assert len(new) == 1 and new["patient_id"][0] == patient and new["source"][0] == "phone"
    row = new.iloc[0]
    assert (row["pain_pattern"], row["onset"], row["pain_score"]) == ("changed", "sudden", 8)
    assert row["saddle_numbness"] and row["confusion_or_drowsiness"] and row["thirst_or_polyuria"]
    assert not row["leg_numbness"]
    # Saddle numbness is E1; anticoagulated with sudden severe pain is E4; changed pain in bone
    # metastases is U3; thirst and confusion in bone metastases is U7.
    assert row["tier"] == "emergency"
    assert {"E1", "E4", "U2", "U3", "U7"} <= set(row["rule_ids"])
    assert set(row["leading_causes"]) == {"mscc", "spinal_haematoma"}
    # The detail opens on the new report and says so in words.
    body = texts(at)
    assert f"report **{plain(row['report_id'])}**" in body
    assert plain("numbness in the bottom or genitals (saddle)") in body and "new confusion or drowsiness" in body
    assert "changed pain" in body


def test_the_detail_shows_causes_drug_effects_and_recent_sact_in_words(app_db, rules):
    from dashboard.access import Role, User
    from dashboard.workflow import submit_report
    from tests.conftest import SEED_NOW

    panel = nurse_panel(app_db)
    nurse = User(actor=NURSE, name="Test Nurse", role=Role.NURSE, panels=(panel,))
    patient = _a_patient(app_db, panel, bone=False)
    _give(app_db, patient, "docetaxel", "2026-11-10 10:00")
    _give(app_db, patient, "pegfilgrastim", "2026-11-18 10:00")
    # Moderate pain that began the day after pegfilgrastim, lasting a day: explained (R2).
    explained = submit_report(app_db, rules, nurse, SEED_NOW, patient_id=patient, report={
        "reported_at": "2026-11-20T09:30:00", "pain_score": 5, "duration_days": 1, "onset": "gradual",
        "trend": "stable", "location": "lumbar", "pain_pattern": "new"})
    at = open_app(NURSE)
    at.session_state["selected_report"] = explained.report_id
    at.run()
    assert not at.exception
    body = texts(at)
    assert explained.tier == "routine" and explained.rule_ids == ["R2"]
    assert "**Leading:** G-CSF bone pain" in body
    # Lines that name stored drugs are escaped for Markdown: they show as the characters stored.
    assert plain("G-CSF bone pain explained: pegfilgrastim given 18 Nov 10:00, onset day 1 of 0-4") in body
    assert f"**{plain('Recent SACT')}:**{plain(' yes, because docetaxel 10 Nov (SACT), pegfilgrastim 18 Nov (G-CSF)')}" in body
    assert "Paracetamol can ease this bone pain." in body
    assert "**within 3 days** · An NSAID (naproxen)" in body  # each line with its time in words
    # Another patient, the onset not known: the effect is only possible, and nothing is explained away.
    other = _a_patient(app_db, panel, bone=False, besides=(patient,))
    _give(app_db, other, "pegfilgrastim", "2026-11-18 10:00")
    possible = submit_report(app_db, rules, nurse, SEED_NOW, patient_id=other, report={
        "reported_at": "2026-11-20T09:30:00", "pain_score": 5, "onset": "gradual", "trend": "stable",
        "location": "lumbar", "pain_pattern": "new"})
    at.session_state["selected_report"] = possible.report_id
    at.run()
    body = texts(at)
    assert possible.tier == "soon" and "S1" in possible.rule_ids
    assert plain("G-CSF bone pain possible: pegfilgrastim given 18 Nov 10:00, onset unknown (the report is on day 2 of 0-4)") in body
    assert "**Also considered:** G-CSF bone pain" in body
    assert f"**{plain('Recent SACT')}:**{plain(' yes, because pegfilgrastim 18 Nov (G-CSF)')}" in body
    # No SACT at all: said so, with the 42 days.
    none = submit_report(app_db, rules, nurse, SEED_NOW, patient_id=_a_patient(app_db, panel, bone=False), report={
        "reported_at": "2026-11-20T09:30:00", "pain_score": 2, "onset": "gradual", "pain_pattern": "usual"})
    at.session_state["selected_report"] = none.report_id
    at.run()
    assert f"**{plain('Recent SACT')}:**{plain(' no, no SACT in the 42 days before the report')}" in texts(at)


def test_the_referral_summary_uses_the_same_composition_as_the_detail(app_db, rules):
    from dashboard.access import Role, User
    from dashboard.workflow import submit_report
    from tests.conftest import SEED_NOW

    panel = nurse_panel(app_db)
    nurse = User(actor=NURSE, name="Test Nurse", role=Role.NURSE, panels=(panel,))
    done = submit_report(app_db, rules, nurse, SEED_NOW, patient_id=_a_patient(app_db, panel, bone=False), report={
        "reported_at": "2026-11-20T09:30:00", "pain_score": 6, "leg_weakness": True, "location": "thoracic",
        "onset": "gradual", "pain_pattern": "new"})
    assert {"E1", "U1"} <= set(done.rule_ids)
    at = open_app(NURSE, "guidance")
    at.text_input(key="summary_report").input(done.report_id).run()
    summary = next(c.value for c in at.code)
    assert "- Leading causes: Suspected spinal cord or cauda equina compression" in summary
    assert "- Also considered: Pain suggestive of spinal metastases" in summary
    mri = [line for line in summary.splitlines() if line.startswith("- Imaging") and "Whole-spine MRI" in line]
    assert mri == ["- Imaging, within 24 hours · Whole-spine MRI as soon as possible, always within 24 hours"]
    assert "within 1 week" not in summary.split("REQUESTED\n")[1].split("NURSING NOTES")[0]


# --------------------------------------------------------------------------- v2: impact of changed rules


def _changed_rules(tmp_path, monkeypatch):
    folder = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", folder)
    monkeypatch.setenv("BACKLINE_RULES_DIR", str(folder))
    get_settings.cache_clear()
    return folder


def _severe_from(folder, score: int) -> None:
    path = folder / "triage_rules.yaml"
    text = path.read_text()
    old = "  severe_pain_score:\n    value: 7"
    assert old in text
    path.write_text(text.replace(old, f"  severe_pain_score:\n    value: {score}"))


def _store(db: Database) -> tuple:
    return (db.rows("SELECT report_id, tier, rule_ids, rules_version, triaged_at FROM triage_results ORDER BY 1"),
            db.scalar("SELECT count(*) FROM events"))


def test_the_rules_page_previews_the_impact_then_applies_exactly_that(app_db, tmp_path, monkeypatch):
    from dashboard.retriage import preview_changes
    from dashboard.rules import load_rules

    folder = _changed_rules(tmp_path, monkeypatch)
    try:
        at = open_app(ADMIN, "rules")
        old_version = load_rules(folder).version
        assert "preview_rules" in {b.key for b in at.button} and "confirm_reload" not in {b.key for b in at.button}
        # The reload lives on its own tab, apart from the what-if's Triage button.
        assert [t.label for t in at.tabs][-1] == "Changed rules (admin)"
        assert "submit_what_if" not in {b.key for b in at.tabs[-1].button}
        assert "preview_rules" not in {b.key for b in at.tabs[3].button}
        _severe_from(folder, 6)  # a service makes pain 6 "severe"
        changed = load_rules(folder)
        with app_db.connect() as con:
            expected = preview_changes(con, changed)
        assert len(expected) > 0
        before = _store(app_db)
        at.button(key="preview_rules").click().run()
        assert not at.exception
        body = texts(at)
        total = app_db.scalar("SELECT count(*) FROM open_reports")
        assert f"**{len(expected)} of {total} open reports would move tier.**" in body
        for (b, a), n in expected.groupby(["tier_before", "tier_after"]).size().items():
            assert f"{b} → {a}: {n} report" in body
        table = at.tabs[-1].dataframe[0].value
        assert set(table["Report"]) == set(expected["report_id"])
        assert set(table["Tier after"]) == {"urgent"}
        # Nothing written by the preview. The changed files are in force from the next run on (every
        # process reads the same folder), and every open report says its tier came from older rules.
        assert _store(app_db) == before
        assert old_version != changed.version
        assert f"Version **{changed.version}**" in body and f"version {changed.version}" in body
        assert (f"**{total:,} open reports carry a tier from other rules than those in force ({changed.version}).**"
                in body)
        at.button(key="confirm_reload").click().run()
        assert not at.exception
        after = dict((r[0], r[1]) for r in app_db.rows("SELECT report_id, tier FROM triage_results"))
        for r in expected.itertuples():
            assert after[r.report_id] == r.tier_after
        history = app_db.rows("SELECT report_id, tier_before, tier_after, actor, rules_version FROM events"
                              " WHERE action = 'retriaged' ORDER BY report_id")
        assert history == [(r.report_id, r.tier_before, r.tier_after, "system", changed.version)
                           for r in expected.sort_values("report_id").itertuples()]
        assert app_db.scalar("SELECT count(DISTINCT rules_version) FROM triage_results") == 1
        assert app_db.scalar("SELECT min(rules_version) FROM triage_results") == changed.version
        body = texts(at)
        assert f"{len(expected)} open reports changed tier, as previewed" in body and "re-triaged" in body
        assert f"Version **{changed.version}**" in body  # the page runs on them
        assert "carry a tier from other rules" not in body  # and no stored report is left behind
    finally:
        monkeypatch.delenv("BACKLINE_RULES_DIR")
        get_settings.cache_clear()


def test_a_change_of_the_rules_files_is_noticed_by_a_running_app_and_each_older_triage_says_so(
        app_db, tmp_path, monkeypatch):
    """Another process (an edit, a deployment, `backline retriage` elsewhere) changes the files: the
    running session puts the new rules in force at its next run, the queue says how many open reports
    carry a tier from older rules, and a report's detail says which rules triaged it."""
    from dashboard.rules import load_rules

    folder = _changed_rules(tmp_path, monkeypatch)
    try:
        rid = an_open_report(app_db, nurse_panel(app_db))
        at = open_app(NURSE)
        before = load_rules(folder).version
        assert f"Rules {before}" in texts(at) and "carry a tier from other rules" not in texts(at)
        _severe_from(folder, 6)
        changed = load_rules(folder).version
        at.run()  # the next refresh of the same session
        assert not at.exception
        body = texts(at)
        assert f"Rules {changed}" in body and f"Rules {before}" not in body
        open_now = app_db.scalar("SELECT count(*) FROM open_reports")
        assert f"**{open_now:,} open reports carry a tier from other rules than those in force ({changed}).**" in body
        at.session_state["selected_report"] = rid
        at.run()
        assert f"Triaged under rules {before}; the rules in force are {changed}." in texts(at)
    finally:
        monkeypatch.delenv("BACKLINE_RULES_DIR")
        get_settings.cache_clear()


def test_rules_changed_after_the_preview_are_not_applied(app_db, tmp_path, monkeypatch):
    folder = _changed_rules(tmp_path, monkeypatch)
    try:
        at = open_app(ADMIN, "rules")
        _severe_from(folder, 6)
        at.button(key="preview_rules").click().run()
        before = _store(app_db)
        path = folder / "triage_rules.yaml"
        path.write_text(path.read_text().replace("  severe_pain_score:\n    value: 6", "  severe_pain_score:\n    value: 5"))
        at.button(key="confirm_reload").click().run()
        assert not at.exception
        assert "Not applied" in texts(at) and "not the previewed" in texts(at)
        assert _store(app_db) == before
        # Broken rules: the preview says which file and field, and writes nothing.
        path.write_text(path.read_text().replace("any: [leg_weakness,", "any: [leg_weaknes,"))
        at.button(key="preview_rules").click().run()
        assert "triage_rules.yaml: rules[0].when.any[0]" in texts(at)
        assert "confirm_reload" not in {b.key for b in at.button}
        assert _store(app_db) == before
    finally:
        monkeypatch.delenv("BACKLINE_RULES_DIR")
        get_settings.cache_clear()


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
    write(app_db, "DELETE FROM meta WHERE key = 'synthetic'")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert "Demo mode refused" in texts(at)
    assert not at.dataframe
