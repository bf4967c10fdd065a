"""The triage queue page through AppTest: what a nurse sees, and that every action lands on the
report she has open, with nothing recorded that nobody entered."""

from __future__ import annotations

from datetime import timedelta

from dashboard.access import Role, User
from dashboard.ui import plain
from dashboard.workflow import act, submit_report
from tests.conftest import SEED_NOW, both_stores, write
from tests.test_pages import (LEAD, NURSE, PHYSICIAN, an_open_report, app_db, nurse_panel,  # noqa: F401
                              open_app, texts)

pytestmark = both_stores


def patient_with_two_open_reports(db, panel: str) -> tuple[str, str]:
    """A patient of the panel with two open reports (a second one entered by phone when needed)."""
    pid = db.scalar("SELECT min(patient_id) FROM patients p WHERE panel_id = ? AND NOT EXISTS "
                    "(SELECT 1 FROM open_reports o WHERE o.patient_id = p.patient_id)", [panel])
    nurse = User(actor=NURSE, name="Test Nurse", role=Role.NURSE, panels=(panel,))
    from dashboard.rules import load_rules
    from tests.conftest import ROOT

    rules = load_rules(ROOT / "rules")
    ids = [submit_report(db, rules, nurse, SEED_NOW, patient_id=pid, report={
        "reported_at": SEED_NOW - timedelta(hours=h), "pain_score": 3, "onset": "gradual",
        "pain_pattern": "usual"}).report_id for h in (1, 2)]
    return pid, ids[0]


def open_on(at, rid: str):
    at.session_state["selected_report"] = rid
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_the_queue_lists_the_nurses_panel_needing_action_first_then_by_tier(app_db):
    at = open_app(NURSE)
    table = at.dataframe[0].value
    panel = nurse_panel(app_db)
    open_ids = {r[0] for r in app_db.rows("SELECT report_id FROM open_reports WHERE panel_id = ?", [panel])}
    assert set(table["Report"]) <= open_ids and len(table) > 0
    answered = [c.startswith("answered") for c in table["Clock"]]
    assert answered == sorted(answered)  # everything needing action before everything answered
    order = ["EMERGENCY", "URGENT", "SOON", "ROUTINE"]
    for part in (table[[not a for a in answered]], table[answered]):
        assert list(part["Tier"]) == sorted(part["Tier"], key=order.index)
    assert {"Clock", "Patient", "Pain", "Red flags", "Suspected", "Taken by", "Repeats"} <= set(table.columns)


def test_the_queue_groups_repeat_reports_of_a_patient(app_db):
    panel = nurse_panel(app_db)
    table = open_app(NURSE).dataframe[0].value
    per_patient = dict(app_db.rows("SELECT patient_id, count(*) FROM open_reports WHERE panel_id = ? GROUP BY 1",
                                   [panel]))
    assert len(table) == len(per_patient)
    assert sorted(int(x[1:]) for x in table["Repeats"] if x) == sorted(n - 1 for n in per_patient.values() if n > 1)


def test_the_detail_shows_why_what_to_do_and_how_to_reach_the_patient(app_db):
    rid = an_open_report(app_db, nurse_panel(app_db))
    pid = app_db.scalar("SELECT patient_id FROM reports WHERE report_id = ?", [rid])
    write(app_db, "INSERT INTO patient_contacts VALUES (?, '01632 960 123')", [pid])
    at = open_on(open_app(NURSE), rid)
    body = texts(at)
    assert f"report **{plain(rid)}**" in body
    rule = app_db.scalar("SELECT rule_ids[1] FROM triage_results WHERE report_id = ?", [rid])
    assert any(e.label.startswith(f"{rule} ·") for e in at.expander)
    assert "Call us at once" in body and "Imaging:" in body
    assert "01632 960 123" in body and "**Age:**" in body


def test_an_action_applies_to_the_open_report_unless_the_group_is_chosen(app_db):
    pid, rid = patient_with_two_open_reports(app_db, nurse_panel(app_db))
    others = [r[0] for r in app_db.rows("SELECT report_id FROM open_reports WHERE patient_id = ? AND report_id <> ?",
                                        [pid, rid])]
    at = open_on(open_app(NURSE), rid)
    assert "other open reports" in texts(at)
    at.button(key=f"ack_{rid}").click().run()
    group = [rid, *others]
    acked = {r[0] for r in app_db.rows("SELECT report_id FROM events WHERE action = 'acknowledge' AND report_id IN "
                                       "(SELECT unnest(?))", [group])}
    assert acked == {rid}
    # The explicit control applies the next action to the whole group.
    at.checkbox(key=f"group_{rid}").check().run()
    at.radio(key=f"cb_reached_{rid}").set_value(True)
    at.form_submit_button(key=f"submit_call_back_{rid}").click().run()
    called = {r[0] for r in app_db.rows("SELECT report_id FROM events WHERE action = 'call_back' AND report_id IN "
                                        "(SELECT unnest(?))", [group])}
    assert called == set(group)


