"""Panels are an access boundary for nurses: a nurse sees and acts on the reports of their own panels
only, and a report id of another panel, typed into a page, shows nothing. In demo mode the person
chosen survives a reload (it is in the address), and a role that may not see the page it is on is
moved to one it may see."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.access import Role, User, may_see_panel, visible_panels
from dashboard.models import InputError
from dashboard.workflow import act
from tests.conftest import SEED_NOW
from tests.test_pages import APP, LEAD, NURSE, PHYSICIAN, app_db, nurse_panel, open_app, texts  # noqa: F401

PANELS = ["BRE-A", "BRE-B", "COL-A", "LUN-A"]


def test_nurses_see_their_panels_and_the_service_sees_all():
    nurse = User(actor="N1", name="N", role=Role.NURSE, panels=("COL-A", "ZZZ"))
    assert visible_panels(nurse, PANELS) == ["COL-A"]
    assert visible_panels(User(actor="N2", name="N", role=Role.NURSE), PANELS) == []
    for role in (Role.PHYSICIAN, Role.LEAD):
        assert visible_panels(User(actor="X", name="X", role=role), PANELS) == PANELS
    assert visible_panels(User(actor="A", name="A", role=Role.ADMIN), PANELS) == []
    assert visible_panels(User(actor="U", name="U", role=None), PANELS) == []
    assert may_see_panel(nurse, "COL-A") and not may_see_panel(nurse, "BRE-A") and not may_see_panel(nurse, None)


def open_report_outside(db, panel: str) -> str:
    return db.scalar("SELECT min(report_id) FROM open_reports WHERE panel_id <> ?", [panel])


def test_a_nurse_cannot_act_on_a_report_of_another_panel(fresh_db):
    panel = fresh_db.scalar("SELECT min(panel_id) FROM open_reports")
    nurse = User(actor="N9001", name="Anne Test", role=Role.NURSE, panels=(panel,))
    own = fresh_db.scalar("SELECT min(report_id) FROM open_reports WHERE panel_id = ?", [panel])
    other = open_report_outside(fresh_db, panel)
    before = fresh_db.scalar("SELECT count(*) FROM events")
    for ids in ([other], [own, other]):
        with pytest.raises(InputError) as caught:
            act(fresh_db, nurse, SEED_NOW, action="acknowledge", report_ids=ids)
        assert caught.value.problems == [("report_ids", f"report {other} is not in your panels")]
    assert fresh_db.scalar("SELECT count(*) FROM events") == before  # nothing of the refused group was kept
    # A nurse without panels acts on nothing; the same nurse acts on their own panel's report.
    with pytest.raises(InputError):
        act(fresh_db, User(actor="N9002", name="No Panel", role=Role.NURSE), SEED_NOW, action="acknowledge",
            report_ids=[own])
    assert act(fresh_db, nurse, SEED_NOW, action="acknowledge", report_ids=[own]).recorded == [own]
    # A physician belongs to the service: any panel.
    doctor = User(actor="P9001", name="Dr Test", role=Role.PHYSICIAN)
    assert act(fresh_db, doctor, SEED_NOW, action="acknowledge", report_ids=[other]).recorded == [other]


def test_a_nurse_cannot_enter_a_report_for_a_patient_of_another_panel(fresh_db, rules):
    from dashboard.workflow import submit_report

    panel = fresh_db.scalar("SELECT min(panel_id) FROM patients")
    nurse = User(actor="N9001", name="Anne Test", role=Role.NURSE, panels=(panel,))
    other = fresh_db.scalar("SELECT min(patient_id) FROM patients WHERE panel_id <> ?", [panel])
    own = fresh_db.scalar("SELECT min(patient_id) FROM patients WHERE panel_id = ?", [panel])
    before = fresh_db.scalar("SELECT count(*) FROM reports")
    report = {"reported_at": SEED_NOW, "pain_score": 4}
    with pytest.raises(InputError) as caught:
        submit_report(fresh_db, rules, nurse, SEED_NOW, patient_id=other, report=report)
    assert caught.value.problems == [("patient_id", f"patient {other} is not in your panels")]
    assert fresh_db.scalar("SELECT count(*) FROM reports") == before
    assert submit_report(fresh_db, rules, nurse, SEED_NOW, patient_id=own, report=report).report_id


def test_the_panel_picker_offers_a_nurse_their_own_panels_only(app_db):
    panel = nurse_panel(app_db)
    at = open_app(NURSE)
    picker = at.multiselect(key="queue_panels")
    assert picker.value == [panel]
    assert len(picker.options) == 1
    shown = set(at.dataframe[0].value["Report"])
    assert shown and shown <= {r[0] for r in app_db.rows("SELECT report_id FROM open_reports WHERE panel_id = ?",
                                                          [panel])}
    every = app_db.scalar("SELECT count(*) FROM panels")
    assert len(open_app(PHYSICIAN).multiselect(key="queue_panels").options) == every
    assert len(open_app(LEAD, "response_times").multiselect(key="metrics_panels").options) == every


def test_a_report_of_another_panel_typed_into_a_page_shows_nothing(app_db):
    other = open_report_outside(app_db, nurse_panel(app_db))
    name = app_db.scalar("SELECT p.name FROM reports r JOIN patients p USING (patient_id) WHERE report_id = ?", [other])
    # The referral summary.
    at = open_app(NURSE, "guidance")
    at.text_input(key="summary_report").input(other).run()
    assert "No such report." in texts(at) and not at.code and not at.download_button
    assert name not in texts(at)
    physician = open_app(PHYSICIAN, "guidance")
    physician.text_input(key="summary_report").input(other).run()
    assert name in next(c.value for c in physician.code)
    # The queue's detail, opened by id.
    at = open_app(NURSE)
    at.session_state["selected_report"] = other
    at.run()
    assert name not in texts(at) and not any(b.key and b.key.endswith(other) for b in at.button)


def test_the_chosen_person_survives_a_reload_and_is_shown(app_db):
    name = app_db.scalar("SELECT name FROM staff WHERE staff_id = ?", [PHYSICIAN])
    at = open_app(PHYSICIAN)
    assert at.query_params.get("as") == PHYSICIAN
    # A reload is a new session: nothing in session state, the address as it was.
    reloaded = AppTest.from_file(APP, default_timeout=60)
    reloaded.query_params["as"] = PHYSICIAN
    reloaded.run()
    assert not reloaded.exception
    assert f"Acting as **{name}** (physician)" in [i.value for i in reloaded.sidebar.info][0]
    assert reloaded.selectbox(key="demo_actor_choice").value == PHYSICIAN
    # Switching person updates the address; an unknown id in it falls back to the first nurse.
    reloaded.selectbox(key="demo_actor_choice").set_value(LEAD).run()
    assert reloaded.query_params.get("as") == LEAD
    stranger = AppTest.from_file(APP, default_timeout=60)
    stranger.query_params["as"] = "X-NOBODY"
    stranger.run()
    first = app_db.scalar("SELECT staff_id FROM staff WHERE role = 'nurse' ORDER BY role, panel_id, name LIMIT 1")
    assert stranger.query_params.get("as") == first


def test_switching_to_a_role_that_may_not_see_the_page_moves_to_one_it_may(app_db):
    at = open_app(PHYSICIAN, "patient_timeline")
    assert [t.value for t in at.title] == ["Patient timeline"]
    at.selectbox(key="demo_actor_choice").set_value(NURSE).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Triage queue"]
    assert "not available to the" not in texts(at)
    # A switch to a role that may see the page stays on it.
    at.switch_page("pages/guidance.py").run()
    at.selectbox(key="demo_actor_choice").set_value(LEAD).run()
    assert [t.value for t in at.title] == ["Guidance"]
