"""Actions land where the nurse meant: one report unless a group is chosen, only real changes,
repeated clicks recorded once, earlier actions by others named with their date, and a report can
be taken and released. Real DuckDB files; the actions go through dashboard.workflow as the page's do."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from dashboard.access import Role, User
from dashboard.models import InputError
from dashboard.workflow import act, result_message, submit_report
from tests.conftest import both_stores, give_every_panel

pytestmark = both_stores
NOW = datetime(2026, 11, 20, 12, 0)
ANNE = User(actor="N9001", name="Anne Test", role=Role.NURSE)
ANNE_TWIN = User(actor="N9002", name="Anne Test", role=Role.NURSE)  # the same name, another person
DOCTOR = User(actor="P9001", name="Dr Test", role=Role.PHYSICIAN)


@pytest.fixture(autouse=True)
def _nurses_on_every_panel(request, monkeypatch):
    give_every_panel(request, monkeypatch, globals(), ("ANNE", "ANNE_TWIN"))


def new_report(db, rules, patient: str | None = None, *, at: datetime = NOW, pain: int = 5, **fields) -> str:
    patient = patient or db.scalar("SELECT min(patient_id) FROM patients")
    return submit_report(db, rules, ANNE, at, patient_id=patient,
                         report={"reported_at": at, "pain_score": pain, **fields}).report_id


def events(db, rid: str) -> list[tuple]:
    return db.rows("SELECT actor, action, tier_before, tier_after, note FROM events WHERE report_id = ? "
                   "ORDER BY event_id", [rid])


def test_a_repeated_click_is_recorded_once(fresh_db, rules):
    rid = new_report(fresh_db, rules)
    first = act(fresh_db, ANNE, NOW, action="call_back", report_ids=[rid], reached=False, note="no answer")
    again = act(fresh_db, ANNE, NOW + timedelta(seconds=5), action="call_back", report_ids=[rid], reached=False,
                note="no answer")
    assert first.recorded == [rid] and again.recorded == []
    assert "repeated click" in again.unchanged[0][1]
    # A real second call later, or with another outcome, is recorded.
    later = act(fresh_db, ANNE, NOW + timedelta(minutes=30), action="call_back", report_ids=[rid], reached=False,
                note="no answer")
    assert later.recorded == [rid]
    assert [e[1] for e in events(fresh_db, rid)] == ["call_back", "call_back"]


def test_the_same_request_id_is_recorded_once_whenever_it_comes(fresh_db, rules):
    rid = new_report(fresh_db, rules)
    act(fresh_db, ANNE, NOW, action="note", report_ids=[rid], note="first", request_id="form-1")
    again = act(fresh_db, ANNE, NOW + timedelta(hours=1), action="note", report_ids=[rid], note="first",
                request_id="form-1")
    assert again.recorded == [] and len(events(fresh_db, rid)) == 1


def test_a_second_acknowledgement_by_the_same_person_is_not_a_change(fresh_db, rules):
    rid = new_report(fresh_db, rules)
    act(fresh_db, ANNE, NOW, action="acknowledge", report_ids=[rid])
    again = act(fresh_db, ANNE, NOW + timedelta(hours=2), action="acknowledge", report_ids=[rid])
    assert again.recorded == [] and again.unchanged == [(rid, "already acknowledged by you")]
    # Another person with the same name is another person: compared by id, and told who was first.
    twin = act(fresh_db, ANNE_TWIN, NOW + timedelta(hours=3), action="acknowledge", report_ids=[rid])
    assert twin.recorded == [rid]
    assert [(p.actor, p.action) for p in twin.already] == [("N9001", "acknowledge")]
    text, kind = result_message(twin, "acknowledge")
    assert kind == "warning" and "already acknowledged by Anne Test on 20 Nov 2026 at 12:00" in text


def test_an_override_to_the_tier_in_force_is_refused_and_changes_nothing(fresh_db, rules):
    rid = new_report(fresh_db, rules, pain=2)
    tier = fresh_db.scalar("SELECT tier FROM current_tiers WHERE report_id = ?", [rid])
    same = act(fresh_db, DOCTOR, NOW, action="override", report_ids=[rid], tier_after=tier, note="checked")
    assert same.recorded == [] and "already" in same.unchanged[0][1]
    moved = act(fresh_db, DOCTOR, NOW, action="override", report_ids=[rid], tier_after="urgent", note="sounds unwell")
    assert moved.recorded == [rid]
    assert events(fresh_db, rid)[-1] == ("P9001", "override", tier, "urgent", "sounds unwell")
    assert fresh_db.scalar("SELECT tier FROM current_tiers WHERE report_id = ?", [rid]) == "urgent"


def test_an_override_applies_to_the_one_report_reviewed(fresh_db, rules):
    patient = fresh_db.scalar("SELECT min(patient_id) FROM patients")
    a = new_report(fresh_db, rules, patient, pain=2)
    b = new_report(fresh_db, rules, patient, at=NOW - timedelta(hours=1), pain=3)
    with pytest.raises(InputError) as err:
        act(fresh_db, DOCTOR, NOW, action="override", report_ids=[a, b], tier_after="urgent", note="x")
    assert ("report_ids", "an override applies to the one report reviewed, not to a group") in err.value.problems
    assert events(fresh_db, a) == [] and events(fresh_db, b) == []


@pytest.mark.parametrize("fields, field", [
    ({"action": "override", "tier_after": "urgent"}, "note"),
    ({"action": "override", "note": "why"}, "tier_after"),
    ({"action": "call_back"}, "reached"),
    ({"action": "escalate"}, "escalated_to"),
    ({"action": "resolve"}, "outcome"),
    ({"action": "note"}, "note"),
])
def test_a_missing_answer_names_its_field(fresh_db, rules, fields, field):
    rid = new_report(fresh_db, rules)
    with pytest.raises(InputError) as err:
        act(fresh_db, DOCTOR, NOW, report_ids=[rid], **fields)
    assert [f for f, _ in err.value.problems] == [field]
    assert all("{" not in m and "[" not in m for _, m in err.value.problems)  # no internal structures


def test_a_note_keeps_its_line_breaks_and_refuses_other_control_characters(fresh_db, rules):
    rid = new_report(fresh_db, rules)
    act(fresh_db, ANNE, NOW, action="note", report_ids=[rid], note="Called twice.\r\nLeft a message.\tWill retry.")
    assert events(fresh_db, rid)[-1][4] == "Called twice.\nLeft a message.\tWill retry."
    with pytest.raises(InputError) as err:
        act(fresh_db, ANNE, NOW, action="note", report_ids=[rid], note="bell \x07")
    assert err.value.problems[0][0] == "note"


def test_take_and_release(fresh_db, rules):
    rid = new_report(fresh_db, rules)
    assert act(fresh_db, ANNE, NOW, action="take", report_ids=[rid]).recorded == [rid]
    assert act(fresh_db, ANNE, NOW + timedelta(minutes=5), action="take", report_ids=[rid]).unchanged == [
        (rid, "already yours")]
    released = act(fresh_db, ANNE, NOW + timedelta(minutes=6), action="release", report_ids=[rid])
    assert released.recorded == [rid]
    assert act(fresh_db, ANNE, NOW + timedelta(minutes=20), action="release", report_ids=[rid]).unchanged == [
        (rid, "not taken by anyone")]
    assert [e[1] for e in events(fresh_db, rid)] == ["take", "release"]
    # Taking it again at once is a new action, not a repeat of the first take (a release came between).
    assert act(fresh_db, ANNE, NOW + timedelta(minutes=20, seconds=5), action="take", report_ids=[rid]).recorded == [rid]
    again = act(fresh_db, ANNE, NOW + timedelta(minutes=20, seconds=9), action="release", report_ids=[rid])
    assert again.recorded == [rid]
    assert [e[1] for e in events(fresh_db, rid)] == ["take", "release", "take", "release"]


def test_actions_on_a_resolved_report_change_nothing_but_a_note(fresh_db, rules):
    rid = new_report(fresh_db, rules)
    act(fresh_db, ANNE, NOW, action="resolve", report_ids=[rid], outcome="self_care_advice")
    late = act(fresh_db, ANNE_TWIN, NOW + timedelta(minutes=1), action="acknowledge", report_ids=[rid])
    assert late.recorded == [] and late.unchanged == [(rid, "already resolved")]
    assert [p.action for p in late.already_resolved] == ["resolve"]
    assert "already resolved by Anne Test on 20 Nov 2026 at 12:00" in result_message(late, "acknowledge")[0]
    assert act(fresh_db, ANNE_TWIN, NOW, action="note", report_ids=[rid], note="patient rang back").recorded == [rid]


def test_could_not_ask_counts_as_yes_and_is_recorded(fresh_db, rules):
    patient = fresh_db.scalar("SELECT min(patient_id) FROM patients")
    done = submit_report(fresh_db, rules, ANNE, NOW, patient_id=patient, unasked=["leg_weakness"],
                         report={"reported_at": NOW, "pain_score": 3, "pain_pattern": "usual", "onset": "gradual"})
    assert done.tier == "emergency" and "E1" in done.rule_ids
    assert fresh_db.scalar("SELECT leg_weakness FROM reports WHERE report_id = ?", [done.report_id]) is True
    assert fresh_db.rows("SELECT field FROM report_unasked WHERE report_id = ?", [done.report_id]) == [
        ("leg_weakness",)]
    with pytest.raises(InputError) as err:
        submit_report(fresh_db, rules, ANNE, NOW, patient_id=patient, unasked=["favourite_colour"],
                      report={"reported_at": NOW, "pain_score": 3})
    assert err.value.problems[0][0].startswith("unasked")


def test_the_same_phone_report_sent_twice_is_one_report(fresh_db, rules):
    patient = fresh_db.scalar("SELECT min(patient_id) FROM patients")
    fields = {"reported_at": NOW, "pain_score": 4, "onset": "gradual"}
    first = submit_report(fresh_db, rules, ANNE, NOW, patient_id=patient, report=fields)
    with pytest.raises(InputError) as err:
        submit_report(fresh_db, rules, ANNE, NOW, patient_id=patient, report=fields)
    assert first.report_id in err.value.problems[0][1]
    assert fresh_db.scalar("SELECT count(*) FROM reports WHERE patient_id = ? AND reported_at = ?",
                           [patient, NOW]) == 1


def test_the_phone_form_records_nothing_that_nobody_chose(fresh_db, rules):
    """The phone form's rules live in the workflow, not the page: every question must be answered,
    each unanswered one is named as the nurse asks it, and nothing is stored until all are."""
    from dashboard.labels import FLAG_QUESTIONS, ONSET_QUESTION, PAIN_PATTERN_QUESTION
    from dashboard.workflow import submit_phone_report

    patient = fresh_db.scalar("SELECT min(patient_id) FROM patients")
    before = fresh_db.scalar("SELECT count(*) FROM reports")
    flags = {f: "no" for f in FLAG_QUESTIONS}
    common = {"patient_id": patient, "reported_at": NOW, "trend": None, "location": None}
    with pytest.raises(InputError) as caught:
        submit_phone_report(fresh_db, rules, ANNE, NOW, pain_score=None, pain_pattern=None, onset="gradual",
                            flags={**flags, "saddle_numbness": None, "rigors": None}, **common)
    named = [field for field, _ in caught.value.problems]
    assert named == ["Pain score (0-10)", PAIN_PATTERN_QUESTION, FLAG_QUESTIONS["saddle_numbness"],
                     FLAG_QUESTIONS["rigors"]]
    assert ONSET_QUESTION not in named
    with pytest.raises(InputError):  # a question left out altogether is unanswered too
        submit_phone_report(fresh_db, rules, ANNE, NOW, pain_score=3, pain_pattern="usual", onset="gradual",
                            flags={f: a for f, a in flags.items() if f != "leg_weakness"}, **common)
    with pytest.raises(InputError):
        submit_phone_report(fresh_db, rules, ANNE, NOW, pain_score=3, pain_pattern="usual", onset="gradual",
                            flags={**flags, "favourite_colour": "no"}, **common)
    assert fresh_db.scalar("SELECT count(*) FROM reports") == before
    # Answered, with one question that could not be asked: counted as yes, and recorded as not asked.
    done = submit_phone_report(fresh_db, rules, ANNE, NOW, pain_score=3, pain_pattern="unsure", onset="gradual",
                               flags={**flags, "bladder_or_bowel_change": "unasked"}, **common)
    assert done.tier == "emergency" and "E1" in done.rule_ids
    assert fresh_db.rows("SELECT field FROM report_unasked WHERE report_id = ?", [done.report_id]) == [
        ("bladder_or_bowel_change",)]
    assert fresh_db.rows("SELECT bladder_or_bowel_change, pain_pattern FROM reports WHERE report_id = ?",
                         [done.report_id]) == [(True, None)]


def test_the_phone_form_asks_every_red_flag_of_a_report_once():
    """A yes/no field of the report the form did not ask would be stored as "no" unasked: the form's
    groups hold every one, once, and the words a nurse reads follow the same order."""
    from dashboard.labels import FLAG_GROUPS, FLAG_QUESTIONS, RED_FLAG_ORDER
    from dashboard.models import REPORT_FLAGS

    asked = [flag for group in FLAG_GROUPS.values() for flag in group]
    assert sorted(asked) == sorted(REPORT_FLAGS) and len(asked) == len(set(asked))
    assert set(FLAG_QUESTIONS) == set(REPORT_FLAGS) and RED_FLAG_ORDER == asked