def test_no_outcome_is_recorded_that_nobody_chose(app_db):
    rid = an_open_report(app_db, nurse_panel(app_db), unanswered=True)
    at = open_on(open_app(NURSE), rid)
    assert at.radio(key=f"cb_reached_{rid}").value is None
    assert at.selectbox(key=f"res_outcome_{rid}").value is None
    assert at.selectbox(key=f"esc_to_{rid}").value is None
    at.form_submit_button(key=f"submit_call_back_{rid}").click().run()
    at.form_submit_button(key=f"submit_resolve_{rid}").click().run()
    assert "Outcome" in texts(at) and "choose an outcome" in texts(at)
    assert app_db.scalar("SELECT count(*) FROM events WHERE report_id = ?", [rid]) == 0
    at.selectbox(key=f"res_outcome_{rid}").set_value("analgesia_adjusted")
    at.form_submit_button(key=f"submit_resolve_{rid}").click().run()
    assert app_db.scalar("SELECT outcome FROM events WHERE report_id = ? AND action = 'resolve'",
                         [rid]) == "analgesia_adjusted"
    assert rid not in set(at.dataframe[0].value["Report"])


def test_the_phone_form_submits_only_when_every_question_is_answered(app_db):
    at = open_app(NURSE)
    patient = app_db.query("SELECT name, patient_id FROM patients WHERE panel_id = ? ORDER BY patient_id LIMIT 1",
                           [nurse_panel(app_db)]).iloc[0]
    pid = patient["patient_id"]
    at.text_input(key="new_report_search").input(patient["name"]).run()
    at.selectbox(key="nr_patient").set_value(pid).run()
    k = f"nr_{pid}"
    assert at.radio(key=f"{k}_leg_weakness").value is None  # no answer is chosen for the nurse
    assert at.segmented_control(key=f"{k}_pain").value is None
    at.form_submit_button(key=f"{k}_submit").click().run()
    body = texts(at)
    assert plain("Pain score (0-10)") in body and "Any new weakness in your legs?" in body
    assert app_db.scalar("SELECT count(*) FROM reports WHERE source = 'phone' AND entered_by = ?", [NURSE]) == 0
    for radio in at.radio:
        if radio.key.startswith(f"{k}_") and radio.key not in (f"{k}_pain_pattern", f"{k}_onset"):
            radio.set_value("unasked" if radio.key == f"{k}_leg_weakness" else "no")
    at.radio(key=f"{k}_pain_pattern").set_value("new")
    at.radio(key=f"{k}_onset").set_value("gradual")
    at.segmented_control(key=f"{k}_pain").set_value(6)
    at.form_submit_button(key=f"{k}_submit").click().run()
    assert not at.exception, [e.message for e in at.exception]
    new = app_db.query("SELECT r.report_id, r.pain_score, r.leg_weakness, t.tier, t.rule_ids FROM reports r "
                       "JOIN triage_results t USING (report_id) WHERE r.source = 'phone' AND r.entered_by = ?", [NURSE])
    assert len(new) == 1 and new["pain_score"][0] == 6 and bool(new["leg_weakness"][0])
    assert new["tier"][0] == "emergency" and "E1" in list(new["rule_ids"][0])
    rid = new["report_id"][0]
    assert app_db.rows("SELECT field FROM report_unasked WHERE report_id = ?", [rid]) == [("leg_weakness",)]
    assert any(b.key == f"open_{rid}" for b in at.button)  # the emergency banner
    assert "Could not ask" in texts(at)  # the new report opens, saying what was not asked
    # The form is cleared after the report is added: the next call starts with nothing answered.
    at.text_input(key="new_report_search").input(patient["name"]).run()
    at.selectbox(key="nr_patient").set_value(pid).run()
    assert at.radio(key=f"{k}_leg_weakness").value is None and at.segmented_control(key=f"{k}_pain").value is None


