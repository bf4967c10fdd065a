"""Response-time figures on small event tables with known answers (a real DuckDB file, built by the
migrations): unanswered reports past their target count as late, percentiles by nearest rank, in and
out of hours at the edges, repeats, resolution targets, and the reports behind each figure."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from dashboard import clock, metrics
from dashboard.db import Database

NOW = datetime(2026, 11, 20, 12, 0)  # a Friday
PANELS = ["BRE-A"]
WEEK = (date(2026, 11, 1), date(2026, 11, 20))


@pytest.fixture
def db(tmp_path) -> Database:
    db = Database(tmp_path / "metrics.duckdb")
    db.migrate()
    db.rows("INSERT INTO panels VALUES ('BRE-A', 'Breast A', 'Breast oncology'), ('LUN-A', 'Lung A', 'Lung oncology')")
    return db


def patient(db: Database, pid: str, panel: str = "BRE-A") -> None:
    db.rows("INSERT INTO patients (patient_id, mrn, name, cancer_type, panel_id) VALUES (?, ?, ?, 'breast', ?)"
            " ON CONFLICT DO NOTHING", [pid, f"MRN{pid}", f"Patient {pid}", panel])


def report(db: Database, rid: str, at: datetime, tier: str | None, pid: str = "P-1", panel: str = "BRE-A") -> None:
    """A report and (unless ``tier`` is None) its triage result."""
    patient(db, pid, panel)
    db.rows("INSERT INTO reports (report_id, patient_id, reported_at, received_at, source, pain_score)"
            " VALUES (?, ?, ?, ?, 'epro', 5)", [rid, pid, at, at])
    if tier is not None:
        db.rows("INSERT INTO triage_results (report_id, tier, rule_ids, causes, unrecognised_drugs, guidance_key,"
                " respond_within_minutes, respond_by, rules_version, triaged_at) VALUES (?, ?, [], [], [], 'k', 15, ?,"
                " 'v', ?)", [rid, tier, at, at])


def event(db: Database, rid: str, at: datetime, action: str = "acknowledge", *, who: str = "Helen Costa",
          tier_before: str | None = None, **extra) -> None:
    cols = {"report_id": rid, "acted_at": at, "actor": who.split()[0].upper(), "actor_name": who, "role": "nurse",
            "action": action, "tier_before": tier_before, "tier_after": tier_before, **extra}
    db.rows(f"INSERT INTO events ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})", list(cols.values()))


def answered(db: Database, rid: str, at: datetime, minutes: float, tier: str, **kw) -> None:
    report(db, rid, at, tier, **kw)
    event(db, rid, at + timedelta(minutes=minutes), tier_before=tier)


def row(frame, **match):
    out = frame
    for k, v in match.items():
        out = out[out[k] == v]
    assert len(out) == 1, (match, out)
    return out.iloc[0]


# ------------------------------------------------------------------ an unanswered report is a breach


@pytest.fixture
def emergencies(db):
    """Nine emergencies (target 15 min): seven answered (5, 10, 12, 14, 15 in time; 16, 40 late), one
    unanswered for 60 min (past target), one unanswered for 5 min (within target)."""
    base = datetime(2026, 11, 10, 10, 0)
    for i, minutes in enumerate([5, 10, 12, 14, 15, 16, 40]):
        answered(db, f"R-{i}", base + timedelta(hours=i), minutes, "emergency", pid=f"P-{i}")
    report(db, "R-WAIT60", NOW - timedelta(minutes=60), "emergency", pid="P-7")
    report(db, "R-WAIT5", NOW - timedelta(minutes=5), "emergency", pid="P-8")
    return db


def test_an_unanswered_report_past_its_target_counts_as_late(emergencies, rules):
    rt = metrics.response_times(emergencies, rules, PANELS, *WEEK, NOW)
    e = row(rt.by_tier, tier="emergency")
    assert (e.reports, e.answered, e.answered_in_time, e.answered_late) == (9, 7, 5, 2)
    assert (e.unanswered_past_target, e.unanswered_within_target) == (1, 1)
    assert (rt.past_target, rt.within_target) == (1, 1)
    # In time over every decided report: 5 of 8 (answered only, it would read 5 of 7).
    assert e.within_target == pytest.approx(5 / 8)
    # Times: 5, 10, 12, 14, 15, 16, 40 and the 60 min the unanswered one has waited.
    assert e.median_ack == pytest.approx(14.5)  # the mean of the two middle values
    # Nearest rank: the ceil(0.9 x 8) = 8th shortest. Linear interpolation would give 46, the
    # floor-rank (DuckDB's quantile_disc) 40, and answered reports only 40.
    assert e.p90_ack == pytest.approx(60)


def test_now_is_the_time_the_figures_are_taken_at(emergencies, rules):
    later = metrics.response_times(emergencies, rules, PANELS, *WEEK, NOW + timedelta(minutes=11))
    e = row(later.by_tier, tier="emergency")
    # Waiting 16 min now: past its 15 min target.
    assert (e.unanswered_past_target, e.unanswered_within_target) == (2, 0)
    assert e.within_target == pytest.approx(5 / 9)
    # Exactly at the target the report is not late yet.
    at_target = metrics.response_times(emergencies, rules, PANELS, *WEEK, NOW + timedelta(minutes=10))
    assert row(at_target.by_tier, tier="emergency").unanswered_within_target == 1
    # An answer recorded after now has not happened yet.
    event(emergencies, "R-WAIT60", NOW + timedelta(minutes=30), tier_before="emergency")
    rt = metrics.response_times(emergencies, rules, PANELS, *WEEK, NOW)
    assert row(rt.timings, report_id="R-WAIT60").response == metrics.PAST_TARGET
    rt = metrics.response_times(emergencies, rules, PANELS, *WEEK, NOW + timedelta(minutes=31))
    assert row(rt.timings, report_id="R-WAIT60").response == metrics.LATE
    assert row(rt.timings, report_id="R-WAIT60").minutes_to_ack == pytest.approx(90)


def test_only_the_chosen_panels_and_period_count(emergencies, rules):
    answered(emergencies, "R-LUNG", datetime(2026, 11, 10, 9, 0), 50, "emergency", pid="P-L", panel="LUN-A")
    answered(emergencies, "R-OLD", datetime(2026, 10, 31, 23, 59), 50, "emergency", pid="P-O")
    rt = metrics.response_times(emergencies, rules, PANELS, *WEEK, NOW)
    assert rt.reports == 9
    assert not {"R-LUNG", "R-OLD"} & set(rt.timings["report_id"])
    both = metrics.response_times(emergencies, rules, ["BRE-A", "LUN-A"], *WEEK, NOW)
    assert both.reports == 10


def test_percentile_is_nearest_rank_and_median_the_middle():
    assert metrics.percentile([1, 2, 3, 4, 50]) == 50  # ceil(4.5) = 5th; linear would be 31.6
    assert metrics.percentile(list(range(1, 11))) == 9  # ceil(9.0) = 9th, not the 10th
    assert metrics.percentile(list(range(1, 21))) == 18
    assert metrics.median([1, 2, 3, 10]) == 2.5
    assert metrics.percentile([]) != metrics.percentile([])  # NaN when there is nothing


def test_a_report_without_a_triage_result_is_measured_as_an_emergency(db, rules):
    report(db, "R-NOTRIAGE", NOW - timedelta(minutes=20), None)
    rt = metrics.response_times(db, rules, PANELS, *WEEK, NOW)
    r = row(rt.timings, report_id="R-NOTRIAGE")
    assert (r.tier, r.response) == ("emergency", metrics.PAST_TARGET)


def test_the_tier_is_the_one_in_force_at_the_first_answer(db, rules):
    # Triaged routine, acknowledged as routine, raised to an emergency an hour later: measured as routine.
    report(db, "R-1", datetime(2026, 11, 10, 10, 0), "routine")
    event(db, "R-1", datetime(2026, 11, 10, 10, 30), tier_before="routine")
    event(db, "R-1", datetime(2026, 11, 10, 11, 30), "override", who="Priya Shah", tier_before="routine",
          tier_after="emergency", note="cord signs on the call")
    report(db, "R-2", NOW - timedelta(hours=1), "urgent", pid="P-2")  # waiting: its current tier
    rt = metrics.response_times(db, rules, PANELS, *WEEK, NOW)
    assert row(rt.timings, report_id="R-1").tier == "routine"
    assert row(rt.timings, report_id="R-1").response == metrics.IN_TIME
    assert row(rt.timings, report_id="R-2").tier == "urgent"


# ------------------------------------------------------------------ resolution targets


def test_an_answered_report_open_past_its_resolution_target_is_late(db, rules):
    """Urgent: resolve within 1440 min (24 h) of the report."""
    assert rules.resolve_within_minutes("urgent") == 1440
    t = datetime(2026, 11, 10, 9, 0)
    answered(db, "R-FAST", t, 30, "urgent", pid="P-1")
    event(db, "R-FAST", t + timedelta(minutes=600), "resolve", tier_before="urgent", outcome="analgesia_adjusted")
    answered(db, "R-SLOW", t, 30, "urgent", pid="P-2")
    event(db, "R-SLOW", t + timedelta(minutes=2000), "resolve", tier_before="urgent", outcome="imaging_requested")
    answered(db, "R-STUCK", NOW - timedelta(days=3), 30, "urgent", pid="P-3")  # acknowledged, never resolved
    answered(db, "R-OPEN", NOW - timedelta(hours=2), 30, "urgent", pid="P-4")  # open, within 24 h
    rt = metrics.response_times(db, rules, PANELS, *WEEK, NOW)
    u = row(rt.by_tier, tier="urgent")
    assert (u.resolved, u.resolved_late, u.open_past_resolution_target) == (2, 1, 1)
    assert u.resolved_within_target == pytest.approx(1 / 3)
    assert u.median_resolve == pytest.approx(2000)
    assert u.p90_resolve == pytest.approx(3 * 24 * 60)  # the stuck one, at the time it has been open
    assert row(rt.timings, report_id="R-STUCK").resolution == metrics.OPEN_PAST_TARGET
    assert row(rt.timings, report_id="R-OPEN").resolution == metrics.OPEN_WITHIN_TARGET
    stuck = metrics.reports_behind(rt.timings, "urgent", "open past resolution target")
    assert list(stuck["report_id"]) == ["R-STUCK"]
    assert stuck["outcome"].iloc[0] == "still open"
    late = metrics.reports_behind(rt.timings, "urgent", "resolved late")
    assert list(late["report_id"]) == ["R-SLOW"] and late["outcome"].iloc[0] == "Imaging requested"


# ------------------------------------------------------------------ in and out of hours


EDGES = {
    "R-TUE-0759": (datetime(2026, 11, 10, 7, 59), False),
    "R-TUE-0800": (datetime(2026, 11, 10, 8, 0), True),
    "R-TUE-1759": (datetime(2026, 11, 10, 17, 59), True),
    "R-TUE-1800": (datetime(2026, 11, 10, 18, 0), False),
    "R-FRI-1759": (datetime(2026, 11, 13, 17, 59), True),
    "R-SAT-1000": (datetime(2026, 11, 14, 10, 0), False),
    "R-SUN-1000": (datetime(2026, 11, 15, 10, 0), False),
}


@pytest.fixture
def edges(db):
    """Urgent reports (target 120 min) at the edges: in hours answered in 60 min, out of hours in 180."""
    for i, (rid, (at, inside)) in enumerate(EDGES.items()):
        answered(db, rid, at, 60 if inside else 180, "urgent", pid=f"P-{i}")
    return db


def test_in_and_out_of_hours_at_the_edges_and_weekends(edges, rules):
    rt = metrics.response_times(edges, rules, PANELS, *WEEK, NOW, in_hours=(8, 18))
    got = dict(zip(rt.timings["report_id"], rt.timings["in_hours"]))
    assert got == {rid: inside for rid, (_, inside) in EDGES.items()}
    inside = row(rt.hours, tier="urgent", period="in hours")
    outside = row(rt.hours, tier="urgent", period="out of hours")
    assert (inside.reports, inside.within_target, inside.median_ack) == (3, 1.0, 60)
    assert (outside.reports, outside.within_target, outside.median_ack) == (4, 0.0, 180)


def test_in_hours_follow_the_settings(edges, rules):
    rt = metrics.response_times(edges, rules, PANELS, *WEEK, NOW, in_hours=(9, 17))
    got = dict(zip(rt.timings["report_id"], rt.timings["in_hours"]))
    assert not any(got.values())  # 08:00 and 17:59 are outside 09:00-17:00


def test_times_are_real_minutes_across_a_change_of_the_clocks(db, rules):
    # 29 March 2026: 01:00 GMT becomes 02:00 BST. 00:30 to 03:30 on the wall clock is 2 hours.
    answered(db, "R-SPRING", datetime(2026, 3, 29, 0, 30), 180, "urgent")
    rt = metrics.response_times(db, rules, PANELS, date(2026, 3, 29), date(2026, 3, 29), NOW)
    r = row(rt.timings, report_id="R-SPRING")
    assert r.minutes_to_ack == pytest.approx(120)
    assert r.response == metrics.IN_TIME  # urgent: 120 min


def test_the_repeated_hour_of_october_counts_in_real_minutes(db, rules):
    # 25 October 2026: 02:00 BST becomes 01:00 GMT. 00:30 to 02:30 on the wall clock is 3 hours: an
    # urgent report (target 2 hours) answered then was answered an hour late, though the wall clock
    # says two hours.
    answered(db, "R-AUTUMN", datetime(2026, 10, 25, 0, 30), 120, "urgent")
    rt = metrics.response_times(db, rules, PANELS, date(2026, 10, 25), date(2026, 10, 25), NOW)
    r = row(rt.timings, report_id="R-AUTUMN")
    assert r.minutes_to_ack == pytest.approx(180)
    assert r.response == metrics.LATE
    assert row(rt.by_tier, tier="urgent").within_target == 0


# ------------------------------------------------------------------ repeats


def test_a_report_while_the_patient_has_one_open_is_a_repeat(db, rules):
    d = datetime(2026, 11, 9, 9, 0)
    # P-1: R-A open, R-B comes in (a repeat); both resolved on day 3; R-C on day 4 is not a repeat.
    answered(db, "R-A", d, 30, "soon", pid="P-1")
    answered(db, "R-B", d + timedelta(days=1), 30, "soon", pid="P-1")
    for rid in ("R-A", "R-B"):
        event(db, rid, d + timedelta(days=2), "resolve", tier_before="soon", outcome="self_care_advice")
    answered(db, "R-C", d + timedelta(days=3), 30, "soon", pid="P-1")
    # P-2: a report from before the period, still open, makes the first one in the period a repeat.
    answered(db, "R-EARLY", datetime(2026, 10, 20, 9, 0), 30, "routine", pid="P-2")
    answered(db, "R-D", d, 30, "routine", pid="P-2")
    # P-3: resolved at the very minute the next one came in: not open, not a repeat.
    answered(db, "R-E", d, 30, "routine", pid="P-3")
    event(db, "R-E", d + timedelta(hours=5), "resolve", tier_before="routine", outcome="no_further_action")
    answered(db, "R-F", d + timedelta(hours=5), 30, "routine", pid="P-3")
    rt = metrics.response_times(db, rules, PANELS, *WEEK, NOW)
    repeats = set(rt.timings.loc[rt.timings["is_repeat"], "report_id"])
    assert repeats == {"R-B", "R-D"}
    assert rt.repeats == 2 and rt.reports == 6
    assert (row(rt.by_tier, tier="soon").repeats, row(rt.by_tier, tier="routine").repeats) == (1, 1)
    assert list(metrics.reports_behind(rt.timings, "soon", "repeats")["report_id"]) == ["R-B"]


# ------------------------------------------------------------------ the reports behind a figure


def test_the_reports_behind_emergencies_answered_late_say_who_and_what_happened(emergencies, rules):
    event(emergencies, "R-5", datetime(2026, 11, 10, 15, 20), "escalate", who="Helen Costa",
          tier_before="emergency", escalated_to="mscc_coordinator")
    event(emergencies, "R-5", datetime(2026, 11, 10, 18, 0), "resolve", who="Omar Reid", tier_before="emergency",
          outcome="referred_to_mscc")
    rt = metrics.response_times(emergencies, rules, PANELS, *WEEK, NOW)
    late = metrics.reports_behind(rt.timings, "emergency", "answered late")
    assert list(late["report_id"]) == ["R-5", "R-6"]  # oldest first
    first = late.iloc[0]
    assert first["reported_at"] == clock.aware(datetime(2026, 11, 10, 15, 0))  # instants, in the zone
    assert first["answered_at"] == clock.aware(datetime(2026, 11, 10, 15, 16))
    assert (first["answered_by"], first["first_action"], first["time_to_answer"], first["late_by"]) == (
        "Helen Costa", "Acknowledged", "16 min", "1 min")
    assert (first["escalated_to"], first["outcome"], first["resolved_by"]) == (
        "MSCC coordinator", "Referred to the MSCC pathway", "Omar Reid")
    assert late.iloc[1]["time_to_answer"] == "40 min" and late.iloc[1]["outcome"] == "still open"
    waiting = metrics.reports_behind(rt.timings, "emergency", "unanswered, past target")
    assert list(waiting["report_id"]) == ["R-WAIT60"]
    assert (waiting.iloc[0]["answered_by"], waiting.iloc[0]["time_to_answer"], waiting.iloc[0]["late_by"]) == (
        "", "waited 1 h 00 min", "45 min")
    choices = metrics.behind_choices(rt.timings, rules)
    assert ("emergency", "answered late", 2) in choices
    assert ("emergency", "unanswered, past target", 1) in choices
    assert ("emergency", "unanswered, within target", 1) in choices
    # Every list adds up to its figure.
    e = row(rt.by_tier, tier="emergency")
    assert len(metrics.reports_behind(rt.timings, "emergency", "answered in time")) == e.answered_in_time
    assert len(metrics.reports_behind(rt.timings, "emergency", "all")) == e.reports


def test_the_by_nurse_table_counts_first_answers(db, rules):
    t = datetime(2026, 11, 10, 10, 0)
    report(db, "R-1", t, "emergency", pid="P-1")
    event(db, "R-1", t + timedelta(minutes=5), who="Helen Costa", tier_before="emergency")
    event(db, "R-1", t + timedelta(minutes=6), who="Leo Fraser", tier_before="emergency")  # not the first
    report(db, "R-2", t + timedelta(hours=1), "emergency", pid="P-2")
    event(db, "R-2", t + timedelta(hours=1, minutes=20), "call_back", who="Leo Fraser", tier_before="emergency",
          reached=False)
    rt = metrics.response_times(db, rules, PANELS, *WEEK, NOW)
    nurses = rt.nurses.set_index("nurse")
    assert nurses.loc["Helen Costa", "reports"] == 1 and nurses.loc["Helen Costa", "within_target"] == 1.0
    assert nurses.loc["Leo Fraser", "reports"] == 1 and nurses.loc["Leo Fraser", "within_target"] == 0.0
    assert nurses.loc["Leo Fraser", "median_ack_emergency"] == 20
    behind = metrics.reports_behind(rt.timings, "emergency", "answered late")
    assert behind.iloc[0]["first_action"] == "Call-back (not reached)"


# ------------------------------------------------------------------ durations in words


@pytest.mark.parametrize("minutes, words", [(45, "45 min"), (200, "3 h 20 min"), (6519, "4 d 12 h"),
                                            (float("nan"), ""), (None, "")])
def test_durations_read_in_words(minutes, words):
    assert metrics.in_words(minutes) == words


@pytest.mark.parametrize("minutes, words", [(15, "15 min"), (120, "2 h"), (90, "1 h 30 min"), (1440, "1 d"),
                                            (2160, "1 d 12 h"), (4320, "3 d")])
def test_axis_ticks_read_in_words(minutes, words):
    assert metrics.tick_words(minutes) == words


def test_lead_tables_in_words(emergencies, rules):
    rt = metrics.response_times(emergencies, rules, PANELS, *WEEK, NOW)
    shown = metrics.words_columns(rt.by_tier, ["median_ack", "p90_ack", "median_resolve"])
    e = row(shown, tier="emergency")
    # The seven answered emergencies are still open: the middle one since 10 Nov 13:00.
    assert (e.median_ack, e.p90_ack, e.median_resolve) == ("14 min", "1 h 00 min", "9 d 23 h")
