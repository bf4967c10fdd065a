"""The queue's order and clocks on small known frames: a group shows its worst state, overdue before
answered, a re-call clock after "not reached", and answered reports open too long are flagged."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from dashboard import clock
from dashboard.labels import duration
from dashboard.models import REPORT_FLAGS
from dashboard.queue import ANSWERED, OVERDUE, QUEUE_COLUMNS, WAITING, build_queue, queue_table

NOW = datetime(2026, 11, 20, 12, 0)


def ago(delta: timedelta | None) -> datetime | None:
    """The local wall-clock time a real duration before NOW (the clocks changed in between sometimes)."""
    if delta is None:
        return None
    return clock.local(pd.Series([clock.instant(NOW) - delta])).iloc[0].to_pydatetime()


def report(rid: str, patient: str, tier: str, reported: timedelta, *, answered: timedelta | None = None,
           not_reached: timedelta | None = None, taken_by: str | None = None, **state) -> dict:
    """One open report as queue.open_reports returns it; times are before NOW."""
    row = {f: False for f in REPORT_FLAGS}
    row.update({
        "report_id": rid, "patient_id": patient, "panel_id": "X", "patient_name": f"Patient {patient}",
        "mrn": f"MRN{patient}", "cancer_type": "breast", "reported_at": ago(reported), "source": "epro",
        "pain_score": 4, "onset": "gradual", "trend": "stable", "location": "lumbar", "duration_days": None,
        "temperature_c": None, "triage_tier": tier, "tier": tier, "rule_ids": [], "causes": [],
        "rules_version": "v", "first_response_at": ago(answered),
        "first_responder": None, "last_action": None if answered is None else state.get("last_action", "acknowledge"),
        "last_action_at": None, "escalated_to": None, "reached": False if not_reached is not None else None,
        "call_backs": 1 if not_reached is not None else 0,
        "not_reached_at": ago(not_reached),
        "taken_by": taken_by, "taken_by_name": None if taken_by is None else f"Nurse {taken_by}",
        "alerts_sent": 0, "alerts_undelivered": 0,
    })
    return row


def frame(*rows: dict) -> pd.DataFrame:
    df = pd.DataFrame(list(rows))
    for c in ("reported_at", "first_response_at", "last_action_at", "not_reached_at"):
        df[c] = pd.to_datetime(df[c])
    return df


def test_an_overdue_report_is_never_hidden_under_an_answered_group_head(rules):
    q = build_queue(frame(
        report("R-1", "A", "urgent", timedelta(hours=1), answered=timedelta(minutes=50)),  # head: urgent, answered
        report("R-2", "A", "soon", timedelta(days=2)),  # overdue (soon: 24 h) and unanswered
    ), rules, NOW)
    head = q.rows.iloc[0]
    assert head["report_id"] == "R-1" and head["tier"] == "urgent"  # the most urgent tier leads the group
    assert head["clock"].startswith("OVERDUE") and "(R-2)" in head["clock"]
    assert head["group_state"] == OVERDUE and q.overdue == 1
    assert list(q.filtered("overdue")["report_id"]) == ["R-1"]


def test_groups_needing_action_come_before_answered_ones_and_overdue_first(rules):
    q = build_queue(frame(
        report("R-1", "A", "emergency", timedelta(hours=3), answered=timedelta(hours=2, minutes=55)),
        report("R-2", "B", "soon", timedelta(days=2)),  # overdue
        report("R-3", "C", "soon", timedelta(hours=1)),  # waiting, 23 h left
        report("R-4", "D", "urgent", timedelta(minutes=30)),  # waiting, 90 min left
        report("R-5", "E", "routine", timedelta(days=4)),  # overdue (72 h)
    ), rules, NOW)
    assert list(q.rows["report_id"]) == ["R-4", "R-2", "R-3", "R-5", "R-1"]
    assert list(q.rows["group_state"]) == [WAITING, OVERDUE, WAITING, OVERDUE, ANSWERED]
    assert set(q.filtered("unanswered")["report_id"]) == {"R-2", "R-3", "R-4", "R-5"}


def test_not_reached_starts_a_recall_clock_and_the_report_comes_back_up(rules):
    recall = rules.recall_after_minutes("urgent")
    waiting = build_queue(frame(report("R-1", "A", "urgent", timedelta(hours=1), answered=timedelta(minutes=10),
                                       not_reached=timedelta(minutes=recall - 5))), rules, NOW)
    row = waiting.reports.iloc[0]
    assert row["state"] == WAITING and row["clock"] == "re-call in 5 min" and waiting.overdue == 0
    due = build_queue(frame(report("R-1", "A", "urgent", timedelta(hours=1), answered=timedelta(minutes=10),
                                   not_reached=timedelta(minutes=recall + 5))), rules, NOW)
    row = due.reports.iloc[0]
    assert row["state"] == OVERDUE and row["clock"] == "OVERDUE re-call 5 min" and due.overdue == 1


@pytest.mark.parametrize("tier", ["emergency", "urgent", "soon", "routine"])
def test_an_answered_report_open_past_its_resolution_target_is_flagged(rules, tier):
    target = rules.resolve_within_minutes(tier)
    q = build_queue(frame(
        report("R-1", "A", tier, timedelta(minutes=target - 1), answered=timedelta(minutes=target - 5)),
        report("R-2", "B", tier, timedelta(minutes=target + 1), answered=timedelta(minutes=target - 5)),
    ), rules, NOW)
    flagged = dict(zip(q.reports["report_id"], q.reports["open_too_long"]))
    assert flagged == {"R-1": False, "R-2": True} and q.open_too_long == 1
    table = queue_table(q, rules)
    assert table.loc[table["Report"] == "R-2", "Clock"].iloc[0].endswith("OPEN PAST RESOLUTION TARGET")


def test_mine_shows_the_groups_this_person_has_taken(rules):
    q = build_queue(frame(report("R-1", "A", "soon", timedelta(hours=1), taken_by="N1"),
                          report("R-2", "B", "soon", timedelta(hours=2), taken_by="N2"),
                          report("R-3", "C", "soon", timedelta(hours=3))), rules, NOW)
    assert list(q.filtered("mine", "N1")["report_id"]) == ["R-1"]
    table = queue_table(q, rules)
    assert dict(zip(table["Report"], table["Taken by"])) == {"R-1": "Nurse N1", "R-2": "Nurse N2", "R-3": ""}
    # A filter that matches nothing gives the same columns, empty.
    empty = queue_table(q, rules, q.filtered("mine", "N9"))
    assert empty.empty and list(empty.columns) == QUEUE_COLUMNS == list(table.columns)


# Both of 2026's UK clock changes: forward at 01:00 GMT on 29 March, back at 02:00 BST on 25 October.
@pytest.mark.parametrize("reported, answered, minutes", [
    (datetime(2026, 3, 29, 0, 30), datetime(2026, 3, 29, 3, 30), 120),  # 01:00-02:00 never happened
    (datetime(2026, 10, 25, 0, 30), datetime(2026, 10, 25, 2, 30), 180),  # 01:00-02:00 happened twice
])
def test_a_clock_across_a_change_of_the_clocks_counts_real_minutes(rules, reported, answered, minutes):
    row = report("R-1", "A", "urgent", timedelta(0))
    row.update(reported_at=reported, first_response_at=answered, last_action="acknowledge")
    q = build_queue(frame(row), rules, answered + timedelta(minutes=5))
    target = rules.respond_within_minutes("urgent")
    late = f", {duration(minutes - target)} late" if minutes > target else ""
    assert q.reports.iloc[0]["clock"] == f"answered in {minutes // 60} h 00 min{late}"


@pytest.mark.parametrize("now, left", [
    (datetime(2026, 3, 29, 3, 0), 0),  # reported 00:30 GMT + 2 h target = 03:30 BST; 03:00 BST is 30 min before
    (datetime(2026, 10, 25, 1, 30), 60),  # reported 00:30 BST; target 02:30 BST... read as the first 01:30
])
def test_the_time_left_runs_in_real_minutes_across_the_change(rules, now, left):
    row = report("R-1", "A", "urgent", timedelta(0))
    row.update(reported_at=now.replace(hour=0, minute=30))
    q = build_queue(frame(row), rules, now)
    r = q.reports.iloc[0]
    expected = {datetime(2026, 3, 29, 3, 0): "30 min left", datetime(2026, 10, 25, 1, 30): "1 h 00 min left"}[now]
    assert r["clock"] == expected and not r["overdue"]