def test_an_override_needs_a_reason_named_as_the_form_labels_it(app_db):
    rid = an_open_report(app_db, nurse_panel(app_db), unanswered=True)
    new_tier = "urgent" if app_db.scalar("SELECT tier FROM current_tiers WHERE report_id = ?", [rid]) == "emergency" \
        else "emergency"
    nurse = open_on(open_app(NURSE), rid)
    assert f"submit_override_{rid}" not in {b.key for b in nurse.form_submit_button}
    doctor = open_app(PHYSICIAN)
    doctor.session_state["queue_panels"] = [nurse_panel(app_db)]
    open_on(doctor, rid)
    assert doctor.selectbox(key=f"ov_tier_{rid}").value is None
    doctor.selectbox(key=f"ov_tier_{rid}").set_value(new_tier)
    doctor.form_submit_button(key=f"submit_override_{rid}").click().run()
    errors = " ".join(e.value for e in doctor.error)
    assert "**Reason \\(required\\)**" in errors and "report_ids" not in errors and "{" not in errors
    assert app_db.scalar("SELECT count(*) FROM events WHERE report_id = ? AND action = 'override'", [rid]) == 0
    doctor.text_area(key=f"ov_note_{rid}").input("Sounds unwell on the phone; wants to be seen.")
    doctor.form_submit_button(key=f"submit_override_{rid}").click().run()
    row = app_db.rows("SELECT tier_after, role, note FROM events WHERE report_id = ? AND action = 'override'", [rid])
    assert row == [(new_tier, "physician", "Sounds unwell on the phone; wants to be seen.")]


def test_a_lead_reads_the_queue_but_cannot_act(app_db):
    rid = an_open_report(app_db, nurse_panel(app_db))
    at = open_app(LEAD)
    at.session_state["queue_panels"] = [nurse_panel(app_db)]
    open_on(at, rid)
    assert len(at.dataframe) >= 1 and "Read-only" in texts(at)
    assert f"ack_{rid}" not in {b.key for b in at.button}


def test_a_half_typed_note_stays_with_its_report(app_db):
    panel = nurse_panel(app_db)
    first = an_open_report(app_db, panel)
    other = app_db.scalar("SELECT min(report_id) FROM open_reports WHERE panel_id = ? AND report_id <> ?",
                          [panel, first])
    at = open_on(open_app(NURSE), first)
    at.text_area(key=f"cb_note_{first}").input("Meant for the first patient only")
    at.radio(key=f"cb_reached_{first}").set_value(False).run()
    at.session_state["selected_report"] = other
    at.run()
    assert at.text_area(key=f"cb_note_{other}").value == ""
    assert at.radio(key=f"cb_reached_{other}").value is None
    assert "Meant for the first patient only" not in [t.value for t in at.text_area]


def test_notes_show_as_plain_text_in_the_history(app_db):
    panel = nurse_panel(app_db)
    rid = an_open_report(app_db, panel)
    nurse = User(actor=NURSE, name="Test Nurse", role=Role.NURSE, panels=(panel,))
    hostile = "![x](https://example.invalid/track.png) **bold** :red[alarm] <img src=x onerror=alert(1)>"
    act(app_db, nurse, SEED_NOW, action="note", report_ids=[rid], note=f"Line one\n{hostile}")
    at = open_on(open_app(NURSE), rid)
    history = at.dataframe[-1].value
    assert f"Line one\n{hostile}" in list(history["Note"])
    assert not any("example.invalid" in m.value for m in at.markdown)


def test_the_physicians_banner_covers_every_panel(app_db):
    panel = nurse_panel(app_db)
    other = app_db.scalar("SELECT min(panel_id) FROM panels WHERE panel_id <> ?", [panel])
    nurse = User(actor=NURSE, name="Test Nurse", role=Role.NURSE, panels=(panel,))
    pid = app_db.scalar("SELECT min(patient_id) FROM patients WHERE panel_id = ?", [panel])
    from dashboard.rules import load_rules
    from tests.conftest import ROOT

    rid = submit_report(app_db, load_rules(ROOT / "rules"), nurse, SEED_NOW, patient_id=pid, report={
        "reported_at": SEED_NOW, "pain_score": 5, "leg_weakness": True}).report_id
    doctor = open_app(PHYSICIAN)
    doctor.session_state["queue_panels"] = [other]
    doctor.run()
    assert f"open_{rid}" in {b.key for b in doctor.button}
    doctor.button(key=f"open_{rid}").click().run()
    assert f"report **{plain(rid)}**" in texts(doctor)


def test_a_nurse_cannot_open_a_report_of_another_panel(app_db):
    panel = nurse_panel(app_db)
    foreign = app_db.scalar("SELECT min(report_id) FROM open_reports WHERE panel_id <> ?", [panel])
    at = open_on(open_app(NURSE), foreign)
    assert f"report **{plain(foreign)}**" not in texts(at)
    assert not [b for b in at.button if b.key.endswith(foreign)]


def test_grouped_repeats_each_show_their_own_answers(app_db):
    """A patient's other open reports are listed with their own pain, red flags and clock, not the
    head's: a worse repeat is seen, and opened with one choice."""
    from dashboard.rules import load_rules
    from tests.conftest import ROOT

    panel = nurse_panel(app_db)
    pid = app_db.scalar("SELECT min(patient_id) FROM patients p WHERE panel_id = ? AND NOT EXISTS "
                        "(SELECT 1 FROM open_reports o WHERE o.patient_id = p.patient_id)", [panel])
    nurse = User(actor=NURSE, name="Test Nurse", role=Role.NURSE, panels=(panel,))
    rules = load_rules(ROOT / "rules")
    first = submit_report(app_db, rules, nurse, SEED_NOW - timedelta(hours=2), patient_id=pid, report={
        "reported_at": SEED_NOW - timedelta(hours=2), "pain_score": 3, "onset": "gradual",
        "pain_pattern": "usual"}).report_id
    worse = submit_report(app_db, rules, nurse, SEED_NOW, patient_id=pid, report={
        "reported_at": SEED_NOW - timedelta(minutes=30), "pain_score": 8, "onset": "sudden", "pain_pattern": "new",
        "leg_weakness": True}).report_id
    at = open_on(open_app(NURSE), first)
    tables = [d.value for d in at.dataframe if "Red flags" in d.value.columns and "Reported" in d.value.columns]
    assert len(tables) == 1, "the other open reports are listed"
    row = tables[0].set_index("Report").loc[worse]
    assert (row["Pain"], row["Tier"]) == ("8/10", "EMERGENCY")
    assert "leg weakness" in row["Red flags"]
    at.selectbox(key=f"open_member_{first}").set_value(worse).run()
    assert at.session_state["selected_report"] == worse


def test_a_nurse_takes_a_report_and_gives_it_back(app_db):
    panel = nurse_panel(app_db)
    rid = an_open_report(app_db, panel)
    at = open_on(open_app(NURSE), rid)
    name = app_db.scalar("SELECT name FROM staff WHERE staff_id = ?", [NURSE])
    at.button(key=f"take_{rid}").click().run()
    assert app_db.rows("SELECT actor, action FROM events WHERE report_id = ? AND action IN ('take', 'release')",
                       [rid]) == [(NURSE, "take")]
    assert f"**Taken by:** {plain(name)}" in texts(at)
    # "Taken by me" shows it, with the name in the queue for everyone.
    at.segmented_control(key="queue_filter").set_value("mine").run()
    table = at.dataframe[0].value
    assert rid in list(table["Report"]) and set(table["Taken by"]) == {name}
    at.button(key=f"release_{rid}").click().run()
    assert [a for (a,) in app_db.rows("SELECT action FROM events WHERE report_id = ? AND action IN ('take', "
                                      "'release') ORDER BY event_id", [rid])] == ["take", "release"]
    assert rid not in list(at.dataframe[0].value["Report"])  # no longer hers
    # Another nurse sees who took it.
    at.button(key=f"take_{rid}").click().run()
    other = app_db.scalar("SELECT min(staff_id) FROM staff WHERE role = 'nurse' AND panel_id = ? AND staff_id <> ?",
                          [panel, NURSE])
    colleague = open_on(open_app(other), rid)
    assert f"Taken by {plain(name)}" in texts(colleague)


def _in_order(node):
    """Every element of the page, in the order it is drawn."""
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _in_order(child)


def test_the_result_of_an_action_shows_where_the_nurse_clicked(app_db):
    rid = an_open_report(app_db, nurse_panel(app_db), unanswered=True)
    at = open_on(open_app(NURSE), rid)
    at.button(key=f"ack_{rid}").click().run()
    message = plain(f"Acknowledged: 1 report ({rid}).")
    assert [t.value for t in at.toast] == [message]
    # The same message sits in the actions section, below the queue and the detail, not at the top.
    order = [(getattr(e, "type", ""), str(getattr(e, "value", ""))) for e in _in_order(at.main)]
    where_act = order.index(("markdown", "#### Act on this report"))
    where_said = [i for i, (kind, value) in enumerate(order) if value == message and kind != "toast"]
    where_queue = next(i for i, (kind, _) in enumerate(order) if kind == "dataframe")
    assert where_said and all(i > where_act > where_queue for i in where_said), (where_said, where_act)


def test_the_phone_reports_note_is_in_its_history(app_db):
    from dashboard.rules import load_rules
    from tests.conftest import ROOT

    panel = nurse_panel(app_db)
    pid = app_db.scalar("SELECT min(patient_id) FROM patients p WHERE panel_id = ? AND NOT EXISTS "
                        "(SELECT 1 FROM open_reports o WHERE o.patient_id = p.patient_id)", [panel])
    nurse = User(actor=NURSE, name="Test Nurse", role=Role.NURSE, panels=(panel,))
    note = "Rang at 03:10.\nHer husband answered; she is in bed."
    rid = submit_report(app_db, load_rules(ROOT / "rules"), nurse, SEED_NOW, patient_id=pid, note=note, report={
        "reported_at": SEED_NOW, "pain_score": 4, "onset": "gradual", "pain_pattern": "usual"}).report_id
    at = open_on(open_app(NURSE), rid)
    history = at.dataframe[-1].value
    assert history.iloc[0]["What"] == "Reported by phone" and history.iloc[0]["Note"] == note
    assert [t.value for t in at.text] == [note]  # shown as typed in the detail too


def test_who_is_acting_is_shown_beside_every_action(app_db):
    """Every form and button that records an action says, beside it, who will be recorded."""
    rid = an_open_report(app_db, nurse_panel(app_db), unanswered=True)
    at = open_on(open_app(PHYSICIAN), rid)
    name = app_db.scalar("SELECT name FROM staff WHERE staff_id = ?", [PHYSICIAN])
    acting = f"Acting as **{plain(name)}** (physician)"
    order = [(getattr(e, "type", ""), str(getattr(e, "value", ""))) for e in _in_order(at.main)]
    captions = [i for i, (kind, value) in enumerate(order) if kind == "caption" and value == acting]
    # One beside the acknowledge and take buttons, and one in each of the five forms (physicians override).
    assert len(captions) == 6, order
    where_act = order.index(("markdown", "#### Act on this report"))
    assert all(i > where_act for i in captions)


def test_a_report_resolved_on_another_screen_is_no_longer_actionable_here(app_db):
    """The detail refreshes with the queue: once a colleague resolves the open report elsewhere, the
    next run shows it resolved, with no action left to take on it."""
    rid = an_open_report(app_db, nurse_panel(app_db), unanswered=True)
    at = open_on(open_app(NURSE), rid)
    assert any(b.key == f"ack_{rid}" for b in at.button)
    colleague = User(actor="N9999", name="Another Nurse", role=Role.NURSE, panels=(nurse_panel(app_db),))
    act(app_db, colleague, SEED_NOW, action="resolve", report_ids=[rid], outcome="self_care_advice")
    at.run()  # the next refresh
    assert not at.exception
    assert not any(b.key in (f"ack_{rid}", f"take_{rid}") for b in at.button)
    assert "This report is resolved" in texts(at)
    assert rid not in list(at.dataframe[0].value["Report"])


def test_resolving_a_report_gives_back_whoever_had_taken_it(app_db):
    from dashboard.queue import report_detail
    from dashboard.rules import load_rules
    from tests.conftest import ROOT

    rid = an_open_report(app_db, nurse_panel(app_db), unanswered=True)
    nurse = User(actor=NURSE, name="Test Nurse", role=Role.NURSE, panels=(nurse_panel(app_db),))
    act(app_db, nurse, SEED_NOW, action="take", report_ids=[rid])
    rules = load_rules(ROOT / "rules")
    assert report_detail(app_db, rules, rid)["taken_by"] == (NURSE, "Test Nurse")
    act(app_db, nurse, SEED_NOW + timedelta(minutes=5), action="resolve", report_ids=[rid], outcome="admitted")
    assert report_detail(app_db, rules, rid)["taken_by"] is None
